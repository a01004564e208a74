"""Grants: permissions on one key delegated to one principal, a mix-in of :class:`~envelope.kms.store.KeyStore`.

A grant is how a key's owner lets a service or a colleague use the key for a
while without editing the key policy: it names a grantee, the operations it
may call, optionally a retiring principal and encryption-context constraints
(``EncryptionContextEquals``: the request's context must be exactly this;
``EncryptionContextSubset``: it must contain these pairs).  A grant only ever
adds permissions, never takes any away, and an explicit ``Deny`` in the key
policy still wins.

CreateGrant returns a grant id and a grant token.  In AWS KMS the token lets
the grantee use a grant before it has propagated; a local keystore is
consistent at once, so every grant works immediately, and a token passed with
a call is checked (it must name a live grant of that key) and otherwise changes
nothing.  Only a SHA-256 of each token is stored.

Who may end a grant: RevokeGrant, anyone the key policy allows
``kms:RevokeGrant``; RetireGrant, the retiring principal, the grantee when the
grant includes ``RetireGrant``, or the keystore owner.

A grantee who holds CreateGrant through a grant (not through the key policy)
may pass on only what that one grant holds, as in AWS KMS: some or all of its
operations, under constraints at least as strict as its own (every context the
new grant admits, the parent admits too).  Otherwise a grant constrained to
``dept=eng`` could mint its holder an unconstrained one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import context as _context
from ..context import EncryptionContext
from ..exceptions import AccessDeniedError, GrantTokenError, KeyNotFoundError, UsageError
from . import lifecycle
from . import principal as _principal
from .part import Delegation, StorePart

#: Operations a grant may allow (AWS's list, for the key types this keystore has).
GRANT_OPERATIONS = ("Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
                    "ReEncryptTo", "CreateGrant", "RetireGrant", "DescribeKey", "Sign", "Verify", "GetPublicKey",
                    "GenerateMac", "VerifyMac")
#: Operations whose requests carry an encryption context, the only ones constraints restrict.
_CONTEXT_OPERATIONS = {"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
                       "ReEncryptTo"}
_CONSTRAINT_KINDS = ("EncryptionContextEquals", "EncryptionContextSubset")
MAX_GRANTS_PER_KEY = 50_000  # AWS's quota; also bounds a listing
_TOKEN_PREFIX = "envgt1."


@dataclass(frozen=True)
class Grant:
    grant_id: str
    key_id: str
    name: str | None
    grantee_principal: str
    retiring_principal: str | None
    issuing_principal: str
    operations: tuple[str, ...]
    constraints: dict[str, dict[str, str]]
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return {"GrantId": self.grant_id, "KeyId": self.key_id, "Name": self.name,
                "GranteePrincipal": self.grantee_principal, "RetiringPrincipal": self.retiring_principal,
                "IssuingAccount": self.issuing_principal, "Operations": list(self.operations),
                "Constraints": self.constraints, "CreationDate": self.created_at}


class GrantOperations(StorePart):
    """CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant."""

    def create_grant(self, ref: str, grantee_principal: str, operations: Iterable[str], *,
                     retiring_principal: str | None = None, constraints: Mapping[str, Mapping[str, str]] | None = None,
                     name: str | None = None) -> tuple[str, str]:
        """CreateGrant: returns ``(grant_id, grant_token)``; the grant works at once."""
        grantee = _principal.normalize(grantee_principal)
        retiring = _principal.normalize(retiring_principal) if retiring_principal else None
        ops = _check_operations(operations)
        checked = _check_constraints(constraints)
        if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 256):
            raise UsageError("a grant name is 1 to 256 characters")
        request = {"key": ref, "grantee": grantee, "operations": list(ops), "retiring": retiring,
                   "constraint_kinds": sorted(checked), "name": name}
        with self._operation("CreateGrant", request) as call:
            facts: dict[str, Any] = {"kms:GrantOperations": list(ops), "kms:GranteePrincipal": grantee,
                                     "kms:GrantIsForAWSResource": False}
            if checked:
                facts["kms:GrantConstraintType"] = sorted(checked)
            key_id = self._resolve_in(call, ref, None, delegation=Delegation(ops, checked), **facts)
            lifecycle.require(call.conn, key_id, "CreateGrant",
                              (lifecycle.ENABLED, lifecycle.DISABLED, lifecycle.PENDING_IMPORT))
            (count,) = call.conn.execute("SELECT count(*) FROM grants WHERE key_id = ?", (key_id,)).fetchone()
            if count >= MAX_GRANTS_PER_KEY:
                raise UsageError(f"key {key_id} already has {MAX_GRANTS_PER_KEY} grants")
            grant_id = os.urandom(32).hex()
            token = _TOKEN_PREFIX + base64.urlsafe_b64encode(bytes.fromhex(grant_id) + os.urandom(32)).decode()
            call.conn.execute(
                "INSERT INTO grants (grant_id, key_id, name, grantee_principal, retiring_principal, operations,"
                " constraints, created_at, issuing_principal, token_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (grant_id, key_id, name, grantee, retiring, json.dumps(list(ops)), json.dumps(checked),
                 self._db.timestamp(), self._db.principal, _sha256(token)))
            call.request["grant_id"] = grant_id
            return grant_id, token

    def list_grants(self, ref: str, grant_id: str | None = None, grantee_principal: str | None = None) -> list[Grant]:
        """ListGrants: a key's grants (oldest first), optionally one grant or one grantee's."""
        with self._operation("ListGrants", {"key": ref, "grant_id": grant_id}) as call:
            key_id = self._resolve_in(call, ref)
            grants = [g for g in _grants_of(call.conn, "key_id = ?", (key_id,))
                      if (grant_id is None or g.grant_id == grant_id)
                      and (grantee_principal is None or g.grantee_principal == _principal.normalize(grantee_principal))]
            return grants

    def list_retirable_grants(self, retiring_principal: str | None = None) -> list[Grant]:
        """ListRetirableGrants: grants the principal (default: the caller) may retire."""
        who = _principal.normalize(retiring_principal) if retiring_principal else self._db.principal
        with self._operation("ListRetirableGrants", {"retiring": who}) as call:
            return _grants_of(call.conn, "retiring_principal = ?", (who,))

    def retire_grant(self, grant_token: str | None = None, *, key: str | None = None,
                     grant_id: str | None = None) -> None:
        """RetireGrant, by token or by key and grant id: the grant's end, by those it names."""
        with self._operation("RetireGrant", {"key": key, "grant_id": grant_id}) as call:
            if grant_token is not None:
                grant = _grant_by_token(call.conn, grant_token)
            elif key is not None and grant_id is not None:
                grant = _one_grant(call.conn, self._resolve_any(call, key), grant_id)
            else:
                raise UsageError("RetireGrant needs a grant token, or a key and a grant id")
            call.key_id = grant.key_id
            call.request["grant_id"] = grant.grant_id
            caller = self._db.principal
            allowed = (caller == grant.retiring_principal or caller == self._db.owner
                       or (caller == grant.grantee_principal and "RetireGrant" in grant.operations))
            if not allowed:
                raise AccessDeniedError(f"{caller} may not RetireGrant {grant.grant_id}: only its retiring "
                                        "principal, its grantee (when the grant allows RetireGrant) or the keystore "
                                        "owner may")
            call.conn.execute("DELETE FROM grants WHERE grant_id = ?", (grant.grant_id,))

    def revoke_grant(self, ref: str, grant_id: str) -> None:
        """RevokeGrant: the key's administrators end a grant at once."""
        with self._operation("RevokeGrant", {"key": ref, "grant_id": grant_id}) as call:
            key_id = self._resolve_in(call, ref)
            _one_grant(call.conn, key_id, grant_id)
            call.conn.execute("DELETE FROM grants WHERE grant_id = ?", (grant_id,))



def allows(conn: sqlite3.Connection, key_id: str, principal: str, operation: str,
           context: EncryptionContext | None, delegation: Delegation | None = None) -> bool:
    """Whether some grant lets *principal* call *operation* on *key_id* with *context*.

    A grant that allows CreateGrant lets its grantee create only grants that
    it covers (*delegation*: the grant being created; without one, none).
    """
    for grant in _grants_of(conn, "key_id = ? AND grantee_principal = ?", (key_id, principal)):
        if operation not in grant.operations:
            continue
        if operation == "CreateGrant" and (delegation is None or not _covers(grant, delegation)):
            continue
        if operation in _CONTEXT_OPERATIONS and not _constraints_hold(grant.constraints, context or {}):
            continue
        return True
    return False


def check_tokens(conn: sqlite3.Connection, tokens: Sequence[str], key_id: str) -> None:
    """Every token passed with a call must name a live grant of *key_id* (AWS's InvalidGrantToken)."""
    if len(tokens) > 10:
        raise UsageError("at most 10 grant tokens per request")
    for token in tokens:
        if _grant_by_token(conn, token).key_id != key_id:
            raise GrantTokenError("a grant token given is for another key")


def _constraints_hold(constraints: Mapping[str, Mapping[str, str]], context: EncryptionContext) -> bool:
    equals = constraints.get("EncryptionContextEquals")
    if equals is not None and dict(context) != dict(equals):
        return False
    subset = constraints.get("EncryptionContextSubset")
    return subset is None or all(context.get(k) == v for k, v in subset.items())


def _covers(parent: Grant, child: Delegation) -> bool:
    """Whether *parent* may beget *child*: a subset of its operations, constraints at least as strict.

    Judged on what the constraints admit.  A child with EncryptionContextEquals
    admits one context (none, if its own EncryptionContextSubset contradicts
    it), which the parent must admit; a child with only EncryptionContextSubset
    admits every context containing its pairs, which only a parent without
    EncryptionContextEquals whose pairs are among them admits.
    """
    if not set(child.operations) <= set(parent.operations):
        return False
    equals = child.constraints.get("EncryptionContextEquals")
    subset = child.constraints.get("EncryptionContextSubset") or {}
    if equals is not None:
        return not _constraints_hold({"EncryptionContextSubset": subset}, equals) \
            or _constraints_hold(parent.constraints, equals)
    return "EncryptionContextEquals" not in parent.constraints \
        and _constraints_hold(parent.constraints, subset)


def _check_operations(operations: Iterable[str]) -> tuple[str, ...]:
    ops = tuple(dict.fromkeys(operations))
    if not ops:
        raise UsageError("a grant needs at least one operation")
    unknown = [op for op in ops if op not in GRANT_OPERATIONS]
    if unknown:
        raise UsageError(f"unknown grant operation {unknown[0]!r} (known: {', '.join(GRANT_OPERATIONS)})")
    return ops


def _check_constraints(constraints: Mapping[str, Mapping[str, str]] | None) -> dict[str, dict[str, str]]:
    checked: dict[str, dict[str, str]] = {}
    for kind, pairs in (constraints or {}).items():
        if kind not in _CONSTRAINT_KINDS:
            raise UsageError(f"unknown grant constraint {kind!r} (known: {', '.join(_CONSTRAINT_KINDS)})")
        checked[kind] = dict(_context.normalize(pairs))
    return checked


def _grants_of(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> list[Grant]:
    rows = conn.execute(
        "SELECT grant_id, key_id, name, grantee_principal, retiring_principal, issuing_principal, operations,"
        f" constraints, created_at FROM grants WHERE {where} ORDER BY rowid", params).fetchall()
    return [Grant(r[0], r[1], r[2], r[3], r[4], r[5] or "", tuple(json.loads(r[6])), json.loads(r[7] or "{}"), r[8])
            for r in rows]


def _one_grant(conn: sqlite3.Connection, key_id: str, grant_id: str) -> Grant:
    found = _grants_of(conn, "key_id = ? AND grant_id = ?", (key_id, grant_id))
    if not found:
        raise KeyNotFoundError(f"grant {grant_id} does not exist on key {key_id} (retired, revoked or never made)")
    return found[0]


def _grant_by_token(conn: sqlite3.Connection, token: str) -> Grant:
    if not isinstance(token, str) or not token.startswith(_TOKEN_PREFIX) or len(token) > 8192:
        raise GrantTokenError("invalid grant token")
    found = _grants_of(conn, "token_sha256 = ?", (_sha256(token),))
    if not found:
        raise GrantTokenError("invalid grant token: its grant was retired or revoked, or it was never issued here")
    return found[0]


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()

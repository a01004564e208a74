"""Grants: permissions on one key delegated to one principal, and how a grant is judged.

The calls that make and end grants (CreateGrant, ListGrants, RetireGrant,
RevokeGrant) are :class:`~envelope.kms.operations.grants.GrantOperations`;
this module holds what a grant is and what it allows, which
:mod:`envelope.kms.policy.access` asks on every key-scoped call.

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
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from ... import context as _context
from ...context import EncryptionContext
from ...exceptions import GrantTokenError, KeyNotFoundError, UsageError

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


class Delegation(NamedTuple):
    """What a CreateGrant asks to pass on: checked against a parent grant when a grant allows the call."""

    operations: tuple[str, ...]
    constraints: Mapping[str, Mapping[str, str]]


class Grant(NamedTuple):
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


def allows(conn: sqlite3.Connection, key_id: str, principal: str, operation: str,
           context: EncryptionContext | None, delegation: Delegation | None = None) -> bool:
    """Whether some grant lets *principal* call *operation* on *key_id* with *context*.

    A grant that allows CreateGrant lets its grantee create only grants that
    it covers (*delegation*: the grant being created; without one, none).
    """
    for grant in grants_of(conn, "key_id = ? AND grantee_principal = ?", (key_id, principal)):
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
        if grant_by_token(conn, token).key_id != key_id:
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


def check_operations(operations: Iterable[str]) -> tuple[str, ...]:
    ops = tuple(dict.fromkeys(operations))
    if not ops:
        raise UsageError("a grant needs at least one operation")
    unknown = [op for op in ops if op not in GRANT_OPERATIONS]
    if unknown:
        raise UsageError(f"unknown grant operation {unknown[0]!r} (known: {', '.join(GRANT_OPERATIONS)})")
    return ops


def check_constraints(constraints: Mapping[str, Mapping[str, str]] | None) -> dict[str, dict[str, str]]:
    checked: dict[str, dict[str, str]] = {}
    for kind, pairs in (constraints or {}).items():
        if kind not in _CONSTRAINT_KINDS:
            raise UsageError(f"unknown grant constraint {kind!r} (known: {', '.join(_CONSTRAINT_KINDS)})")
        checked[kind] = dict(_context.normalize(pairs))
    return checked


def grants_of(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> list[Grant]:
    rows = conn.execute(
        "SELECT grant_id, key_id, name, grantee_principal, retiring_principal, issuing_principal, operations,"
        f" constraints, created_at FROM grants WHERE {where} ORDER BY rowid", params).fetchall()
    return [Grant(r[0], r[1], r[2], r[3], r[4], r[5] or "", tuple(json.loads(r[6])), json.loads(r[7] or "{}"), r[8])
            for r in rows]


def one_grant(conn: sqlite3.Connection, key_id: str, grant_id: str) -> Grant:
    found = grants_of(conn, "key_id = ? AND grant_id = ?", (key_id, grant_id))
    if not found:
        raise KeyNotFoundError(f"grant {grant_id} does not exist on key {key_id} (retired, revoked or never made)")
    return found[0]


def grant_by_token(conn: sqlite3.Connection, token: str) -> Grant:
    if not isinstance(token, str) or not token.startswith(_TOKEN_PREFIX) or len(token) > 8192:
        raise GrantTokenError("invalid grant token")
    found = grants_of(conn, "token_sha256 = ?", (_sha256(token),))
    if not found:
        raise GrantTokenError("invalid grant token: its grant was retired or revoked, or it was never issued here")
    return found[0]


def new_token(grant_id: str) -> tuple[str, str]:
    """A grant token naming *grant_id*, and the SHA-256 stored in its place."""
    token = _TOKEN_PREFIX + base64.urlsafe_b64encode(bytes.fromhex(grant_id) + os.urandom(32)).decode()
    return token, _sha256(token)


def _sha256(token: str) -> str:
    import hashlib  # only a call with grant tokens hashes one

    return hashlib.sha256(token.encode()).hexdigest()

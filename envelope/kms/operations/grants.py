"""CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant: a mix-in of the keystore.

What a grant is, what it allows and how a grant token is checked is
:mod:`envelope.kms.policy.grants`; this module is the keystore's side, making,
listing and ending grants inside audited calls.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from ...exceptions import AccessDeniedError, UsageError
from ..model import lifecycle
from ..policy import grants as _grants
from ..policy import principal as _principal
from ..policy.grants import Delegation, Grant
from .part import StorePart


class GrantOperations(StorePart):
    """CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant."""

    def create_grant(self, ref: str, grantee_principal: str, operations: Iterable[str], *,
                     retiring_principal: str | None = None, constraints: Mapping[str, Mapping[str, str]] | None = None,
                     name: str | None = None) -> tuple[str, str]:
        """CreateGrant: returns ``(grant_id, grant_token)``; the grant works at once."""
        grantee = _principal.normalize(grantee_principal)
        retiring = _principal.normalize(retiring_principal) if retiring_principal else None
        ops = _grants.check_operations(operations)
        checked = _grants.check_constraints(constraints)
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
            if count >= _grants.MAX_GRANTS_PER_KEY:
                raise UsageError(f"key {key_id} already has {_grants.MAX_GRANTS_PER_KEY} grants")
            grant_id = os.urandom(32).hex()
            token, token_sha256 = _grants.new_token(grant_id)
            call.conn.execute(
                "INSERT INTO grants (grant_id, key_id, name, grantee_principal, retiring_principal, operations,"
                " constraints, created_at, issuing_principal, token_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (grant_id, key_id, name, grantee, retiring, json.dumps(list(ops)), json.dumps(checked),
                 self._db.timestamp(), self._db.principal, token_sha256))
            call.request["grant_id"] = grant_id
            return grant_id, token

    def list_grants(self, ref: str, grant_id: str | None = None,
                    grantee_principal: str | None = None) -> list[Grant]:
        """ListGrants: a key's grants (oldest first), optionally one grant or one grantee's."""
        with self._operation("ListGrants", {"key": ref, "grant_id": grant_id}) as call:
            key_id = self._resolve_in(call, ref)
            grants = [g for g in _grants.grants_of(call.conn, "key_id = ?", (key_id,))
                      if (grant_id is None or g.grant_id == grant_id)
                      and (grantee_principal is None or g.grantee_principal == _principal.normalize(grantee_principal))]
            return grants

    def list_retirable_grants(self, retiring_principal: str | None = None) -> list[Grant]:
        """ListRetirableGrants: grants the principal (default: the caller) may retire."""
        who = _principal.normalize(retiring_principal) if retiring_principal else self._db.principal
        with self._operation("ListRetirableGrants", {"retiring": who}) as call:
            return _grants.grants_of(call.conn, "retiring_principal = ?", (who,))

    def retire_grant(self, grant_token: str | None = None, *, key: str | None = None,
                     grant_id: str | None = None) -> None:
        """RetireGrant, by token or by key and grant id: the grant's end, by those it names."""
        with self._operation("RetireGrant", {"key": key, "grant_id": grant_id}) as call:
            if grant_token is not None:
                grant = _grants.grant_by_token(call.conn, grant_token)
            elif key is not None and grant_id is not None:
                grant = _grants.one_grant(call.conn, self._resolve_any(call, key), grant_id)
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
            _grants.one_grant(call.conn, key_id, grant_id)
            call.conn.execute("DELETE FROM grants WHERE grant_id = ?", (grant_id,))

"""GetKeyPolicy and PutKeyPolicy, and the policy a new key starts with: a mix-in of the keystore.

What a policy may say and how it is judged is :mod:`envelope.kms.policy.document`; who
is asking, on each call, is :mod:`envelope.kms.policy.access`.  This module is the
keystore's side: storing policies, and refusing one that would lock its author
out (AWS KMS's lockout safety check, bypassable on purpose).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ...exceptions import UsageError
from ..policy import access
from ..model import lifecycle
from ..policy import document as _policy
from ..storage.db import Call
from ..policy.grants import Delegation
from .part import StorePart
from ..model.keys import key_arn


class PolicyOperations(StorePart):
    """GetKeyPolicy, PutKeyPolicy; the authorization hook every key-scoped call goes through."""

    def get_key_policy(self, ref: str) -> dict[str, Any]:
        """GetKeyPolicy: the key's policy document."""
        with self._operation("GetKeyPolicy", {"key": ref}) as call:
            key_id = self._resolve_in(call, ref)
            (text,) = call.conn.execute("SELECT policy FROM keys WHERE key_id = ?", (key_id,)).fetchone()
            return dict(json.loads(text))

    def put_key_policy(self, ref: str, policy: str | Mapping[str, Any], *,
                       bypass_policy_lockout_safety_check: bool = False) -> None:
        """PutKeyPolicy: replace the key's policy, validated.

        Refused, unless *bypass_policy_lockout_safety_check*, when the new policy
        would not let the caller put a policy again: the guard AWS KMS has
        against a key nobody can manage any more.
        """
        parsed = _policy.parse(policy)
        with self._operation("PutKeyPolicy", {"key": ref}) as call:
            key_id = self._resolve_in(call, ref)
            lifecycle.require(call.conn, key_id, "PutKeyPolicy",
                              (lifecycle.ENABLED, lifecycle.DISABLED, lifecycle.PENDING_IMPORT))
            if not bypass_policy_lockout_safety_check:
                self._check_lockout(parsed, key_arn(self.keystore_id, key_id, self.region))
            call.conn.execute("UPDATE keys SET policy = ?, updated_at = ? WHERE key_id = ?",
                              (json.dumps(parsed.document), self._db.timestamp(), key_id))

    def _authorize(self, call: Call, key_id: str, action: str, context: Mapping[str, str] | None, *,
                   delegation: Delegation | None = None, **facts: Any) -> None:
        access.authorize(call.conn, principal=self._db.principal, owner=self._db.owner,
                         keystore_id=self.keystore_id, action=action, key_id=key_id, context=context,
                         extra=facts, via=self.via, delegation=delegation)

    def _new_key_policy(self, policy: str | Mapping[str, Any] | None, admins: Sequence[str],
                        users: Sequence[str], bypass: bool) -> dict[str, Any]:
        if policy is not None and (admins or users):
            raise UsageError("give a key policy, or key administrators and users, not both")
        if policy is None and not (admins or users):
            return _policy.default_policy(self._db.owner, self._db.principal)
        document = _policy.roles_policy(self._db.owner, self._db.principal, admins, users) if policy is None \
            else policy
        parsed = _policy.parse(document)
        if not bypass:
            self._check_lockout(parsed, key_arn(self.keystore_id, "*", self.region))
        return parsed.document

    def _check_lockout(self, parsed: _policy.Policy, arn: str) -> None:
        request = _policy.Request(self._db.principal, "kms:PutKeyPolicy", arn,
                                  {"aws:principalarn": self._db.principal, "kms:calleraccount": self.keystore_id})
        if _policy.evaluate(parsed, request, self._db.owner)[0] != _policy.ALLOW:
            raise UsageError(f"the key policy would not let {self._db.principal} change it again (the lockout "
                             "safety check); add a statement allowing kms:PutKeyPolicy, or bypass the check on "
                             "purpose")

"""The one decision every key-scoped call passes: may this principal do this to this key?

AWS KMS's order: an explicit ``Deny`` in the key policy ends it; otherwise an
``Allow`` in the key policy, or a grant for the caller that covers the
operation and whose encryption-context constraints hold, lets the call go on;
otherwise it is refused.  There are no IAM policies locally, so the key policy
alone says who may use and manage a key (as a key policy without the
"enable IAM policies" statement does in AWS).

The facts conditions can test are gathered here, with lowercased keys (IAM
condition keys are case-insensitive):

================================  ==============================================
``aws:PrincipalArn``              the caller, e.g. ``local:user/alice``
``kms:CallerAccount``             the keystore id (the "account")
``kms:EncryptionContext:KEY``     each pair of the request's encryption context
``kms:EncryptionContextKeys``     the context's keys (multi-valued)
``aws:ResourceTag/TAG``           the key's tags
``kms:KeyOrigin`` / ``KeySpec``   the key's origin, spec and usage
``kms:KeyUsage``
``kms:ViaService``                the envelope component calling, when one does
``kms:ReEncryptOnSameKey``        ReEncrypt: source and destination are one key
``kms:GrantOperations``           CreateGrant: the operations asked for
``kms:GranteePrincipal``          CreateGrant: who receives them
``kms:GrantConstraintType``       CreateGrant: the kinds of constraint asked for
``kms:GrantIsForAWSResource``     always false locally
================================  ==============================================
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

from ...context import EncryptionContext
from ...exceptions import AccessDeniedError
from . import grants as _grants
from . import document as _policy
from .grants import Delegation

#: Calls any principal may make without a key policy's say (as IAM-only calls in AWS).
UNSCOPED = frozenset({"CreateKey", "ListKeys", "ListAliases", "GenerateRandom", "Maintain"})

Facts = dict[str, "str | bool | Sequence[str]"]


def authorize(conn: sqlite3.Connection, *, principal: str, owner: str, keystore_id: str, action: str,
              key_id: str, context: EncryptionContext | None = None,
              extra: Mapping[str, str | bool | Sequence[str]] | None = None, via: str | None = None,
              delegation: Delegation | None = None) -> None:
    """Return if *principal* may perform *action* (an API name, e.g. ``Decrypt``) on *key_id*; raise otherwise.

    *delegation*, for CreateGrant, is the grant asked for: a grant allowing
    CreateGrant must cover it (a key policy's Allow need not).
    """
    if action in UNSCOPED:
        return
    row = conn.execute("SELECT arn, policy, origin, key_spec, key_usage FROM keys WHERE key_id = ?",
                       (key_id,)).fetchone()
    if row is None:  # resolution already proved the key exists; a race lost it
        raise AccessDeniedError(f"key {key_id} no longer exists")
    arn, policy_text, origin, key_spec, key_usage = row
    facts: Facts = {"aws:principalarn": principal, "kms:calleraccount": keystore_id, "kms:keyorigin": origin,
                    "kms:keyspec": key_spec, "kms:keyusage": key_usage}
    for tag_key, tag_value in conn.execute("SELECT tag_key, tag_value FROM tags WHERE key_id = ?", (key_id,)):
        facts[f"aws:resourcetag/{tag_key}".lower()] = tag_value
    if context is not None:
        facts["kms:encryptioncontextkeys"] = sorted(context)
        for name, value in context.items():
            facts[f"kms:encryptioncontext:{name}".lower()] = value
    if via:
        facts["kms:viaservice"] = via
    for name, fact in (extra or {}).items():
        facts[name.lower()] = fact
    request = _policy.Request(principal, f"kms:{action}", arn, facts)
    verdict, sid = _policy.evaluate(_policy.parse(json.loads(policy_text)), request, owner)
    if verdict == _policy.DENY:
        raise AccessDeniedError(f"{principal} may not {action} with key {key_id}: denied by key policy statement "
                                f"{sid!r}" if sid else f"{principal} may not {action} with key {key_id}: "
                                "denied by the key policy")
    if verdict == _policy.ALLOW or _grants.allows(conn, key_id, principal, action, context, delegation):
        return
    raise AccessDeniedError(f"{principal} may not {action} with key {key_id}: no key policy statement or grant "
                            "allows it")

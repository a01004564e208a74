"""Key policies: AWS's JSON document shape, parsed with bounds and evaluated as AWS evaluates it.

A request is allowed when some statement allows it and none denies it: an
explicit ``Deny`` wins over any ``Allow``, and what no statement mentions is
denied.  A statement applies when its principal, action, resource and every
condition match.  Supported, so that a policy written for AWS KMS reads the
same here:

- ``Principal``: ``"*"``, or ``{"Local": …}`` / ``{"AWS": …}`` with one
  principal or a list (see :mod:`envelope.kms.policy.principal`);
- ``Action``: ``kms:Decrypt``, with ``*`` and ``?`` wildcards, case-insensitive;
- ``Resource``: ``*`` or ARN patterns;
- ``Condition``: the ``String[Not]Equals[IgnoreCase]``, ``String[Not]Like``,
  ``Bool`` and ``Null`` operators, each with an ``IfExists`` form and the
  ``ForAnyValue:`` / ``ForAllValues:`` set qualifiers, on the keys of
  :func:`request_facts`.

``NotPrincipal``, ``NotAction`` and ``NotResource`` are refused rather than
half supported.  A policy is at most 32 KiB, as in AWS KMS, so evaluating a
hostile one is bounded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from ...exceptions import UsageError
from . import principal as _principal

MAX_POLICY_SIZE = 32 * 1024
MAX_STATEMENTS = 256
ALLOW, DENY = "Allow", "Deny"

#: What a key user may do: cryptography with the key, and no management.
KEY_USER_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey",
                    "kms:Sign", "kms:Verify", "kms:GetPublicKey", "kms:GenerateMac", "kms:VerifyMac")
#: What a key administrator may do: manage the key, never use it.  CreateGrant is
#: left out on purpose (a grant to oneself would be a way to use it); an
#: administrator can still rewrite the policy, and that is audited.
KEY_ADMIN_ACTIONS = ("kms:Describe*", "kms:List*", "kms:Get*", "kms:Put*", "kms:Update*", "kms:Enable*",
                     "kms:Disable*", "kms:Delete*", "kms:CreateAlias", "kms:TagResource", "kms:UntagResource",
                     "kms:RevokeGrant", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
                     "kms:RotateKeyOnDemand", "kms:ImportKeyMaterial", "kms:ReplicateKey")

_STRING_OPS = {"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
               "StringLike", "StringNotLike"}
_OPERATORS = _STRING_OPS | {"Bool", "Null"}
_QUALIFIERS = ("ForAnyValue:", "ForAllValues:")
_STATEMENT_FIELDS = {"Sid", "Effect", "Principal", "Action", "Resource", "Condition"}


class Condition(NamedTuple):
    operator: str        # e.g. "StringEquals"
    qualifier: str       # "", "ForAnyValue:" or "ForAllValues:"
    if_exists: bool
    key: str             # condition keys are case-insensitive: kept lowercased
    values: tuple[str, ...]


class Statement(NamedTuple):
    sid: str
    effect: str
    principals: tuple[str, ...]  # "*" or normalized principals
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[Condition, ...]


class Policy(NamedTuple):
    statements: tuple[Statement, ...]
    document: dict[str, Any]

    def text(self) -> str:
        return json.dumps(self.document, indent=2, sort_keys=False)


class Request(NamedTuple):
    """One call to judge: who, what, on which key, and the facts conditions may test."""

    principal: str
    action: str                                  # "kms:Decrypt"
    resource: str                                # the key ARN
    facts: Mapping[str, str | bool | Sequence[str]]  # lowercased condition keys


def parse(source: str | bytes | Mapping[str, Any]) -> Policy:
    """Validate a policy document (JSON text or an already-parsed mapping); :class:`UsageError` names the flaw."""
    if isinstance(source, Mapping):
        document: Any = json.loads(json.dumps(source))
    else:
        raw = source.encode() if isinstance(source, str) else bytes(source)
        if len(raw) > MAX_POLICY_SIZE:
            raise UsageError(f"invalid key policy: {len(raw)} bytes, at most {MAX_POLICY_SIZE}")
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise UsageError(f"invalid key policy: not JSON ({exc})") from None
    if len(json.dumps(document)) > MAX_POLICY_SIZE:
        raise UsageError(f"invalid key policy: more than {MAX_POLICY_SIZE} bytes")
    if not isinstance(document, dict):
        raise UsageError("invalid key policy: the document must be a JSON object")
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise UsageError("invalid key policy: it needs a Statement list")
    if len(statements) > MAX_STATEMENTS:
        raise UsageError(f"invalid key policy: at most {MAX_STATEMENTS} statements")
    return Policy(tuple(_statement(s, i) for i, s in enumerate(statements)), document)


def evaluate(policy: Policy, request: Request, owner: str) -> tuple[str | None, str]:
    """The verdict and the deciding statement's Sid.

    ``("Deny", sid)`` for an explicit deny, ``("Allow", sid)``, or ``(None, "")``
    when no statement applies (an implicit deny, which a grant may still lift).
    """
    verdict: tuple[str | None, str] = (None, "")
    for statement in policy.statements:
        if _applies(statement, request, owner):
            if statement.effect == DENY:
                return DENY, statement.sid
            verdict = (ALLOW, statement.sid)
    return verdict


def default_policy(owner: str, creator: str) -> dict[str, Any]:
    """A new key's policy: the keystore's owner and the key's creator may do everything."""
    principals = [_principal.ROOT] + ([creator] if creator != owner else [])
    return {"Version": "2012-10-17", "Id": "envelope-local-default", "Statement": [{
        "Sid": "Allow the keystore owner and the key's creator full access", "Effect": ALLOW,
        "Principal": {"Local": principals if len(principals) > 1 else principals[0]},
        "Action": "kms:*", "Resource": "*"}]}


def roles_policy(owner: str, creator: str, admins: Sequence[str], users: Sequence[str]) -> dict[str, Any]:
    """The console's three-statement policy: the root, key administrators and key users.

    Only the keystore owner keeps full access (so the key can never be locked
    out); the creator is not added, so a key made for someone else is theirs.
    """
    statements: list[dict[str, Any]] = [{"Sid": "Enable the keystore owner", "Effect": ALLOW,
                                         "Principal": {"Local": _principal.ROOT}, "Action": "kms:*",
                                         "Resource": "*"}]
    if admins:
        statements.append({"Sid": "Allow administration of the key", "Effect": ALLOW,
                           "Principal": {"Local": [_principal.normalize(a) for a in admins]},
                           "Action": list(KEY_ADMIN_ACTIONS), "Resource": "*"})
    if users:
        statements.append({"Sid": "Allow use of the key", "Effect": ALLOW,
                           "Principal": {"Local": [_principal.normalize(u) for u in users]},
                           "Action": list(KEY_USER_ACTIONS), "Resource": "*"})
    return {"Version": "2012-10-17", "Id": "envelope-local-roles", "Statement": statements}


# -- parsing -----------------------------------------------------------------------------------------


def _statement(raw: Any, index: int) -> Statement:
    where = f"statement {index + 1}"
    if not isinstance(raw, dict):
        raise UsageError(f"invalid key policy: {where} is not an object")
    sid = raw.get("Sid", "")
    if isinstance(sid, str) and sid:
        where = f"statement {sid!r}"
    for unsupported in ("NotPrincipal", "NotAction", "NotResource"):
        if unsupported in raw:
            raise UsageError(f"invalid key policy: {where}: {unsupported} is not supported")
    unknown = set(raw) - _STATEMENT_FIELDS
    if unknown:
        raise UsageError(f"invalid key policy: {where}: unknown field {sorted(unknown)[0]!r}")
    effect = raw.get("Effect")
    if effect not in (ALLOW, DENY):
        raise UsageError(f"invalid key policy: {where}: Effect must be Allow or Deny")
    actions = _strings(raw.get("Action"), where, "Action")
    for action in actions:
        if action != "*" and not action.lower().startswith("kms:"):
            raise UsageError(f"invalid key policy: {where}: action {action!r} is not a kms: action")
    return Statement(sid if isinstance(sid, str) else "", effect, _principals(raw.get("Principal"), where),
                     tuple(a.lower() for a in actions), _strings(raw.get("Resource"), where, "Resource"),
                     _conditions(raw.get("Condition", {}), where))


def _strings(value: Any, where: str, field: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise UsageError(f"invalid key policy: {where}: {field} must be a string or a list of strings")
    return tuple(values)


def _principals(value: Any, where: str) -> tuple[str, ...]:
    if value == "*":
        return ("*",)
    if not isinstance(value, dict) or not value or set(value) - {"Local", "AWS"}:
        raise UsageError(f'invalid key policy: {where}: Principal must be "*" or {{"Local": …}}')
    found: list[str] = []
    for names in value.values():
        for name in _strings(names, where, "Principal"):
            try:
                found.append("*" if name == "*" else _principal.normalize(name))
            except UsageError as exc:
                raise UsageError(f"invalid key policy: {where}: {exc}") from None
    return tuple(found)


def _conditions(value: Any, where: str) -> tuple[Condition, ...]:
    if not isinstance(value, dict):
        raise UsageError(f"invalid key policy: {where}: Condition must be an object")
    found = []
    for full, block in value.items():
        qualifier = next((q for q in _QUALIFIERS if full.startswith(q)), "")
        operator = full[len(qualifier):]
        if_exists = operator.endswith("IfExists")
        operator = operator[:-len("IfExists")] if if_exists else operator
        if operator not in _OPERATORS:
            raise UsageError(f"invalid key policy: {where}: unsupported condition operator {full!r}")
        if not isinstance(block, dict) or not block:
            raise UsageError(f"invalid key policy: {where}: {full} must map condition keys to values")
        for key, raw_values in block.items():
            values = [raw_values] if isinstance(raw_values, (str, bool)) else raw_values
            if not isinstance(values, list) or not values or not all(isinstance(v, (str, bool)) for v in values):
                raise UsageError(f"invalid key policy: {where}: {full} {key}: values must be strings")
            found.append(Condition(operator, qualifier, if_exists, str(key).lower(),
                                   tuple(str(v).lower() if isinstance(v, bool) else v for v in values)))
    return tuple(found)


# -- evaluation --------------------------------------------------------------------------------------


def _applies(statement: Statement, request: Request, owner: str) -> bool:
    return (_principal_matches(statement.principals, request.principal, owner)
            and any(_like(action, request.action.lower()) for action in statement.actions)
            and any(_like(resource, request.resource) for resource in statement.resources)
            and all(_condition_holds(c, request.facts) for c in statement.conditions))


def _principal_matches(principals: tuple[str, ...], caller: str, owner: str) -> bool:
    return any(p == "*" or p == caller or (p == _principal.ROOT and caller == owner) for p in principals)


def _condition_holds(condition: Condition, facts: Mapping[str, str | bool | Sequence[str]]) -> bool:
    present = condition.key in facts
    if condition.operator == "Null":  # "true": the key must be absent; "false": present
        return (not present) == (condition.values[0] == "true")
    if not present:
        if condition.qualifier == "ForAllValues:":
            return True
        return condition.if_exists or condition.operator.startswith("StringNot")
    raw = facts[condition.key]
    values = [str(v).lower() if isinstance(v, bool) else v for v in
              ([raw] if isinstance(raw, (str, bool)) else list(raw))]
    if condition.qualifier == "ForAllValues:":
        return all(_matches_one(condition, v) for v in values)
    return any(_matches_one(condition, v) for v in values) if values else condition.operator.startswith("StringNot")


def _matches_one(condition: Condition, value: str) -> bool:
    op = condition.operator
    if op == "Bool":
        return value.lower() in (v.lower() for v in condition.values)
    negate = "Not" in op
    if "Like" in op:
        hit = any(_like(pattern, value) for pattern in condition.values)
    elif op.endswith("IgnoreCase"):
        hit = any(value.lower() == v.lower() for v in condition.values)
    else:
        hit = value in condition.values
    return hit != negate


def _like(pattern: str, value: str) -> bool:
    """IAM's StringLike: ``*`` any run, ``?`` one character, nothing else special.

    Not a regular expression: ``.*`` runs backtrack exponentially in the number
    of stars, and a policy's patterns meet callers' values (an encryption
    context) on every request.  On a mismatch this goes back only to the latest
    ``*``, so a match costs at most len(pattern) * len(value) steps.
    """
    p = v = 0
    star, resume = -1, 0  # the latest star, and where in value its run would end next
    while v < len(value):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p, v
            p += 1
        elif p < len(pattern) and pattern[p] in ("?", value[v]):
            p += 1
            v += 1
        elif star >= 0:
            resume += 1
            p, v = star + 1, resume
        else:
            return False
    return all(ch == "*" for ch in pattern[p:])

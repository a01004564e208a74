"""Key policy documents: validation, and evaluation as AWS evaluates (explicit deny, then allow, else deny)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from envelope.exceptions import UsageError
from envelope.kms.policy import document as policy
from envelope.kms.policy.principal import normalize

OWNER = "local:user/owner"
ARN = "arn:envelope:kms:local:ks1:key/k1"


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(principal: Any = "*", action: Any = "kms:*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal if principal == "*" else {"Local": principal},
            "Action": action, "Resource": "*", **extra}


def deny(principal: Any = "*", action: Any = "kms:*", **extra: Any) -> dict[str, Any]:
    return {**allow(principal, action, **extra), "Effect": "Deny"}


def verdict(document: dict[str, Any], who: str = "alice", action: str = "kms:Decrypt",
            **facts: Any) -> str | None:
    request = policy.Request(normalize(who), action, ARN, {k.lower(): v for k, v in facts.items()})
    return policy.evaluate(policy.parse(document), request, OWNER)[0]


@pytest.mark.parametrize(("statements", "expected"), [
    ([], None),                                                                     # nothing said: deny
    ([allow("alice")], "Allow"),
    ([allow("bob")], None),                                                         # someone else's
    ([allow("alice"), deny("alice")], "Deny"),                                      # deny wins...
    ([deny("alice"), allow("alice")], "Deny"),                                      # ...in any order
    ([allow("*"), deny("alice", "kms:Decrypt")], "Deny"),
    ([allow("alice", "kms:Encrypt")], None),                                        # another action
    ([allow("alice", "kms:De*")], "Allow"),                                         # wildcards
    ([allow("alice", "KMS:DECRYPT")], "Allow"),                                     # actions ignore case
    ([allow("alice", ["kms:Encrypt", "kms:Decrypt"])], "Allow"),
    ([allow("alice", "kms:Decryp?")], "Allow"),
    ([allow("alice", "kms:ReEncrypt*")], None),
    ([allow(["bob", "local:user/alice"])], "Allow"),
    ([allow("local:root")], None),                                                  # alice is not the owner
], ids=lambda v: json.dumps(v)[:60] if isinstance(v, list) else str(v))
def test_evaluation_table(statements: list[dict[str, Any]], expected: str | None) -> None:
    if not statements:
        with pytest.raises(UsageError, match="needs a Statement"):
            verdict(doc(*statements))
        return
    assert verdict(doc(*statements)) == expected


def test_local_root_names_the_keystore_owner() -> None:
    assert verdict(doc(allow("local:root")), who=OWNER) == "Allow"


@pytest.mark.parametrize(("condition", "facts", "expected"), [
    ({"StringEquals": {"kms:EncryptionContext:dept": "finance"}}, {"kms:EncryptionContext:dept": "finance"}, True),
    ({"StringEquals": {"kms:EncryptionContext:dept": "finance"}}, {"kms:EncryptionContext:dept": "sales"}, False),
    ({"StringEquals": {"kms:EncryptionContext:dept": "finance"}}, {}, False),            # absent: no match
    ({"StringEquals": {"kms:EncryptionContext:dept": ["a", "finance"]}}, {"kms:EncryptionContext:dept": "finance"},
     True),                                                                             # values are OR-ed
    ({"StringEqualsIfExists": {"kms:EncryptionContext:dept": "finance"}}, {}, True),
    ({"StringNotEquals": {"kms:EncryptionContext:dept": "finance"}}, {"kms:EncryptionContext:dept": "x"}, True),
    ({"StringNotEquals": {"kms:EncryptionContext:dept": "finance"}}, {}, True),
    ({"StringEqualsIgnoreCase": {"kms:EncryptionContext:dept": "FINANCE"}}, {"kms:EncryptionContext:dept": "finance"},
     True),
    ({"StringLike": {"kms:EncryptionContext:path": "reports/*"}}, {"kms:EncryptionContext:path": "reports/q1"}, True),
    ({"StringLike": {"kms:EncryptionContext:path": "reports/*"}}, {"kms:EncryptionContext:path": "paie/q1"}, False),
    ({"StringLike": {"kms:EncryptionContext:path": "r[a]*"}}, {"kms:EncryptionContext:path": "ra"}, False),  # no sets
    ({"StringNotLike": {"aws:PrincipalArn": "local:role/*"}}, {"aws:PrincipalArn": "local:user/alice"}, True),
    ({"StringEquals": {"kms:CallerAccount": "ks1"}}, {"kms:CallerAccount": "ks1"}, True),
    ({"StringEquals": {"kms:ViaService": "envelope.files"}}, {"kms:ViaService": "envelope.files"}, True),
    ({"StringEquals": {"kms:ViaService": "envelope.files"}}, {}, False),
    ({"StringEquals": {"aws:ResourceTag/team": "dba"}}, {"aws:ResourceTag/team": "dba"}, True),
    ({"Bool": {"kms:ReEncryptOnSameKey": "true"}}, {"kms:ReEncryptOnSameKey": True}, True),
    ({"Bool": {"kms:ReEncryptOnSameKey": True}}, {"kms:ReEncryptOnSameKey": False}, False),
    ({"Null": {"kms:EncryptionContext:dept": "true"}}, {}, True),
    ({"Null": {"kms:EncryptionContext:dept": "false"}}, {}, False),
    ({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["dept", "app"]}},
     {"kms:EncryptionContextKeys": ["dept"]}, True),
    ({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["dept", "app"]}},
     {"kms:EncryptionContextKeys": ["dept", "other"]}, False),
    ({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "dept"}},
     {"kms:EncryptionContextKeys": ["x", "dept"]}, True),
    ({"StringEquals": {"kms:EncryptionContext:dept": "finance", "kms:EncryptionContext:app": "pay"}},
     {"kms:EncryptionContext:dept": "finance"}, False),                                  # keys are AND-ed
    ({"StringEquals": {"KMS:ENCRYPTIONCONTEXT:DEPT": "finance"}}, {"kms:EncryptionContext:dept": "finance"}, True),
])
def test_conditions(condition: dict[str, Any], facts: dict[str, Any], expected: bool) -> None:
    assert (verdict(doc(allow("alice", Condition=condition)), **facts) == "Allow") is expected


def test_a_conditional_deny_only_denies_when_it_holds() -> None:
    document = doc(allow("alice"), deny("*", "kms:Decrypt",
                                        Condition={"StringNotEquals": {"kms:EncryptionContext:dept": "finance"}}))
    assert verdict(document, **{"kms:EncryptionContext:dept": "finance"}) == "Allow"
    assert verdict(document, **{"kms:EncryptionContext:dept": "sales"}) == "Deny"
    assert verdict(document) == "Deny"


@pytest.mark.parametrize(("document", "needle"), [
    ("not json", "not JSON"),
    ("[]", "must be a JSON object"),
    ('{"Statement": []}', "needs a Statement"),
    (doc({"Effect": "Maybe", "Principal": "*", "Action": "kms:*", "Resource": "*"}), "Effect must be Allow or Deny"),
    (doc({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}), "not a kms: action"),
    (doc({"Effect": "Allow", "Principal": "*", "Action": [], "Resource": "*"}), "Action must be"),
    (doc({"Effect": "Allow", "Principal": {"Local": "bad name!"}, "Action": "kms:*", "Resource": "*"}),
     "invalid principal"),
    (doc({"Effect": "Allow", "Principal": {"Google": "x"}, "Action": "kms:*", "Resource": "*"}), "Principal must be"),
    (doc({"Effect": "Allow", "NotPrincipal": "*", "Action": "kms:*", "Resource": "*"}), "NotPrincipal is not"),
    (doc({"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*", "Extra": 1}), "unknown field"),
    (doc(allow("alice", Condition={"NumericLessThan": {"x": "1"}})), "unsupported condition operator"),
    (doc(allow("alice", Condition={"StringEquals": {"x": {"nested": 1}}})), "values must be strings"),
    ("x" * (policy.MAX_POLICY_SIZE + 1), "at most 32768"),
    ("[" * 30_000, "not JSON"),  # nesting deep enough to exhaust the parser, within the size bound
])
def test_invalid_policies_are_refused_naming_the_flaw(document: Any, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        policy.parse(document if isinstance(document, str) else json.dumps(document))


def test_a_single_statement_object_is_accepted_as_aws_accepts_it() -> None:
    assert verdict({"Statement": allow("alice")}) == "Allow"


def test_the_roles_policy_separates_administrators_from_users() -> None:
    document = policy.roles_policy(OWNER, OWNER, admins=["adam"], users=["ursula"])
    for action in ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom"):
        assert verdict(document, "ursula", action) == "Allow"
        assert verdict(document, "adam", action) is None
    for action in ("kms:PutKeyPolicy", "kms:DisableKey", "kms:ScheduleKeyDeletion", "kms:TagResource",
                   "kms:RevokeGrant"):
        assert verdict(document, "adam", action) == "Allow"
        assert verdict(document, "ursula", action) is None
    assert verdict(document, "adam", "kms:CreateGrant") is None  # no self-service way to use the key
    assert verdict(document, "ursula", "kms:DescribeKey") == verdict(document, "adam", "kms:DescribeKey") == "Allow"
    assert verdict(document, OWNER, "kms:Decrypt") == "Allow"

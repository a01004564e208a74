"""Fuzz target: key policies (envelope.kms.policy.document): parsing, then evaluating.

A policy is written by a key's administrator and evaluated on every call to
the key, so both halves must be bounded: parse refuses with UsageError, and a
policy that parses is judged against a few requests (each verdict within
libFuzzer's -timeout).  Re-parsing a parsed policy's document must give the
same statements.
"""

from __future__ import annotations

import json
import sys

from envelope.exceptions import UsageError
from envelope.kms.policy import document as policy

NAME = "policy"
ALLOWED = (UsageError,)
MAX_LEN = 8192
OWNER = "local:user/owner"
KEY_ARN = "arn:envelope:kms:local:000000000000:key/1b4e28ba-2fa1-11d2-883f-0016d3cca427"
REQUESTS = (
    policy.Request(OWNER, "kms:Decrypt", KEY_ARN, {}),
    policy.Request("local:user/alice", "kms:GenerateDataKey", KEY_ARN,
                   {"kms:encryptioncontext:purpose": "backup/" + "a" * 200, "kms:encryptioncontextkeys": ["purpose"],
                    "aws:principalarn": "local:user/alice", "kms:viaservice": "s3.local", "kms:grantisforawsresource": True}),
    policy.Request("local:role/x", "kms:PutKeyPolicy", KEY_ARN, {"kms:grantoperations": ["Decrypt", "Encrypt"]}),
)


def check(data: bytes) -> None:
    parsed = policy.parse(data)
    assert policy.parse(parsed.text()).statements == parsed.statements, "re-parsing changed the policy"
    for request in REQUESTS:
        verdict, _ = policy.evaluate(parsed, request, OWNER)
        assert verdict in (None, policy.ALLOW, policy.DENY)


def seeds() -> list[bytes]:
    """The built-in policies, and conditions on the vectors' encryption contexts."""
    from harness import vectors

    docs = [policy.default_policy(OWNER, "local:user/alice"),
            policy.roles_policy(OWNER, OWNER, ["admin"], ["local:role/app", "bob"])]
    for v in vectors():
        for key, value in (v.get("context") or {}).items():
            docs.append({"Version": "2012-10-17", "Statement": [
                {"Sid": key, "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": ["kms:Decrypt", "kms:Re*"],
                 "Resource": "*", "Condition": {"StringNotLikeIfExists": {f"kms:EncryptionContext:{key}": value + "*"},
                                                "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": [key]},
                                                "Null": {"kms:ViaService": "false"}, "Bool": {"kms:GrantIsForAWSResource": True}}},
                {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": KEY_ARN[:-8] + "????????"}]})
    docs.append({"Statement": [{"Effect": "Allow", "Principal": {"Local": ["alice", "local:role/app"]},
                                "Action": ["kms:Gen*Key", "kms:?ecrypt"], "Resource": "arn:*:kms:*:key/*",
                                "Condition": {"ForAnyValue:StringLike": {"kms:EncryptionContext:purpose": ["*up/*a*", "b?ck*"]}}}]})
    return [json.dumps(d).encode() for d in docs]


if __name__ == "__main__":
    import harness

    harness.main(sys.modules[__name__])

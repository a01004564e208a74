"""AWS KMS ARNs: parsing them, and the multi-Region key rule for when two name the same key.

A multi-Region key (its id starts ``mrk-``) has replicas in several regions that
share key material, so a data key wrapped by the replica in one region unwraps
with the replica in another.  Two ARNs name "the same key" for decryption when
they are equal, or when both are multi-Region keys that differ only in region.
A single-Region key never matches a key in another region, even with the same id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ARN_RE = re.compile(r"arn:(aws[a-z-]*):kms:([a-z0-9-]+):([0-9]{12}):(key|alias)/(.+)\Z")
_ALIAS_RE = re.compile(r"alias/[A-Za-z0-9/_-]+\Z")
_PARTITION_RE = re.compile(r"aws[a-z-]*\Z")
_ACCOUNT_RE = re.compile(r"[0-9]{12}\Z")  # ASCII digits only (\d takes any script's digits)
MRK_PREFIX = "mrk-"


@dataclass(frozen=True)
class KmsArn:
    partition: str
    region: str
    account: str
    resource_type: str  # "key" or "alias"
    resource_id: str

    @classmethod
    def parse(cls, text: str) -> KmsArn | None:
        match = _ARN_RE.match(text)
        return cls(*match.groups()) if match else None

    @property
    def is_key(self) -> bool:
        return self.resource_type == "key"

    @property
    def is_mrk(self) -> bool:
        return self.is_key and self.resource_id.startswith(MRK_PREFIX)

    def in_region(self, region: str) -> KmsArn:
        return KmsArn(self.partition, region, self.account, self.resource_type, self.resource_id)

    def __str__(self) -> str:
        return f"arn:{self.partition}:kms:{self.region}:{self.account}:{self.resource_type}/{self.resource_id}"


def is_alias_name(text: str) -> bool:
    return bool(_ALIAS_RE.match(text))


def is_partition(text: str) -> bool:
    return bool(_PARTITION_RE.match(text))


def is_account(text: str) -> bool:
    return bool(_ACCOUNT_RE.match(text))


def same_key_for_decrypt(a: str, b: str) -> bool:
    """Whether a data key wrapped under key ARN *a* may be unwrapped by key ARN *b*."""
    if a == b:
        return True
    pa, pb = KmsArn.parse(a), KmsArn.parse(b)
    if pa is None or pb is None or not (pa.is_mrk and pb.is_mrk):
        return False
    return (pa.partition, pa.account, pa.resource_id) == (pb.partition, pb.account, pb.resource_id)

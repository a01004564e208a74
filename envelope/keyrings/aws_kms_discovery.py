"""``aws-kms-discovery:``: decrypt files under whichever AWS KMS key they name, if the caller may use it.

Strict keyrings (``aws-kms:ARN``) are the default because a file chooses its own
wrapped keys: with discovery, a file can make the reader call KMS with any key
the reader's credentials allow.  Discovery is for readers that cannot know the
keys in advance (a restore job, an archive reader); the filter narrows it to a
partition and an allow-list of accounts, and is recommended:

    aws-kms-discovery:                              any key the caller may use
    aws-kms-discovery:aws:111122223333,444455556666  keys of these accounts only

A key is always called in its own region, except a multi-Region key when a
region is configured (``--region``, ``AWS_REGION`` or the profile): then its
replica in that region is used, with no call to the region that wrapped it.
Discovery only decrypts; encrypting needs a named key.
"""

from __future__ import annotations

from typing import Any

from ..context import EncryptionContext
from ..exceptions import KeyringError, UsageError
from ..format import WrappedKey
from .aws_client import KmsClients, default_region
from .aws_kms import PROVIDER, checked_plaintext, context_args
from .base import Keyring
from .kms_arn import KmsArn, is_account, is_partition

SCHEME = "aws-kms-discovery"


class AwsKmsDiscoveryKeyring(Keyring):
    """Any AWS KMS key named by the file, within an optional partition and account allow-list."""

    provider = PROVIDER

    def __init__(self, *, partition: str | None = None, accounts: tuple[str, ...] = (),
                 region: str | None = None, profile: str | None = None, client: Any = None,
                 grant_tokens: tuple[str, ...] = ()) -> None:
        if bool(partition) != bool(accounts):
            raise UsageError("a discovery filter needs both a partition and at least one account")
        if partition is not None and not is_partition(partition):
            raise UsageError(f"{partition!r} is not an AWS partition (aws, aws-cn, aws-us-gov, ...)")
        for account in accounts:
            if not is_account(account):
                raise UsageError(f"{account!r} is not an AWS account id (12 digits)")
        self._partition = partition
        self._accounts = frozenset(accounts)
        self._filter_text = f"{partition}:{','.join(accounts)}" if partition else ""
        self._region = region
        self._region_known = region is not None
        self._profile = profile
        self._clients = KmsClients(profile, client)
        self._grant_tokens = list(grant_tokens)

    @property
    def reference(self) -> str:
        return f"{SCHEME}:{self._filter_text}"

    def cache_identity(self) -> tuple[str, ...]:
        """The AWS caller, the configured region (where multi-Region keys are called) and the endpoint."""
        return (SCHEME,) + self._clients.identity(self.configured_region())

    def prepare(self) -> None:
        """boto3 must be installed (no call is made)."""
        self._clients.prepare()

    def generate_data_key(self, context: EncryptionContext) -> tuple[bytearray, WrappedKey]:
        raise UsageError(f"{self.reference} can only decrypt; encrypt with a named key, as in aws-kms:ARN")

    def wrap_data_key(self, plaintext: bytes | bytearray, context: EncryptionContext) -> WrappedKey:
        raise UsageError(f"{self.reference} can only decrypt; encrypt with a named key, as in aws-kms:ARN")

    def matches(self, wrapped: WrappedKey) -> bool:
        if wrapped.provider != PROVIDER:
            return False
        arn = KmsArn.parse(wrapped.key_id)
        if arn is None or not arn.is_key:
            return False
        return self._partition is None or (arn.partition == self._partition and arn.account in self._accounts)

    def unwrap_data_key(self, wrapped: WrappedKey, context: EncryptionContext) -> bytearray:
        if not self.matches(wrapped):
            raise KeyringError(f"{wrapped.provider}:{wrapped.key_id} is outside {self.reference}")
        arn = self.key_to_call(KmsArn.parse(wrapped.key_id))  # type: ignore[arg-type]
        reference = f"{PROVIDER}:{arn}"
        response = self._clients.call(reference, arn.region, "Decrypt", KeyId=str(arn),
                                      CiphertextBlob=wrapped.ciphertext, **context_args(context, self._grant_tokens))
        if response.get("KeyId") != str(arn):
            raise KeyringError(f"{reference}: KMS decrypted with {response.get('KeyId')}, not {arn}")
        return checked_plaintext(reference, response)

    def key_to_call(self, arn: KmsArn) -> KmsArn:
        """The key ARN Decrypt is sent to: the file's, or for a multi-Region key its local replica."""
        if arn.is_mrk:
            region = self.configured_region()
            if region:
                return arn.in_region(region)
        return arn

    def configured_region(self) -> str | None:
        if not self._region_known:
            self._region = default_region(self._profile)
            self._region_known = True
        return self._region


def parse_filter(rest: str) -> tuple[str | None, tuple[str, ...]]:
    """``""`` → no filter; ``PARTITION:ACCOUNT[,ACCOUNT...]`` → that filter."""
    if not rest:
        return None, ()
    partition, sep, accounts = rest.partition(":")
    names = tuple(a.strip() for a in accounts.split(",") if a.strip())
    if not sep or not names:
        raise UsageError(f"{SCHEME}:{rest} is not a discovery filter: use {SCHEME}:aws:111122223333[,ACCOUNT...] "
                         f"or {SCHEME}: for any key")
    return partition, names


def from_reference(rest: str, region: str | None = None, profile: str | None = None,
                   **_options: object) -> AwsKmsDiscoveryKeyring:
    """The registry's factory for ``aws-kms-discovery:REST``."""
    partition, accounts = parse_filter(rest)
    return AwsKmsDiscoveryKeyring(partition=partition, accounts=accounts, region=region, profile=profile)

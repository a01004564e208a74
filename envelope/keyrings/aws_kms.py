"""``aws-kms:ARN`` and ``aws-kms:alias/NAME``: one master key in AWS KMS, through boto3.

Encrypting asks KMS for the data key (GenerateDataKey) under the first key and
wraps copies with Encrypt under the others; decrypting calls Decrypt.  The
file's encryption context is passed to every call, so KMS binds it to the
wrapped key and records it in CloudTrail.  Only the data key crosses the
network.

Decryption is **strict**, like AWS's own keyrings: a wrapped key is sent to
KMS only if it names the key this keyring was given, and Decrypt always carries
``KeyId``, so a file cannot steer the caller into using some other key it
happens to have access to.  An ``aws-kms:alias/NAME`` reference is resolved to
its key ARN (one DescribeKey) before it can match anything.  Multi-Region keys
are the one exception to exact matching: a file wrapped by ``mrk-…`` in one
region is opened by the replica this keyring names, in this keyring's region,
without a call to the other region.  (To open files under any key the caller
may use, see :mod:`envelope.keyrings.aws_kms_discovery`.)
"""

from __future__ import annotations

from typing import Any

from ..context import EncryptionContext
from ..exceptions import KeyringError, UsageError
from ..format import DATA_KEY_SIZE, WrappedKey
from .aws_client import KmsClients
from .base import Keyring
from .kms_arn import KmsArn, is_alias_name, same_key_for_decrypt

PROVIDER = "aws-kms"


def parse_key(text: str) -> tuple[str | None, bool]:
    """``(region or None, is_alias)`` of a key ARN, alias ARN or ``alias/NAME``; anything else is refused."""
    arn = KmsArn.parse(text)
    if arn is not None:
        return arn.region, not arn.is_key
    if is_alias_name(text):
        return None, True
    raise UsageError(
        f"{text!r} is not an AWS KMS key: use aws-kms:arn:aws:kms:REGION:ACCOUNT:key/ID, "
        "aws-kms:arn:...:alias/NAME or aws-kms:alias/NAME"
    )


def context_args(context: EncryptionContext, grant_tokens: list[str]) -> dict[str, Any]:
    args: dict[str, Any] = {"EncryptionContext": dict(context)} if context else {}
    if grant_tokens:
        args["GrantTokens"] = grant_tokens
    return args


def checked_plaintext(reference: str, response: dict[str, Any]) -> bytearray:
    plaintext = bytearray(response["Plaintext"])
    if len(plaintext) != DATA_KEY_SIZE:
        plaintext[:] = bytes(len(plaintext))
        raise KeyringError(f"{reference}: KMS returned a data key of the wrong size")
    return plaintext


class AwsKmsKeyring(Keyring):
    """One AWS KMS key, by key ARN or alias."""

    provider = PROVIDER

    def __init__(self, key: str, *, client: Any = None, region: str | None = None,
                 profile: str | None = None, grant_tokens: tuple[str, ...] = ()) -> None:
        arn_region, self._is_alias = parse_key(key)
        self._key = key
        self._region = arn_region or region
        self._clients = KmsClients(profile, client)
        self._grant_tokens = list(grant_tokens)
        self._arn: str | None = None if self._is_alias else key

    @property
    def reference(self) -> str:
        return f"{PROVIDER}:{self._key}"

    def cache_identity(self) -> tuple[str, ...]:
        """The AWS caller (access key id, profile), the region and the endpoint: what KMS judges."""
        return (PROVIDER,) + self._clients.identity(self._region)

    def prepare(self) -> None:
        """boto3 must be installed (no call is made)."""
        self._clients.prepare()

    def generate_data_key(self, context: EncryptionContext) -> tuple[bytearray, WrappedKey]:
        response = self._call("GenerateDataKey", KeyId=self._key, NumberOfBytes=DATA_KEY_SIZE,
                              **context_args(context, self._grant_tokens))
        plaintext = checked_plaintext(self.reference, response)
        try:
            return plaintext, WrappedKey(PROVIDER, self._returned_arn(response), bytes(response["CiphertextBlob"]))
        except BaseException:
            plaintext[:] = bytes(len(plaintext))
            raise

    def wrap_data_key(self, plaintext: bytes | bytearray, context: EncryptionContext) -> WrappedKey:
        response = self._call("Encrypt", KeyId=self._key, Plaintext=bytes(plaintext),
                              **context_args(context, self._grant_tokens))
        return WrappedKey(PROVIDER, self._returned_arn(response), bytes(response["CiphertextBlob"]))

    def matches(self, wrapped: WrappedKey) -> bool:
        if wrapped.provider != PROVIDER:
            return False
        try:
            return same_key_for_decrypt(wrapped.key_id, self.key_arn())
        except KeyringError:
            return True  # the alias cannot be resolved: let unwrap_data_key report why

    def unwrap_data_key(self, wrapped: WrappedKey, context: EncryptionContext) -> bytearray:
        arn = self.key_arn()
        if wrapped.provider != PROVIDER or not same_key_for_decrypt(wrapped.key_id, arn):
            raise KeyringError(f"the wrapped key is for {wrapped.provider}:{wrapped.key_id}, not {self.reference}")
        response = self._call("Decrypt", KeyId=arn, CiphertextBlob=wrapped.ciphertext,
                              **context_args(context, self._grant_tokens))
        if response.get("KeyId") != arn:
            raise KeyringError(f"{self.reference}: KMS decrypted with {response.get('KeyId')}, not {arn}")
        return checked_plaintext(self.reference, response)

    def key_arn(self) -> str:
        """The key ARN: given, or (for an alias) looked up once with DescribeKey."""
        if self._arn is None:
            self._arn = str(self._call("DescribeKey", KeyId=self._key)["KeyMetadata"]["Arn"])
        return self._arn

    def client(self) -> Any:
        """The boto3 client this keyring calls (made on first use)."""
        return self._clients.get(self._region)

    def _returned_arn(self, response: dict[str, Any]) -> str:
        arn = str(response.get("KeyId", ""))
        parsed = KmsArn.parse(arn)
        if parsed is None or not parsed.is_key:
            raise KeyringError(f"{self.reference}: KMS answered without a key ARN")
        if self._arn is None:
            self._arn = arn
        return arn

    def _call(self, operation: str, **kwargs: Any) -> Any:
        return self._clients.call(self.reference, self._region, operation, **kwargs)


def from_reference(rest: str, region: str | None = None, profile: str | None = None,
                   **_options: object) -> AwsKmsKeyring:
    """The registry's factory for ``aws-kms:REST``."""
    if not rest:
        raise UsageError("aws-kms: needs a key, as in aws-kms:arn:aws:kms:REGION:ACCOUNT:key/ID or aws-kms:alias/NAME")
    return AwsKmsKeyring(rest, region=region, profile=profile)

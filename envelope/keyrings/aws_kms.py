"""``aws-kms:ARN`` and ``aws-kms:alias/NAME``: master keys in AWS KMS, through boto3.

Encrypting asks KMS for the data key (GenerateDataKey) under the first key and
wraps copies with Encrypt under the others; decrypting calls Decrypt.  The
file's encryption context is passed to every call, so KMS binds it to the
wrapped key and records it in CloudTrail.  Only the data key crosses the
network.

Decryption is **strict**, like AWS's own keyrings: a wrapped key is sent to
KMS only if it names a key this keyring was given, and Decrypt always carries
``KeyId``, so a file cannot steer the caller into using some other key it
happens to have access to.  An ``aws-kms:alias/NAME`` reference is resolved
to its key ARN (one DescribeKey) before it can match anything.

boto3 is imported on first use, and configured the way boto3 always is: the
usual credentials chain, ``AWS_REGION``/``AWS_PROFILE``, and
``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_KMS`` for another endpoint.  A region
in a key ARN wins, since a key lives in one region.  Throttling and transient
failures are retried by botocore's ``standard`` mode with backoff and jitter.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from ..context import EncryptionContext
from ..exceptions import KeyNotFoundError, KeyringError, KeyStateError, UsageError
from ..format import DATA_KEY_SIZE, WrappedKey
from .base import Keyring

PROVIDER = "aws-kms"
#: botocore retry attempts (first try included) before throttling becomes an error.
MAX_ATTEMPTS = 8

_ARN_RE = re.compile(r"arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):(key|alias)/(.+)\Z")
_ALIAS_RE = re.compile(r"alias/[A-Za-z0-9/_-]+\Z")


def parse_key(text: str) -> tuple[str | None, bool]:
    """``(region or None, is_alias)`` of a key ARN, alias ARN or ``alias/NAME``; anything else is refused."""
    match = _ARN_RE.match(text)
    if match:
        return match.group(2), match.group(4) == "alias"
    if _ALIAS_RE.match(text):
        return None, True
    raise UsageError(
        f"{text!r} is not an AWS KMS key: use aws-kms:arn:aws:kms:REGION:ACCOUNT:key/ID, "
        "aws-kms:arn:...:alias/NAME or aws-kms:alias/NAME"
    )


class AwsKmsKeyring(Keyring):
    """One AWS KMS key, by key ARN or alias."""

    provider = PROVIDER

    def __init__(self, key: str, *, client: Any = None, region: str | None = None,
                 profile: str | None = None, grant_tokens: tuple[str, ...] = ()) -> None:
        arn_region, self._is_alias = parse_key(key)
        self._key = key
        self._region = arn_region or region
        self._profile = profile
        self._client = client
        self._grant_tokens = list(grant_tokens)
        self._arn: str | None = None if self._is_alias else key
        self._lock = threading.Lock()

    @property
    def reference(self) -> str:
        return f"{PROVIDER}:{self._key}"

    def generate_data_key(self, context: EncryptionContext) -> tuple[bytearray, WrappedKey]:
        response = self._call("GenerateDataKey", KeyId=self._key, NumberOfBytes=DATA_KEY_SIZE,
                              **self._context_arg(context))
        plaintext = bytearray(response["Plaintext"])
        if len(plaintext) != DATA_KEY_SIZE:
            raise KeyringError(f"{self.reference}: KMS returned a {len(plaintext)}-byte data key")
        return plaintext, WrappedKey(PROVIDER, self._returned_arn(response), bytes(response["CiphertextBlob"]))

    def wrap_data_key(self, plaintext: bytes | bytearray, context: EncryptionContext) -> WrappedKey:
        response = self._call("Encrypt", KeyId=self._key, Plaintext=bytes(plaintext), **self._context_arg(context))
        return WrappedKey(PROVIDER, self._returned_arn(response), bytes(response["CiphertextBlob"]))

    def matches(self, wrapped: WrappedKey) -> bool:
        if wrapped.provider != PROVIDER:
            return False
        try:
            return wrapped.key_id == self.key_arn()
        except KeyringError:
            return True  # the alias cannot be resolved: let unwrap_data_key report why

    def unwrap_data_key(self, wrapped: WrappedKey, context: EncryptionContext) -> bytearray:
        arn = self.key_arn()
        if wrapped.provider != PROVIDER or wrapped.key_id != arn:
            raise KeyringError(f"the wrapped key is for {wrapped.provider}:{wrapped.key_id}, not {self.reference}")
        response = self._call("Decrypt", KeyId=arn, CiphertextBlob=wrapped.ciphertext,
                              **self._context_arg(context))
        if response.get("KeyId") != arn:
            raise KeyringError(f"{self.reference}: KMS decrypted with {response.get('KeyId')}, not {arn}")
        plaintext = bytearray(response["Plaintext"])
        if len(plaintext) != DATA_KEY_SIZE:
            raise KeyringError(f"{self.reference}: the unwrapped data key has the wrong size")
        return plaintext

    def key_arn(self) -> str:
        """The key ARN: given, or (for an alias) looked up once with DescribeKey."""
        if self._arn is None:
            self._arn = str(self._call("DescribeKey", KeyId=self._key)["KeyMetadata"]["Arn"])
        return self._arn

    # -- internals -----------------------------------------------------------------------------------

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = make_client(self._region, self._profile)
            return self._client

    def _context_arg(self, context: EncryptionContext) -> dict[str, Any]:
        args: dict[str, Any] = {"EncryptionContext": dict(context)} if context else {}
        if self._grant_tokens:
            args["GrantTokens"] = self._grant_tokens
        return args

    def _returned_arn(self, response: dict[str, Any]) -> str:
        arn = str(response.get("KeyId", ""))
        if not _ARN_RE.match(arn) or ":key/" not in arn:
            raise KeyringError(f"{self.reference}: KMS answered without a key ARN")
        if self._arn is None:
            self._arn = arn
        return arn

    def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        method = {"GenerateDataKey": "generate_data_key", "Encrypt": "encrypt", "Decrypt": "decrypt",
                  "DescribeKey": "describe_key"}[operation]
        try:
            return getattr(self.client(), method)(**kwargs)
        except ClientError as exc:
            raise _client_error(self.reference, operation, exc) from None
        except BotoCoreError as exc:
            raise KeyringError(f"{self.reference}: {operation} failed: {' '.join(str(exc).split())}") from None


def make_client(region: str | None, profile: str | None) -> Any:
    """A KMS client from boto3's usual configuration, with botocore's standard retries."""
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError
    except ImportError:
        raise KeyringError("aws-kms keys need boto3: pip install 'envelope[aws]'") from None
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        return session.client("kms", config=Config(retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS}))
    except BotoCoreError as exc:
        raise KeyringError(f"cannot set up AWS KMS: {' '.join(str(exc).split())}") from None


def _client_error(reference: str, operation: str, exc: Any) -> KeyringError:
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "Error")), " ".join(str(error.get("Message", "")).split())
    text = f"{reference}: {operation} refused by AWS KMS ({code}): {message}".rstrip(": ")
    if code == "DisabledException":
        return KeyStateError(f"{reference}: the key is disabled ({code}): {message}")
    if code == "KMSInvalidStateException":
        return KeyStateError(f"{reference}: the key is not usable in its current state, e.g. pending deletion "
                             f"({code}): {message}")
    if code == "NotFoundException":
        return KeyNotFoundError(text)
    if code == "InvalidCiphertextException":
        return KeyringError(f"{reference}: wrong encryption context, or not this key's ciphertext ({code})")
    if code in ("ThrottlingException", "RequestLimitExceeded"):
        return KeyringError(f"{reference}: AWS KMS is throttling requests; gave up after {MAX_ATTEMPTS} attempts")
    return KeyringError(text)


def from_reference(rest: str, region: str | None = None, profile: str | None = None,
                   **_options: object) -> AwsKmsKeyring:
    """The registry's factory for ``aws-kms:REST``."""
    if not rest:
        raise UsageError("aws-kms: needs a key, as in aws-kms:arn:aws:kms:REGION:ACCOUNT:key/ID or aws-kms:alias/NAME")
    return AwsKmsKeyring(rest, region=region, profile=profile)

"""Between the wire and the keystore: AWS-shaped names in and out, and keystore errors as AWS errors.

The keystore names its keys ``arn:envelope:kms:REGION:KEYSTORE:key/ID``; the
SDKs parse ARNs (the Encryption SDK and the S3 Encryption Client check them),
so on the wire a key is ``arn:aws:kms:REGION:ACCOUNT:key/ID``, REGION and
ACCOUNT being the server's.  An ARN of another region or account names no key
here.  Errors are mapped by exception type, never by message text: the
keystore's exceptions carry what AWS's error types need
(:class:`~envelope.exceptions.KeyStateError` its state, and subclasses for
the rest).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import (
    AccessDeniedError,
    AlreadyExistsError,
    AuthenticationError,
    ContextMismatchError,
    EnvelopeError,
    FormatError,
    GrantTokenError,
    IncorrectKeyError,
    InvalidCiphertextError,
    KeyNotFoundError,
    KeyStateError,
    KeyUsageError,
    UsageError,
)
from . import errors


@dataclass(frozen=True)
class Wire:
    """The server's region and account: how keys and principals are named on the wire."""

    region: str
    account: str

    def key_arn(self, key_id: str, region: str | None = None) -> str:
        return f"arn:aws:kms:{region or self.region}:{self.account}:key/{key_id}"

    def alias_arn(self, alias: str) -> str:
        return f"arn:aws:kms:{self.region}:{self.account}:{alias}"

    def ref(self, text: str) -> str:
        """A client's KeyId (key id, key or alias ARN, alias name) as a keystore reference."""
        if not text.startswith("arn:"):
            return text
        if not text.startswith("arn:aws:kms:"):
            if text.startswith("arn:envelope:kms:"):
                return text
            raise errors.NotFoundException(f"Invalid keyId {text[:300]}")
        parts = text.split(":", 5)
        if len(parts) != 6 or not (parts[5].startswith("key/") or parts[5].startswith("alias/")):
            raise errors.NotFoundException(f"Invalid keyId {text[:300]}")
        if parts[3] != self.region or parts[4] != self.account:
            raise errors.NotFoundException(f"Key '{text[:300]}' does not exist")
        return parts[5][len("key/"):] if parts[5].startswith("key/") else parts[5]


def aws_error(exc: EnvelopeError, operation: str, keystore_path: str | None = None) -> errors.AwsError:
    """The AWS error a keystore refusal is on the wire.

    Messages carry no key material by the keystore's rules; the keystore's
    path, which they name for local users, is no business of a remote client's.
    """
    message = " ".join(str(exc).split())
    if keystore_path:
        message = message.replace(f" at {keystore_path}", "").replace(keystore_path, "the keystore")
    message = message[:1000]
    if isinstance(exc, KeyNotFoundError):
        return errors.NotFoundException(message)
    if isinstance(exc, KeyStateError):
        if exc.state == "Disabled":
            return errors.DisabledException(message)
        return errors.KMSInvalidStateException(message)
    if isinstance(exc, AccessDeniedError):
        return errors.AccessDeniedException(message)
    if isinstance(exc, IncorrectKeyError):
        return errors.IncorrectKeyException(message)
    if isinstance(exc, (InvalidCiphertextError, AuthenticationError, ContextMismatchError, FormatError)):
        return errors.InvalidCiphertextException(message)
    if isinstance(exc, AlreadyExistsError):
        return errors.AlreadyExistsException(message)
    if isinstance(exc, GrantTokenError):
        return errors.InvalidGrantTokenException(message)
    if isinstance(exc, KeyUsageError):
        return errors.InvalidKeyUsageException(message)
    if isinstance(exc, UsageError):
        return errors.ValidationException(message)
    if operation == "ImportKeyMaterial":  # the keystore's remaining refusals there are about the token
        return errors.InvalidImportTokenException(message)
    return errors.KMSInternalException("the keystore could not complete the request")

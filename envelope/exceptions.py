"""The exception tree: one base, a handful of causes.

Every error envelope raises on purpose derives from :class:`EnvelopeError`, which
is never raised itself.  The subclasses separate the questions a caller asks
after a failure: *is the input damaged* (:class:`FormatError`), *was it forged or
opened with the wrong key* (:class:`AuthenticationError`), *could a master key be
used at all* (:class:`KeyringError`), and *did I ask for something impossible*
(:class:`UsageError`).  Messages never contain key material.
"""

from __future__ import annotations


class EnvelopeError(Exception):
    """Base of every envelope error; never raised directly."""


class FormatError(EnvelopeError, ValueError):
    """The bytes are not a well-formed envelope stream this version can read.

    Raised for a wrong magic, an unknown version or suite, a field out of its
    limits, or a header that does not parse.  Nothing has been authenticated
    when this is raised.
    """


class AuthenticationError(EnvelopeError):
    """The data is not what was encrypted under this key.

    One type for every cryptographic check: a chunk tag, the header MAC, the key
    commitment, and truncation or extension of the stream.  A wrong data key,
    damaged ciphertext and deliberate tampering are indistinguishable here, by
    design.  :attr:`chunk_index` names the failing chunk when there is one.
    """

    def __init__(self, message: str, *, chunk_index: int | None = None) -> None:
        super().__init__(message)
        self.chunk_index = chunk_index

    @classmethod
    def for_chunk(cls, index: int) -> AuthenticationError:
        return cls(f"chunk {index} failed authentication", chunk_index=index)


class ContextMismatchError(EnvelopeError, ValueError):
    """The file's encryption context lacks a pair the caller required."""


class KeyringError(EnvelopeError):
    """A master key could not be used: unknown, unreachable, refused or wrong."""


class KeyNotFoundError(KeyringError, LookupError):
    """No master key matches the reference, alias or wrapped key."""


class KeyStateError(KeyringError):
    """The master key exists but its state forbids the operation.

    :attr:`state` is the key's state when the refusal knows it (``Disabled``,
    ``PendingDeletion``, ...): a Disabled key and a key in any other wrong
    state are different errors in AWS KMS's API, so the server needs it.
    """

    def __init__(self, message: str, *, state: str | None = None) -> None:
        super().__init__(message)
        self.state = state


class IncorrectKeyError(KeyringError):
    """The ciphertext was sealed under another master key than the one the caller named."""


class InvalidCiphertextError(KeyringError):
    """The ciphertext blob is damaged, forged or for another context: nothing in it could be opened."""


class AccessDeniedError(KeyringError):
    """The key manager refused the caller: no key policy statement or grant allows the call, or one denies it."""


class UsageError(EnvelopeError, ValueError):
    """The request itself is invalid: a bad flag, reference or argument."""


class AlreadyExistsError(UsageError):
    """The name to be created (an alias, say) is already taken."""


class GrantTokenError(UsageError):
    """A grant token passed with a call names no live grant of the key."""


class KeyUsageError(UsageError):
    """The key exists but is not for this operation (an HMAC key asked to encrypt, say)."""


class OutputExistsError(UsageError, FileExistsError):
    """The destination exists and overwriting it was not requested."""

    @classmethod
    def at(cls, path: str) -> OutputExistsError:
        """The one wording of this refusal, whichever command or check meets the existing file."""
        return cls(f"{path!r} already exists (use --force to overwrite)")


class RangeNotSatisfiableError(UsageError):
    """A byte range that starts at or past the end of the plaintext: S3's InvalidRange (HTTP 416).

    *start* negative is a suffix (the last -start bytes), unsatisfiable only
    when the plaintext is empty.  The message names the plaintext's size, so
    the caller can ask again.
    """

    def __init__(self, start: int, end: int | None, size: int) -> None:
        shown = str(start) if start < 0 else f"{start}:{'' if end is None else end}"
        super().__init__(f"range {shown} starts past the end of the plaintext ({size} bytes)")
        self.size = size


class MissingDependencyError(UsageError):
    """An optional dependency the request needs is not installed; the message names the pip extra."""


__all__ = [
    "AccessDeniedError",
    "AlreadyExistsError",
    "AuthenticationError",
    "ContextMismatchError",
    "EnvelopeError",
    "FormatError",
    "GrantTokenError",
    "IncorrectKeyError",
    "InvalidCiphertextError",
    "KeyNotFoundError",
    "KeyStateError",
    "KeyUsageError",
    "KeyringError",
    "MissingDependencyError",
    "OutputExistsError",
    "RangeNotSatisfiableError",
    "UsageError",
]

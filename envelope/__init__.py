"""envelope: streaming envelope encryption under KMS-held master keys."""

from .exceptions import (
    AuthenticationError,
    ContextMismatchError,
    EnvelopeError,
    FormatError,
    KeyNotFoundError,
    KeyringError,
    KeyStateError,
    OutputExistsError,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "AuthenticationError",
    "ContextMismatchError",
    "EnvelopeError",
    "FormatError",
    "KeyNotFoundError",
    "KeyStateError",
    "KeyringError",
    "OutputExistsError",
    "UsageError",
]

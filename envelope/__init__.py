"""envelope: streaming envelope encryption under KMS-held master keys.

The file and bytes functions are imported on first use, so that importing the
package (and ``envelope --help``) does not load the cipher stack.
"""

from __future__ import annotations

from typing import Any

from . import exceptions as _exceptions
from .exceptions import (
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
    KeyringError,
    KeyStateError,
    KeyUsageError,
    MissingDependencyError,
    OutputExistsError,
    RangeNotSatisfiableError,
    UsageError,
)

__version__ = "0.1.0"

_LAZY = {
    "encrypt_file": "api",
    "decrypt_file": "api",
    "encrypt": "api",
    "decrypt": "api",
    "inspect_file": "api",
    "decrypt_range": "api",
    "rewrap_file": "rewrap",
    "open": "reader",
    "DataKeyCache": "cache",
    "CacheLimits": "cache",
    "KeyStore": "kms.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'envelope' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = ["__version__", *_exceptions.__all__, *_LAZY]

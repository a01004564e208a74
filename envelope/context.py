"""Encryption context: string pairs bound into every authentication.

The context is not secret.  It is authenticated by the header MAC of a file and
passed as additional authenticated data to the key manager that wraps the data
key, so a file opens only under the context it was written with.  Its canonical
encoding (pairs sorted by the UTF-8 bytes of the key, each string length-prefixed)
is the same in the file header and in the keystore's AAD, so one function owns it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

from .exceptions import ContextMismatchError, FormatError, UsageError

#: Decode limits; encoders refuse to produce anything a decoder would refuse.
MAX_CONTEXT_PAIRS = 64
MAX_CONTEXT_BYTES = 8192  # the encoded section, including length prefixes

_U16 = struct.Struct(">H")

EncryptionContext = Mapping[str, str]


def normalize(context: EncryptionContext | None) -> dict[str, str]:
    """Validate *context* and return it as a dict in canonical order."""
    if not context:
        return {}
    if not isinstance(context, Mapping):
        raise UsageError("encryption context must be a mapping of strings to strings")
    for key, value in context.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise UsageError("encryption context keys and values must be strings")
        if not key:
            raise UsageError("encryption context keys must not be empty")
    encode(context)  # enforce encodability and limits now, not at the end of a long file
    return dict(sorted(context.items(), key=lambda kv: kv[0].encode("utf-8")))


def encode(context: EncryptionContext) -> bytes:
    """Canonical bytes: u16 count, then (u16 len, key, u16 len, value) sorted by key."""
    try:
        pairs = sorted(((k.encode("utf-8"), v.encode("utf-8")) for k, v in context.items()), key=lambda kv: kv[0])
    except (UnicodeEncodeError, AttributeError):
        raise UsageError("encryption context keys and values must be valid Unicode strings") from None
    if len(pairs) > MAX_CONTEXT_PAIRS:
        raise UsageError(f"encryption context has {len(pairs)} pairs; the limit is {MAX_CONTEXT_PAIRS}")
    out = bytearray(_U16.pack(len(pairs)))
    for key, value in pairs:
        if len(key) > 0xFFFF or len(value) > 0xFFFF:
            raise UsageError("encryption context string too long")
        out += _U16.pack(len(key)) + key + _U16.pack(len(value)) + value
    if len(out) > MAX_CONTEXT_BYTES:
        raise UsageError(f"encryption context encodes to {len(out)} bytes; the limit is {MAX_CONTEXT_BYTES}")
    return bytes(out)


def decode(buf: bytes | memoryview, offset: int = 0) -> tuple[dict[str, str], int]:
    """Parse a canonical context at *offset*; return it and the offset after it.

    Rejects anything an encoder would not produce (unsorted or duplicate keys,
    empty keys, invalid UTF-8, over-limit sizes), so each context has exactly one
    encoding and the header MAC covers a unique byte string.
    """
    view = memoryview(buf)
    start = offset

    def take(n: int) -> bytes:
        nonlocal offset
        if offset + n > len(view) or offset + n - start > MAX_CONTEXT_BYTES:
            raise FormatError("encryption context is truncated or over its size limit")
        chunk = bytes(view[offset : offset + n])
        offset += n
        return chunk

    (count,) = _U16.unpack(take(2))
    if count > MAX_CONTEXT_PAIRS:
        raise FormatError(f"encryption context has {count} pairs; the limit is {MAX_CONTEXT_PAIRS}")
    result: dict[str, str] = {}
    previous: bytes | None = None
    for _ in range(count):
        key = take(_U16.unpack(take(2))[0])
        value = take(_U16.unpack(take(2))[0])
        if not key:
            raise FormatError("encryption context has an empty key")
        if previous is not None and key <= previous:
            raise FormatError("encryption context keys are not in canonical order or repeat")
        previous = key
        try:
            result[key.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("encryption context is not valid UTF-8") from None
    return result, offset


def parse_pairs(items: Iterable[str], option: str = "--context") -> dict[str, str]:
    """Turn command-line ``k=v`` strings into a context; a key given twice with two values is an error.

    *option* names the flag in error messages; anything but ``--context`` gets
    the pairs without the context's own checks (tags have their own rules).
    """
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} expects KEY=VALUE, got {item!r}")
        if key in pairs and pairs[key] != value:
            raise UsageError(f"{option} key {key!r} given twice with different values")
        pairs[key] = value
    return normalize(pairs) if option == "--context" else pairs


def require_subset(required: EncryptionContext, actual: EncryptionContext) -> None:
    """Fail unless every required pair is present, with the same value, in *actual*."""
    for key, value in required.items():
        if key not in actual:
            raise ContextMismatchError(f"encryption context has no key {key!r}")
        if actual[key] != value:
            raise ContextMismatchError(f"encryption context value for {key!r} does not match")

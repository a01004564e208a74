"""The local KMS ciphertext blob: what Encrypt and GenerateDataKey return.

Like an AWS KMS ``CiphertextBlob``, the blob names the master key that sealed
it, so Decrypt needs no key id, and it names the backing key version, so a
rotated key still opens everything it sealed before::

    blob = version (1 byte: 0x01, or 0x02 when the key is a multi-Region key)
         || key id (16 bytes: the key's UUID, or the 32 hex digits after mrk-)
         || backing version (4 bytes, big-endian, >= 1)
         || nonce (12 bytes, random)
         || AES-256-GCM ciphertext || tag (16 bytes)

The AAD of the seal is a fixed label, the 21 prefix bytes above (so the key id
and backing version cannot be swapped without the tag failing), then the
canonical encoding of the encryption context (:func:`envelope.context.encode`).

This module knows the layout and nothing about keys.  Parsing is bounded (a
blob longer than the largest one Encrypt can produce is refused before any
lookup) and raises :class:`FormatError` only.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ... import context as _context
from ...context import EncryptionContext
from ...exceptions import FormatError
from ..model.keys import is_multi_region, key_id_bytes, key_id_from_bytes

BLOB_VERSION = 1
BLOB_VERSION_MRK = 2  # the same layout; the key id is a multi-Region key's
KEY_ID_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16
#: AWS KMS Encrypt takes at most 4096 bytes of plaintext; so does this one.
MAX_PLAINTEXT_SIZE = 4096

_PREFIX = struct.Struct(">B16sI")  # version, key UUID, backing version
PREFIX_SIZE = _PREFIX.size  # 21
MIN_BLOB_SIZE = PREFIX_SIZE + NONCE_SIZE + TAG_SIZE + 1  # KMS never seals an empty plaintext
MAX_BLOB_SIZE = PREFIX_SIZE + NONCE_SIZE + MAX_PLAINTEXT_SIZE + TAG_SIZE
_MAX_BACKING_VERSION = 0xFFFFFFFF

_AAD_LABEL = b"envelope local-kms blob v1\x00"


class Blob(NamedTuple):
    """A parsed ciphertext blob.  Nothing in it is secret."""

    key_id: str  # canonical lowercase UUID string
    backing_version: int
    nonce: bytes
    sealed: bytes  # ciphertext || tag

    def __repr__(self) -> str:
        # Not secret, but opaque and long: shown as the dataclass showed it, without nonce and ciphertext.
        return f"Blob(key_id={self.key_id!r}, backing_version={self.backing_version!r})"

    @property
    def prefix(self) -> bytes:
        return encode_prefix(self.key_id, self.backing_version)

    def aad(self, context: EncryptionContext) -> bytes:
        return aad(self.key_id, self.backing_version, context)

    def encode(self) -> bytes:
        return self.prefix + self.nonce + self.sealed


def encode_prefix(key_id: str, backing_version: int) -> bytes:
    if not 1 <= backing_version <= _MAX_BACKING_VERSION:
        raise ValueError(f"backing version {backing_version} out of range")
    version = BLOB_VERSION_MRK if is_multi_region(key_id) else BLOB_VERSION
    return _PREFIX.pack(version, key_id_bytes(key_id), backing_version)


def aad(key_id: str, backing_version: int, context: EncryptionContext) -> bytes:
    """Additional data for sealing: label, key id, backing version, context."""
    return _AAD_LABEL + encode_prefix(key_id, backing_version) + _context.encode(context)


def parse(data: bytes | bytearray | memoryview) -> Blob:
    """Split a blob into its fields, checking sizes and the version first.

    Raises :class:`FormatError` for anything Encrypt could not have produced;
    whether the blob is authentic is only known after the seal is opened.
    """
    view = memoryview(data)
    if len(view) < MIN_BLOB_SIZE:
        raise FormatError(f"local KMS ciphertext is {len(view)} bytes; too short to be a ciphertext blob")
    if len(view) > MAX_BLOB_SIZE:
        raise FormatError(f"local KMS ciphertext is {len(view)} bytes; longer than any ciphertext blob")
    version, raw_id, backing_version = _PREFIX.unpack_from(view)
    if version not in (BLOB_VERSION, BLOB_VERSION_MRK):
        raise FormatError(f"unsupported local KMS ciphertext version {version}")
    if backing_version == 0:
        raise FormatError("local KMS ciphertext names backing version 0")
    return Blob(
        key_id=key_id_from_bytes(bytes(raw_id), version == BLOB_VERSION_MRK),
        backing_version=backing_version,
        nonce=bytes(view[PREFIX_SIZE : PREFIX_SIZE + NONCE_SIZE]),
        sealed=bytes(view[PREFIX_SIZE + NONCE_SIZE :]),
    )

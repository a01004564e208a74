"""The v1 key schedule: one data key and one file id give three keys.

A data key (DEK) is never used directly.  HKDF-SHA-512, salted with the file's
random 256-bit id, derives a payload key for the chunks, a header key for the
header MAC, and a key commitment.  Because the file id is fresh per file, one DEK
can serve many files (data-key caching) without ever repeating a (key, nonce)
pair.  The commitment pins the DEK: a header that several keys could open (the
"invisible salamander" problem of plain GCM) fails the commitment check for all
but one of them.  HKDF, HMAC and the constant-time checks come from :mod:`envelope.engines.primitives`.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from .engines.primitives import equal, hkdf_sha512, hmac_sha256
from .exceptions import AuthenticationError
from .format import COMMITMENT_SIZE, DATA_KEY_SIZE, FILE_ID_SIZE, Header

_INFO_PREFIX = b"envelope v1 "
LABEL_PAYLOAD = b"payload key"
LABEL_HEADER = b"header key"
LABEL_COMMITMENT = b"key commitment"


def _hkdf(data_key: bytes | bytearray, file_id: bytes, suite: int, label: bytes, length: int) -> bytes:
    if len(data_key) != DATA_KEY_SIZE or len(file_id) != FILE_ID_SIZE:
        raise ValueError("data key and file id must be 32 bytes")
    info = _INFO_PREFIX + struct.pack(">H", suite) + b" " + label
    return hkdf_sha512(data_key, file_id, info, length)


def payload_key(data_key: bytes | bytearray, file_id: bytes, suite: int) -> bytes:
    """The AES-256-GCM key that seals the chunks."""
    return _hkdf(data_key, file_id, suite, LABEL_PAYLOAD, 32)


def header_key(data_key: bytes | bytearray, file_id: bytes, suite: int) -> bytes:
    """The HMAC-SHA-256 key that authenticates the header."""
    return _hkdf(data_key, file_id, suite, LABEL_HEADER, 32)


def commitment(data_key: bytes | bytearray, file_id: bytes, suite: int) -> bytes:
    """A public value that only this data key (and file id) produces."""
    return _hkdf(data_key, file_id, suite, LABEL_COMMITMENT, COMMITMENT_SIZE)


def header_mac(key: bytes, header_bytes: bytes) -> bytes:
    return hmac_sha256(key, header_bytes)


class FileKeys(NamedTuple):
    """The per-file keys.  Held in memory only while a file is being processed."""

    payload: bytes
    header: bytes
    commitment: bytes

    def __repr__(self) -> str:
        return "FileKeys()"  # every field is a key, as the repr=False fields of the dataclass were

    @classmethod
    def derive(cls, data_key: bytes | bytearray, file_id: bytes, suite: int) -> FileKeys:
        return cls(
            payload_key(data_key, file_id, suite),
            header_key(data_key, file_id, suite),
            commitment(data_key, file_id, suite),
        )


def authenticate_header(header: Header, keys: FileKeys, raw: bytes | None = None) -> None:
    """Check the commitment, then the MAC, both in constant time.

    *raw* is the header exactly as read, when there is one; the MAC covers
    those bytes.  Called before any chunk is opened.  The commitment comes first: if it fails
    the data key is wrong and the MAC result would mean nothing.
    """
    if not equal(header.commitment, keys.commitment):
        raise AuthenticationError("key commitment mismatch: the data key does not belong to this file")
    covered = raw[: -len(header.mac)] if raw is not None else header.encode_unauthenticated()
    expected = header_mac(keys.header, covered)
    if not equal(header.mac, expected):
        raise AuthenticationError("header authentication failed: the header was modified")


def seal_header(header: Header, keys: FileKeys) -> Header:
    """Return *header* with its MAC computed under the file's header key."""
    return header._replace(mac=header_mac(keys.header, header.encode_unauthenticated()))

"""The envelope v1 header: its fields, its limits, its bytes.

This module knows the wire layout and nothing about keys: it parses and
serializes, and raises :class:`FormatError` only.  Authentication of the parsed
header (key commitment and header MAC) lives in :mod:`envelope.kdf` and is done
by :mod:`envelope.stream` once a data key has been unwrapped.  The byte-level
specification is ``formats/envelope-v1.md``; the constants below are named once
here and quoted there.
"""

from __future__ import annotations

import re
import struct
from typing import BinaryIO, NamedTuple

from . import context as _context
from .exceptions import FormatError, UsageError
from .pipeline import wait_readable
from .records import FrozenRecord

MAGIC = b"ENVELOPE"
VERSION = 1
#: AES-256-GCM chunks, HKDF-SHA-512 key schedule, key commitment, HMAC-SHA-256 header.
SUITE_AES256_GCM_HKDF_SHA512_COMMIT = 0x0001
SUITES = {SUITE_AES256_GCM_HKDF_SHA512_COMMIT: "AES-256-GCM/HKDF-SHA-512/commit"}

DATA_KEY_SIZE = 32
FILE_ID_SIZE = 32
COMMITMENT_SIZE = 32
HEADER_MAC_SIZE = 32
TAG_SIZE = 16
NONCE_SIZE = 12

MIN_CHUNK_SIZE = 1 << 10
MAX_CHUNK_SIZE = 1 << 26
#: Chosen by measurement; see formats/envelope-v1.md, "Chunk size".
DEFAULT_CHUNK_SIZE = 1 << 18

MAX_HEADER_SIZE = 1 << 16
MAX_WRAPPED_KEYS = 32
MAX_PROVIDER_SIZE = 64
MAX_KEY_ID_SIZE = 2048
MAX_WRAPPED_KEY_SIZE = 8192

_PREFIX = struct.Struct(">8sBHI")  # magic, version, suite, header length
PREFIX_SIZE = _PREFIX.size  # 15
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_PROVIDER_RE = re.compile(r"[a-z0-9][a-z0-9.-]*\Z")

#: prefix, chunk size, file id, empty context, one minimal wrapped key, commitment, MAC.
_MIN_HEADER_SIZE = PREFIX_SIZE + 4 + FILE_ID_SIZE + 2 + 1 + 8 + COMMITMENT_SIZE + HEADER_MAC_SIZE


class WrappedKey(FrozenRecord):
    """One copy of the data key, encrypted under one master key.  Immutable; checked when made."""

    __slots__ = ("provider", "key_id", "ciphertext")
    _hidden = frozenset({"ciphertext"})

    provider: str  # the key manager's scheme, e.g. "local", "raw-aes", "aws-kms"
    key_id: str  # which master key, in the provider's own terms
    ciphertext: bytes

    def __init__(self, provider: str, key_id: str, ciphertext: bytes) -> None:
        if not _PROVIDER_RE.match(provider) or len(provider) > MAX_PROVIDER_SIZE:
            raise UsageError(f"invalid key provider name {provider!r}")
        try:
            key_id_size = len(key_id.encode("utf-8"))
        except (UnicodeEncodeError, AttributeError):
            raise UsageError("wrapped key id must be a valid Unicode string") from None
        if not key_id_size or key_id_size > MAX_KEY_ID_SIZE:
            raise UsageError("wrapped key id is empty or too long")
        if not ciphertext or len(ciphertext) > MAX_WRAPPED_KEY_SIZE:
            raise UsageError("wrapped key is empty or too long")
        self._set("provider", provider)
        self._set("key_id", key_id)
        self._set("ciphertext", ciphertext)


class Header(NamedTuple):
    """A parsed or to-be-written v1 header.  Nothing in it is secret.

    A NamedTuple, not a dataclass, because creating a dataclass costs
    start-up time on every command; ``header._replace(mac=...)`` makes a changed copy.
    """

    chunk_size: int
    file_id: bytes
    context: dict[str, str]
    wrapped_keys: tuple[WrappedKey, ...]
    commitment: bytes
    mac: bytes = b"\0" * HEADER_MAC_SIZE
    version: int = VERSION
    suite: int = SUITE_AES256_GCM_HKDF_SHA512_COMMIT

    def __repr__(self) -> str:
        # The file id, commitment and MAC are left out, as the dataclass's repr=False fields were.
        return (f"Header(chunk_size={self.chunk_size!r}, context={self.context!r}, "
                f"wrapped_keys={self.wrapped_keys!r}, version={self.version!r}, suite={self.suite!r})")

    @property
    def suite_name(self) -> str:
        return SUITES[self.suite]

    def encode_unauthenticated(self) -> bytes:
        """Every header byte the MAC covers: all of it but the MAC itself."""
        check_chunk_size(self.chunk_size)
        if self.version != VERSION or self.suite not in SUITES:
            raise UsageError(f"cannot write version {self.version} suite 0x{self.suite:04x}")
        if len(self.file_id) != FILE_ID_SIZE or len(self.commitment) != COMMITMENT_SIZE \
                or len(self.mac) != HEADER_MAC_SIZE:
            raise UsageError("file id, commitment and MAC must be 32 bytes each")
        if not 1 <= len(self.wrapped_keys) <= MAX_WRAPPED_KEYS:
            raise UsageError(f"a file needs 1 to {MAX_WRAPPED_KEYS} wrapped keys")
        body = bytearray(_U32.pack(self.chunk_size) + self.file_id)
        body += _context.encode(_context.normalize(self.context))
        body += _U8.pack(len(self.wrapped_keys))
        for wk in self.wrapped_keys:
            provider = wk.provider.encode("ascii")
            key_id = wk.key_id.encode("utf-8")
            body += _U8.pack(len(provider)) + provider
            body += _U16.pack(len(key_id)) + key_id
            body += _U16.pack(len(wk.ciphertext)) + wk.ciphertext
        body += self.commitment
        length = PREFIX_SIZE + len(body) + HEADER_MAC_SIZE
        if length > MAX_HEADER_SIZE:
            raise UsageError(f"header would be {length} bytes; the limit is {MAX_HEADER_SIZE}")
        return _PREFIX.pack(MAGIC, self.version, self.suite, length) + bytes(body)

    def encode(self) -> bytes:
        return self.encode_unauthenticated() + self.mac

    @property
    def size(self) -> int:
        return len(self.encode_unauthenticated()) + HEADER_MAC_SIZE


def check_chunk_size(chunk_size: int) -> None:
    if not (MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE) or chunk_size & (chunk_size - 1):
        raise UsageError(
            f"chunk size must be a power of two from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} bytes, got {chunk_size}"
        )


def parse_prefix(prefix: bytes) -> int:
    """Check the fixed 15-byte prefix and return the total header length.

    The order of the checks is part of the contract: a reader learns "not an
    envelope file" before "unsupported version" before "unsupported suite", and
    learns all three before it reads a byte past the prefix.
    """
    if len(prefix) < PREFIX_SIZE:
        raise FormatError("not an envelope file: shorter than the header")
    magic, version, suite, length = _PREFIX.unpack_from(prefix)
    if magic != MAGIC:
        raise FormatError("not an envelope file: bad magic bytes")
    if version != VERSION:
        raise FormatError(f"unsupported format version {version} (this reader knows version {VERSION})")
    if suite not in SUITES:
        raise FormatError(f"unsupported algorithm suite 0x{suite:04x}")
    if not _MIN_HEADER_SIZE <= length <= MAX_HEADER_SIZE:
        raise FormatError(f"header length {length} is outside {_MIN_HEADER_SIZE}..{MAX_HEADER_SIZE}")
    return int(length)


def parse(data: bytes) -> Header:
    """Parse one complete header (exactly the bytes its length field names)."""
    length = parse_prefix(data)
    if len(data) != length:
        raise FormatError("header is truncated")
    view = memoryview(data)
    _, version, suite, _ = _PREFIX.unpack_from(data)
    pos = PREFIX_SIZE

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > length - HEADER_MAC_SIZE:
            raise FormatError("header fields overrun the header length")
        out = bytes(view[pos : pos + n])
        pos += n
        return out

    (chunk_size,) = _U32.unpack(take(4))
    try:
        check_chunk_size(chunk_size)
    except UsageError as exc:
        raise FormatError(f"bad header: {exc}") from None
    file_id = take(FILE_ID_SIZE)
    try:
        ctx, pos = _context.decode(view[: length - HEADER_MAC_SIZE], pos)
    except FormatError:
        raise
    (count,) = _U8.unpack(take(1))
    if not 1 <= count <= MAX_WRAPPED_KEYS:
        raise FormatError(f"header has {count} wrapped keys; 1 to {MAX_WRAPPED_KEYS} are allowed")
    wrapped = []
    for _ in range(count):
        provider_raw = take(_U8.unpack(take(1))[0])
        key_id_raw = take(_U16.unpack(take(2))[0])
        blob = take(_U16.unpack(take(2))[0])
        try:
            provider = provider_raw.decode("ascii")
            key_id = key_id_raw.decode("utf-8")
            wrapped.append(WrappedKey(provider, key_id, blob))
        except (UnicodeDecodeError, UsageError):
            raise FormatError("header has a malformed wrapped key entry") from None
    commitment = take(COMMITMENT_SIZE)
    if pos != length - HEADER_MAC_SIZE:
        raise FormatError("header has trailing bytes before its MAC")
    return Header(
        chunk_size=chunk_size,
        file_id=file_id,
        context=ctx,
        wrapped_keys=tuple(wrapped),
        commitment=commitment,
        mac=bytes(view[pos:length]),
        version=version,
        suite=suite,
    )


def read_header(stream: BinaryIO) -> tuple[Header, bytes]:
    """Read and parse a header from *stream*; return it and its raw bytes.

    Reads exactly the header's bytes and no more, at most MAX_HEADER_SIZE.
    """
    prefix = read_exactly(stream, PREFIX_SIZE)
    if len(prefix) < PREFIX_SIZE:
        raise FormatError("not an envelope file: shorter than the header")
    length = parse_prefix(prefix)
    rest = read_exactly(stream, length - PREFIX_SIZE)
    if len(rest) != length - PREFIX_SIZE:
        raise FormatError("header is truncated")
    raw = prefix + rest
    return parse(raw), raw


def read_exactly(stream: BinaryIO, n: int) -> bytes:
    """Read up to *n* bytes, looping over short reads; fewer only at end of stream."""
    parts = []
    while n > 0:
        part = stream.read(n)
        if part is None:  # a non-blocking input with nothing yet: not the end
            wait_readable(stream)
            continue
        if not part:
            break
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


# -- chunk layout: where chunk i lives, so readers can seek (random access, S3 ranges) --


def chunk_count(plaintext_size: int, chunk_size: int) -> int:
    """Number of chunks for a plaintext: never zero, the empty file has one empty chunk."""
    return max(1, -(-plaintext_size // chunk_size))


def ciphertext_size(header_size: int, plaintext_size: int, chunk_size: int) -> int:
    return header_size + plaintext_size + TAG_SIZE * chunk_count(plaintext_size, chunk_size)


def chunk_offset(header_size: int, chunk_size: int, index: int) -> int:
    """Byte offset of chunk *index* in the file."""
    return header_size + index * (chunk_size + TAG_SIZE)


def plaintext_before(header_size: int, chunk_size: int, offset: int, plaintext_size: int | None = None) -> int:
    """How many plaintext bytes the first *offset* bytes of a stream carry: progress, in the caller's units.

    Header and tags carry none.  A short last chunk is only known as last when
    *plaintext_size* is given; without it, its tag may count as up to 16 bytes.
    """
    if offset <= header_size:
        return 0
    full, rest = divmod(offset - header_size, chunk_size + TAG_SIZE)
    carried = full * chunk_size + min(rest, chunk_size)
    return carried if plaintext_size is None else min(carried, plaintext_size)


def plaintext_size(header_size: int, total_size: int, chunk_size: int) -> int:
    """Invert :func:`ciphertext_size`; raise FormatError if no plaintext size fits."""
    body = total_size - header_size
    if body < TAG_SIZE:
        raise FormatError("ciphertext is shorter than its header and one tag (truncated?)")
    sealed = chunk_size + TAG_SIZE
    full, rest = divmod(body, sealed)
    if rest == 0 and full > 0:
        return full * chunk_size  # the last chunk is full
    if rest < TAG_SIZE or (rest == TAG_SIZE and full > 0):
        raise FormatError("ciphertext length is impossible for this chunk size (truncated?)")
    return full * chunk_size + rest - TAG_SIZE

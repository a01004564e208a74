"""The chunk-engine interface: seal and open batches of chunks in buffers.

An engine does the AES-256-GCM work of the STREAM construction and nothing
else: it knows the nonce layout and the chunk framing, not files, headers or
keys' origins.  Batches, not single chunks, cross this interface so that a
native engine can spread one call over several threads with the GIL released,
and buffers are caller-owned so that a streaming loop reuses the same memory
for every batch (constant memory whatever the file size).

Every engine must produce byte-identical output; the tests hold them to it.

Nonce of chunk *i*: the 11-byte big-endian *i*, then one flag byte, 0x01 for
the last chunk of the stream and 0x00 for every other.  AAD is empty: the key
is already unique to the file (see :mod:`envelope.kdf`).
"""

from __future__ import annotations

import abc
from typing import NamedTuple, Protocol

from ..exceptions import AuthenticationError, UsageError
from ..format import NONCE_SIZE, TAG_SIZE

Buffer = bytes | bytearray | memoryview

#: Chunk indices are carried in 88 bits on the wire; engines stop at 2**64.
MAX_CHUNK_INDEX = (1 << 64) - 1
FLAG_LAST = 1


def chunk_nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(NONCE_SIZE - 1, "big") + (b"\x01" if last else b"\x00")


def sealed_size(plain_len: int, chunk_size: int, final: bool) -> int:
    """Bytes a batch of *plain_len* plaintext bytes occupies once sealed."""
    return plain_len + TAG_SIZE * batch_chunks(plain_len, chunk_size, final)


def batch_chunks(plain_len: int, chunk_size: int, final: bool) -> int:
    if plain_len == 0:
        if not final:
            raise UsageError("a non-final batch must hold at least one chunk")
        return 1
    count = -(-plain_len // chunk_size)
    if not final and plain_len % chunk_size:
        raise UsageError("a non-final batch must hold whole chunks")
    return count


def opened_chunks(sealed_len: int, chunk_size: int, final: bool) -> tuple[int, int]:
    """(chunk count, plaintext length) of a batch of *sealed_len* bytes.

    A non-final batch must be whole sealed chunks.  A final batch ends with a
    last chunk of TAG_SIZE to chunk_size + TAG_SIZE bytes.  Violations are
    reported as ValueError; the stream layer turns them into truncation errors.
    """
    sealed = chunk_size + TAG_SIZE
    full, rest = divmod(sealed_len, sealed)
    if not final:
        if rest or not full:
            raise ValueError("non-final batch is not whole chunks")
        return full, full * chunk_size
    if rest == 0 and full:
        return full, full * chunk_size
    if rest < TAG_SIZE:
        raise ValueError("last chunk is shorter than a tag")
    return full + 1, full * chunk_size + rest - TAG_SIZE


class FileSpan(NamedTuple):
    """Bytes of an open file: descriptor, first byte, length, and the name errors give it."""

    fd: int
    offset: int
    length: int
    name: str


class FileRun(Protocol):
    """A file loop in progress, as the thread that started it sees it."""

    @property
    def done(self) -> int:
        """Input bytes finished so far (for progress)."""

    def cancel(self) -> None:
        """Stop every worker before its next chunk."""


class Engine(abc.ABC):
    """Seals and opens batches of consecutive chunks with one payload key."""

    name: str = "abstract"
    #: True when the engine can also seal and open a whole file body itself
    #: (:meth:`seal_file`, :meth:`open_file`): reads, cipher and writes on its own threads.
    file_loop: bool = False

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or 1

    def openssl_version(self) -> str:
        """The OpenSSL this engine's AES-GCM runs on, as OpenSSL names itself (for --version).

        By default pyca/cryptography's, which does the header's key schedule for
        every engine; an engine linking its own libcrypto reports that one.
        """
        from cryptography.hazmat.backends.openssl.backend import backend

        return str(backend.openssl_version_text())

    @abc.abstractmethod
    def seal(self, key: bytes, first_index: int, src: Buffer, dst: bytearray | memoryview,
             chunk_size: int, final: bool) -> int:
        """Seal *src* as chunks first_index, first_index+1, ... into *dst*.

        *src* is whole chunks, except that the batch that ends the stream
        (*final*) may end with a short or empty chunk, which gets the last-chunk
        flag.  *dst* receives each chunk's ciphertext followed by its tag, the
        on-disk layout, and must hold :func:`sealed_size` bytes; the count
        written is returned.
        """

    @abc.abstractmethod
    def open(self, key: bytes, first_index: int, src: Buffer, dst: bytearray | memoryview,
             chunk_size: int, final: bool) -> int:
        """Open sealed chunks from *src* into *dst*; return the plaintext length.

        Raises :class:`~envelope.exceptions.AuthenticationError` naming the first
        chunk whose tag fails.  On failure *dst* may hold unauthenticated bytes
        and must be discarded by the caller.
        """

    def new_run(self) -> FileRun:
        """The state a :meth:`seal_file` or :meth:`open_file` call reports to."""
        raise UsageError(f"the {self.name} engine has no file loop")

    def seal_file(self, key: bytes, src: FileSpan, dst: FileSpan, chunk_size: int, run: FileRun) -> None:
        """Seal *src* (a regular file) as a whole stream body written to *dst* from its offset.

        Chunk *i* lands at ``dst.offset + i * (chunk_size + TAG_SIZE)``.  Raises
        OSError naming the file for a failed read or write, or for an input
        whose size changed while it was read.
        """
        raise UsageError(f"the {self.name} engine has no file loop")

    def open_file(self, key: bytes, src: FileSpan, dst: FileSpan, chunk_size: int, run: FileRun) -> None:
        """Open the whole stream body *src* to *dst*; chunk *i* lands at ``dst.offset + i * chunk_size``.

        Raises :class:`AuthenticationError` naming the lowest chunk that failed;
        chunks that verified may already be written then.
        """
        raise UsageError(f"the {self.name} engine has no file loop")

    def seal_in_place(self, key: bytes, first_index: int, buf: bytearray | memoryview, plain_len: int,
                      chunk_size: int, final: bool) -> int:
        """Seal a batch laid out in *buf* as it will be sealed; return the sealed length.

        Chunk *k*'s plaintext sits at ``k * (chunk_size + TAG_SIZE)``, with its
        tag's bytes left free, *plain_len* bytes in all; each chunk is sealed
        where it lies, so the sealed batch is then ``buf[:result]``.  A stream
        read from a pipe fills, seals and writes this one buffer, which stays
        in the cache.  This default goes through :meth:`seal` and copies; an
        engine that can work in place overrides it.
        """
        slots = in_place_slots(memoryview(buf), plain_len, chunk_size)
        plain = b"".join(slots)
        return self.seal(key, first_index, plain, buf, chunk_size, final)

    def open_in_place(self, key: bytes, first_index: int, buf: bytearray | memoryview, sealed_len: int,
                      chunk_size: int, final: bool) -> int:
        """Open ``buf[:sealed_len]`` where it lies; return the plaintext length *n*.

        The plaintext is then ``buf[:n]``, one piece to write.  On failure, as
        :meth:`open`, and nothing of the batch's plaintext is left in *buf*.
        """
        view = memoryview(buf)
        plain = bytearray(sealed_len)
        try:
            n = self.open(key, first_index, view[:sealed_len], plain, chunk_size, final)
        except BaseException:
            view[:sealed_len] = bytes(sealed_len)
            raise
        view[:n] = plain[:n]
        return n

    def __repr__(self) -> str:
        return f"<{type(self).__name__} threads={self.threads}>"


def in_place_slots(buf: memoryview, plain_len: int, chunk_size: int) -> list[memoryview]:
    """Views of each chunk's plaintext in the in-place layout (see :meth:`Engine.seal_in_place`)."""
    sealed = chunk_size + TAG_SIZE
    return [buf[k * sealed : k * sealed + min(chunk_size, plain_len - k * chunk_size)]
            for k in range(-(-plain_len // chunk_size))]


def plan_seal(first_index: int, src_len: int, dst_len: int, chunk_size: int, final: bool) -> int:
    """Validate a seal call's shape, as every engine must; return its chunk count."""
    count = batch_chunks(src_len, chunk_size, final)
    check_index(first_index, count)
    if dst_len < src_len + TAG_SIZE * count:
        raise UsageError("destination buffer too small")
    return count


def plan_open(first_index: int, src_len: int, dst_len: int, chunk_size: int, final: bool) -> tuple[int, int]:
    """Validate an open call's shape; return (chunk count, plaintext length).

    A batch whose length no chunk sequence can have was cut short: that is an
    authentication failure (truncation), not a usage error.
    """
    try:
        count, plain_len = opened_chunks(src_len, chunk_size, final)
    except ValueError as exc:
        raise AuthenticationError(f"stream is truncated: {exc}") from None
    check_index(first_index, count)
    if dst_len < plain_len:
        raise UsageError("destination buffer too small")
    return count, plain_len


def check_index(first_index: int, count: int) -> None:
    if first_index < 0 or first_index + count - 1 > MAX_CHUNK_INDEX:
        raise UsageError("chunk index out of range")

"""Random access: a seekable, read-only plaintext view of an envelope file.

Chunks are sealed independently, and chunk *i* sits at a computable offset, so
any byte range can be decrypted by opening only the chunks that cover it.

The plaintext's length comes from the file's length, which anyone who can
write the file can change; only the final chunk, opened with the last-chunk
flag, proves it (formats/envelope-v1.md, "Random access").  So the reader
opens the chunk the file's length says is last, as last, when it is opened,
before it believes the length for anything (a seek from the end, a read that
stops at the end): a file cut or extended by any number of bytes fails at open.
That chunk's plaintext is kept, so reading the end later costs nothing more,
and with a :class:`ProvenEnds` it outlives the reader: a later open of the same
ciphertext (pyarrow opens a file more than once) skips the proof and the read.

Reads that cover whole chunks are opened straight into the caller's buffer, from
one reused buffer of ciphertext: no plaintext copy, no fresh allocation per
read.  Only a chunk the read starts or ends inside is opened into the reader's
own one-chunk buffer, kept for the next small read.  A failed chunk leaves
zeros, not unauthenticated bytes, in the caller's buffer.

What is authenticated and when: the header (commitment and MAC) and the final
chunk on open (or, the final chunk, on an earlier open of the same ciphertext);
every other chunk when it is first read.  Reading a range
proves that range and the length, not the rest of the file.  A chunk that
fails authentication fails the reader for good: every later read raises the
same error.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections import OrderedDict
from typing import Any, BinaryIO

from .context import EncryptionContext
from .engines import Engine, get_engine
from .exceptions import AuthenticationError, FormatError, UsageError
from .format import DEFAULT_CHUNK_SIZE, Header, chunk_count, chunk_offset, plaintext_size, read_exactly
from .kdf import FileKeys
from .keyrings.base import DEFAULT_MAX_WRAPPED_KEYS, MultiKeyring
from .master_keys import decryption_keyring, encryption_keyring
from .pipeline import fill
from .stream import BATCH_BYTES, open_header

#: Plaintext of final chunks one :class:`ProvenEnds` keeps, at most (each entry is at most one chunk).
PROVEN_ENDS_BYTES = 16 << 20


class SeekableReader(io.RawIOBase):
    """A raw, read-only stream of known ``size`` with a position: what seeking needs, once."""

    size: int
    _pos: int = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.size}.get(whence)
        if base is None:
            raise UsageError(f"invalid whence {whence}")
        if base + offset < 0:
            raise UsageError("negative seek position")
        self._pos = base + offset
        return self._pos


class ProvenEnds:
    """Final chunks already opened as final, per ciphertext, so a later open of it skips the proof.

    Keyed by the authenticated header (file id and MAC) and the ciphertext's
    length.  A file's chunk keys are its own (derived from its data key and
    random file id), so one stream alone has a final chunk that opens under
    them; once it opened as final at the index a length implies, every
    ciphertext with that header and that length has that plaintext length and
    that final chunk.  A lookup comes only after the caller's own keyring
    unwrapped the data key, the header authenticated and the required context
    matched, so a hit gives nothing its caller could not decrypt itself.
    Bounded in bytes and, like the data keys, in age; oldest used out first.
    """

    def __init__(self, max_bytes: int = PROVEN_ENDS_BYTES, max_age: float | None = None) -> None:
        self._max_bytes, self._max_age = max_bytes, max_age
        self._items: OrderedDict[tuple[bytes, bytes, int], tuple[bytes, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, header: Header, total: int) -> bytes | None:
        ident = (header.file_id, header.mac, total)
        with self._lock:
            hit = self._items.get(ident)
            if hit is None:
                return None
            if self._max_age is not None and time.monotonic() - hit[1] >= self._max_age:
                self._drop(ident)
                return None
            self._items.move_to_end(ident)
            return hit[0]

    def put(self, header: Header, total: int, final: bytes) -> None:
        if len(final) > self._max_bytes:
            return
        ident = (header.file_id, header.mac, total)
        with self._lock:
            self._drop(ident)
            self._items[ident] = (final, time.monotonic())
            self._bytes += len(final)
            while self._bytes > self._max_bytes:
                self._drop(next(iter(self._items)))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def _drop(self, ident: tuple[bytes, bytes, int]) -> None:
        hit = self._items.pop(ident, None)
        if hit is not None:
            self._bytes -= len(hit[0])


class DecryptingReader(SeekableReader):
    """Raw, seekable plaintext over a seekable envelope ciphertext stream."""

    def __init__(self, src: BinaryIO, keyring: MultiKeyring | None, *,
                 required_context: EncryptionContext | None = None, engine: Engine | None = None,
                 close_source: bool = False, opened: tuple[Header, FileKeys] | None = None,
                 length_proven: bool = False, ends: ProvenEnds | None = None) -> None:
        """*opened* is a header already read and authenticated, with its keys (then *keyring* is unused).

        *length_proven*: this very ciphertext's final chunk was already opened as final by an
        earlier reader (an S3 object version, pinned by its ETag), so it is not fetched again.
        *ends*: final chunks proven by earlier readers; this one's is taken from there, or
        proven and put there.
        """
        super().__init__()
        self._src, self._close_source = src, close_source
        if opened is None:
            if keyring is None:
                raise UsageError("a keyring or an opened header is needed")
            opened = open_header(src, keyring, required_context=required_context)
        self.header, self._keys = opened
        self._engine = engine or get_engine()
        self._chunk = self.header.chunk_size
        self._header_size = self.header.size
        self._total = src.seek(0, os.SEEK_END)
        try:
            self.size = plaintext_size(self._header_size, self._total, self._chunk)
        except FormatError as exc:
            # Edge: the header is authentic, so a length no plaintext has means the file was
            # cut or extended, the same failure (and class) a sequential read reports.
            raise AuthenticationError(f"stream is truncated or extended: {exc}") from None
        self._last = chunk_count(self.size, self._chunk) - 1
        self._pos = 0
        self._failure: AuthenticationError | None = None
        self._batch_chunks = max(1, BATCH_BYTES // self._chunk)
        self._sealed = bytearray()  # ciphertext read, reused by every read (grown to the largest)
        self._chunk_buf = bytearray()  # one chunk's plaintext, reused
        self._cached_index = -1  # the chunk whose plaintext _cached is, kept for small sequential reads
        self._cached = memoryview(self._chunk_buf)
        self._final: bytes | None = None  # the final chunk's plaintext, once opened (tails are read often)
        self.chunks_opened = 0  # chunks decrypted so far (what a read plan cost)
        self._ends = ends
        proven = ends.get(self.header, self._total) if ends is not None else None
        if proven is not None and len(proven) == self.size - self._last * self._chunk:
            self._final = proven
        elif not length_proven:
            self._prove_length()

    @property
    def source(self) -> BinaryIO:
        """The ciphertext stream read (for its counters: bytes fetched, requests)."""
        return self._src

    # -- io.RawIOBase --------------------------------------------------------------

    def readinto(self, buffer: Any) -> int:
        """Fill *buffer* from the position, at most up to the next chunk boundary a read needs.

        Whole chunks are opened straight into *buffer*; a chunk the read starts
        or ends inside is opened into the one-chunk cache and copied from there.
        """
        if self._failure is not None:
            raise self._failure
        out = memoryview(buffer).cast("B")
        want = min(len(out), self.size - self._pos)
        if want <= 0:
            return 0
        first, skip = divmod(self._pos, self._chunk)
        if first == self._cached_index:
            return self._copy(out, self._cached, skip, want)
        if first == self._last and self._final is not None:
            return self._copy(out, self._final, skip, want)
        needed = (self._pos + want - 1) // self._chunk
        if needed > first and hasattr(self._src, "prefetch"):
            # A read of several chunks: a remote source fetches their ciphertext in one request.
            end = self._total if needed == self._last else chunk_offset(self._header_size, self._chunk, needed + 1)
            self._src.prefetch(chunk_offset(self._header_size, self._chunk, first), end)
        if skip == 0:
            # Chunks whose plaintext lies wholly inside the caller's buffer: the final one (even short)
            # when the read reaches the end, unless its plaintext is already at hand.
            last = needed if self._pos + want == self.size else first + want // self._chunk - 1
            last = min(last, first + self._batch_chunks - 1)
            if last == self._last and self._final is not None:
                last -= 1
            if last >= first:
                n = self._open_chunks(first, last, out)
                self._pos += n
                return n
        n = self._open_chunks(first, first, None)
        self._cached_index = first
        return self._copy(out, self._cached, skip, want)

    def _copy(self, out: memoryview, plain: Any, skip: int, want: int) -> int:
        n = min(want, len(plain) - skip)
        out[:n] = memoryview(plain)[skip : skip + n]
        self._pos += n
        return n

    def readall(self) -> bytes:
        """The rest in batches of chunks (io's default reads 8 KiB at a time: a request each from S3)."""
        out = bytearray(max(0, self.size - self._pos))
        view, got = memoryview(out), 0
        while got < len(out):
            n = self.readinto(view[got:])
            if not n:
                break
            got += n
        return bytes(out[:got])

    def close(self) -> None:
        if not self.closed:
            self._cached_index, self._final = -1, None
            self._cached, self._chunk_buf, self._sealed = memoryview(b""), bytearray(), bytearray()
            if self._close_source:
                self._src.close()
        super().close()

    # -- chunks --------------------------------------------------------------------

    def _prove_length(self) -> None:
        """Open the final chunk as final: until it verifies, the length is only the file's say-so."""
        try:
            self._open_chunks(self._last, self._last, None)
        except AuthenticationError:
            self._failure = AuthenticationError(
                f"stream is truncated, extended or damaged: chunk {self._last}, final by the file's length, "
                "failed authentication", chunk_index=self._last)
            raise self._failure from None

    def _open_chunks(self, first: int, last: int, out: memoryview | None) -> int:
        """Open chunks first..last into *out*, or (one chunk) into the chunk cache; return the plaintext length.

        On a failure the plaintext region written is zeroed and the reader fails for good.
        """
        final = last == self._last
        start = chunk_offset(self._header_size, self._chunk, first)
        end = self._total if final else chunk_offset(self._header_size, self._chunk, last + 1)
        sealed = self._read_sealed(start, end - start)
        if out is None:
            if not self._chunk_buf:
                self._chunk_buf = bytearray(self._chunk)
            self._cached_index = -1  # overwritten from here on: nothing valid until it verifies
            dst = memoryview(self._chunk_buf)
        else:
            dst = out[: (last - first) * self._chunk + (self.size - last * self._chunk if final else self._chunk)]
        try:
            n = self._engine.open(self._keys.payload, first, sealed, dst, self._chunk, final)
        except BaseException as exc:
            dst[:] = bytes(len(dst))
            if isinstance(exc, AuthenticationError):
                self._failure = exc
            raise
        self.chunks_opened += last - first + 1
        if out is None:
            self._cached = dst[:n]
        if final:  # kept (here, and for later opens) whenever it opens, on open or (length proven) on a read
            self._final = bytes(dst[(last - first) * self._chunk : n])
            if self._ends is not None:
                self._ends.put(self.header, self._total, self._final)
        return n

    def _read_sealed(self, start: int, length: int) -> memoryview:
        """Ciphertext bytes [start, start + length), read into the reused buffer (fewer only at its end)."""
        if len(self._sealed) < length:
            self._sealed = bytearray(length)
        view = memoryview(self._sealed)[:length]
        self._src.seek(start)
        if hasattr(self._src, "readinto"):
            return view[: fill(self._src, view)]
        data = read_exactly(self._src, length)
        view[: len(data)] = data
        return view[: len(data)]


def open(file: str | os.PathLike[str] | BinaryIO, mode: str = "rb", *, keyring: MultiKeyring | None = None,
         keys: Any = None, context: EncryptionContext | None = None, keystore: str | None = None,
         engine: str | None = None, threads: int | None = None,
         max_wrapped_keys: int = DEFAULT_MAX_WRAPPED_KEYS,
         chunk_size: int = DEFAULT_CHUNK_SIZE) -> io.BufferedReader | io.BufferedWriter:
    """Open an envelope file for reading plaintext at any offset, or for writing it in order.

    ``keyring`` (a :class:`MultiKeyring`) or ``keys`` (references, as for
    :func:`envelope.api.decrypt_file`) choose the master keys; with neither,
    the local keystore.  ``"rb"`` returns a buffered, seekable, read-only
    binary file.  ``"wb"`` (replace) or ``"xb"`` (refuse an existing file)
    returns a sequential writer (:mod:`envelope.writer`) under a fresh data key
    with *context*: the file appears only when it is closed cleanly; one left
    by an exception leaves nothing.
    """
    if mode in ("wb", "xb", "w", "x"):
        return _open_writer(file, mode, keyring, keys, context, keystore, get_engine(engine, threads), chunk_size)
    if mode not in ("rb", "r"):
        raise UsageError(f"envelope.open supports modes 'rb', 'wb' and 'xb' (binary, no appending or "
                         f"updating in place), got {mode!r}")
    if keyring is None:
        keyring = decryption_keyring(keys, keystore=keystore, max_wrapped_keys=max_wrapped_keys)
    owned = isinstance(file, (str, os.PathLike))
    src: BinaryIO = io.open(os.fspath(file), "rb") if isinstance(file, (str, os.PathLike)) else file
    try:
        raw = DecryptingReader(src, keyring, required_context=context, engine=get_engine(engine, threads),
                               close_source=owned)
    except BaseException:
        if owned:
            src.close()
        raise
    return io.BufferedReader(raw, buffer_size=raw.header.chunk_size)


def _open_writer(file: str | os.PathLike[str] | BinaryIO, mode: str, keyring: MultiKeyring | None, keys: Any,
                 context: EncryptionContext | None, keystore: str | None, engine: Engine,
                 chunk_size: int) -> io.BufferedWriter:
    from .writer import LocalDestination, StreamDestination, buffered

    if keyring is None:
        keyring = encryption_keyring(keys, keystore=keystore)
    if isinstance(file, (str, os.PathLike)):
        dest: LocalDestination | StreamDestination = LocalDestination(os.fspath(file), force=mode.startswith("w"))
    else:
        dest = StreamDestination(file)
    return buffered(dest, keyring, context=context, chunk_size=chunk_size, engine=engine)

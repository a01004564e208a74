"""Random access: a seekable, read-only plaintext view of an envelope file.

Chunks are sealed independently, and chunk *i* sits at a computable offset, so
any byte range can be decrypted by opening only the chunks that cover it.

The plaintext's length comes from the file's length, which anyone who can
write the file can change; only the final chunk, opened with the last-chunk
flag, proves it (formats/envelope-v1.md, "Random access").  So the reader
opens the chunk the file's length says is last, as last, when it is opened,
before it believes the length for anything (a seek from the end, a read that
stops at the end): a file cut or extended by any number of bytes fails at open.
That chunk's plaintext is kept, so reading the end later costs nothing more.

What is authenticated and when: the header (commitment and MAC) and the final
chunk on open; every other chunk when it is first read.  Reading a range
proves that range and the length, not the rest of the file.  A chunk that
fails authentication fails the reader for good: every later read raises the
same error.
"""

from __future__ import annotations

import io
import os
from typing import Any, BinaryIO

from .context import EncryptionContext
from .engines import Engine, get_engine
from .exceptions import AuthenticationError, FormatError, UsageError
from .format import DEFAULT_CHUNK_SIZE, Header, chunk_count, chunk_offset, plaintext_size, read_exactly
from .kdf import FileKeys
from .keyrings.base import DEFAULT_MAX_WRAPPED_KEYS, MultiKeyring
from .master_keys import decryption_keyring, encryption_keyring
from .stream import BATCH_BYTES, open_header


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


class DecryptingReader(SeekableReader):
    """Raw, seekable plaintext over a seekable envelope ciphertext stream."""

    def __init__(self, src: BinaryIO, keyring: MultiKeyring | None, *,
                 required_context: EncryptionContext | None = None, engine: Engine | None = None,
                 close_source: bool = False, opened: tuple[Header, FileKeys] | None = None,
                 length_proven: bool = False) -> None:
        """*opened* is a header already read and authenticated, with its keys (then *keyring* is unused).

        *length_proven*: this very ciphertext's final chunk was already opened as final by an
        earlier reader (an S3 object version, pinned by its ETag), so it is not fetched again.
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
        self._cached_index = -1  # the last chunk opened, kept for small sequential reads
        self._cached = bytearray()
        self._final: bytearray | None = None  # the final chunk's plaintext, once opened (tails are read often)
        self.chunks_opened = 0  # chunks decrypted so far (what a read plan cost)
        if not length_proven:
            self._prove_length()

    @property
    def source(self) -> BinaryIO:
        """The ciphertext stream read (for its counters: bytes fetched, requests)."""
        return self._src

    # -- io.RawIOBase --------------------------------------------------------------

    def readinto(self, buffer: Any) -> int:
        if self._failure is not None:
            raise self._failure
        out = memoryview(buffer).cast("B")
        want = min(len(out), self.size - self._pos)
        if want <= 0:
            return 0
        first = self._pos // self._chunk
        if first == self._cached_index:
            plain, start_index = self._cached, first
        elif first == self._last and self._final is not None:
            plain, start_index = self._final, first
        else:
            needed = (self._pos + want - 1) // self._chunk
            last = min(needed, first + self._batch_chunks - 1)
            if needed > last and hasattr(self._src, "prefetch"):
                # A read of many batches: a remote source fetches their ciphertext in one request.
                end = self._total if needed == self._last else chunk_offset(self._header_size, self._chunk, needed + 1)
                self._src.prefetch(chunk_offset(self._header_size, self._chunk, first), end)
            plain, start_index = self._open_chunks(first, last), first
        skip = self._pos - start_index * self._chunk
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
            self._cached, self._final = bytearray(), None
            if self._close_source:
                self._src.close()
        super().close()

    # -- chunks --------------------------------------------------------------------

    def _prove_length(self) -> None:
        """Open the final chunk as final: until it verifies, the length is only the file's say-so."""
        try:
            self._final = self._open_chunks(self._last, self._last)
        except AuthenticationError:
            self._failure = AuthenticationError(
                f"stream is truncated, extended or damaged: chunk {self._last}, final by the file's length, "
                "failed authentication", chunk_index=self._last)
            raise self._failure from None

    def _open_chunks(self, first: int, last: int) -> bytearray:
        """Open chunks first..last; cache the final one for the next small read."""
        final = last == self._last
        start = chunk_offset(self._header_size, self._chunk, first)
        end = self._total if final else chunk_offset(self._header_size, self._chunk, last + 1)
        self._src.seek(start)
        sealed = read_exactly(self._src, end - start)
        plain = bytearray(len(sealed))
        try:
            n = self._engine.open(self._keys.payload, first, sealed, plain, self._chunk, final)
        except AuthenticationError as exc:
            self._failure = exc
            raise
        del plain[n:]
        self.chunks_opened += last - first + 1
        self._cached_index = last
        self._cached = plain[(last - first) * self._chunk :]
        if last != first:
            # The next read starts after this batch or inside its last chunk.
            return plain
        return self._cached


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

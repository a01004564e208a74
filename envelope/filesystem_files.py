"""The file objects of the ``envelope`` filesystem (:mod:`envelope.filesystem`), and what reads through them cost.

:class:`PlaintextFile` is what ``open(..., "rb")`` returns: a buffered view of
the decrypting reader that, on close, adds the chunks it opened and the
ciphertext bytes it read to its filesystem's :class:`ReadStats`;
:class:`CountedReader` counts those bytes for a local or inner file; and
:class:`InnerDestination` is where a file written to another fsspec filesystem
goes, committed only when the whole file was sealed.  None of them needs fsspec
itself: they are given the inner filesystem's objects.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from .reader import DecryptingReader

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem


@dataclass
class ReadStats:
    """What reads through one filesystem cost: files opened, chunks decrypted, ciphertext bytes read."""

    opens: int = 0
    chunks: int = 0
    bytes_read: int = 0

    def opened(self) -> None:
        with _STATS_LOCK:
            self.opens += 1

    def add(self, chunks: int, bytes_read: int) -> None:
        with _STATS_LOCK:
            self.chunks += chunks
            self.bytes_read += bytes_read


_STATS_LOCK = threading.Lock()


class PlaintextFile(io.BufferedReader):
    """A buffered, seekable plaintext view; on close, what it cost goes into its filesystem's stats."""

    def __init__(self, raw: DecryptingReader, stats: ReadStats) -> None:
        super().__init__(raw, buffer_size=raw.header.chunk_size)
        self._stats = stats

    @property
    def size(self) -> int:
        return cast(DecryptingReader, self.raw).size

    def close(self) -> None:
        if not self.closed:
            raw = cast(DecryptingReader, self.raw)
            source = raw.source
            self._stats.add(raw.chunks_opened, int(getattr(source, "fetched", getattr(source, "count", 0))))
        super().close()


class CountedReader(io.RawIOBase):
    """A seekable file whose bytes read are counted (``count``); reads pass through without a copy."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self._inner, self.count = inner, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return int(self._inner.seek(offset, whence))

    def tell(self) -> int:
        return int(self._inner.tell())

    def read(self, size: int = -1) -> bytes:
        data = bytes(self._inner.read(size))
        self.count += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if hasattr(self._inner, "readinto"):
            n = int(self._inner.readinto(view) or 0)
        else:
            data = self._inner.read(len(view))
            n = len(data)
            view[:n] = data
        self.count += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


class InnerDestination:
    """A file of another fsspec filesystem, opened uncommitted (``autocommit=False``): on commit it is
    closed and committed; on discard, discarded, so neither a partial file nor a replaced one is left.
    A filesystem without them (or that ignores ``autocommit``, as fsspec's memory filesystem does) is
    written directly: a failure then removes a file that was not there before."""

    def __init__(self, fs: AbstractFileSystem, name: str, mode: str) -> None:
        self._fs, self._name = fs, name
        self._existed = fs.exists(name)
        try:
            self._file, self._staged = fs.open(name, mode, autocommit=False), True
        except NotImplementedError:
            self._file, self._staged = fs.open(name, mode), False

    def write(self, data: Any) -> int:
        return int(self._file.write(data))

    def commit(self) -> None:
        self._file.close()
        if self._staged:
            self._file.commit()

    def discard(self) -> None:
        if self._staged:
            self._file.discard()
        else:
            self._file.close()
        if not self._existed and self._fs.exists(self._name):
            self._fs.rm_file(self._name)

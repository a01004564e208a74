"""Writing plaintext into an envelope stream by pushing: ``write()`` calls in, sealed chunks out.

:func:`envelope.stream.seal_stream` pulls plaintext from a source; a dataframe
library instead pushes bytes into a file object it was handed (``to_parquet``,
``to_csv``).  :class:`EncryptingWriter` is that file object.  It keeps back the
last chunk it has been given until :meth:`~EncryptingWriter.close`, because
only then is it known to be the last one, the one whose nonce carries the end
flag; everything before it is sealed in batches as it fills, so memory stays
at about one batch whatever the size written.

The output is a :class:`Destination`: it receives the header and sealed
batches, and is either committed (the object or file appears, complete) or
discarded.  A writer that is not closed cleanly (an exception is on its way
out of the ``with`` block, or of the ``finally`` that closes it) discards: no
finished output is left, never a truncated stream that could look valid.  A
writer opened inside an ``except`` block is not failed by the exception being
handled there; closed in an ``except`` block of a later exception, it
discards, which fails closed.  A writer dropped without being closed (its
caller failed between two writes) discards too: unlike a plain file, it does
not finish on garbage collection.
"""

from __future__ import annotations

import contextlib
import io
import sys
from typing import Any, BinaryIO, Protocol

from . import context as _context
from .atomic import atomic_output
from .context import EncryptionContext
from .engines import Engine, get_engine
from .engines.base import sealed_size
from .exceptions import UsageError
from .format import DEFAULT_CHUNK_SIZE, Header
from .keyrings.base import MultiKeyring
from .stream import batch_chunk_count, start_stream


class Destination(Protocol):
    """Where a writer's sealed bytes go, in order; nothing is final before :meth:`commit`."""

    def write(self, data: Any) -> int: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


class EncryptingWriter(io.RawIOBase):
    """A write-only, sequential binary file whose bytes become an envelope stream in *dest*."""

    def __init__(self, dest: Destination, keyring: MultiKeyring, *, context: EncryptionContext | None = None,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, engine: Engine | None = None) -> None:
        super().__init__()
        self._dest = dest
        self._engine = engine or get_engine()
        self._chunk = chunk_size
        self._batch = batch_chunk_count(chunk_size) * chunk_size
        try:
            ctx = _context.normalize(context)
            with keyring.generate_data_key(ctx) as data_key:
                self.header: Header
                self.header, keys = start_stream(data_key.plaintext, data_key.wrapped, context=ctx,
                                                 chunk_size=chunk_size)
            self._key = keys.payload
            dest.write(self.header.encode())
        except BaseException:
            dest.discard()
            raise
        self._pending = bytearray()  # plaintext not sealed yet: at most a batch and a chunk
        self._index = 0  # of the first pending chunk
        self._written = 0
        self._done = False
        self._handled = sys.exc_info()[1]  # opened inside an except block: that exception is not a failure here

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._written

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return refuse_seek(self._written, offset, whence)

    def truncate(self, size: int | None = None) -> int:
        raise UsageError("an envelope file open for writing is sequential: it cannot be truncated")

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("write to a closed envelope writer")
        view = memoryview(data).cast("B")
        self._pending += view
        self._written += len(view)
        if len(self._pending) > self._batch:
            # Seal every whole chunk but the last one given: it may turn out to be final.
            self._seal(((len(self._pending) - 1) // self._chunk) * self._chunk, final=False)
        return len(view)

    def close(self) -> None:
        if self.closed:
            return
        try:
            failing = sys.exc_info()[1]
            if failing is not None and failing is not self._handled:  # closed as an exception propagates
                self.discard()
                return
            try:
                self._seal(len(self._pending), final=True)
                self._dest.commit()
            except BaseException:
                self._dest.discard()
                raise
            self._done = True
        finally:
            self._pending = bytearray()
            super().close()

    def discard(self) -> None:
        """Abandon the output: nothing is committed."""
        if not self.closed:
            self._pending = bytearray()
            self._dest.discard()
            super().close()

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()

    def __del__(self) -> None:
        # Dropped without close() (its writer failed, the reference went with the traceback): not a clean end.
        self.discard()

    def _seal(self, n: int, *, final: bool) -> None:
        sealed = bytearray(sealed_size(n, self._chunk, final))
        done = self._engine.seal(self._key, self._index, memoryview(self._pending)[:n], sealed, self._chunk, final)
        self._dest.write(memoryview(sealed)[:done])
        self._index += n // self._chunk
        del self._pending[:n]


class LocalDestination:
    """A local file written beside its name and linked into place only on commit (:func:`atomic_output`)."""

    def __init__(self, path: str, *, force: bool = True) -> None:
        self._cm: contextlib.AbstractContextManager[BinaryIO] = atomic_output(path, force=force)
        self._out: BinaryIO = self._cm.__enter__()

    def write(self, data: Any) -> int:
        return self._out.write(data)

    def commit(self) -> None:
        self._cm.__exit__(None, None, None)

    def discard(self) -> None:
        exit_discarding(self._cm)


class _Discarded(Exception):
    """Thrown into an output's context to make it drop what was written."""


def exit_discarding(cm: contextlib.AbstractContextManager[Any]) -> None:
    """Leave an output's ``with`` block as an exception would, so it keeps nothing (and stays quiet)."""
    with contextlib.suppress(_Discarded):
        cm.__exit__(_Discarded, _Discarded(), None)


class StreamDestination:
    """A stream the caller owns: written in order; what a failure leaves there is the caller's to discard."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def write(self, data: Any) -> int:
        return self._out.write(data)

    def commit(self) -> None:
        self._out.flush()

    def discard(self) -> None:
        pass


def buffered(dest: Destination, keyring: MultiKeyring, *, context: EncryptionContext | None = None,
             chunk_size: int = DEFAULT_CHUNK_SIZE, engine: Engine | None = None) -> io.BufferedWriter:
    """A buffered writer of plaintext into *dest*, committed when closed cleanly, discarded otherwise."""
    raw = EncryptingWriter(dest, keyring, context=context, chunk_size=chunk_size, engine=engine)
    return _BufferedWriter(raw, buffer_size=chunk_size)


def refuse_seek(position: int, offset: int, whence: int) -> int:
    """Seeking where the writer already is answers where that is; anywhere else is refused."""
    if (whence == io.SEEK_CUR and offset == 0) or (whence == io.SEEK_SET and offset == position):
        return position
    raise UsageError("an envelope file open for writing is sequential: it cannot seek "
                     "(each chunk is sealed once, in order)")


class _BufferedWriter(io.BufferedWriter):
    """io.BufferedWriter whose ``with`` block discards the output when it ends in an exception."""

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return refuse_seek(self.tell(), offset, whence)

    def __del__(self) -> None:
        if not self.raw.closed:
            self.raw.discard()  # type: ignore[attr-defined]

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self.raw.discard()  # type: ignore[attr-defined]
        self.close()

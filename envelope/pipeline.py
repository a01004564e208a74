"""Overlap reading, the cipher and writing, over a fixed set of reused buffers.

A file is encrypted about as fast as it is copied only if the disk never waits
for the cipher and the cipher never waits for the disk.  Three stages run at
once: a reader thread fills input buffers, the calling thread transforms them
(the engine releases the GIL while it works, and so do file reads and writes),
and a writer thread drains output buffers in order.  The buffers circulate
through queues, so memory is ``depth`` input plus ``depth`` output buffers,
whatever the size of the stream.

Failure rules: the first error anywhere stops the pipeline; once the transform
has failed, nothing more is written; the error raised is the first one seen.
"""

from __future__ import annotations

import errno
import io
import os
import queue
import select
import stat
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

try:
    import fcntl
except ImportError:  # not POSIX: pipes keep their size
    fcntl = None  # type: ignore[assignment]

Fill = Callable[[bytearray], "tuple[int, bool]"]
Transform = Callable[[memoryview, bool, bytearray], int]

#: Kernel buffer asked for on a pipe at either end of a stream: Linux's default
#: ceiling for unprivileged users (/proc/sys/fs/pipe-max-size).
PIPE_BYTES = 1 << 20
#: How long a failed pipeline waits for its reader to notice.
READER_JOIN_SECONDS = 5.0
#: Buffers in flight per side: one being filled or drained, one being transformed, one spare.
DEFAULT_DEPTH = 3


def _wait(stream: Any, events: int) -> None:
    """Block until *stream*'s descriptor is ready for *events* (POLLIN or POLLOUT)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        raise OSError(errno.EAGAIN, "the stream is non-blocking and has no descriptor to wait on") from None
    poller = select.poll()
    poller.register(fd, events)
    poller.poll()


def wait_readable(stream: Any) -> None:
    """Wait for a non-blocking input that answered "nothing yet" (a read returning None).

    That answer is never the end of the input: a stdin pipe left O_NONBLOCK by
    whoever shares it, read by a writer that pauses, would otherwise be sealed
    short and reported a success.  Readable also means ended, so this returns
    at the end of input too, where the next read gives 0 bytes.
    """
    _wait(stream, select.POLLIN)


def wait_writable(stream: Any) -> None:
    """Wait for a non-blocking output that accepted nothing yet (a write returning None)."""
    _wait(stream, select.POLLOUT)


def read_into(src: BinaryIO, view: memoryview) -> int:
    """One readinto that waits out a non-blocking input: 0 only at the end of input."""
    while True:
        n = src.readinto(view)  # type: ignore[attr-defined]
        if n is not None:
            return int(n)
        wait_readable(src)


def fill(src: BinaryIO, view: memoryview) -> int:
    """readinto until *view* is full or the input ends; return the bytes read.

    Only a read of 0 bytes is the end: a non-blocking input with nothing yet
    (None) is waited for, or a pause would seal a prefix as the whole stream.
    """
    got = 0
    while got < len(view):
        n = read_into(src, view[got:])
        if not n:
            break
        got += n
    return got


def write_all(dst: BinaryIO, data: memoryview) -> None:
    """Write every byte: raw files may accept less than asked, and a non-blocking one nothing yet."""
    while data:
        n = dst.write(data)
        if n is None:
            wait_writable(dst)
            continue
        data = data[n:]


def _stat(f: BinaryIO) -> os.stat_result | None:
    try:
        return os.fstat(f.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
        return None


def _mode(f: BinaryIO) -> int | None:
    st = _stat(f)
    return None if st is None else st.st_mode


def regular_size(f: BinaryIO) -> int | None:
    """The size of a regular file, or None for pipes, terminals and objects without a descriptor."""
    st = _stat(f)
    return st.st_size if st is not None and stat.S_ISREG(st.st_mode) else None


def streaming(src: BinaryIO, dst: BinaryIO) -> bool:
    """Whether either end is a pipe, terminal, socket or device rather than a regular file.

    Such an end moves a pipe's worth of bytes per call whatever the buffer, so
    threads and big batches buy nothing there: one small buffer worked in place
    (:mod:`envelope.stream`) copies less.
    """
    return any(m is not None and not stat.S_ISREG(m) for m in (_mode(src), _mode(dst)))


def widen_pipes(*files: BinaryIO) -> None:
    """Grow the kernel buffer of each end that is a pipe to PIPE_BYTES (best effort).

    A pipe holds 64 KiB by default, so a single-threaded stage that stops to
    seal a batch stalls its neighbours at once; with room for a few batches
    the processes either side keep running while this one works.
    """
    if fcntl is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    for f in files:
        mode = _mode(f)
        if mode is None or not stat.S_ISFIFO(mode):
            continue
        try:
            if fcntl.fcntl(f.fileno(), fcntl.F_GETPIPE_SZ) < PIPE_BYTES:
                fcntl.fcntl(f.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:  # above the system's or the user's limit: keep what it has
            pass


class _Pool:
    """Up to *limit* buffers of one size, made on first need (short streams make one)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size, self.left = size, limit
        self.free: queue.Queue[Any] = queue.Queue()

    def take(self) -> Any:
        try:
            return self.free.get_nowait()
        except queue.Empty:
            pass
        if self.left > 0:
            self.left -= 1
            return bytearray(self.size)
        return self.free.get()


def run(fill: Fill, transform: Transform, dst: BinaryIO, in_size: int, out_size: int,
        *, depth: int = DEFAULT_DEPTH, progress: Callable[[int], object] | None = None,
        first_sizes: tuple[int, int] | None = None) -> None:
    """Run fill -> transform -> write until a batch comes back final.

    The first batch is read in the calling thread: a stream that fits in it (a
    small file, the common case in a batch of thousands) is transformed and
    written right there, with no threads started.  *first_sizes* (input and
    output sizes, one unit of the transform, e.g. one chunk) makes that first
    batch small, so a 4 KiB file does not pay for zeroing megabytes of buffers.
    A longer stream hands that batch to the pipeline.
    """
    ins, outs = _Pool(in_size, depth), _Pool(out_size, depth)
    first = bytearray(first_sizes[0]) if first_sizes else ins.take()
    got, final = fill(first)
    if final:
        out = bytearray(first_sizes[1]) if first_sizes else outs.take()
        write_all(dst, memoryview(out)[:transform(memoryview(first)[:got], True, out)])
        if progress is not None:
            progress(got)
        return
    full_in: queue.Queue[Any] = queue.Queue()
    full_in.put((first, got, final))
    full_out: queue.Queue[Any] = queue.Queue()
    writer_error: list[BaseException] = []
    abort = threading.Event()

    def reader() -> None:
        final = False  # the first batch, already read, was not final
        try:
            while not final:
                buf = ins.take()
                if buf is None or abort.is_set():
                    return
                got, final = fill(buf)
                full_in.put((buf, got, final))
        except BaseException as exc:  # handed to the main thread, which raises it
            full_in.put(exc)

    def writer() -> None:
        try:
            while True:
                item = full_out.get()
                if item is None:
                    return
                buf, n = item
                if not abort.is_set():
                    write_all(dst, memoryview(buf)[:n])
                outs.free.put(buf)
        except BaseException as exc:
            writer_error.append(exc)
            outs.free.put(None)  # wake the main thread if it waits for a buffer

    # Daemon threads: a reader blocked on a pipe that never closes must not keep
    # the process alive after the main thread has failed.
    threads = [threading.Thread(target=reader, name="envelope-read", daemon=True),
               threading.Thread(target=writer, name="envelope-write", daemon=True)]
    for t in threads:
        t.start()
    try:
        final = False
        while not final:
            item = full_in.get()
            if isinstance(item, BaseException):
                raise item
            buf, got, final = item
            out = outs.take() if not writer_error else None
            if out is None:
                raise writer_error[0]
            n = transform(memoryview(buf)[:got], final, out)
            if len(buf) == in_size:  # the small first batch is not pooled
                ins.free.put(buf)
            full_out.put((out, n))
            if progress is not None:
                progress(got)
    except BaseException:
        abort.set()
        raise
    finally:
        full_out.put(None)
        ins.free.put(None)
        threads[1].join()
        # The reader has finished on success; after a failure it stops at its next
        # read.  Only a read blocked on a pipe that never delivers can outlive this
        # bound, and that thread is a daemon.
        threads[0].join(timeout=READER_JOIN_SECONDS)
    if writer_error:
        raise writer_error[0]

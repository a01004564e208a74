"""The file path: a whole stream body sealed or opened by the engine's own threads.

When the input is a regular file and the output takes positional writes (a
regular file, or a character device such as the null device), an engine with a
file loop (the native one) does the whole body in one call: its threads read
each chunk with pread, seal or open it in place, and write it with pwrite at
the offset the header length and chunk size fix.  Python writes the header
first, as on the streaming path, and the bytes are the same.  Anything else (a
pipe, a terminal, a buffered file object, the reference engine) keeps the
streaming path, so :mod:`envelope.stream` calls :func:`seal_body` and
:func:`open_body` first and streams only when they return False.

The call runs in a helper thread while the calling thread polls its byte
counter for progress and stays free to take Ctrl-C (SIGTERM unwinds the same
way in the CLI): an interrupt cancels the workers, which stop within a chunk,
and is raised once they all have.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import threading
from collections.abc import Callable
from typing import BinaryIO

from .engines import Engine
from .engines.base import FileRun, FileSpan, plan_open
from .exceptions import AuthenticationError
from .format import TAG_SIZE, chunk_count

try:
    import fcntl
except ImportError:  # not POSIX: no way to see O_APPEND, so no file loop
    fcntl = None  # type: ignore[assignment]

Progress = Callable[[int], object]

#: A body this small runs in the calling thread: it is done before a poll would matter.
WATCH_MIN_BYTES = 8 << 20
#: How often the calling thread reports progress and checks for an interrupt.
POLL_SECONDS = 0.1


def check_end(sealed_len: int, first_index: int, chunk_size: int) -> None:
    """Refuse a stream whose final batch (*sealed_len* bytes from chunk *first_index*) cannot be a real end."""
    if sealed_len == 0:
        # The stream stops at a chunk boundary (or right after the header).  The
        # previous chunk was not flagged last, so this is truncation.
        raise AuthenticationError("stream is truncated: it ends without a final chunk")
    last_len = sealed_len % (chunk_size + TAG_SIZE) or chunk_size + TAG_SIZE
    if last_len == TAG_SIZE and (first_index > 0 or sealed_len > TAG_SIZE):
        # An empty final chunk after data is never written by an encryptor.
        raise AuthenticationError("stream has an empty final chunk after data")


def last_chunk_failed(exc: AuthenticationError) -> AuthenticationError:
    """The error for a failing last chunk: that is how a stream cut inside a chunk looks."""
    return AuthenticationError(f"{exc}: the stream is truncated or its last chunk is damaged",
                               chunk_index=exc.chunk_index)


def _name(f: BinaryIO) -> str:
    label = getattr(f, "label", "") or getattr(f, "name", "")
    return label if isinstance(label, str) else f"<fd {f.fileno()}>"


def _input(src: BinaryIO) -> FileSpan | None:
    """The rest of *src* from its position, when it is an unbuffered regular file with its data on a disk.

    Files of /proc and /sys are "regular" too, but their sizes are made up (0 or
    4096 whatever they hold) and they occupy no blocks: those stream.
    """
    if not isinstance(src, io.FileIO) or src.closed:
        return None
    fd = src.fileno()
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size == 0 or st.st_blocks == 0:
        return None
    offset = os.lseek(fd, 0, os.SEEK_CUR)
    return FileSpan(fd, offset, max(0, st.st_size - offset), _name(src))


def _output(dst: BinaryIO) -> FileSpan | None:
    """*dst* from its position, when it is unbuffered and takes pwrite where writes would go."""
    if fcntl is None or not isinstance(dst, io.FileIO) or dst.closed:
        return None
    fd = dst.fileno()
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
        return None  # pwrite would append, wherever it was told to write
    mode = os.fstat(fd).st_mode
    if stat.S_ISCHR(mode):
        try:
            os.pwrite(fd, b"", 0)  # a terminal refuses (ESPIPE); the null device takes it
        except OSError:
            return None
    elif not stat.S_ISREG(mode):
        return None  # pipes, sockets: stream
    try:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return None
    return FileSpan(fd, offset, 0, _name(dst))


def _plan(src: BinaryIO, dst: BinaryIO, engine: Engine) -> tuple[FileSpan, FileSpan] | None:
    if not engine.file_loop:
        return None
    spans = _input(src), _output(dst)
    return None if spans[0] is None or spans[1] is None else (spans[0], spans[1])


def _watch(call: Callable[[FileRun], None], run: FileRun, total: int, progress: Progress | None) -> None:
    """Run *call*, in a helper thread when it is long, reporting progress; cancel it on an interrupt."""
    if progress is None and total < WATCH_MIN_BYTES:
        call(run)
        return
    failure: list[BaseException] = []

    def body() -> None:
        try:
            call(run)
        except BaseException as exc:  # raised by the calling thread
            failure.append(exc)

    worker = threading.Thread(target=body, name="envelope-file", daemon=True)
    worker.start()
    reported = 0
    try:
        while worker.is_alive():
            worker.join(POLL_SECONDS)
            if progress is not None and run.done > reported:
                progress(run.done - reported)
                reported = run.done
    except BaseException:
        run.cancel()
        # The workers write to descriptors the caller closes next: wait for every one of them.
        while worker.is_alive():
            with contextlib.suppress(KeyboardInterrupt):
                worker.join()
        raise
    if failure:
        raise failure[0]
    if progress is not None and run.done > reported:
        progress(run.done - reported)


def _finish(src: FileSpan, dst: FileSpan, out_len: int, call: Callable[[FileRun], None],
            engine: Engine, progress: Progress | None, out_step: int) -> None:
    """Run the loop; leave both descriptors where a streaming run would; on failure cut the output."""
    run = engine.new_run()
    try:
        _watch(call, run, src.length, progress)
    except BaseException as exc:
        # Only chunks below the lowest failing one are known whole: a regular
        # output keeps those and nothing after (a temporary is discarded anyway).
        good = exc.chunk_index if isinstance(exc, AuthenticationError) and exc.chunk_index else 0
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.fstat(dst.fd).st_mode):
                os.ftruncate(dst.fd, dst.offset + good * out_step)
        raise
    os.lseek(src.fd, src.offset + src.length, os.SEEK_SET)
    with contextlib.suppress(OSError):  # a device may not seek; nothing reads its position
        os.lseek(dst.fd, dst.offset + out_len, os.SEEK_SET)


def seal_body(src: BinaryIO, dst: BinaryIO, key: bytes, chunk_size: int, engine: Engine,
              progress: Progress | None) -> bool:
    """Seal the rest of *src* into *dst* with the engine's file loop; False where it does not apply."""
    plan = _plan(src, dst, engine)
    if plan is None:
        return False
    fin, fout = plan
    out_len = fin.length + TAG_SIZE * chunk_count(fin.length, chunk_size)
    _finish(fin, fout, out_len, lambda run: engine.seal_file(key, fin, fout, chunk_size, run),
            engine, progress, chunk_size + TAG_SIZE)
    return True


def open_body(src: BinaryIO, dst: BinaryIO, key: bytes, chunk_size: int, engine: Engine,
              progress: Progress | None) -> bool:
    """Open the rest of *src* (a whole stream body) into *dst* with the file loop; False where it does not apply."""
    plan = _plan(src, dst, engine)
    if plan is None:
        return False
    fin, fout = plan
    check_end(fin.length, 0, chunk_size)
    count, out_len = plan_open(0, fin.length, fin.length, chunk_size, True)  # a length no body has: truncated

    def call(run: FileRun) -> None:
        try:
            engine.open_file(key, fin, fout, chunk_size, run)
        except AuthenticationError as exc:
            if exc.chunk_index == count - 1:
                raise last_chunk_failed(exc) from None
            raise

    _finish(fin, fout, out_len, call, engine, progress, chunk_size)
    return True

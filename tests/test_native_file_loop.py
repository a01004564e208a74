"""The C file loop (csrc/file_loop.c) called directly: bytes, bounds, failures, threads.

Every sealed body is compared with what the batch engine seals from the same
plaintext in memory, so the loop's own framing (runs of chunks moved to make
room for tags, offsets after a header, a run shifted in its buffer for the
kernel's copy) cannot drift from the format.  No fuzzing: each case is chosen.
These tests also run under AddressSanitizer and valgrind (tests/sanitize/run.sh).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest

native = pytest.importorskip("envelope.engines.native", reason="native engine not built")

from envelope.engines.base import FileSpan, sealed_size  # noqa: E402
from envelope.exceptions import AuthenticationError, UsageError  # noqa: E402
from envelope.format import TAG_SIZE  # noqa: E402

KEY = bytes(range(32))
RUN = native.lib.ENV_FILE_RUN_BYTES


def batch_sealed(data: bytes, chunk: int) -> bytes:
    out = bytearray(sealed_size(len(data), chunk, True))
    native.seal_batch(KEY, 0, data, out, chunk, True)
    return bytes(out)


def span(path: Path, mode: int, offset: int = 0, length: int = 0) -> FileSpan:
    return FileSpan(os.open(path, mode), offset, length, str(path))


def seal_file(src: Path, dst: Path, chunk: int, threads: int = 2, *, src_off: int = 0, dst_off: int = 0,
              length: int | None = None, run: native.NativeFileRun | None = None) -> native.NativeFileRun:
    size = src.stat().st_size - src_off if length is None else length
    fin, fout = span(src, os.O_RDONLY, src_off, size), span(dst, os.O_WRONLY | os.O_CREAT, dst_off)
    run = run or native.NativeFileRun()
    try:
        native.seal_file(KEY, fin, fout, chunk, run, threads)
    finally:
        os.close(fin.fd)
        os.close(fout.fd)
    return run


def open_file(src: Path, dst: Path, chunk: int, threads: int = 2, *, src_off: int = 0) -> None:
    fin = span(src, os.O_RDONLY, src_off, src.stat().st_size - src_off)
    fout = span(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        native.open_file(KEY, fin, fout, chunk, native.NativeFileRun(), threads)
    finally:
        os.close(fin.fd)
        os.close(fout.fd)


def sizes(chunk: int) -> list[int]:
    return [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 17]


@pytest.mark.parametrize("threads", [1, 2, 5])
@pytest.mark.parametrize("chunk", [1024, 4096, RUN, 4 * RUN])  # several chunks per run, one, and bigger than a run
def test_sealed_file_is_the_batch_engines_bytes_and_opens_back(tmp_path, chunk, threads):
    for n in sizes(chunk):
        data = os.urandom(n)
        src, sealed, back = tmp_path / "p", tmp_path / "s", tmp_path / "b"
        src.write_bytes(data)
        sealed.unlink(missing_ok=True)
        run = seal_file(src, sealed, chunk, threads)
        assert sealed.read_bytes() == batch_sealed(data, chunk), n
        assert run.done == n
        open_file(sealed, back, chunk, threads)
        assert back.read_bytes() == data, n


@pytest.mark.parametrize("src_off,dst_off", [(0, 5), (3, 37), (100, 64), (1, 4095)])
def test_body_after_a_header_lands_at_its_offset_and_bytes_before_it_are_kept(tmp_path, src_off, dst_off):
    chunk, data = 1024, os.urandom(5 * RUN + 333)
    src, sealed, back = tmp_path / "p", tmp_path / "s", tmp_path / "b"
    src.write_bytes(b"x" * src_off + data)
    sealed.write_bytes(b"h" * dst_off)
    seal_file(src, sealed, chunk, 2, src_off=src_off, dst_off=dst_off)
    assert sealed.read_bytes() == b"h" * dst_off + batch_sealed(data, chunk)
    open_file(sealed, back, chunk, 2, src_off=dst_off)
    assert back.read_bytes() == data


@pytest.mark.parametrize("threads", [1, 4])
def test_tampered_chunks_fail_naming_the_lowest_one(tmp_path, threads):
    chunk = 1024
    src, sealed, back = tmp_path / "p", tmp_path / "s", tmp_path / "b"
    src.write_bytes(os.urandom(2000 * chunk))
    seal_file(src, sealed, chunk)
    blob = bytearray(sealed.read_bytes())
    for index in (1500, 700, 1999):  # the lowest is not the first in any thread's order
        blob[index * (chunk + TAG_SIZE) + 3] ^= 1
    sealed.write_bytes(blob)
    with pytest.raises(AuthenticationError) as info:
        open_file(sealed, back, chunk, threads)
    assert info.value.chunk_index == 700


def test_the_last_chunk_is_flagged_so_a_body_cut_at_a_chunk_boundary_fails(tmp_path):
    chunk = 1024
    src, sealed, back = tmp_path / "p", tmp_path / "s", tmp_path / "b"
    src.write_bytes(os.urandom(4 * chunk))
    seal_file(src, sealed, chunk)
    sealed.write_bytes(sealed.read_bytes()[: 3 * (chunk + TAG_SIZE)])
    with pytest.raises(AuthenticationError) as info:
        open_file(sealed, back, chunk)
    assert info.value.chunk_index == 2


def test_shapes_no_body_can_have_are_refused_before_any_read(tmp_path):
    sealed, back = tmp_path / "s", tmp_path / "b"
    for n in (0, 5, 1024 + TAG_SIZE + 15):
        sealed.write_bytes(bytes(n))
        with pytest.raises(UsageError):
            open_file(sealed, back, 1024)


def test_bad_arguments_are_usage_errors(tmp_path):
    src, dst = tmp_path / "p", tmp_path / "s"
    src.write_bytes(b"abc")
    with pytest.raises(UsageError):
        seal_file(src, dst, 0)
    with pytest.raises(UsageError):
        seal_file(src, dst, 1024, threads=0)
    fin = span(src, os.O_RDONLY, 0, 3)
    try:
        with pytest.raises(UsageError):
            native.seal_file(KEY[:16], fin, fin, 1024, native.NativeFileRun())
        with pytest.raises(UsageError):  # a body ending past what an off_t holds
            native.seal_file(KEY, fin._replace(offset=1 << 63), fin, 1024, native.NativeFileRun())
    finally:
        os.close(fin.fd)


def test_an_input_shorter_than_announced_is_a_changed_file_error_naming_it(tmp_path):
    # What a file that shrinks between the caller's fstat and the loop's reads looks like.
    src, dst = tmp_path / "p", tmp_path / "s"
    src.write_bytes(os.urandom(10 * RUN))
    with pytest.raises(OSError, match="changed size") as info:
        seal_file(src, dst, 1024, length=10 * RUN + 1)
    assert info.value.filename == str(src)


def test_an_input_longer_than_announced_is_a_changed_file_error(tmp_path):
    # ...and one that grew: every chunk was read, but fstat at the end disagrees.
    src, dst = tmp_path / "p", tmp_path / "s"
    src.write_bytes(os.urandom(10 * RUN))
    with pytest.raises(OSError, match="changed size"):
        seal_file(src, dst, 1024, length=10 * RUN - 1)


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.write(os.urandom(4096))
        f.truncate(size)


def _while_running(src: Path, dst: Path, act, chunk: int = RUN) -> BaseException | None:  # type: ignore[no-untyped-def]
    """Seal *src* on one thread; call *act* once the loop has finished its first run; return its error."""
    run = native.NativeFileRun()
    failure: list[BaseException] = []

    def body() -> None:
        try:
            seal_file(src, dst, chunk, 1, run=run)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=body)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while run.done == 0 and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.0005)
        assert worker.is_alive(), "the loop ended before the input could change"
        act()
    except BaseException:
        run.cancel()
        raise
    finally:
        worker.join()
    return failure[0] if failure else None


def test_an_input_truncated_mid_run_stops_the_loop_with_an_error_naming_it(tmp_path):
    src, dst = tmp_path / "big", tmp_path / "s"
    _sparse(src, 8 << 30)  # some seconds of sealing: the truncation lands long before the end
    error = _while_running(src, dst, lambda: os.truncate(src, 1 << 20))
    assert isinstance(error, OSError) and "changed size" in str(error) and error.filename == str(src)


def test_an_input_grown_mid_run_is_an_error_once_the_loop_ends(tmp_path):
    src, dst = tmp_path / "big", tmp_path / "s"
    _sparse(src, 256 << 20)

    def grow() -> None:
        with open(src, "ab") as f:
            f.write(b"more")

    error = _while_running(src, dst, grow)
    assert isinstance(error, OSError) and "changed size" in str(error)


def test_cancel_stops_every_worker_and_says_so(tmp_path):
    src, dst = tmp_path / "big", tmp_path / "s"
    _sparse(src, 8 << 30)
    started = time.monotonic()
    run = native.NativeFileRun()
    run.cancel()
    with pytest.raises(KeyboardInterrupt):
        seal_file(src, dst, RUN, 2, run=run)
    assert run.done == 0 and time.monotonic() - started < 5


def test_read_and_write_errors_name_their_file(tmp_path):
    src, dst = tmp_path / "p", tmp_path / "s"
    src.write_bytes(os.urandom(3000))
    dirfd = FileSpan(os.open(tmp_path, os.O_RDONLY), 0, 3000, "a-directory")
    fout = span(dst, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError) as info:
            native.seal_file(KEY, dirfd, fout, 1024, native.NativeFileRun())
        assert info.value.errno == errno.EISDIR and info.value.filename == "a-directory"
    finally:
        os.close(dirfd.fd)
        os.close(fout.fd)
    fin, read_only = span(src, os.O_RDONLY, 0, 3000), span(dst, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as info:
            native.seal_file(KEY, fin, read_only, 1024, native.NativeFileRun())
        assert info.value.errno == errno.EBADF and info.value.filename == str(dst)
    finally:
        os.close(fin.fd)
        os.close(read_only.fd)


def test_a_regular_output_ends_where_the_body_ends_and_is_never_shrunk(tmp_path):
    src, dst = tmp_path / "p", tmp_path / "s"
    src.write_bytes(os.urandom(3 * RUN + 5))
    seal_file(src, dst, 4096)
    assert dst.stat().st_size == sealed_size(3 * RUN + 5, 4096, True)
    dst.write_bytes(bytes(10 * RUN))  # longer already: cutting it is the caller's business
    seal_file(src, dst, 4096)
    assert dst.stat().st_size == 10 * RUN

"""The read/transform/write pipeline: order, bounded buffers, and failure propagation."""

from __future__ import annotations

import errno
import io
import threading

import pytest

from envelope import pipeline


def _filler(data: bytes):  # type: ignore[no-untyped-def]
    pos = 0

    def fill(buf: bytearray) -> tuple[int, bool]:
        nonlocal pos
        n = min(len(buf), len(data) - pos)
        buf[:n] = data[pos : pos + n]
        pos += n
        return n, pos >= len(data)

    return fill


def _upper(src: memoryview, final: bool, out: bytearray) -> int:
    out[: len(src)] = bytes(src).upper()
    return len(src)


def test_output_keeps_input_order_across_many_batches():
    data = bytes(range(97, 123)) * 5000
    out = io.BytesIO()
    pipeline.run(_filler(data), _upper, out, 1000, 1000)
    assert out.getvalue() == data.upper()


def test_at_most_depth_buffers_are_allocated():
    made: list[int] = []
    original = pipeline._Pool.take

    def counting(self):  # type: ignore[no-untyped-def]
        before = self.left
        buf = original(self)
        if self.left < before:
            made.append(1)
        return buf

    pipeline._Pool.take = counting  # type: ignore[method-assign]
    try:
        pipeline.run(_filler(b"x" * 100_000), _upper, io.BytesIO(), 100, 100, depth=2)
    finally:
        pipeline._Pool.take = original  # type: ignore[method-assign]
    assert 2 <= len(made) <= 4


class _FullDisk(io.RawIOBase):
    def __init__(self, room: int) -> None:
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        if len(b) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(b)
        return len(b)


def test_a_write_error_stops_the_pipeline_and_is_raised():
    with pytest.raises(OSError) as info:
        pipeline.run(_filler(b"y" * 1_000_000), _upper, _FullDisk(5000), 1000, 1000)
    assert info.value.errno == errno.ENOSPC
    assert not [t for t in threading.enumerate() if t.name == "envelope-write"]


def test_nothing_is_written_after_the_transform_fails():
    calls = 0

    def failing(src: memoryview, final: bool, out: bytearray) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ValueError("bad batch")
        return _upper(src, final, out)

    out = io.BytesIO()
    with pytest.raises(ValueError, match="bad batch"):
        pipeline.run(_filler(b"z" * 10_000), failing, out, 1000, 1000)
    assert len(out.getvalue()) <= 2000


def test_a_read_error_is_raised_in_the_caller():
    def fill(buf: bytearray) -> tuple[int, bool]:
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="Input/output"):
        pipeline.run(fill, _upper, io.BytesIO(), 10, 10)


class _Short(io.RawIOBase):
    """Accepts at most 7 bytes per write, as a raw file may."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        self.data += bytes(b[:7])
        return min(7, len(b))


def test_short_writes_are_completed():
    out = _Short()
    pipeline.run(_filler(b"abc" * 1000), _upper, out, 500, 500)
    assert bytes(out.data) == b"ABC" * 1000


def test_threads_are_joined_after_a_failure_in_the_middle():
    def failing(src: memoryview, final: bool, out: bytearray) -> int:
        raise ValueError("stop")

    with pytest.raises(ValueError):
        pipeline.run(_filler(b"q" * 100_000), failing, io.BytesIO(), 100, 100)
    alive = [t.name for t in threading.enumerate() if t.name.startswith("envelope-")]
    assert alive == []

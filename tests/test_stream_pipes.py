"""Streams to and from pipes: one small buffer sealed and opened in place, same bytes as files."""

from __future__ import annotations

import fcntl
import io
import os
import threading
from collections.abc import Callable
from typing import BinaryIO

import pytest

from envelope import pipeline
from envelope.engines import get_engine
from envelope.engines.base import in_place_slots
from envelope.exceptions import AuthenticationError, UsageError
from envelope.format import TAG_SIZE, WrappedKey
from envelope.keyrings.base import MultiKeyring
from envelope.stream import STREAM_BATCH_BYTES, decrypt_stream, seal_stream

C = 1024
KEY = bytes(range(32))
FILE_ID = bytes(32)
WRAPPED = (WrappedKey("raw-aes", "test", b"not unwrapped: _KeyOnly knows KEY"),)


def _through_pipes(data: bytes, work: Callable[[BinaryIO, BinaryIO], object]) -> bytes:
    """Run *work* with a pipe carrying *data* in and a pipe out; return what came out."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    got: list[bytes] = []

    def feed() -> None:
        with open(in_w, "wb", buffering=0) as f:
            try:
                pipeline.write_all(f, memoryview(data))  # type: ignore[arg-type]
            except BrokenPipeError:  # the work stopped reading: a failure the test expects
                pass

    def drain() -> None:
        with open(out_r, "rb") as f:
            got.append(f.read())

    threads = [threading.Thread(target=feed), threading.Thread(target=drain)]
    for t in threads:
        t.start()
    try:
        with open(in_r, "rb", buffering=0) as src, open(out_w, "wb", buffering=0) as dst:
            assert pipeline.streaming(src, dst)
            work(src, dst)  # type: ignore[arg-type]
    finally:
        for t in threads:
            t.join()
    return got[0]


def _seal(src: BinaryIO, dst: BinaryIO, engine, chunk_size: int = C) -> None:  # type: ignore[no-untyped-def]
    seal_stream(src, dst, KEY, WRAPPED, chunk_size=chunk_size, engine=engine, file_id=FILE_ID)


def _sealed_in_memory(data: bytes, engine, chunk_size: int = C) -> bytes:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    _seal(io.BytesIO(data), out, engine, chunk_size)  # type: ignore[arg-type]
    return out.getvalue()


class _KeyOnly(MultiKeyring):
    """Unwraps every file to KEY: decrypts what _seal wrote without a master key."""

    def __init__(self) -> None:
        pass

    def unwrap(self, wrapped, context):  # type: ignore[no-untyped-def,override]
        return bytearray(KEY)


BATCH = STREAM_BATCH_BYTES


@pytest.mark.parametrize("size", [0, 1, C, C + 1, BATCH - 1, BATCH, BATCH + 1, 2 * BATCH + C + 5])
def test_a_stream_through_pipes_is_byte_identical_to_one_through_files(size, engine):
    data = os.urandom(size)
    expected = _sealed_in_memory(data, engine)
    assert _through_pipes(data, lambda s, d: _seal(s, d, engine)) == expected
    assert _through_pipes(expected, lambda s, d: decrypt_stream(s, d, _KeyOnly(), engine=engine)) == data


@pytest.mark.parametrize("chunk_size", [C, STREAM_BATCH_BYTES, 2 * STREAM_BATCH_BYTES])
def test_pipes_take_chunks_larger_than_the_stream_batch(chunk_size):
    data = os.urandom(2 * chunk_size + 3)
    engine = get_engine("native")
    expected = _sealed_in_memory(data, engine, chunk_size)
    assert _through_pipes(data, lambda s, d: _seal(s, d, engine, chunk_size)) == expected
    assert _through_pipes(expected, lambda s, d: decrypt_stream(s, d, _KeyOnly(), engine=engine)) == data


def test_a_damaged_batch_from_a_pipe_releases_none_of_its_plaintext(engine):
    data = os.urandom(3 * BATCH)
    blob = bytearray(_sealed_in_memory(data, engine))
    header = len(blob) - (len(data) + TAG_SIZE * (len(data) // C))
    # Damage the last chunk of the second batch: the first batch verified and was
    # written; nothing of the second may follow it.
    blob[header + 2 * (BATCH // C) * (C + TAG_SIZE) - 1] ^= 1

    def run(src: BinaryIO, dst: BinaryIO) -> None:
        with pytest.raises(AuthenticationError):
            decrypt_stream(src, dst, _KeyOnly(), engine=engine)

    assert _through_pipes(bytes(blob), run) == data[:BATCH]


def test_a_pipe_cut_at_a_chunk_boundary_is_truncation(engine):
    data = os.urandom(BATCH + 3 * C)
    blob = _sealed_in_memory(data, engine)
    cut = blob[: len(blob) - (3 * C + TAG_SIZE)]

    def run(src: BinaryIO, dst: BinaryIO) -> None:
        with pytest.raises(AuthenticationError, match="truncated"):
            decrypt_stream(src, dst, _KeyOnly(), engine=engine)

    _through_pipes(cut, run)


@pytest.mark.parametrize("plain_len", [0, 1, C, 3 * C + 7])
def test_sealing_and_opening_in_place_match_sealing_between_buffers(plain_len, engine):
    data = os.urandom(plain_len)
    expected = bytearray(plain_len + TAG_SIZE * max(1, -(-plain_len // C)))
    engine.seal(KEY, 5, data, expected, C, True)
    buf = bytearray(len(expected) + 100)
    at = 0
    for slot in in_place_slots(memoryview(buf), plain_len, C):
        slot[:] = data[at : at + len(slot)]
        at += len(slot)
    n = engine.seal_in_place(KEY, 5, buf, plain_len, C, True)
    assert buf[:n] == expected
    assert engine.open_in_place(KEY, 5, buf, n, C, True) == plain_len
    assert buf[:plain_len] == data


def test_opening_in_place_wipes_the_batch_when_a_tag_fails(engine):
    data = os.urandom(3 * C)
    buf = bytearray(3 * (C + TAG_SIZE))
    engine.seal(KEY, 0, data, buf, C, True)
    buf[-1] ^= 1
    with pytest.raises(AuthenticationError) as failure:
        engine.open_in_place(KEY, 0, buf, len(buf), C, True)
    assert failure.value.chunk_index == 2
    assert buf == bytes(len(buf))


def test_a_streams_pipes_are_widened_so_its_neighbours_run_while_it_seals():
    r, w = os.pipe()
    try:
        with open(r, "rb", buffering=0, closefd=False) as f:
            pipeline.widen_pipes(f)
        assert fcntl.fcntl(r, fcntl.F_GETPIPE_SZ) >= min(pipeline.PIPE_BYTES, _pipe_max())
    finally:
        os.close(r)
        os.close(w)


def _pipe_max() -> int:
    with open("/proc/sys/fs/pipe-max-size") as f:
        return int(f.read())


def test_files_and_memory_keep_the_threaded_pipeline(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with open(path, "rb") as f:
        assert not pipeline.streaming(f, io.BytesIO())  # type: ignore[arg-type]
        assert pipeline.regular_size(f) == 1


def test_c_checks_in_place_bounds_on_its_own():
    """The low-level in-place calls skip Python's checks: C must refuse by itself."""
    native = pytest.importorskip("envelope.engines.native")
    top = (1 << 64) - 1
    sealed = bytearray(2 * (C + TAG_SIZE))
    get_engine("native").seal(KEY, 0, os.urandom(2 * C), sealed, C, True)
    cases = [
        lambda: native.seal_inplace(KEY, top, bytearray(2 * (C + TAG_SIZE)), 2 * C, C, True),  # index overflow
        lambda: native.seal_inplace(KEY, 0, bytearray(2 * C + TAG_SIZE), 2 * C, C, True),  # no room for a tag
        lambda: native.seal_inplace(KEY, 0, bytearray(4 * C), C + 1, C, False),  # not whole chunks
        lambda: native.seal_inplace(KEY, 0, bytearray(4 * C), 0, C, False),  # empty mid-stream
        lambda: native.open_inplace(KEY, top, bytearray(sealed), len(sealed), C, True),
        lambda: native.open_inplace(KEY, 0, bytearray(sealed), len(sealed) - 1, C, False),
        lambda: native.open_inplace(KEY, 0, bytearray(sealed), C + TAG_SIZE + 15, C, True),  # last chunk < tag
        lambda: native.open_inplace(KEY, 0, bytearray(sealed), 0, C, True),  # no final chunk at all
        lambda: native.open_inplace(KEY, 0, bytearray(8), 9, C, True),  # past the buffer
        lambda: native.seal_inplace(KEY[:16], 0, bytearray(4 * C), C, C, True),
    ]
    for case in cases:
        with pytest.raises(UsageError):
            case()

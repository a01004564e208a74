"""What a read costs once a ciphertext is known: no final chunk on a later open, no plaintext copy.

A final chunk opened as final proves the length; :class:`ProvenEnds` keeps it
per ciphertext (authenticated header and length), so pyarrow's second open of
a file reads and opens no final chunk.  A file cut or extended since still
fails at open, and a damaged chunk still fails at the read that touches it.
Whole chunks are opened straight into the caller's buffer, which a failure
leaves holding no unauthenticated byte.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

fsspec = pytest.importorskip("fsspec")
pytest.importorskip("boto3")

import envelope  # noqa: E402
from envelope.engines import get_engine  # noqa: E402
from envelope.engines.reference import ReferenceEngine  # noqa: E402
from envelope.exceptions import AuthenticationError  # noqa: E402
from envelope.format import TAG_SIZE, chunk_offset, read_header  # noqa: E402
from envelope.keyrings.base import MultiKeyring  # noqa: E402
from envelope.keyrings.raw_aes import RawAesKeyring  # noqa: E402
from envelope.reader import DecryptingReader, ProvenEnds  # noqa: E402
from fsspec_world import World, make_world  # noqa: E402

C = 1 << 12
KEY = MultiKeyring([RawAesKeyring(b"q" * 32)])
DATA = os.urandom(20 * C + 777)  # 21 chunks, the last one short
BLOB = envelope.encrypt(DATA, keys=list(KEY.keyrings), chunk_size=C)
LAST = len(DATA) // C


class RecordingEngine(ReferenceEngine):
    """Records each open: (first chunk, chunk count, final, the buffer written to)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int, bool, Any]] = []

    def open(self, key, first_index, src, dst, chunk_size, final):  # type: ignore[no-untyped-def]
        self.calls.append((first_index, -(-len(src) // (chunk_size + TAG_SIZE)), final, dst))
        return super().open(key, first_index, src, dst, chunk_size, final)


def _damaged(index: int) -> bytes:
    h = read_header(io.BytesIO(BLOB))[0].size
    damaged = bytearray(BLOB)
    damaged[chunk_offset(h, C, index) + 9] ^= 1
    return bytes(damaged)


@pytest.fixture(params=["local", "s3"])
def world(request: pytest.FixtureRequest, tmp_path: Path, kek: str) -> World:
    return make_world(request.param, tmp_path, kek, request)


# -- the proven end, kept ---------------------------------------------------------------------------------


def test_a_second_open_of_a_proven_file_reads_and_opens_no_final_chunk(world: World) -> None:
    with fsspec.open(world.url("f"), "wb", **{**world.options, "chunk_size": C}) as f:
        f.write(DATA)
    fs = world.fs
    with fs.open(world.path("f"), "rb") as f:  # the first open proves the length
        assert f.raw.chunks_opened == 1
    with fs.open(world.path("f"), "rb") as f:
        raw = f.raw
        assert raw.chunks_opened == 0
        if world.kind == "s3":
            assert raw.source.requests == 0  # the header cached with the object, the end with ProvenEnds
        else:
            assert raw.source.count == raw.header.size  # the header, read again and authenticated
        f.seek(-100, os.SEEK_END)
        assert f.read() == DATA[-100:]
        assert raw.chunks_opened == 0
        f.seek(3 * C + 5)
        assert f.read(C) == DATA[3 * C + 5:4 * C + 5]


def test_a_file_cut_or_extended_after_its_end_was_proven_still_fails_at_open(tmp_path: Path, kek: str) -> None:
    fs = fsspec.filesystem("envelope", keys=kek, chunk_size=C)
    path = str(tmp_path / "f")
    with fs.open(path, "wb") as f:
        f.write(DATA)
    with fs.open(path, "rb") as f:
        assert f.read() == DATA
    sealed = Path(path).read_bytes()
    h = read_header(io.BytesIO(sealed))[0].size
    for damaged in (sealed[:chunk_offset(h, C, LAST)],  # cut after a whole chunk
                    sealed + sealed[chunk_offset(h, C, 2):chunk_offset(h, C, 3)]):  # a chunk appended
        Path(path).write_bytes(damaged)
        with pytest.raises(AuthenticationError):
            fs.open(path, "rb")
    Path(path).write_bytes(sealed)
    with fs.open(path, "rb") as f:
        assert f.read() == DATA


def test_a_damaged_chunk_of_a_proven_file_fails_at_the_read_that_touches_it() -> None:
    ends = ProvenEnds()
    DecryptingReader(io.BytesIO(BLOB), KEY, ends=ends).close()
    f = io.BufferedReader(DecryptingReader(io.BytesIO(_damaged(7)), KEY, ends=ends), buffer_size=C)
    assert f.read(3 * C) == DATA[:3 * C]
    f.seek(7 * C + 1)
    with pytest.raises(AuthenticationError, match="chunk 7"):
        f.read(10)


def test_only_the_same_header_and_length_find_a_proven_end() -> None:
    ends = ProvenEnds()
    engine = RecordingEngine()
    DecryptingReader(io.BytesIO(BLOB), KEY, ends=ends).close()
    other = envelope.encrypt(DATA, keys=list(KEY.keyrings), chunk_size=C)  # same plaintext, another file
    DecryptingReader(io.BytesIO(other), KEY, ends=ends, engine=engine).close()
    assert [(first, final) for first, _, final, _ in engine.calls] == [(LAST, True)]


def test_proven_ends_are_bounded_in_bytes_and_age() -> None:
    ends = ProvenEnds(max_bytes=2 * C)
    headers = [read_header(io.BytesIO(envelope.encrypt(b"x", keys=list(KEY.keyrings))))[0] for _ in range(3)]
    for h in headers:
        ends.put(h, 100, b"p" * C)
    assert ends.get(headers[0], 100) is None and ends.get(headers[2], 100) == b"p" * C
    aged = ProvenEnds(max_age=0.0)
    aged.put(headers[0], 100, b"p")
    assert aged.get(headers[0], 100) is None


# -- straight into the caller's buffer ----------------------------------------------------------------------


def test_whole_chunks_open_straight_into_the_callers_buffer() -> None:
    engine = RecordingEngine()
    raw = DecryptingReader(io.BytesIO(BLOB), KEY, engine=engine)
    buf = bytearray(5 * C + 10)
    raw.seek(2 * C)
    assert raw.readinto(buf) == 5 * C  # the five whole chunks; the sixth only starts in the buffer
    assert buf[:5 * C] == DATA[2 * C:7 * C]
    first, count, final, dst = engine.calls[-1]
    assert (first, count, final) == (2, 5, False) and dst.obj is buf
    assert raw.readinto(memoryview(buf)[:10]) == 10 and buf[:10] == DATA[7 * C:7 * C + 10]


def test_a_read_to_the_end_takes_the_proven_final_chunk_without_opening_it_again() -> None:
    engine = RecordingEngine()
    f = io.BufferedReader(DecryptingReader(io.BytesIO(BLOB), KEY, engine=engine), buffer_size=C)
    assert f.read() == DATA
    opened = sorted(i for first, count, _, _ in engine.calls for i in range(first, first + count))
    assert opened == list(range(LAST + 1))


@pytest.mark.parametrize("engine_name", ["python", "native"])
def test_a_failed_chunk_leaves_no_unauthenticated_byte_in_the_callers_buffer(engine_name: str) -> None:
    try:
        engine = get_engine(engine_name)
    except envelope.UsageError:
        pytest.skip("the native engine is not built")
    raw = DecryptingReader(io.BytesIO(_damaged(4)), KEY, engine=engine)
    buf = bytearray(b"\xaa" * (6 * C))
    raw.seek(C)
    with pytest.raises(AuthenticationError, match="chunk 4"):
        raw.readinto(buf)
    # Chunks 1-3 verified, 4 did not: whatever the engine wrote, nothing of 4 (nor after it) is left.
    assert set(buf[3 * C:]) <= {0, 0xAA}
    with pytest.raises(AuthenticationError):
        raw.readinto(buf)  # and the reader stays failed


@pytest.mark.parametrize("chunk_at_end", ["proven here", "proven before", "length only"])
def test_every_range_reads_back_whichever_way_the_end_was_proven(chunk_at_end: str) -> None:
    ends = ProvenEnds()
    if chunk_at_end == "proven before":
        DecryptingReader(io.BytesIO(BLOB), KEY, ends=ends).close()
    raw_opts: dict[str, Any] = {"length_proven": True} if chunk_at_end == "length only" else {"ends": ends}
    if chunk_at_end == "length only":
        from envelope.stream import open_header

        raw_opts["opened"] = open_header(io.BytesIO(BLOB), KEY)
    for buffer_size in (100, C, 3 * C + 7):
        f = io.BufferedReader(DecryptingReader(io.BytesIO(BLOB), KEY, **raw_opts), buffer_size=buffer_size)
        for offset, length in ((0, len(DATA)), (C - 1, 2 * C + 2), (LAST * C - 3, 10), (LAST * C, 9999),
                               (5 * C, 4 * C), (len(DATA) - 1, 5), (17, 3)):
            f.seek(offset)
            assert f.read(length) == DATA[offset:offset + length]


def test_a_final_chunk_first_opened_by_a_read_is_kept_for_later_opens() -> None:
    """An S3 object whose header is cached (length proven) but whose end was dropped: a read of the end keeps it."""
    from envelope.stream import open_header

    ends = ProvenEnds()
    raw = DecryptingReader(io.BytesIO(BLOB), None, opened=open_header(io.BytesIO(BLOB), KEY), length_proven=True,
                           ends=ends)
    assert raw.chunks_opened == 0
    f = io.BufferedReader(raw, buffer_size=C)
    f.seek(LAST * C - 5)
    assert f.read(10) == DATA[LAST * C - 5:LAST * C + 5]
    engine = RecordingEngine()
    again = DecryptingReader(io.BytesIO(BLOB), KEY, ends=ends, engine=engine)
    again.seek(-50, os.SEEK_END)
    assert again.read() == DATA[-50:] and engine.calls == []

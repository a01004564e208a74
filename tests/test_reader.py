"""Random access: envelope.open and decrypt-file --range open only the chunks they need."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envelope
from envelope.cli.main import EXIT_AUTH, EXIT_USAGE, main
from envelope.engines import get_engine
from envelope.engines.reference import ReferenceEngine
from envelope.exceptions import AuthenticationError, KeyringError
from envelope.format import TAG_SIZE, chunk_offset, read_header
from envelope.keyrings.base import MultiKeyring
from envelope.keyrings.raw_aes import RawAesKeyring
from envelope.reader import DecryptingReader

C = 1024
KEY = MultiKeyring([RawAesKeyring(b"r" * 32)])
DATA = os.urandom(40 * C + 123)
BLOB = envelope.encrypt(DATA, keys=list(KEY.keyrings), chunk_size=C)


class CountingEngine(ReferenceEngine):
    def __init__(self) -> None:
        super().__init__()
        self.opened: list[int] = []

    def open(self, key, first_index, src, dst, chunk_size, final):  # type: ignore[no-untyped-def]
        self.opened.extend(range(first_index, first_index + -(-len(src) // (chunk_size + TAG_SIZE))))
        return super().open(key, first_index, src, dst, chunk_size, final)


def reader(blob: bytes = BLOB, engine=None) -> io.BufferedReader:  # type: ignore[no-untyped-def]
    return envelope.open(io.BytesIO(blob), keyring=KEY) if engine is None else \
        io.BufferedReader(DecryptingReader(io.BytesIO(blob), KEY, engine=engine), buffer_size=C)


@settings(max_examples=60, deadline=None)
@given(offset=st.integers(0, len(DATA) + 10), length=st.integers(0, 5 * C))
def test_any_range_reads_back_the_plaintext(offset, length):
    f = reader()
    f.seek(offset)
    assert f.read(length) == DATA[offset : offset + length]


def test_both_engines_agree_on_random_access():
    for name in ("python", "native"):
        try:
            engine = get_engine(name)
        except envelope.UsageError:
            continue
        f = reader(engine=engine)
        f.seek(17 * C + 5)
        assert f.read(3 * C) == DATA[17 * C + 5 : 20 * C + 5]


def test_seek_whence_and_size():
    f = reader()
    assert f.seek(-10, os.SEEK_END) == len(DATA) - 10
    assert f.read() == DATA[-10:]
    assert f.seek(0) == 0 and f.read(5) == DATA[:5]
    assert f.seek(5, os.SEEK_CUR) == 10 and f.read(3) == DATA[10:13]
    f.seek(len(DATA) + 100)
    assert f.read(10) == b""
    with pytest.raises(ValueError):
        f.seek(-1)


def test_reading_the_tail_opens_only_the_chunks_it_needs():
    engine = CountingEngine()
    f = reader(engine=engine)
    f.seek(-4096 // 4, os.SEEK_END)
    assert f.read() == DATA[-1024:]
    last = len(DATA) // C
    assert set(engine.opened) <= {last - 1, last} and engine.opened


def test_sequential_small_reads_open_each_chunk_once():
    engine = CountingEngine()
    f = io.BufferedReader(DecryptingReader(io.BytesIO(BLOB), KEY, engine=engine), buffer_size=64)
    out = bytearray()
    while chunk := f.read(100):
        out += chunk
    assert bytes(out) == DATA
    assert sorted(engine.opened) == list(range(len(DATA) // C + 1))


def test_a_tampered_chunk_fails_when_read_and_stays_failed():
    h = read_header(io.BytesIO(BLOB))[0].size
    damaged = bytearray(BLOB)
    damaged[chunk_offset(h, C, 5) + 3] ^= 1
    f = reader(bytes(damaged))
    assert f.read(C) == DATA[:C]  # chunk 0 is fine
    f.seek(5 * C)
    with pytest.raises(AuthenticationError, match="chunk 5"):
        f.read(10)
    f.seek(0)
    with pytest.raises(AuthenticationError):
        f.read(10)


def test_a_file_cut_at_a_chunk_boundary_fails_at_open():
    # Its length is believed only once the chunk it makes last has opened as last: chunk 29 cannot.
    h = read_header(io.BytesIO(BLOB))[0].size
    with pytest.raises(AuthenticationError, match=r"truncated.*chunk 29, final") as info:
        reader(BLOB[: chunk_offset(h, C, 30)])
    assert info.value.chunk_index == 29


def test_an_impossible_length_is_refused_at_open_as_truncation():
    # The header has verified by then: a length no plaintext has is a cut or extended stream.
    with pytest.raises(AuthenticationError, match="truncated or extended.*impossible"):
        reader(BLOB[: len(BLOB) - (123 + TAG_SIZE) + 5])


def test_the_header_is_authenticated_at_open():
    damaged = bytearray(BLOB)
    damaged[-(len(DATA) + 41 * TAG_SIZE) - 40] ^= 1  # inside the commitment
    with pytest.raises((AuthenticationError, KeyringError)):
        reader(bytes(damaged))


def test_an_empty_file_cut_to_its_header_is_refused():
    empty = envelope.encrypt(b"", keys=list(KEY.keyrings))
    assert reader(empty).read() == b""
    with pytest.raises(AuthenticationError, match="truncated"):
        reader(empty[:-TAG_SIZE])


def test_append_and_update_modes_are_refused_and_the_file_left_alone(tmp_path: Path):
    path = tmp_path / "x.envelope"
    path.write_bytes(BLOB)
    for mode in ("ab", "r+b", "w+b"):
        with pytest.raises(envelope.UsageError, match="'rb', 'wb' and 'xb'"):
            envelope.open(path, mode, keyring=KEY)
    assert path.read_bytes() == BLOB
    with envelope.open(path, keyring=KEY) as f:
        assert f.read(7) == DATA[:7]


@pytest.fixture
def sealed_file(tmp_path: Path, kek_file: Path) -> tuple[Path, bytes, str]:
    data = os.urandom(300_000)
    src = tmp_path / "d.bin"
    src.write_bytes(data)
    assert main(["encrypt-file", str(src), "--key", f"raw-aes:{kek_file}", "--chunk-size", "4K"]) == 0
    return tmp_path / "d.bin.envelope", data, f"raw-aes:{kek_file}"


@pytest.mark.parametrize("spec, sl", [
    ("1000:5000", slice(1000, 5000)),
    ("100K:", slice(100 << 10, None)),
    (":10", slice(0, 10)),
    ("299000:999999", slice(299000, None)),
    ("-1000", slice(-1000, None)),
])
def test_decrypt_file_range_writes_just_that_range(sealed_file, tmp_path, spec, sl):
    enc, data, key = sealed_file
    out = tmp_path / "part"
    assert main(["decrypt-file", str(enc), "-o", str(out), "--key", key, "--range", spec]) == 0
    assert out.read_bytes() == data[sl]


def test_decrypt_file_range_of_a_damaged_chunk_fails_without_output(sealed_file, tmp_path, capsys):
    enc, data, key = sealed_file
    blob = bytearray(enc.read_bytes())
    h = read_header(io.BytesIO(bytes(blob)))[0].size
    blob[chunk_offset(h, 4096, 2) + 1] ^= 1
    enc.write_bytes(bytes(blob))
    out = tmp_path / "part"
    assert main(["decrypt-file", str(enc), "-o", str(out), "--key", key, "--range", "0:20000"]) == EXIT_AUTH
    assert "chunk 2" in capsys.readouterr().err
    assert not out.exists()
    assert main(["decrypt-file", str(enc), "-o", str(out), "--key", key, "--range", "12K:16K"]) == 0
    assert out.read_bytes() == data[12 << 10 : 16 << 10]


@pytest.mark.parametrize("spec", ["5:1", "abc", "12"])
def test_bad_ranges_are_usage_errors(sealed_file, tmp_path, spec, capsys):
    enc, _, key = sealed_file
    assert main(["decrypt-file", str(enc), "-o", str(tmp_path / "p"), "--key", key, "--range", spec]) == EXIT_USAGE
    assert "Traceback" not in capsys.readouterr().err

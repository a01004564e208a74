"""Files through the native file loop, as the stream layer, the API and the CLI use it.

The loop must write the very bytes the streaming path writes (same data key and
file id, same file), open what either wrote, refuse what either refuses, and
keep every promise of a file output: nothing unverified is released, a failure
or an interrupt leaves no output and no temporary, a device is written in
place.  Inputs it cannot read positionally (pipes) keep the streaming path.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("envelope.engines.native", reason="native engine not built")

from envelope import api  # noqa: E402
from envelope.cli.main import EXIT_AUTH, EXIT_INTERRUPTED, EXIT_IO  # noqa: E402
from envelope.engines import get_engine  # noqa: E402
from envelope.engines.native import NativeEngine  # noqa: E402
from envelope.exceptions import AuthenticationError  # noqa: E402
from envelope.format import TAG_SIZE, WrappedKey, read_header  # noqa: E402
from envelope.keyrings.base import MultiKeyring  # noqa: E402
from envelope.keyrings.raw_aes import RawAesKeyring  # noqa: E402
from envelope.stream import decrypt_stream, seal_stream  # noqa: E402

from keyfiles import write_key_file  # noqa: E402
from test_cli_files import no_temp_files, open_outputs  # noqa: E402
from test_vectors import NEGATIVE, POSITIVE, keyring_of, names, plaintext_of  # noqa: E402

CHUNK = 1024
DATA_KEY = bytes(range(32))
FILE_ID = bytes(range(32, 64))
WRAPPED = [WrappedKey("raw-aes", "test", b"\x00" * 61)]
slow = pytest.mark.skipif(not os.environ.get("ENVELOPE_SLOW_TESTS"), reason="slow: set ENVELOPE_SLOW_TESTS=1")


@pytest.fixture
def loop_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the file-loop calls made (seal_file, open_file): which path a run took."""
    calls: list[str] = []
    for name in ("seal_file", "open_file"):
        original = getattr(NativeEngine, name)

        def spy(self: Any, *args: Any, _name: str = name, _original: Any = original) -> None:
            calls.append(_name)
            _original(self, *args)

        monkeypatch.setattr(NativeEngine, name, spy)
    return calls


def seal_path(src: Path, dst: Path, chunk: int = CHUNK) -> None:
    with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
        seal_stream(fin, fout, DATA_KEY, WRAPPED, chunk_size=chunk, engine=get_engine("native", 2), file_id=FILE_ID)


def seal_memory(data: bytes, chunk: int = CHUNK) -> bytes:
    out = io.BytesIO()
    seal_stream(io.BytesIO(data), out, DATA_KEY, WRAPPED, chunk_size=chunk, engine=get_engine("native", 2),
                file_id=FILE_ID)
    return out.getvalue()


@pytest.mark.parametrize("n", [1, CHUNK - 1, CHUNK, CHUNK + 1, 300 * CHUNK + 5])
def test_the_file_loop_writes_the_streaming_paths_bytes(tmp_path, loop_calls, n):
    data = os.urandom(n)
    src, dst = tmp_path / "p", tmp_path / "s"
    src.write_bytes(data)
    seal_path(src, dst)
    assert loop_calls == ["seal_file"]
    assert dst.read_bytes() == seal_memory(data)


def test_an_empty_file_is_one_empty_chunk_on_either_path(tmp_path, loop_calls):
    src, dst = tmp_path / "p", tmp_path / "s"
    src.write_bytes(b"")
    seal_path(src, dst)
    assert dst.read_bytes() == seal_memory(b"")


@pytest.mark.parametrize("vector", POSITIVE, ids=names(POSITIVE))
def test_positive_vectors_through_files(tmp_path, vector):
    data, sealed, back = tmp_path / "p", tmp_path / "s", tmp_path / "b"
    data.write_bytes(plaintext_of(vector))
    wrapped = [WrappedKey(w["provider"], w["key_id"], bytes.fromhex(w["blob"])) for w in vector["wrapped_keys"]]
    with open(data, "rb", buffering=0) as fin, open(sealed, "wb", buffering=0) as fout:
        seal_stream(fin, fout, bytes.fromhex(vector["data_key"]), wrapped, context=vector["context"],
                    chunk_size=vector["chunk_size"], engine=get_engine("native", 2),
                    file_id=bytes.fromhex(vector["file_id"]))
    assert sealed.read_bytes().hex() == vector["ciphertext"]
    with open(sealed, "rb", buffering=0) as fin, open(back, "wb", buffering=0) as fout:
        decrypt_stream(fin, fout, keyring_of(vector), required_context=vector.get("required_context"),
                       engine=get_engine("native", 2))
    assert back.read_bytes() == plaintext_of(vector)


@pytest.mark.parametrize("vector", NEGATIVE, ids=names(NEGATIVE))
def test_negative_vectors_through_files_raise_exactly_their_class(tmp_path, vector):
    from envelope import exceptions

    sealed, back = tmp_path / "s", tmp_path / "b"
    sealed.write_bytes(bytes.fromhex(vector["ciphertext"]))
    with pytest.raises(Exception) as info, open(sealed, "rb", buffering=0) as fin, \
            open(back, "wb", buffering=0) as fout:
        decrypt_stream(fin, fout, keyring_of(vector), required_context=vector.get("required_context"),
                       engine=get_engine("native", 2))
    assert type(info.value) is getattr(exceptions, vector["expect"]), f"{type(info.value).__name__}: {info.value}"


@pytest.fixture
def kek(tmp_path: Path) -> bytes:
    key = os.urandom(32)
    write_key_file(tmp_path / "kek", key)
    return key


def keyring(kek: bytes) -> MultiKeyring:
    return MultiKeyring([RawAesKeyring(kek)])


def test_api_round_trip_goes_through_the_loop_and_reports_progress(tmp_path, kek, loop_calls):
    data = os.urandom(3 * (256 << 10) + 7)
    src = tmp_path / "p"
    src.write_bytes(data)
    seen: list[int] = []
    api.encrypt_file(src, tmp_path / "p.envelope", keys=keyring(kek), engine="native", progress=seen.append)
    assert sum(seen) == len(data)
    api.decrypt_file(tmp_path / "p.envelope", tmp_path / "back", keys=keyring(kek), engine="native")
    assert (tmp_path / "back").read_bytes() == data
    assert loop_calls == ["seal_file", "open_file"]


@pytest.mark.parametrize("where", ["middle", "last"])
def test_a_tampered_chunk_fails_naming_it_and_leaves_no_output(tmp_path, kek, where):
    src, enc, out = tmp_path / "p", tmp_path / "p.envelope", tmp_path / "out"
    src.write_bytes(os.urandom(100 * CHUNK + 10))
    api.encrypt_file(src, enc, keys=keyring(kek), chunk_size=CHUNK, engine="native")
    blob = bytearray(enc.read_bytes())
    header_len = len(read_header(io.BytesIO(blob))[1])
    index = 40 if where == "middle" else 100
    blob[header_len + index * (CHUNK + TAG_SIZE) + 5] ^= 0x80
    enc.write_bytes(blob)
    with pytest.raises(AuthenticationError) as info:
        api.decrypt_file(enc, out, keys=keyring(kek), engine="native")
    assert info.value.chunk_index == index
    assert ("truncated or its last chunk is damaged" in str(info.value)) == (where == "last")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kek", "p", "p.envelope"]


def _cli(*argv: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "envelope", *argv], stderr=subprocess.PIPE, **kwargs)


def _big_sparse(path: Path, size: int = 8 << 30) -> None:
    """A file of *size* bytes that takes seconds to encrypt and none to make (its data is a hole)."""
    with open(path, "wb") as f:
        f.write(os.urandom(1 << 16))  # real blocks: the file loop takes files with data on a disk
        f.truncate(size)


def _output_size(pid: int, directory: Path) -> int:
    """The size of the temporary output *pid* writes in *directory* (0 before it exists)."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in open_outputs(pid, directory):
                return os.stat(f"/proc/{pid}/fd/{fd}").st_size
        except OSError:
            continue
    return 0


def _when_writing(proc: subprocess.Popen[bytes], directory: Path) -> None:
    """Wait until the file loop runs: it sizes the output to the whole body before its first write."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None and _output_size(proc.pid, directory) < 1 << 30:
        time.sleep(0.01)
    assert _output_size(proc.pid, directory) >= 1 << 30, "the file loop never started"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_mid_file_stops_promptly_and_leaves_nothing(tmp_path, sig):
    src, out = tmp_path / "big", tmp_path / "big.envelope"
    _big_sparse(src)
    write_key_file(tmp_path / "kek", os.urandom(32))
    proc = _cli("encrypt-file", str(src), "-o", str(out), "--key", f"raw-aes:{tmp_path / 'kek'}")
    _when_writing(proc, tmp_path)
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 10
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert not out.exists() and no_temp_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big", "kek"]


def test_an_input_that_shrinks_mid_file_is_an_error_naming_it_and_no_output(tmp_path):
    src, out = tmp_path / "big", tmp_path / "big.envelope"
    _big_sparse(src)
    write_key_file(tmp_path / "kek", os.urandom(32))
    proc = _cli("encrypt-file", str(src), "-o", str(out), "--key", f"raw-aes:{tmp_path / 'kek'}")
    _when_writing(proc, tmp_path)
    os.truncate(src, 1 << 20)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_IO, err
    assert err.decode().strip() == f"envelope: error: the input changed size while it was read {str(src)!r}"
    assert not out.exists() and no_temp_files(tmp_path)


@pytest.fixture
def null_device(tmp_path: Path) -> Path:
    """A null device of our own (never the real /dev/null): major 1, minor 3."""
    path = tmp_path / "null"
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return path


def test_a_device_output_is_written_in_place_by_the_loop(tmp_path, null_device, kek, loop_calls):
    src = tmp_path / "p"
    src.write_bytes(os.urandom(5 * CHUNK))
    with open(src, "rb", buffering=0) as fin, open(null_device, "wb", buffering=0) as fout:
        seal_stream(fin, fout, DATA_KEY, WRAPPED, chunk_size=CHUNK, engine=get_engine("native", 2))
    api.encrypt_file(src, tmp_path / "p.envelope", keys=keyring(kek), engine="native")
    with open(tmp_path / "p.envelope", "rb", buffering=0) as fin, open(null_device, "wb", buffering=0) as fout:
        decrypt_stream(fin, fout, keyring(kek), engine=get_engine("native", 2))
    assert loop_calls == ["seal_file", "seal_file", "open_file"]
    assert stat.S_ISCHR(null_device.stat().st_mode)


def test_stdout_on_a_device_round_trips_and_a_forgery_still_fails(tmp_path, null_device, kek):
    src, enc = tmp_path / "p", tmp_path / "p.envelope"
    src.write_bytes(os.urandom(50 * CHUNK))
    key = f"raw-aes:{tmp_path / 'kek'}"
    with open(null_device, "wb") as sink:
        proc = _cli("encrypt-file", str(src), "-o", "-", "--key", key, stdout=sink)
        assert proc.wait(timeout=60) == 0
    api.encrypt_file(src, enc, keys=keyring(kek), chunk_size=CHUNK, engine="native")
    blob = bytearray(enc.read_bytes())
    blob[-100] ^= 1
    enc.write_bytes(blob)
    with open(null_device, "wb") as sink:
        proc = _cli("decrypt-file", str(enc), "-o", "-", "--key", key, stdout=sink)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_AUTH and b"chunk 49 failed authentication" in err
    assert stat.S_ISCHR(null_device.stat().st_mode)


def test_stdout_on_a_regular_file_gets_the_stream_after_what_it_held(tmp_path, kek, loop_calls):
    src, out = tmp_path / "p", tmp_path / "out"
    data = os.urandom(20 * CHUNK + 3)
    src.write_bytes(data)
    for append in (False, True):  # O_APPEND cannot take positional writes: that one streams
        out.write_bytes(b"before")
        with open(out, "ab" if append else "r+b", buffering=0) as f, open(src, "rb", buffering=0) as fin:
            f.seek(0, os.SEEK_END)
            seal_stream(fin, f, DATA_KEY, WRAPPED, chunk_size=CHUNK, engine=get_engine("native", 2), file_id=FILE_ID)
            assert f.tell() == out.stat().st_size  # left where a stream's writes would have left it
        assert out.read_bytes() == b"before" + seal_memory(data)
    assert loop_calls == ["seal_file"]


def test_a_pipe_keeps_the_streaming_path(tmp_path, loop_calls):
    src = tmp_path / "p"
    data = os.urandom(10 * CHUNK)
    src.write_bytes(data)
    r, w = os.pipe()
    drained: list[bytes] = []
    with open(r, "rb") as pipe:
        drain = threading.Thread(target=lambda: drained.append(pipe.read()))
        drain.start()
        with open(src, "rb", buffering=0) as fin, open(w, "wb", buffering=0) as fout:
            seal_stream(fin, fout, DATA_KEY, WRAPPED, chunk_size=CHUNK, engine=get_engine("native", 2),
                        file_id=FILE_ID)
        drain.join()
    assert loop_calls == []
    assert drained == [seal_memory(data)]


@slow
def test_multi_gigabyte_round_trip(tmp_path, kek):
    src, enc, back = tmp_path / "big", tmp_path / "big.envelope", tmp_path / "back"
    digest = hashlib.sha256()
    with open(src, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(5 << 10):  # 5 GiB, every MiB different
            piece = i.to_bytes(8, "big") + block[8:]
            f.write(piece)
            digest.update(piece)
    api.encrypt_file(src, enc, keys=keyring(kek), engine="native")
    src.unlink()
    api.decrypt_file(enc, back, keys=keyring(kek), engine="native")
    check = hashlib.sha256()
    with open(back, "rb") as f:
        while piece := f.read(1 << 24):
            check.update(piece)
    assert check.digest() == digest.digest()

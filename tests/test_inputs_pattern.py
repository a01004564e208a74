"""Every input path of every command is opened exactly once, so a FIFO (or ``<(...)``) works as a file does.

A FIFO's data goes to whoever has it open: a command that opened its input once
to check it and again to read it lost what the writer sent in between (and
hung when the writer had already finished).  The inputs are found by walking
the argparse parser, so a new option naming an input file fails
:func:`test_every_input_option_has_an_invocation` until :data:`FEEDS` says how to
run it; each then reads a FIFO whose writer sends half, pauses, sends the rest
(``(a; sleep 1; b) > fifo``: the pause must not end the input), and one whose
writer sends it all at once and leaves (``printf hi > fifo &``: a second open
waits forever for a writer, every time).  Every command runs in a child process
with a timeout, so a hang fails the test instead of hanging the run.
"""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from envelope.cli.main import EXIT_OK, main

from cli_world import OUTPUT_OPTIONS, World, arguments_where, cli, world  # noqa: F401 (world: the fixture)

#: Metavars of arguments that name a file to read.
INPUT_METAVARS = {"IN", "FILE", "SRC", "POLICY.json"}
PAUSE = 0.5


def commands_with_inputs() -> set[tuple[str, str]]:
    """(command words, dest) of every argument of the CLI that names an input file."""
    return arguments_where(lambda a: a.metavar in INPUT_METAVARS and not set(a.option_strings) & OUTPUT_OPTIONS)


Check = Callable[[World, subprocess.CompletedProcess[bytes], Path], None]


def _ok(w: World, done: subprocess.CompletedProcess[bytes], out: Path) -> None:
    assert done.returncode == EXIT_OK, done.stderr


def _decrypts_to(expected: Callable[[World], bytes]) -> Check:
    def check(w: World, done: subprocess.CompletedProcess[bytes], out: Path) -> None:
        _ok(w, done, out)
        back = out.with_name("back")
        assert main(["decrypt-file", str(out), "-o", str(back), "--key", w.kek, "-q"]) == EXIT_OK
        assert back.read_bytes() == expected(w)
    return check


def _kms_decrypts_to(expected: Callable[[World], bytes]) -> Check:
    def check(w: World, done: subprocess.CompletedProcess[bytes], out: Path) -> None:
        _ok(w, done, out)
        back = out.with_name("back")
        assert main(["keys", "decrypt", "--in", str(out), "-o", str(back), *w.ks()]) == EXIT_OK
        assert back.read_bytes() == expected(w)
    return check


def _output_is(expected: Callable[[World], bytes]) -> Check:
    def check(w: World, done: subprocess.CompletedProcess[bytes], out: Path) -> None:
        _ok(w, done, out)
        assert out.read_bytes() == expected(w)
    return check


def _signature_verifies(w: World, done: subprocess.CompletedProcess[bytes], out: Path) -> None:
    _ok(w, done, out)
    assert main(["keys", "verify", "alias/sign", "--in", str(w.message), "--signature", str(out),
                 "--algorithm", "ECDSA_SHA_256", *w.ks()]) == EXIT_OK


def _message(w: World) -> bytes:
    return w.message.read_bytes()


def _policy(w: World, state: object) -> bytes:
    return (b'{"Version": "2012-10-17", "Statement": [{"Sid": "all", "Effect": "Allow", '
            b'"Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}]}' + b" " * 2000)


def _header_bytes(w: World) -> bytes:
    """The header of the envelope file, all inspect reads (the pausing writer splits it)."""
    from envelope.format import read_header

    with open(w.sealed, "rb") as f:
        return w.sealed.read_bytes()[:read_header(f)[0].size]


def _external_key(w: World, out: Path) -> str:
    alias = f"alias/ext-{os.urandom(4).hex()}"
    assert main(["keys", "create", "--origin", "EXTERNAL", "--alias", alias, *w.ks()]) == EXIT_OK
    return alias


def _wrapped_material(w: World, out: Path) -> SimpleNamespace:
    """An EXTERNAL key, its import token and 32 bytes of material wrapped for it (files beside *out*)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    alias = _external_key(w, out)
    params = out.parent / "params"
    params.mkdir()
    assert main(["keys", "import-parameters", alias, "-o", str(params), *w.ks()]) == EXIT_OK
    public = serialization.load_der_public_key((params / "WrappingPublicKey.bin").read_bytes())
    assert isinstance(public, rsa.RSAPublicKey)
    material = out.with_name("material")
    material.write_bytes(public.encrypt(os.urandom(32), padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(),
                                                                     None)))
    return SimpleNamespace(alias=alias, token=params / "ImportToken.bin", material=material)


@dataclass
class Feed:
    """How to run a command with a FIFO as one input: *argv* (world, fifo, output path, setup),
    the bytes written into the FIFO, and what must hold afterwards.  *setup* runs first, in this process."""

    argv: Callable[[World, str, Path, Any], list[str]]
    data: Callable[[World, Any], bytes]
    check: Check = _ok
    setup: Callable[[World, Path], Any] = field(default=lambda w, out: None)


FEEDS: dict[tuple[str, str], Feed] = {
    ("encrypt-file", "inputs"): Feed(lambda w, f, out, s: ["encrypt-file", f, "-o", str(out), "--key", w.kek, "-q"],
                                     lambda w, s: w.plain.read_bytes(), _decrypts_to(lambda w: w.plain.read_bytes())),
    ("decrypt-file", "inputs"): Feed(lambda w, f, out, s: ["decrypt-file", f, "-o", str(out), "--key", w.kek, "-q"],
                                     lambda w, s: w.sealed.read_bytes(), _output_is(lambda w: w.plain.read_bytes())),
    ("inspect", "files"): Feed(lambda w, f, out, s: ["inspect", f], lambda w, s: _header_bytes(w)),
    ("rewrap", "file"): Feed(lambda w, f, out, s: ["rewrap", f, "-o", str(out), "--key", w.kek, "--unwrap-key", w.kek,
                                                   "-q", *w.ks()],
                             lambda w, s: w.sealed.read_bytes(), _decrypts_to(lambda w: w.plain.read_bytes())),
    ("keys create", "policy"): Feed(lambda w, f, out, s: ["keys", "create", "--policy", f, *w.ks()], _policy),
    ("keys put-policy", "file"): Feed(lambda w, f, out, s: ["keys", "put-policy", "alias/sym", "--file", f, *w.ks()],
                                      _policy),
    ("keys encrypt", "input"): Feed(lambda w, f, out, s: ["keys", "encrypt", "alias/sym", "--in", f, "-o", str(out),
                                                          *w.ks()],
                                    lambda w, s: w.message.read_bytes(), _kms_decrypts_to(_message)),
    ("keys decrypt", "input"): Feed(lambda w, f, out, s: ["keys", "decrypt", "--in", f, "-o", str(out), *w.ks()],
                                    lambda w, s: w.blob.read_bytes(), _output_is(lambda w: w.message.read_bytes())),
    ("keys re-encrypt", "input"): Feed(lambda w, f, out, s: ["keys", "re-encrypt", "--to", "alias/sym", "--in", f,
                                                             "-o", str(out), *w.ks()],
                                       lambda w, s: w.blob.read_bytes(), _kms_decrypts_to(_message)),
    ("keys sign", "input"): Feed(lambda w, f, out, s: ["keys", "sign", "alias/sign", "--in", f, "--algorithm",
                                                       "ECDSA_SHA_256", "-o", str(out), *w.ks()],
                                 lambda w, s: w.message.read_bytes(), _signature_verifies),
    ("keys verify", "input"): Feed(lambda w, f, out, s: ["keys", "verify", "alias/sign", "--in", f, "--signature",
                                                         str(w.signature), "--algorithm", "ECDSA_SHA_256", *w.ks()],
                                   lambda w, s: w.message.read_bytes()),
    ("keys verify", "signature"): Feed(lambda w, f, out, s: ["keys", "verify", "alias/sign", "--in", str(w.message),
                                                             "--signature", f, "--algorithm", "ECDSA_SHA_256", *w.ks()],
                                       lambda w, s: w.signature.read_bytes()),
    ("keys mac", "input"): Feed(lambda w, f, out, s: ["keys", "mac", "alias/hmac", "--in", f, "--algorithm",
                                                      "HMAC_SHA_256", "-o", str(out), *w.ks()],
                                lambda w, s: w.message.read_bytes(), _output_is(lambda w: w.mac.read_bytes())),
    ("keys verify-mac", "input"): Feed(lambda w, f, out, s: ["keys", "verify-mac", "alias/hmac", "--in", f, "--mac",
                                                             str(w.mac), "--algorithm", "HMAC_SHA_256", *w.ks()],
                                       lambda w, s: w.message.read_bytes()),
    ("keys verify-mac", "mac"): Feed(lambda w, f, out, s: ["keys", "verify-mac", "alias/hmac", "--in", str(w.message),
                                                           "--mac", f, "--algorithm", "HMAC_SHA_256", *w.ks()],
                                     lambda w, s: w.mac.read_bytes()),
    ("keys import-material", "material"): Feed(
        lambda w, f, out, s: ["keys", "import-material", s.alias, "--material", f, "--token", str(s.token), *w.ks()],
        lambda w, s: s.material.read_bytes(), setup=_wrapped_material),
    ("keys import-material", "token"): Feed(
        lambda w, f, out, s: ["keys", "import-material", s.alias, "--token", f, "--material", str(s.material), *w.ks()],
        lambda w, s: s.token.read_bytes(), setup=_wrapped_material),
    ("keys import", "raw_key"): Feed(lambda w, f, out, s: ["keys", "import", str(s), "--raw-key", f, *w.ks()],
                                     lambda w, s: os.urandom(32), setup=_external_key),
    ("s3 cp", "src"): Feed(lambda w, f, out, s: ["s3", "cp", f, f"s3://{s.bucket}/k", "--key", w.kek,
                                                 "--endpoint-url", s.endpoint, "-q"],
                           lambda w, s: w.plain.read_bytes()),
}

#: Inputs no metavar names: a key-encryption key read from a FIFO (``raw-aes:<(cat kek)``).
EXTRA_FEEDS: dict[tuple[str, str], Feed] = {
    ("encrypt-file", "key raw-aes"): Feed(
        lambda w, f, out, s: ["encrypt-file", str(w.plain), "-o", str(out), "--key", f"raw-aes:{f}", "-q"],
        lambda w, s: Path(w.kek.split(":", 1)[1]).read_bytes(), _decrypts_to(lambda w: w.plain.read_bytes())),
}


def test_every_input_option_has_an_invocation() -> None:
    found = commands_with_inputs()
    assert ("encrypt-file", "inputs") in found and ("keys import-material", "token") in found
    missing = found - set(FEEDS)
    assert not missing, f"arguments naming an input file with no entry in FEEDS: {sorted(missing)}"
    assert not set(FEEDS) - found, "FEEDS names arguments the parser no longer has"


class _FifoWriter:
    """Writes *data* into a FIFO on a thread: in one go, or half, a pause, the rest."""

    def __init__(self, path: Path, data: bytes, pause: bool) -> None:
        self.path, self.data, self.pause = path, data, pause
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.thread.start()

    def _write(self) -> None:
        try:
            with open(self.path, "wb", buffering=0) as f:
                half = len(self.data) // 2 if self.pause else len(self.data)
                f.write(self.data[:half])
                if self.pause:
                    time.sleep(PAUSE)
                    f.write(self.data[half:])
        except BaseException as exc:  # BrokenPipeError: the reader went away before the end
            self.error = exc

    def finish(self) -> None:
        self.thread.join(timeout=10)
        if self.thread.is_alive():  # never opened by the command: release the writer
            with open(self.path, "rb") as f:
                f.read()
            self.thread.join(timeout=10)


@pytest.fixture
def s3_target(request: pytest.FixtureRequest) -> SimpleNamespace:
    """The bucket and endpoint for the s3 cp case (its server is started only for that case)."""
    return SimpleNamespace(bucket=request.getfixturevalue("s3").bucket, endpoint=request.getfixturevalue("s3_endpoint"))


def _cases() -> list[object]:
    return [pytest.param(key, feed, id=" ".join(key)) for key, feed in {**FEEDS, **EXTRA_FEEDS}.items()]


@pytest.mark.parametrize(("key", "feed"), _cases())
@pytest.mark.parametrize("pause", [True, False], ids=["pausing-writer", "quick-writer"])
def test_a_fifo_input_is_read_once_to_its_end(world, key, feed, pause, tmp_path, request) -> None:
    out = tmp_path / "w" / "out"
    out.parent.mkdir()
    state = request.getfixturevalue("s3_target") if key == ("s3 cp", "src") else feed.setup(world, out)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = feed.data(world, state)
    writer = _FifoWriter(fifo, data, pause)
    try:
        done = cli(*feed.argv(world, str(fifo), out, state), timeout=30)
    finally:
        writer.finish()
    assert writer.error is None, f"the writer could not deliver everything: {writer.error!r} ({done.stderr!r})"
    feed.check(world, done, out)
    if key == ("s3 cp", "src"):
        back = tmp_path / "back"
        assert cli("s3", "cp", f"s3://{state.bucket}/k", str(back), "--key", world.kek,
                   "--endpoint-url", state.endpoint, "-q").returncode == 0
        assert back.read_bytes() == data


def test_rewrap_refuses_to_rewrite_a_fifo_in_place_of_itself(world, tmp_path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = _FifoWriter(fifo, world.sealed.read_bytes(), pause=False)
    try:
        done = cli("rewrap", str(fifo), "--key", world.kek, "--unwrap-key", world.kek, *world.ks(), timeout=30)
    finally:
        writer.finish()
    assert done.returncode == 2, done.stderr
    assert done.stderr.count(b"\n") == 1 and b"not a regular file" in done.stderr and b"-o" in done.stderr
    assert fifo.is_fifo()


def test_a_range_of_a_fifo_fails_in_one_line_without_hanging(world, tmp_path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = _FifoWriter(fifo, world.sealed.read_bytes(), pause=False)
    try:
        done = cli("decrypt-file", str(fifo), "-o", str(tmp_path / "out"), "--key", world.kek, "--range", "10:20",
                   timeout=30)
    finally:
        writer.finish()
    assert done.returncode != 0
    assert done.stderr.startswith(b"envelope: error: ") and done.stderr.count(b"\n") == 1, done.stderr
    assert b"seek" in done.stderr and not (tmp_path / "out").exists()


# -- a non-blocking stdin: "no data yet" is not the end of the input --------------------------------


def _with_nonblocking_stdin(argv: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    """Run envelope on a stdin pipe whose file description is O_NONBLOCK (shared with the child, as a
    shell's would be), written half, then, once the child has read that half and found the pipe
    empty, a pause and the rest."""
    import fcntl
    import struct
    import sys
    import termios

    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    proc = subprocess.Popen([sys.executable, "-m", "envelope", *argv], stdin=read_end,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with open(write_end, "wb", buffering=0) as w:
            w.write(data[: len(data) // 2])
            deadline = time.monotonic() + 60
            while struct.unpack("i", fcntl.ioctl(read_end, termios.FIONREAD, b"\0" * 4))[0]:
                assert time.monotonic() < deadline, "envelope never read its stdin"
                time.sleep(0.01)
            time.sleep(PAUSE)
            try:
                w.write(data[len(data) // 2:])
            except BrokenPipeError:
                pass  # envelope stopped reading early: its result shows what it made of half an input
        os.close(read_end)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_encrypt_file_waits_for_a_nonblocking_stdin(world, tmp_path) -> None:
    out = tmp_path / "out.envelope"
    done = _with_nonblocking_stdin(["encrypt-file", "-", "-o", str(out), "--key", world.kek, "-q"],
                                   world.plain.read_bytes())
    _decrypts_to(lambda w: w.plain.read_bytes())(world, done, out)


def test_decrypt_file_waits_for_a_nonblocking_stdin(world, tmp_path) -> None:
    out = tmp_path / "out"
    done = _with_nonblocking_stdin(["decrypt-file", "-", "-o", str(out), "--key", world.kek, "-q"],
                                   world.sealed.read_bytes())
    _output_is(lambda w: w.plain.read_bytes())(world, done, out)


def test_decrypt_file_to_stdout_waits_for_a_nonblocking_stdin(world) -> None:
    done = _with_nonblocking_stdin(["decrypt-file", "-", "-o", "-", "--key", world.kek, "-q"],
                                   world.sealed.read_bytes())
    assert done.returncode == 0, done.stderr
    assert done.stdout == world.plain.read_bytes()


def test_keys_encrypt_waits_for_a_nonblocking_stdin(world, tmp_path) -> None:
    out = tmp_path / "blob"
    done = _with_nonblocking_stdin(["keys", "encrypt", "alias/sym", "-o", str(out), *world.ks()],
                                   world.message.read_bytes())
    _kms_decrypts_to(_message)(world, done, out)


def test_a_nonblocking_stdout_is_waited_for_not_an_error(world) -> None:
    """The output side of the same: a full O_NONBLOCK stdout pipe means "later", not failure."""
    import sys

    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    proc = subprocess.Popen([sys.executable, "-m", "envelope", "decrypt-file", str(world.sealed), "-o", "-",
                             "--key", world.kek, "-q"], stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    try:
        time.sleep(PAUSE * 2)  # the pipe (64 KiB) fills up: the 100 KB of plaintext must wait for this reader
        with open(read_end, "rb") as r:
            got = r.read()
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert got == world.plain.read_bytes()


def _nonblocking_pipe_of(data: bytes) -> tuple[io.FileIO, threading.Thread]:
    """A plain FileIO on an O_NONBLOCK pipe, fed a little, a pause, the rest (by a thread to join)."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)

    def feed() -> None:
        with open(write_end, "wb", buffering=0) as w:
            w.write(data[:1000])
            time.sleep(PAUSE)
            w.write(data[1000:])

    feeder = threading.Thread(target=feed)
    feeder.start()
    return io.FileIO(read_end, "rb"), feeder


def test_the_stream_functions_wait_for_a_nonblocking_input(raw_keyring) -> None:
    from envelope.stream import decrypt_stream, encrypt_stream

    data = os.urandom(300_000)
    src, feeder = _nonblocking_pipe_of(data)
    sealed = io.BytesIO()
    with src:
        encrypt_stream(src, sealed, raw_keyring, chunk_size=4096)
    feeder.join()
    src, feeder = _nonblocking_pipe_of(sealed.getvalue())
    plain = io.BytesIO()
    with src:
        decrypt_stream(src, plain, raw_keyring)
    feeder.join()
    assert plain.getvalue() == data

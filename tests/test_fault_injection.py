"""Faults from below: a full disk, read errors, a read-only keystore, KMS and S3 misbehaving.

Each must give one clear error line, a non-zero exit, no partial output, no
thread left running and no multipart upload left open.  The faults are real
kernel or network behaviour, not mocks: a 1 MiB tmpfs in a private mount
namespace (``ENOSPC``), ``RLIMIT_FSIZE`` (``EFBIG``), ``/dev/full``,
``/proc/self/mem`` (``EIO``), a TCP reset on stdin (``ECONNRESET``), a
read-only bind mount (``EROFS``) and an unprivileged user (``EACCES``); KMS
faults come from the gate of tests/kms_gate.py, S3 connection drops from the
proxy of tests/drop_proxy.py.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import resource
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from envelope import api
from envelope.cli.main import EXIT_IO, EXIT_KEY, main as cli_main
from envelope.kms.store import KeyStore
from keyfiles import write_key_file

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux kernel faults")

ENVELOPE = [sys.executable, "-m", "envelope"]


def _cli(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run([*ENVELOPE, *args], capture_output=True, text=True, timeout=120, **kwargs)


def _error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("envelope: error: "), stderr
    return lines[0]


def _only(directory: Path, *names: str) -> None:
    assert sorted(p.name for p in directory.iterdir()) == sorted(names)


class _NoThreadsLeft:
    """Threads envelope started must be gone when its call returns, failed or not (servers' daemons aside)."""

    def __enter__(self) -> None:
        self.before = set(threading.enumerate())

    def __exit__(self, *exc: object) -> None:
        deadline = time.monotonic() + 2
        while True:
            left = [t for t in threading.enumerate() if t not in self.before and t.is_alive()
                    and (not t.daemon or t.name.startswith("envelope"))]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not left, f"threads left running: {[t.name for t in left]}"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("faults")
    plain = root / "plain.bin"
    plain.write_bytes(os.urandom(4 << 20))
    kek = write_key_file(root / "kek", os.urandom(32))
    sealed = root / "sealed.envelope"
    api.encrypt_file(plain, sealed, keys=[f"raw-aes:{kek}"])
    return {"plain": plain, "kek": kek, "sealed": sealed}


def _commands(files: dict[str, Path], out: Path) -> dict[str, list[str]]:
    key = f"raw-aes:{files['kek']}"
    return {
        "encrypt-file": ["encrypt-file", str(files["plain"]), "-o", str(out), "--key", key],
        "decrypt-file": ["decrypt-file", str(files["sealed"]), "-o", str(out), "--key", key],
        "rewrap": ["rewrap", str(files["sealed"]), "-o", str(out), "--key", key, "--unwrap-key", key, "-q"],
    }


# -- a full disk ----------------------------------------------------------------------------------------


def _private_mounts_work() -> str | None:
    """None if this process may mount in a private namespace (root with CAP_SYS_ADMIN), else why not."""
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot mount in a private namespace: {probe.stderr.strip()}"


def _in_private_mount(setup: str, command: list[str], listing: Path) -> tuple[int, str, list[str]]:
    """Run *command* after *setup* mounts, in a mount namespace of its own (gone when it exits): (exit, stderr,
    what *listing* holds afterwards, as seen inside)."""
    script = f"{setup} && {shlex.join(command)}; echo \"exit=$?\" >&2; ls -A {shlex.quote(str(listing))} >&2"
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    lines = done.stderr.splitlines()
    exit_line = next(i for i, line in enumerate(lines) if line.startswith("exit="))
    return int(lines[exit_line][5:]), "\n".join(lines[:exit_line]), lines[exit_line + 1:]


@pytest.mark.parametrize("command", ["encrypt-file", "decrypt-file", "rewrap"])
def test_full_filesystem_gives_one_error_and_no_output(files, tmp_path, command):
    reason = _private_mounts_work()
    if reason:
        pytest.skip(reason)
    small = tmp_path / "small"
    small.mkdir()
    args = _commands(files, small / "out")[command]
    code, stderr, left = _in_private_mount(f"mount -t tmpfs -o size=1m tmpfs {shlex.quote(str(small))}",
                                           [*ENVELOPE, *args], small)
    assert code == EXIT_IO
    assert "No space left on device" in _error_line(stderr) and str(small / "out") in stderr
    assert left == []  # no output, and no temporary holding the space


@pytest.mark.parametrize("command", ["encrypt-file", "decrypt-file", "rewrap"])
def test_file_size_limit_gives_one_error_and_no_output(files, tmp_path, command):
    out = tmp_path / "out"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # Python ignores SIGXFSZ: EFBIG

    done = _cli(*_commands(files, out)[command], preexec_fn=limit)
    assert done.returncode == EXIT_IO
    assert "File too large" in _error_line(done.stderr) and str(out) in done.stderr
    _only(tmp_path)


def test_full_disk_in_process_leaves_no_output_and_no_threads(files, tmp_path):
    out = tmp_path / "out"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    with _NoThreadsLeft():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
        try:
            with pytest.raises(OSError) as caught:
                api.encrypt_file(files["plain"], out, keys=[f"raw-aes:{files['kek']}"])
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert caught.value.filename == str(out)
    _only(tmp_path)


@pytest.mark.parametrize("command", ["encrypt-file", "decrypt-file"])
def test_stdout_on_a_full_device_is_an_error(files, command):
    key = f"raw-aes:{files['kek']}"
    src = files["plain"] if command == "encrypt-file" else files["sealed"]
    with open("/dev/full", "wb") as full:
        done = subprocess.run([*ENVELOPE, command, str(src), "-o", "-", "--key", key], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == EXIT_IO
    assert _error_line(done.stderr) == "envelope: error: No space left on device '<stdout>'"


# -- read errors ----------------------------------------------------------------------------------------


def test_input_read_error_names_the_file_and_leaves_no_output(files, tmp_path):
    out = tmp_path / "out"
    # Offset 0 of a process's memory is never mapped: the kernel answers EIO.
    done = _cli("encrypt-file", "/proc/self/mem", "-o", str(out), "--key", f"raw-aes:{files['kek']}")
    assert done.returncode == EXIT_IO
    assert _error_line(done.stderr) == "envelope: error: Input/output error '/proc/self/mem'"
    _only(tmp_path)
    with _NoThreadsLeft(), pytest.raises(OSError):
        api.encrypt_file("/proc/self/mem", out, keys=[f"raw-aes:{files['kek']}"])
    _only(tmp_path)


def test_connection_reset_on_stdin_mid_stream_leaves_no_output(files, tmp_path):
    out = tmp_path / "out"
    with socket.create_server(("127.0.0.1", 0)) as server:
        sender = socket.create_connection(server.getsockname())
        receiver, _ = server.accept()
    with receiver:
        proc = subprocess.Popen([*ENVELOPE, "encrypt-file", "-", "-o", str(out), "--key", f"raw-aes:{files['kek']}"],
                                stdin=receiver, stderr=subprocess.PIPE, text=True)
    try:
        sender.sendall(os.urandom(1 << 20))
        time.sleep(0.5)  # it is reading
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sender.close()  # RST
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_IO
    assert _error_line(stderr) == "envelope: error: Connection reset by peer '<stdin>'"
    _only(tmp_path)


# -- a read-only keystore ---------------------------------------------------------------------------------


@pytest.fixture
def keystore_with_key(tmp_path) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    keystore = tmp_path / "ks" / "keystore.db"
    with KeyStore(keystore) as store:
        key_id = store.create_key(alias="alias/ro").key_id
    return keystore, key_id


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def _keystore_commands(keystore: Path, files: dict[str, Path], out: Path) -> list[list[str]]:
    return [["keys", "create", "--keystore", str(keystore)], ["keys", "list", "--keystore", str(keystore)],
            ["encrypt-file", str(files["plain"]), "-o", str(out), "--key", "local:alias/ro", "--keystore", str(keystore)]]


def test_keystore_on_a_read_only_mount_gives_one_error(files, tmp_path, keystore_with_key):
    reason = _private_mounts_work()
    if reason:
        pytest.skip(reason)
    keystore, _ = keystore_with_key
    before = _digest(keystore.parent)
    directory = shlex.quote(str(keystore.parent))
    for args in _keystore_commands(keystore, files, tmp_path / "out"):
        code, stderr, _ = _in_private_mount(f"mount --bind {directory} {directory} && "
                                            f"mount -o remount,ro,bind {directory}", [*ENVELOPE, *args], tmp_path)
        assert code == EXIT_KEY, stderr
        line = _error_line(stderr)
        assert str(keystore) in line and "must be writable" in line, line
        assert not (tmp_path / "out").exists()
    assert _digest(keystore.parent) == before


def test_keystore_in_a_directory_it_cannot_write_gives_one_error(files, tmp_path, keystore_with_key):
    keystore, _ = keystore_with_key
    prefix: list[str] = []
    if os.geteuid() == 0:
        # Root passes permission checks only through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH; without them
        # (still uid 0, so the interpreter under /root stays reachable) a 0500 directory is read-only.
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and util-linux's setpriv, to drop CAP_DAC_OVERRIDE, is missing")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    before = _digest(keystore.parent)
    keystore.parent.chmod(0o500)
    try:
        for args in _keystore_commands(keystore, files, tmp_path / "out"):
            done = subprocess.run([*prefix, *ENVELOPE, *args], capture_output=True, text=True, timeout=120)
            assert done.returncode == EXIT_KEY, done.stderr
            line = _error_line(done.stderr)
            assert str(keystore) in line and "must be writable" in line, line
            assert not (tmp_path / "out").exists()
    finally:
        keystore.parent.chmod(0o700)
    assert _digest(keystore.parent) == before


# -- KMS that fails, hangs, throttles or drops ---------------------------------------------------------------


@pytest.fixture
def kms_key(aws_env, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import boto3

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("ENVELOPE_KMS_TIMEOUT", "0.5")
    arn = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    return aws_env, f"aws-kms:{arn}"


@pytest.mark.parametrize(("faults", "expected"), [
    (["AccessDeniedException"], "access denied"),
    (["KMSInternalException"] * 2, "KMSInternalException"),
    (["ThrottlingException"] * 2, "throttling requests; gave up after 2 attempts"),
    (["hang"] * 2, "timeout"),
    (["drop"] * 2, "Connection was closed"),
], ids=["refused", "failing", "throttled", "hanging", "dropped"])
@pytest.mark.parametrize("operation", ["GenerateDataKey", "Decrypt"])
def test_kms_fault_gives_one_error_and_no_output(files, tmp_path, kms_key, capsys, operation, faults, expected):
    gate, key = kms_key
    gate.hang = 2.0
    sealed = tmp_path / "sealed.envelope"
    api.encrypt_file(files["plain"], sealed, keys=[key])
    out = tmp_path / "out"
    command = "encrypt-file" if operation == "GenerateDataKey" else "decrypt-file"
    src = files["plain"] if operation == "GenerateDataKey" else sealed
    gate.inject(operation, *faults)
    capsys.readouterr()
    began = time.monotonic()
    with _NoThreadsLeft():
        code = cli_main([command, str(src), "-o", str(out), "--key", key, "-q"])
    assert code == EXIT_KEY
    line = _error_line(capsys.readouterr().err)
    assert expected.lower() in line.lower() and key.removeprefix("aws-kms:") in line, line
    assert time.monotonic() - began < 10  # a hang costs the configured timeout, not botocore's minute
    _only(tmp_path, "sealed.envelope")


# -- S3 connections that drop mid-part ------------------------------------------------------------------


@pytest.fixture
def s3_behind_proxy(s3_endpoint, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import boto3

    from drop_proxy import serve

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "2",
                        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                        "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
        monkeypatch.setenv(name, value)
    direct = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = f"faults-{os.urandom(4).hex()}"
    direct.create_bucket(Bucket=bucket)
    proxies = serve(s3_endpoint)
    proxy, url = next(proxies)
    try:
        yield direct, bucket, proxy, url
    finally:
        proxies.close()


def test_s3_upload_dropped_mid_part_aborts_the_upload(files, tmp_path, s3_behind_proxy, capsys):
    direct, bucket, proxy, url = s3_behind_proxy
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 << 20))  # two parts
    proxy.cut = lambda line: line.startswith(b"PUT ") and b"partNumber=2" in line
    capsys.readouterr()
    with _NoThreadsLeft():
        code = cli_main(["s3", "cp", str(big), f"s3://{bucket}/obj", "--key", f"raw-aes:{files['kek']}",
                         "--endpoint-url", url, "-q"])
    assert code == EXIT_IO
    line = _error_line(capsys.readouterr().err)
    assert f"s3://{bucket}/obj" in line, line
    assert proxy.cuts >= 2  # retried, then gave up
    assert direct.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert direct.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_s3_download_dropped_mid_body_leaves_no_file(files, tmp_path, s3_behind_proxy, capsys):
    direct, bucket, proxy, url = s3_behind_proxy
    direct.upload_file(str(files["sealed"]), bucket, "sealed")
    out = tmp_path / "dl"
    out.mkdir()
    proxy.cut = lambda line: line.startswith(b"GET ")
    capsys.readouterr()
    with _NoThreadsLeft():
        code = cli_main(["s3", "cp", f"s3://{bucket}/sealed", str(out / "plain"), "--key",
                         f"raw-aes:{files['kek']}", "--endpoint-url", url, "-q"])
    assert code == EXIT_IO
    line = _error_line(capsys.readouterr().err)
    assert f"s3://{bucket}/sealed" in line, line
    assert proxy.cuts >= 1
    _only(out)


class _FailingReader(io.RawIOBase):
    """A source that gives *good* bytes, then EIO, as a disk with a bad sector does."""

    def __init__(self, good: int) -> None:
        self._left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        if self._left <= 0:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        n = min(len(buffer), self._left)
        buffer[:n] = bytes(n)
        self._left -= n
        return n


def test_s3_upload_whose_source_fails_mid_stream_aborts_the_upload(files, s3_behind_proxy):
    from envelope.s3 import EncryptedS3Client

    direct, bucket, _, _ = s3_behind_proxy
    client = EncryptedS3Client(direct, keys=[f"raw-aes:{files['kek']}"])
    with _NoThreadsLeft(), pytest.raises(OSError, match="Input/output error"):
        client.upload_fileobj(_FailingReader(20 << 20), bucket, "obj")  # unknown length: multipart
    assert direct.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert direct.list_objects_v2(Bucket=bucket).get("KeyCount") == 0

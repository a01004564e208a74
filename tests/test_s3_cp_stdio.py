"""``envelope s3 cp`` reads ``-`` as stdin and writes ``-`` as stdout, as ``aws s3 cp`` and ``encrypt-file`` do.

Through real pipes between processes, against moto's S3 server.  Upward, the
length is unknown, so the object goes up as a streamed multipart upload; a file
that happens to be named ``-`` is never read or written.  Downward, each chunk
reaches the pipe only once its tag verified, as with ``decrypt-file -o -``; an
object cut short ends with a non-zero exit status after the verified chunks.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")

from test_cli_s3 import bucket, env  # noqa: E402,F401 - the fixtures of the s3 cp tests

from envelope.cli.main import EXIT_AUTH, EXIT_OK, EXIT_USAGE  # noqa: E402
from envelope.format import TAG_SIZE, chunk_offset, read_header  # noqa: E402
from envelope.s3.metadata import META_SIZE  # noqa: E402

STALE = b"a stale file that happens to be named -"
CHUNK = 256 << 10


def _client(env: dict[str, str]) -> Any:
    import boto3

    from envelope.s3 import EncryptedS3Client

    raw = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    return EncryptedS3Client(raw, keys=[env["KEK"]])


def _envelope(env: dict[str, str], *argv: str) -> list[str]:
    return [sys.executable, "-m", "envelope", "s3", "cp", *argv, "--key", env["KEK"]]


def _piped_in(env: dict[str, str], cwd: Path, data: bytes, *argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``producer | envelope s3 cp ...``: stdin is a pipe from another process, not a file."""
    producer = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    consumer = subprocess.Popen(_envelope(env, *argv), stdin=producer.stdout, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=cwd, env=env)
    assert producer.stdin is not None and producer.stdout is not None
    producer.stdout.close()
    producer.stdin.write(data)
    producer.stdin.close()
    out, err = consumer.communicate(timeout=120)
    producer.wait(timeout=30)
    return subprocess.CompletedProcess(consumer.args, consumer.returncode, out, err)


def _piped_out(env: dict[str, str], cwd: Path, *argv: str) -> tuple[int, bytes, str]:
    """Run ``envelope s3 cp ... | consumer``; return the exit status, what the consumer got, and stderr."""
    proc = subprocess.Popen(_envelope(env, *argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env)
    consumer = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"],
                                stdin=proc.stdout, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    got, _ = consumer.communicate(timeout=120)
    err = proc.stderr.read().decode()
    return proc.wait(timeout=30), got, err


@pytest.mark.parametrize("size", [0, 1000, (9 << 20) + 123], ids=["empty", "small", "several parts"])
def test_stdin_is_uploaded_and_a_file_named_dash_is_left_alone(env: dict[str, str], bucket: str, tmp_path: Path,
                                                              size: int) -> None:
    (tmp_path / "-").write_bytes(STALE)
    data = os.urandom(size)
    done = _piped_in(env, tmp_path, data, "-", f"s3://{bucket}/from-stdin", "-q")
    assert done.returncode == EXIT_OK, done.stderr
    assert _client(env).get_object(Bucket=bucket, Key="from-stdin")["Body"].read() == data
    assert (tmp_path / "-").read_bytes() == STALE


@pytest.mark.parametrize("size", [0, 1000, 3 * CHUNK + 5], ids=["empty", "small", "several chunks"])
def test_an_object_downloads_to_stdout_and_no_file_named_dash_appears(env: dict[str, str], bucket: str,
                                                                     tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    _client(env).put_object(Bucket=bucket, Key="obj", Body=data)
    code, got, err = _piped_out(env, tmp_path, f"s3://{bucket}/obj", "-")
    assert code == EXIT_OK, err
    assert got == data
    assert not (tmp_path / "-").exists()


def test_a_range_goes_to_stdout(env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK + 5)
    _client(env).put_object(Bucket=bucket, Key="obj", Body=data)
    code, got, err = _piped_out(env, tmp_path, f"s3://{bucket}/obj", "-", "--range", "1000:300000")
    assert code == EXIT_OK, err
    assert got == data[1000:300000] and not (tmp_path / "-").exists()


def test_a_cut_object_sends_only_verified_chunks_and_fails(env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK + 5)
    s3 = _client(env)
    s3.put_object(Bucket=bucket, Key="obj", Body=data)
    raw = s3.wrapped_client.get_object(Bucket=bucket, Key="obj")
    blob = raw["Body"].read()
    header_size = read_header(io.BytesIO(blob))[0].size
    metadata = {k: v for k, v in raw["Metadata"].items() if k != META_SIZE}  # whoever cuts it can change that too
    s3.wrapped_client.put_object(Bucket=bucket, Key="obj", Body=blob[: chunk_offset(header_size, CHUNK, 3)],
                                 Metadata=metadata)
    code, got, err = _piped_out(env, tmp_path, f"s3://{bucket}/obj", "-")
    assert code == EXIT_AUTH and "truncated" in err and "Traceback" not in err, err
    assert len(got) % CHUNK == 0 and got == data[: len(got)] and len(got) < len(data)
    code, got, err = _piped_out(env, tmp_path, f"s3://{bucket}/obj", "-", "--range", "0:10")
    assert code == EXIT_AUTH and got == b"", err  # a range is written only once all of it verified


@pytest.mark.parametrize("argv", [
    ["-", "s3://{bucket}/prefix/"],
    ["-", "s3://{bucket}/prefix", "--recursive"],
    ["s3://{bucket}/prefix", "-", "--recursive"],
], ids=["stdin has no name for a prefix", "stdin is not a directory", "stdout is not a directory"])
def test_dash_where_a_name_or_directory_is_needed_is_a_usage_error(env: dict[str, str], bucket: str, tmp_path: Path,
                                                                   argv: list[str]) -> None:
    (tmp_path / "-").write_bytes(STALE)
    _client(env).put_object(Bucket=bucket, Key="prefix/obj", Body=b"x")
    done = subprocess.run(_envelope(env, *(a.format(bucket=bucket) for a in argv)), input=b"data", cwd=tmp_path,
                          env=env, capture_output=True, timeout=120)
    assert done.returncode == EXIT_USAGE and b"Traceback" not in done.stderr, done.stderr
    assert (tmp_path / "-").read_bytes() == STALE


def test_help_says_what_dash_means_and_what_stdout_gets() -> None:
    shown = subprocess.run([sys.executable, "-m", "envelope", "s3", "cp", "--help"], capture_output=True, text=True,
                           timeout=60).stdout
    text = " ".join(shown.split())
    assert "- for stdin" in text and "- for stdout" in text
    assert "exit status" in text and "verified" in text
    assert TAG_SIZE == 16  # the chunk arithmetic above assumes the format's tag


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, 3 * CHUNK + 5])
def test_download_stream_reports_exactly_the_plaintext_it_writes(s3: Any, kek: str, size: int) -> None:
    from envelope.s3 import EncryptedS3Client

    client = EncryptedS3Client(s3, keys=[kek])
    data = os.urandom(size)
    client.put_object(Bucket=s3.bucket, Key="obj", Body=data)
    out, told = io.BytesIO(), []
    client.download_stream(s3.bucket, "obj", out, Callback=told.append)
    assert out.getvalue() == data and sum(told) == size


def test_a_device_destination_is_written_in_place_without_force(env: dict[str, str], bucket: str,
                                                                  tmp_path: Path) -> None:
    """As ``decrypt-file -o DEVICE``: a device is written where it is, never refused or replaced."""
    device = tmp_path / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    _client(env).put_object(Bucket=bucket, Key="obj", Body=os.urandom(3 * CHUNK + 5))
    before = sorted(tmp_path.iterdir())
    done = subprocess.run(_envelope(env, f"s3://{bucket}/obj", str(device)), capture_output=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == EXIT_OK, done.stderr
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert sorted(tmp_path.iterdir()) == before  # nothing left beside it


def test_a_fifo_destination_gets_the_object_in_order(env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    """A FIFO cannot take writes at offsets: the object goes to it in order, each chunk once it verified."""
    data = os.urandom(5 * CHUNK + 7)
    _client(env).put_object(Bucket=bucket, Key="obj", Body=data)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = bytearray()
    reader = threading.Thread(target=lambda: got.extend(fifo.read_bytes()), daemon=True)
    reader.start()
    done = subprocess.run(_envelope(env, f"s3://{bucket}/obj", str(fifo)), capture_output=True, env=env,
                          cwd=tmp_path, timeout=120)
    reader.join(timeout=60)
    assert done.returncode == EXIT_OK, done.stderr
    assert bytes(got) == data
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)

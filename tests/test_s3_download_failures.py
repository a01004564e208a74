"""A download of one GET that goes wrong mid-body refuses and leaves nothing behind.

The body is received straight into the download's buffers (not through
botocore's body), so what botocore's body would have noticed is checked here
on that path: a damaged chunk in the middle or at the end, a body that stops
short of its Content-Length, a body that stalls.  Each must fail, leave the
destination as it was and no temporary beside it, on both engines.  Against
moto's S3 server on 127.0.0.1, through the loopback proxy of tests/drop_proxy.py.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")

from conftest import ENGINES  # noqa: E402
from drop_proxy import DropProxy, serve  # noqa: E402
from envelope.exceptions import AuthenticationError  # noqa: E402
from envelope.format import DEFAULT_CHUNK_SIZE, TAG_SIZE  # noqa: E402
from envelope.s3 import EncryptedS3Client  # noqa: E402

SIZE = 6 << 20  # 24 chunks: several of the download's 1 MiB steps, one GET
CHUNKS = SIZE // DEFAULT_CHUNK_SIZE
BEFORE = b"the file before"


@pytest.fixture
def proxied(s3: Any) -> Iterator[tuple[Any, DropProxy]]:
    """A boto3 client of the test server through the proxy: one attempt, a 1-second read timeout."""
    import boto3
    from botocore.config import Config

    proxies = serve(s3.meta.endpoint_url)
    proxy, url = next(proxies)
    try:
        yield boto3.client("s3", region_name="us-east-1", endpoint_url=url,
                           config=Config(read_timeout=1, retries={"max_attempts": 1})), proxy
    finally:
        proxies.close()


def _stored(s3: Any, kek: str) -> tuple[bytes, bytes]:
    data = os.urandom(SIZE)
    EncryptedS3Client(s3, keys=[kek]).put_object(Bucket=s3.bucket, Key="obj", Body=data)
    return data, s3.get_object(Bucket=s3.bucket, Key="obj")["Body"].read()


def _download(client: Any, bucket: str, kek: str, out: Path) -> None:
    from boto3.s3.transfer import TransferConfig

    EncryptedS3Client(client, keys=[kek]).download_file(bucket, "obj", str(out),
                                                         Config=TransferConfig(multipart_chunksize=SIZE))


def _left_alone(tmp_path: Path) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kek", "out"]  # no temporary left behind
    assert (tmp_path / "out").read_bytes() == BEFORE
    assert not [t.name for t in threading.enumerate() if t.name.startswith("envelope-")]


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("chunk", [CHUNKS // 2, CHUNKS - 1], ids=["middle", "last"])
def test_a_one_get_download_with_a_damaged_chunk_refuses_and_leaves_nothing(
        s3: Any, kek: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine_name: str, chunk: int) -> None:
    monkeypatch.setenv("ENVELOPE_ENGINE", engine_name)
    data, blob = _stored(s3, kek)
    damaged = bytearray(blob)
    damaged[len(blob) - SIZE - CHUNKS * TAG_SIZE + chunk * (DEFAULT_CHUNK_SIZE + TAG_SIZE) + 100] ^= 1
    s3.put_object(Bucket=s3.bucket, Key="obj", Body=bytes(damaged))
    (tmp_path / "out").write_bytes(BEFORE)
    with pytest.raises(AuthenticationError, match=f"chunk {chunk}"):
        _download(s3, s3.bucket, kek, tmp_path / "out")
    _left_alone(tmp_path)
    s3.put_object(Bucket=s3.bucket, Key="obj", Body=blob)  # the same path, undamaged, delivers
    _download(s3, s3.bucket, kek, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("end, error", [("close", "IncompleteReadError"), ("stall", "ReadTimeoutError")])
def test_a_body_cut_short_or_stalled_fails_as_botocores_body_would(
        s3: Any, kek: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proxied: Any, engine_name: str,
        end: str, error: str) -> None:
    # 3 MiB into the body the connection closes in order (no reset), or goes silent: a network
    # failure, reported as botocore's body reports it, not a damaged object; a stall costs the
    # client's read timeout, not a hang.
    import botocore.exceptions

    monkeypatch.setenv("ENVELOPE_ENGINE", engine_name)
    _stored(s3, kek)
    client, proxy = proxied
    proxy.cut, proxy.after, proxy.end = (lambda line: line.startswith(b"GET ")), 3 << 20, end
    (tmp_path / "out").write_bytes(BEFORE)
    began = time.monotonic()
    with pytest.raises(getattr(botocore.exceptions, error)):
        _download(client, s3.bucket, kek, tmp_path / "out")
    assert time.monotonic() - began < 10
    assert proxy.cuts == 1
    _left_alone(tmp_path)

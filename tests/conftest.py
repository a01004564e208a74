"""Shared fixtures: keys in temporary places, never the user's own keystore."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from envelope.engines import get_engine, native_available
from envelope.keyrings.base import MultiKeyring
from envelope.keyrings.raw_aes import RawAesKeyring
from keyfiles import write_key_file

ENGINES = ["python"] + (["native"] if native_available() else [])


@pytest.fixture(autouse=True)
def _isolated_keystore(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own keystore path, so none can touch ~/.local/share."""
    path = tmp_path_factory.mktemp("keystore") / "keystore.db"
    monkeypatch.setenv("ENVELOPE_KEYSTORE", str(path))
    return path


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return get_engine(request.param, threads=2)


@pytest.fixture
def kek_file(tmp_path: Path) -> Path:
    path = tmp_path / "kek.bin"
    write_key_file(path, os.urandom(32))
    return path


@pytest.fixture
def raw_keyring() -> MultiKeyring:
    return MultiKeyring([RawAesKeyring(os.urandom(32))])


AWS_REGION = "eu-west-1"


def _moto():  # type: ignore[no-untyped-def]
    """moto's server on a free port of 127.0.0.1, stopped when the session ends: its endpoint URL."""
    pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    from kms_gate import start_moto

    server, endpoint = start_moto()
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kms_server():  # type: ignore[no-untyped-def]
    """moto's KMS server behind the gate of tests/kms_gate.py: (gate, endpoint URL)."""
    from kms_gate import serve_gate

    moto = _moto()
    try:
        yield from serve_gate(next(moto))
    finally:
        moto.close()  # stops the server now, not whenever the generator is collected


@pytest.fixture(scope="session")
def s3_endpoint():  # type: ignore[no-untyped-def]
    """moto's server for S3 (its own, so S3 traffic never meets the KMS gate): the endpoint URL."""
    yield from _moto()


@pytest.fixture
def aws_env(kms_server, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The environment boto3 reads, pointed at the local server; the gate reset.  Returns the gate."""
    gate, endpoint = kms_server
    gate.reset()
    for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": AWS_REGION,
                        "AWS_DEFAULT_REGION": AWS_REGION, "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_ENDPOINT_URL_KMS", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return gate


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 S3 client of the test server, with a fresh bucket (``s3.bucket``)."""
    import boto3

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                        "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=s3_endpoint)
    bucket = "b" + os.urandom(6).hex()
    client.create_bucket(Bucket=bucket)
    client.bucket = bucket
    return client


@pytest.fixture
def kek(tmp_path: Path) -> str:
    """A raw-aes key reference to a fresh 32-byte key file."""
    path = tmp_path / "kek"
    write_key_file(path, os.urandom(32))
    return f"raw-aes:{path}"


@pytest.fixture
def config() -> Any:
    """A TransferConfig that makes a few MiB go up and come down in parts."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20, max_concurrency=4)

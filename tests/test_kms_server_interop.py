"""Real AWS clients, unchanged, against ``envelope keys serve``: only an endpoint URL points them at it.

The AWS CLI (``awscli`` from PyPI), envelope's own ``aws-kms:`` keyring
through ``AWS_ENDPOINT_URL_KMS``, the AWS Encryption SDK for Python with its
KMS master key provider, and AWS's S3 Encryption Client (with moto's S3 for
the objects).  Every server listens on 127.0.0.1.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("uvicorn")

import kms_server_kit as kit  # noqa: E402

USER = "local:user/app"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with kit.serving(tmp_path_factory.mktemp("interop"), (USER,)) as server:
        yield server


@pytest.fixture(scope="module")
def key_arn(served: kit.Served) -> str:
    return str(served.client(USER).create_key(Description="interop")["KeyMetadata"]["Arn"])


@pytest.fixture
def as_user(served: kit.Served, monkeypatch: pytest.MonkeyPatch) -> kit.Served:
    """This process's environment set for the AWS SDKs to call the server as USER."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in served.env(USER).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    return served


def aws_cli(served: kit.Served, *argv: str) -> str:
    done = subprocess.run([sys.executable, "-m", "awscli", "kms", *argv, "--endpoint-url", served.url,
                           "--output", "text"], env=served.env(USER), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_aws_cli_creates_encrypts_decrypts_and_schedules_deletion(served: kit.Served, tmp_path: Path) -> None:
    pytest.importorskip("awscli")
    key_id = aws_cli(served, "create-key", "--description", "from the cli", "--query", "KeyMetadata.KeyId")
    (tmp_path / "plain").write_bytes(b"cli secret")
    blob = aws_cli(served, "encrypt", "--key-id", key_id, "--plaintext", f"fileb://{tmp_path / 'plain'}",
                   "--encryption-context", "app=cli", "--query", "CiphertextBlob")
    (tmp_path / "blob").write_bytes(base64.b64decode(blob))
    plain = aws_cli(served, "decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'blob'}",
                    "--encryption-context", "app=cli", "--query", "Plaintext")
    assert base64.b64decode(plain) == b"cli secret"
    state = aws_cli(served, "schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "7",
                    "--query", "KeyState")
    assert state == "PendingDeletion"


def test_envelopes_aws_kms_keyring_reaches_it_through_the_endpoint_variable(served: kit.Served, key_arn: str,
                                                                             tmp_path: Path) -> None:
    data = os.urandom(100_000)
    (tmp_path / "plain").write_bytes(data)

    def envelope(*argv: str) -> None:
        done = subprocess.run([sys.executable, "-m", "envelope", *argv], env=served.env(USER), capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr

    envelope("encrypt-file", str(tmp_path / "plain"), "-o", str(tmp_path / "sealed"), "--key", f"aws-kms:{key_arn}",
             "-q")
    envelope("decrypt-file", str(tmp_path / "sealed"), "-o", str(tmp_path / "out"), "--key", f"aws-kms:{key_arn}",
             "-q")
    assert (tmp_path / "out").read_bytes() == data


def test_the_aws_encryption_sdk_encrypts_and_decrypts_with_a_kms_master_key_provider(as_user: kit.Served,
                                                                                      key_arn: str) -> None:
    esdk = pytest.importorskip("aws_encryption_sdk")
    import botocore.session

    client = esdk.EncryptionSDKClient(commitment_policy=esdk.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    provider = esdk.StrictAwsKmsMasterKeyProvider(key_ids=[key_arn], botocore_session=botocore.session.Session())
    ciphertext, _ = client.encrypt(source=b"esdk payload", key_provider=provider,
                                   encryption_context={"tenant": "t1"})
    plaintext, header = client.decrypt(source=ciphertext, key_provider=provider)
    assert plaintext == b"esdk payload"
    assert header.encryption_context["tenant"] == "t1"


def test_the_s3_encryption_client_puts_and_gets_with_this_kms(as_user: kit.Served, key_arn: str,
                                                              s3_endpoint: str) -> None:
    s3ec = pytest.importorskip("s3_encryption")
    from s3_encryption.materials import KmsKeyring

    kms = as_user.client(USER)
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=s3_endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    bucket = "kmsserve" + os.urandom(4).hex()
    s3.create_bucket(Bucket=bucket)
    client = s3ec.S3EncryptionClient(
        wrapped_s3_client=boto3.client("s3", region_name="us-east-1", endpoint_url=s3_endpoint,
                                       aws_access_key_id="testing", aws_secret_access_key="testing"),
        config=s3ec.S3EncryptionClientConfig(keyring=KmsKeyring(kms_client=kms, kms_key_id=key_arn)))
    data = os.urandom(70_000)
    client.put_object(Bucket=bucket, Key="obj", Body=data)
    assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() != data  # stored encrypted
    assert client.get_object(Bucket=bucket, Key="obj")["Body"].read() == data

"""Interop with AWS's Amazon S3 Encryption Client (the PyPI package), both ways, on one moto S3 and one moto KMS.

Objects the package writes (V2 without key commitment, V3 with it) are read by
envelope's GET, download and CLI; objects envelope writes with
``object_format="s3ec-v2"``/``"s3ec-v3"`` are read by the package.  Every
server listens on 127.0.0.1.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")
s3_encryption = pytest.importorskip("s3_encryption")

from boto3.s3.transfer import TransferConfig  # noqa: E402
from s3_encryption import S3EncryptionClient, S3EncryptionClientConfig  # noqa: E402
from s3_encryption.exceptions import S3EncryptionClientError  # noqa: E402
from s3_encryption.materials import KmsKeyring  # noqa: E402
from s3_encryption.materials.materials import AlgorithmSuite, CommitmentPolicy  # noqa: E402

from envelope.cli.main import EXIT_AUTH, EXIT_OK, EXIT_USAGE  # noqa: E402
from envelope.exceptions import (  # noqa: E402
    AuthenticationError,
    ContextMismatchError,
    FormatError,
    KeyringError,
    UsageError,
)
from envelope.s3 import EncryptedS3Client  # noqa: E402
from keyfiles import write_key_file  # noqa: E402

REGION = "eu-west-1"
MIB = 1 << 20
CONTEXT = {"app": "billing"}
SUITES = {"s3ec-v2": (AlgorithmSuite.ALG_AES_256_GCM_IV12_TAG16_NO_KDF, CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT),
          "s3ec-v3": (AlgorithmSuite.ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
                      CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)}


@pytest.fixture
def kms(aws_env: Any, kms_server: Any) -> Any:
    return boto3.client("kms", region_name=REGION, endpoint_url=kms_server[1])


@pytest.fixture
def key_arn(kms: Any) -> str:
    return str(kms.create_key(Description="s3ec interop")["KeyMetadata"]["Arn"])


@pytest.fixture
def s3_factory(aws_env: Any, s3_endpoint: str) -> Any:
    """A new boto3 S3 client each call: the package hooks the client it wraps, so it gets one of its own."""
    return lambda: boto3.client("s3", region_name="us-east-1", endpoint_url=s3_endpoint)


@pytest.fixture
def bucket(s3_factory: Any) -> str:
    name = "s3ec" + os.urandom(5).hex()
    s3_factory().create_bucket(Bucket=name)
    return name


@pytest.fixture
def raw(s3_factory: Any) -> Any:
    return s3_factory()


def aws_client(s3_factory: Any, kms: Any, key_arn: str, fmt: str) -> Any:
    """AWS's client writing *fmt* (V2 needs the policy that allows non-committing objects)."""
    suite, policy = SUITES[fmt]
    config = S3EncryptionClientConfig(keyring=KmsKeyring(kms_client=kms, kms_key_id=key_arn),
                                      encryption_algorithm=suite, commitment_policy=policy)
    return S3EncryptionClient(wrapped_s3_client=s3_factory(), config=config)


def ours(s3_factory: Any, key_arn: str, **options: Any) -> EncryptedS3Client:
    return EncryptedS3Client(s3_factory(), keys=[f"aws-kms:{key_arn}"], context=options.pop("context", CONTEXT),
                             **options)


# -- what AWS's client writes, envelope reads ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["s3ec-v2", "s3ec-v3"])
@pytest.mark.parametrize("size", [0, 1, MIB + 17])
def test_envelope_reads_what_the_aws_client_put(s3_factory: Any, kms: Any, key_arn: str, bucket: str, raw: Any,
                                                fmt: str, size: int) -> None:
    data = os.urandom(size)
    aws_client(s3_factory, kms, key_arn, fmt).put_object(Bucket=bucket, Key="o", Body=data,
                                                         EncryptionContext=CONTEXT, Metadata={"owner": "ops"})
    stored = raw.head_object(Bucket=bucket, Key="o")["Metadata"]
    assert ("x-amz-key-v2" in stored) == (fmt == "s3ec-v2") and ("x-amz-d" in stored) == (fmt == "s3ec-v3")
    client = ours(s3_factory, key_arn)
    got = client.get_object(Bucket=bucket, Key="o")
    assert got["Body"].read() == data
    assert got["ContentLength"] == size and got["Metadata"] == {"owner": "ops"}
    assert got["EnvelopeObjectFormat"] == fmt
    piped = io.BytesIO()
    client.download_stream(bucket, "o", piped)
    assert piped.getvalue() == data
    head = client.head_object(Bucket=bucket, Key="o")
    assert head["ContentLength"] == size and head["EncryptedContentLength"] == size + 16


@pytest.mark.parametrize("fmt", ["s3ec-v2", "s3ec-v3"])
def test_envelope_downloads_a_multipart_upload_of_the_aws_client(s3_factory: Any, kms: Any, key_arn: str, bucket: str,
                                                                 raw: Any, tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(11 * MIB + 5))
    aws_client(s3_factory, kms, key_arn, fmt).upload_file(str(src), bucket, "big", multipart_threshold=5 * MIB,
                                                           multipart_chunksize=5 * MIB, EncryptionContext=CONTEXT)
    assert raw.head_object(Bucket=bucket, Key="big")["ETag"].endswith('-3"')  # three parts
    out = tmp_path / "out"
    client = ours(s3_factory, key_arn)
    client.download_file(bucket, "big", str(out), Config=TransferConfig(multipart_chunksize=4 * MIB))
    assert out.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big", "out"]  # no temporary left beside it
    sink = io.BytesIO()
    client.download_fileobj(bucket, "big", sink)
    assert sink.getvalue() == src.read_bytes()


# -- what envelope writes, AWS's client reads ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["s3ec-v2", "s3ec-v3"])
@pytest.mark.parametrize("size", [0, 1, MIB + 17])
def test_aws_client_reads_what_envelope_put(s3_factory: Any, kms: Any, key_arn: str, bucket: str, raw: Any,
                                            fmt: str, size: int) -> None:
    data = os.urandom(size)
    ours(s3_factory, key_arn, object_format=fmt).put_object(Bucket=bucket, Key="o", Body=data,
                                                            ContentType="text/csv")
    stored = raw.head_object(Bucket=bucket, Key="o")["Metadata"]
    context = json.loads(stored["x-amz-matdesc" if fmt == "s3ec-v2" else "x-amz-t"])
    assert context == {**CONTEXT, "aws:x-amz-cek-alg": "AES/GCM/NoPadding" if fmt == "s3ec-v2" else "115"}
    assert stored.get("x-amz-unencrypted-content-length") == (str(size) if fmt == "s3ec-v2" else None)
    got = aws_client(s3_factory, kms, key_arn, fmt).get_object(Bucket=bucket, Key="o", EncryptionContext=CONTEXT)
    assert got["Body"].read() == data and got["ContentType"] == "text/csv"


@pytest.mark.parametrize("fmt", ["s3ec-v2", "s3ec-v3"])
def test_aws_client_reads_a_parallel_multipart_upload_by_envelope(s3_factory: Any, kms: Any, key_arn: str, bucket: str,
                                                                  raw: Any, tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(16 * MIB + 3))
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=3)
    ours(s3_factory, key_arn, object_format=fmt).upload_file(str(src), bucket, "big", Config=config,
                                                             ExtraArgs={"Metadata": {"owner": "ops"}})
    head = raw.head_object(Bucket=bucket, Key="big")
    assert head["ETag"].endswith('-4"') and head["ContentLength"] == 16 * MIB + 3 + 16
    got = aws_client(s3_factory, kms, key_arn, fmt).get_object(Bucket=bucket, Key="big", EncryptionContext=CONTEXT)
    assert got["Body"].read() == src.read_bytes() and got["Metadata"]["owner"] == "ops"
    assert ours(s3_factory, key_arn).get_object(Bucket=bucket, Key="big")["Body"].read() == src.read_bytes()


class _Pipe:
    """A source with only read(): its length is unknown until its end."""

    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._src.read(n)


def test_a_stream_of_unknown_length_goes_up_in_parts_the_aws_client_reads(s3_factory: Any, kms: Any, key_arn: str,
                                                                          bucket: str, raw: Any) -> None:
    data = os.urandom(6 * MIB + 1)
    ours(s3_factory, key_arn, object_format="s3ec-v2").upload_fileobj(
        _Pipe(data), bucket, "s", Config=TransferConfig(multipart_chunksize=5 * MIB))
    head = raw.head_object(Bucket=bucket, Key="s")
    assert head["ETag"].endswith('-2"') and "x-amz-unencrypted-content-length" not in head["Metadata"]
    got = aws_client(s3_factory, kms, key_arn, "s3ec-v2").get_object(Bucket=bucket, Key="s",
                                                                      EncryptionContext=CONTEXT)
    assert got["Body"].read() == data


def test_aws_client_with_the_wrong_context_refuses_what_envelope_wrote(s3_factory: Any, kms: Any, key_arn: str,
                                                                       bucket: str) -> None:
    ours(s3_factory, key_arn, object_format="s3ec-v3").put_object(Bucket=bucket, Key="o", Body=b"x")
    with pytest.raises(S3EncryptionClientError):
        aws_client(s3_factory, kms, key_arn, "s3ec-v3").get_object(Bucket=bucket, Key="o",
                                                                   EncryptionContext={"app": "other"})


def test_writing_the_aws_format_needs_exactly_one_kms_key(s3_factory: Any, key_arn: str, bucket: str,
                                                          tmp_path: Path) -> None:
    kek = write_key_file(tmp_path / "kek", os.urandom(32))
    raw_key = EncryptedS3Client(s3_factory(), keys=[f"raw-aes:{kek}"], object_format="s3ec-v3")
    with pytest.raises(UsageError, match="exactly one AWS KMS key"):
        raw_key.put_object(Bucket=bucket, Key="o", Body=b"x")
    with pytest.raises(UsageError, match="reserved"):
        ours(s3_factory, key_arn, object_format="s3ec-v2",
             context={"aws:x-amz-cek-alg": "x"}).put_object(Bucket=bucket, Key="o", Body=b"x")
    with pytest.raises(UsageError, match="unknown object format"):
        ours(s3_factory, key_arn, object_format="s3ec-v9")


# -- failures: nothing unauthenticated is released ---------------------------------------------------------


def replace_object(raw: Any, bucket: str, key: str, change: Any) -> None:
    """Rewrite an object in place through the plain client: *change* edits (body, metadata)."""
    got = raw.get_object(Bucket=bucket, Key=key)
    body, metadata = change(bytearray(got["Body"].read()), dict(got["Metadata"]))
    raw.put_object(Bucket=bucket, Key=key, Body=bytes(body), Metadata=metadata)


def flip(body: bytearray, metadata: dict[str, str], at: int) -> tuple[bytearray, dict[str, str]]:
    body[at] ^= 1
    return body, metadata


@pytest.mark.parametrize("fmt", ["s3ec-v2", "s3ec-v3"])
@pytest.mark.parametrize("where", [0, -1])  # first ciphertext byte, last tag byte
def test_a_changed_byte_fails_authentication_and_releases_nothing(s3_factory: Any, kms: Any, key_arn: str, bucket: str,
                                                                  raw: Any, tmp_path: Path, fmt: str,
                                                                  where: int) -> None:
    aws_client(s3_factory, kms, key_arn, fmt).put_object(Bucket=bucket, Key="o", Body=os.urandom(3 * MIB),
                                                         EncryptionContext=CONTEXT)
    replace_object(raw, bucket, "o", lambda b, m: flip(b, m, where))
    client = ours(s3_factory, key_arn)
    with pytest.raises(AuthenticationError, match="AES-GCM tag"):
        client.get_object(Bucket=bucket, Key="o")
    out = tmp_path / "dst"
    out.write_bytes(b"before")
    with pytest.raises(AuthenticationError):
        client.download_file(bucket, "o", str(out))
    assert out.read_bytes() == b"before" and [p.name for p in tmp_path.iterdir()] == ["dst"]
    piped = io.BytesIO()  # a stream cannot be taken back: one GCM tag, so nothing before it verified
    with pytest.raises(AuthenticationError):
        client.download_stream(bucket, "o", piped)
    assert piped.getvalue() == b""


def test_a_changed_key_commitment_is_refused_before_decrypting(s3_factory: Any, kms: Any, key_arn: str, bucket: str,
                                                               raw: Any) -> None:
    aws_client(s3_factory, kms, key_arn, "s3ec-v3").put_object(Bucket=bucket, Key="o", Body=b"secret",
                                                               EncryptionContext=CONTEXT)

    def recommit(body: bytearray, metadata: dict[str, str]) -> tuple[bytearray, dict[str, str]]:
        commitment = bytearray(base64.b64decode(metadata["x-amz-d"]))
        commitment[0] ^= 1
        return body, {**metadata, "x-amz-d": base64.b64encode(bytes(commitment)).decode()}

    replace_object(raw, bucket, "o", recommit)
    with pytest.raises(AuthenticationError, match="key commitment"):
        ours(s3_factory, key_arn).get_object(Bucket=bucket, Key="o")


def test_a_relabelled_context_is_refused_by_kms(s3_factory: Any, kms: Any, key_arn: str, bucket: str,
                                                raw: Any) -> None:
    aws_client(s3_factory, kms, key_arn, "s3ec-v2").put_object(Bucket=bucket, Key="o", Body=b"secret",
                                                               EncryptionContext=CONTEXT)

    def relabel(body: bytearray, metadata: dict[str, str]) -> tuple[bytearray, dict[str, str]]:
        context = {**json.loads(metadata["x-amz-matdesc"]), "app": "payroll"}
        return body, {**metadata, "x-amz-matdesc": json.dumps(context)}

    replace_object(raw, bucket, "o", relabel)
    with pytest.raises(KeyringError, match="InvalidCiphertext"):
        ours(s3_factory, key_arn, context={"app": "payroll"}).get_object(Bucket=bucket, Key="o")


@pytest.mark.parametrize("fmt", ["s3ec-v2", "s3ec-v3"])
def test_a_required_context_pair_the_object_lacks_is_a_mismatch(s3_factory: Any, kms: Any, key_arn: str, bucket: str,
                                                                 fmt: str) -> None:
    aws_client(s3_factory, kms, key_arn, fmt).put_object(Bucket=bucket, Key="o", Body=b"x", EncryptionContext=CONTEXT)
    for context in ({"app": "payroll"}, {"app": "billing", "team": "ops"}):
        with pytest.raises(ContextMismatchError):
            ours(s3_factory, key_arn, context=context).get_object(Bucket=bucket, Key="o")
    assert ours(s3_factory, key_arn, context={}).get_object(Bucket=bucket, Key="o")["Body"].read() == b"x"


def test_another_kms_key_cannot_open_it(s3_factory: Any, kms: Any, key_arn: str, bucket: str) -> None:
    aws_client(s3_factory, kms, key_arn, "s3ec-v3").put_object(Bucket=bucket, Key="o", Body=b"x",
                                                               EncryptionContext=CONTEXT)
    other = str(kms.create_key(Description="other")["KeyMetadata"]["Arn"])
    with pytest.raises(KeyringError):
        ours(s3_factory, other).get_object(Bucket=bucket, Key="o")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("x-amz-wrap-alg", "AES/GCM", "wrapping"),
    ("x-amz-cek-alg", "AES/CBC/PKCS5Padding", "not supported"),
    ("x-amz-iv", "AAAA", "x-amz-iv has 3 bytes"),
    ("x-amz-iv", "not base64!", "not base64"),
    ("x-amz-matdesc", "[1]", "JSON object"),
    ("x-amz-key", "AAAA", "several format versions"),
    ("x-amz-unencrypted-content-length", "5", "says 5 bytes of plaintext"),
])
def test_unsupported_or_malformed_metadata_is_a_format_error(s3_factory: Any, kms: Any, key_arn: str, bucket: str,
                                                             raw: Any, name: str, value: str, message: str) -> None:
    aws_client(s3_factory, kms, key_arn, "s3ec-v2").put_object(Bucket=bucket, Key="o", Body=b"x",
                                                               EncryptionContext=CONTEXT)
    replace_object(raw, bucket, "o", lambda b, m: (b, {**m, name: value}))
    with pytest.raises(FormatError, match=message):
        ours(s3_factory, key_arn).get_object(Bucket=bucket, Key="o")


def test_a_key_that_is_not_aws_kms_is_told_what_opens_it(s3_factory: Any, kms: Any, key_arn: str, bucket: str,
                                                        tmp_path: Path) -> None:
    aws_client(s3_factory, kms, key_arn, "s3ec-v3").put_object(Bucket=bucket, Key="o", Body=b"x")
    kek = write_key_file(tmp_path / "kek", os.urandom(32))
    with pytest.raises(UsageError, match="open it with aws-kms:ARN"):
        EncryptedS3Client(s3_factory(), keys=[f"raw-aes:{kek}"]).get_object(Bucket=bucket, Key="o")


# -- ranges: refused, or explicitly unauthenticated -------------------------------------------------------


@pytest.mark.parametrize("fmt", ["s3ec-v2", "s3ec-v3"])
def test_a_range_is_refused_unless_the_legacy_mode_is_named(s3_factory: Any, kms: Any, key_arn: str, bucket: str,
                                                            fmt: str) -> None:
    data = os.urandom(100_003)
    aws_client(s3_factory, kms, key_arn, fmt).put_object(Bucket=bucket, Key="o", Body=data, EncryptionContext=CONTEXT)
    with pytest.raises(UsageError, match="legacy_unauthenticated_ranges"):
        ours(s3_factory, key_arn).get_object(Bucket=bucket, Key="o", Range="bytes=0-9")
    legacy = ours(s3_factory, key_arn, legacy_unauthenticated_ranges=True)
    for text, first, last in [("bytes=0-0", 0, 0), ("bytes=15-16", 15, 16), ("bytes=33-70000", 33, 70000),
                              ("bytes=-5", len(data) - 5, len(data) - 1), ("bytes=99990-", 99990, len(data) - 1),
                              ("bytes=100000-200000", 100000, len(data) - 1)]:
        got = legacy.get_object(Bucket=bucket, Key="o", Range=text)
        assert got["Body"].read() == data[first:last + 1], text
        assert got["ContentRange"] == f"bytes {first}-{last}/{len(data)}" and got["EnvelopeUnauthenticated"]


# -- copies and instruction files --------------------------------------------------------------------------


def test_a_copy_with_replaced_metadata_stays_readable(s3_factory: Any, kms: Any, key_arn: str, bucket: str) -> None:
    aws_client(s3_factory, kms, key_arn, "s3ec-v3").put_object(Bucket=bucket, Key="o", Body=b"abc",
                                                               EncryptionContext=CONTEXT)
    client = ours(s3_factory, key_arn)
    client.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "o"},
                       MetadataDirective="REPLACE", Metadata={"owner": "ops"})
    got = client.get_object(Bucket=bucket, Key="c")
    assert got["Body"].read() == b"abc" and got["Metadata"] == {"owner": "ops"}


def test_a_v3_object_with_an_instruction_file_is_read(s3_factory: Any, kms: Any, key_arn: str, bucket: str,
                                                       raw: Any) -> None:
    aws_client(s3_factory, kms, key_arn, "s3ec-v3").put_object(Bucket=bucket, Key="o", Body=b"instructed",
                                                               EncryptionContext=CONTEXT)
    moved = ("x-amz-3", "x-amz-w", "x-amz-t")

    def split(body: bytearray, metadata: dict[str, str]) -> tuple[bytearray, dict[str, str]]:
        raw.put_object(Bucket=bucket, Key="o.instruction", Body=json.dumps({k: metadata[k] for k in moved}).encode())
        return body, {k: v for k, v in metadata.items() if k not in moved}

    replace_object(raw, bucket, "o", split)
    expected = aws_client(s3_factory, kms, key_arn, "s3ec-v3").get_object(Bucket=bucket, Key="o",
                                                                           EncryptionContext=CONTEXT)
    assert expected["Body"].read() == b"instructed"  # AWS's client reads the same layout
    assert ours(s3_factory, key_arn).get_object(Bucket=bucket, Key="o")["Body"].read() == b"instructed"
    raw.put_object(Bucket=bucket, Key="o.instruction", Body=b'{"x-amz-d": "AAAA"}')
    with pytest.raises(FormatError, match="must not"):
        ours(s3_factory, key_arn).get_object(Bucket=bucket, Key="o")


# -- the command line ----------------------------------------------------------------------------------------


def cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "envelope", *argv], env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_copies_both_ways_in_the_aws_format(s3_factory: Any, kms: Any, key_arn: str, bucket: str,
                                               kms_server: Any, s3_endpoint: str, tmp_path: Path) -> None:
    env = dict(os.environ, AWS_ENDPOINT_URL_S3=s3_endpoint, AWS_ENDPOINT_URL_KMS=kms_server[1])
    key = f"aws-kms:{key_arn}"
    src = tmp_path / "report.csv"
    src.write_bytes(os.urandom(200_001))
    up = cli(env, "s3", "cp", str(src), f"s3://{bucket}/r", "--key", key, "--context", "app=billing",
             "--format", "s3ec-v3")
    assert up.returncode == EXIT_OK, up.stderr
    got = aws_client(s3_factory, kms, key_arn, "s3ec-v3").get_object(Bucket=bucket, Key="r", EncryptionContext=CONTEXT)
    assert got["Body"].read() == src.read_bytes()

    aws_client(s3_factory, kms, key_arn, "s3ec-v2").put_object(Bucket=bucket, Key="w", Body=src.read_bytes(),
                                                               EncryptionContext=CONTEXT)
    out = tmp_path / "back.csv"
    down = cli(env, "s3", "cp", f"s3://{bucket}/w", str(out), "--key", key, "--context", "app=billing")
    assert down.returncode == EXIT_OK, down.stderr
    assert out.read_bytes() == src.read_bytes()
    part = tmp_path / "part"
    refused = cli(env, "s3", "cp", f"s3://{bucket}/w", str(part), "--key", key, "--range", "10:20")
    assert refused.returncode == EXIT_USAGE and "--legacy-unauthenticated-range" in refused.stderr
    assert not part.exists()
    legacy = cli(env, "s3", "cp", f"s3://{bucket}/w", str(part), "--key", key, "--range", "10:20",
                 "--legacy-unauthenticated-range")
    assert legacy.returncode == EXIT_OK, legacy.stderr
    assert part.read_bytes() == src.read_bytes()[10:20]


def test_cli_download_of_a_tampered_object_exits_with_the_authentication_code(s3_factory: Any, kms: Any, key_arn: str,
                                                                             bucket: str, raw: Any, kms_server: Any,
                                                                             s3_endpoint: str, tmp_path: Path) -> None:
    env = dict(os.environ, AWS_ENDPOINT_URL_S3=s3_endpoint, AWS_ENDPOINT_URL_KMS=kms_server[1])
    aws_client(s3_factory, kms, key_arn, "s3ec-v3").put_object(Bucket=bucket, Key="t", Body=os.urandom(5000))
    replace_object(raw, bucket, "t", lambda b, m: flip(b, m, 100))
    out = tmp_path / "out"
    done = cli(env, "s3", "cp", f"s3://{bucket}/t", str(out), "--key", f"aws-kms:{key_arn}")
    assert done.returncode == EXIT_AUTH and "Traceback" not in done.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_inspect_describes_an_aws_object_without_a_key(s3_factory: Any, kms: Any, key_arn: str, bucket: str,
                                                          s3_endpoint: str) -> None:
    env = dict(os.environ, AWS_ENDPOINT_URL_S3=s3_endpoint)
    aws_client(s3_factory, kms, key_arn, "s3ec-v3").put_object(Bucket=bucket, Key="i", Body=b"12345",
                                                               EncryptionContext=CONTEXT)
    shown = cli(env, "s3", "inspect", f"s3://{bucket}/i", "--json")
    assert shown.returncode == EXIT_OK, shown.stderr
    assert json.loads(shown.stdout) == {"format": "s3ec-v3", "key_commitment": True, "encryption_context": CONTEXT,
                                        "metadata_in_instruction_file": False, "plaintext_size": 5,
                                        "stored_size": 21}
    text = cli(env, "s3", "inspect", f"s3://{bucket}/i")
    assert "app=billing" in text.stdout and "key commitment:" in text.stdout

"""Repeated ranged GETs reuse an object's opened header; transfers report progress byte by byte.

Against moto's S3 server on 127.0.0.1; KMS calls are counted by the loopback
gate in front of moto's KMS (tests/kms_gate.py).
"""

from __future__ import annotations

import io
import os
from typing import Any

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")

from envelope.format import DEFAULT_CHUNK_SIZE, TAG_SIZE, plaintext_before  # noqa: E402
from envelope.s3 import EncryptedS3Client  # noqa: E402
from envelope.s3.header_cache import HeaderCache  # noqa: E402

SIZE = 3 << 20


@pytest.fixture
def kms_key(aws_env: Any) -> str:
    import boto3

    return f"aws-kms:{boto3.client('kms').create_key()['KeyMetadata']['Arn']}"


@pytest.fixture
def stored(s3: Any, kms_key: str) -> bytes:
    data = os.urandom(SIZE)
    EncryptedS3Client(s3, keys=[kms_key]).put_object(Bucket=s3.bucket, Key="big", Body=data)
    return data


def _range(client: EncryptedS3Client, bucket: str, start: int, n: int = 4096) -> dict[str, Any]:
    return client.get_object(Bucket=bucket, Key="big", Range=f"bytes={start}-{start + n - 1}")


# -- the header cache ------------------------------------------------------------------------------------


def test_a_repeated_ranged_get_is_one_request_and_no_kms_call(s3: Any, kms_key: str, stored: bytes,
                                                              aws_env: Any) -> None:
    client = EncryptedS3Client(s3, keys=[kms_key])
    aws_env.reset()
    first = _range(client, s3.bucket, SIZE // 2)
    again = _range(client, s3.bucket, SIZE // 2 + 300_000)
    assert first["Body"].read() == stored[SIZE // 2:SIZE // 2 + 4096]
    assert again["Body"].read() == stored[SIZE // 2 + 300_000:SIZE // 2 + 304_096]
    assert len(aws_env.operations("Decrypt")) == 1
    assert first["EnvelopeRequests"] == 3  # the first window (header, length, ETag), the final chunk, the chunk
    assert again["EnvelopeRequests"] == 1
    assert again["EnvelopeBytesFetched"] == DEFAULT_CHUNK_SIZE + TAG_SIZE  # just the chunk holding the range


def test_a_range_near_the_start_of_a_new_object_is_the_first_window_and_the_final_chunk(
        s3: Any, kms_key: str, stored: bytes) -> None:
    got = _range(EncryptedS3Client(s3, keys=[kms_key]), s3.bucket, 100, 1000)
    assert got["Body"].read() == stored[100:1100] and got["EnvelopeRequests"] == 2


def test_without_the_cache_every_ranged_get_asks_kms(s3: Any, kms_key: str, stored: bytes, aws_env: Any) -> None:
    client = EncryptedS3Client(s3, keys=[kms_key], header_cache=0)
    aws_env.reset()
    for _ in range(2):
        assert _range(client, s3.bucket, 1 << 20)["Body"].read() == stored[1 << 20:(1 << 20) + 4096]
    assert len(aws_env.operations("Decrypt")) == 2


def test_a_replaced_object_is_opened_afresh_not_read_with_the_old_key(s3: Any, kms_key: str, stored: bytes,
                                                                       aws_env: Any) -> None:
    client = EncryptedS3Client(s3, keys=[kms_key])
    assert _range(client, s3.bucket, 1 << 20)["Body"].read() == stored[1 << 20:(1 << 20) + 4096]
    replacement = os.urandom(SIZE)
    client.put_object(Bucket=s3.bucket, Key="big", Body=replacement)  # a new data key, a new ETag
    aws_env.reset()
    got = _range(client, s3.bucket, 1 << 20)
    assert got["Body"].read() == replacement[1 << 20:(1 << 20) + 4096]
    assert len(aws_env.operations("Decrypt")) == 1


def test_a_cached_data_key_is_zeroed_when_its_entry_leaves(s3: Any, kms_key: str, stored: bytes) -> None:
    now = [0.0]
    client = EncryptedS3Client(s3, keys=[kms_key])
    client._headers = cache = HeaderCache(entries=1, max_age=60, clock=lambda: now[0])
    _range(client, s3.bucket, 0)
    entry, _ = cache.open((s3.bucket, "big", None), None) or pytest.fail("not cached")
    assert any(entry.data_key)
    client.put_object(Bucket=s3.bucket, Key="other", Body=b"x" * 5000)
    client.get_object(Bucket=s3.bucket, Key="other", Range="bytes=0-9")  # evicts the first: one entry at most
    assert len(cache) == 1 and not any(entry.data_key)
    second, _ = cache.open((s3.bucket, "other", None), None) or pytest.fail("not cached")
    now[0] = 61.0
    assert cache.open((s3.bucket, "other", None), None) is None and not any(second.data_key)  # expired


# -- progress --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, DEFAULT_CHUNK_SIZE - 1, DEFAULT_CHUNK_SIZE, 3 * DEFAULT_CHUNK_SIZE + 7])
@pytest.mark.parametrize("known", [True, False])
def test_plaintext_progress_adds_up_to_the_size_however_the_stream_is_cut(size: int, known: bool) -> None:
    header, sealed = 300, DEFAULT_CHUNK_SIZE + TAG_SIZE
    total = header + max(1, -(-size // DEFAULT_CHUNK_SIZE)) * TAG_SIZE + size
    cuts = sorted({0, total, *range(0, total, 4099), *range(header, total, sealed)})
    cap = size if known else None
    told = [plaintext_before(header, DEFAULT_CHUNK_SIZE, b, cap) - plaintext_before(header, DEFAULT_CHUNK_SIZE, a, cap)
            for a, b in zip(cuts, cuts[1:])]
    assert min(told, default=0) >= 0
    assert sum(told) == size or (not known and 0 < sum(told) - size <= TAG_SIZE)


def test_upload_and_download_report_every_byte_as_it_moves(s3: Any, kek: str, config: Any, tmp_path: Any) -> None:
    client = EncryptedS3Client(s3, keys=[kek])
    src = tmp_path / "in"
    src.write_bytes(os.urandom((12 << 20) + 12345))
    up: list[int] = []
    client.upload_file(str(src), s3.bucket, "obj", Config=config, Callback=up.append)
    assert sum(up) == src.stat().st_size and len(up) == 3  # one call per part, as each is acknowledged
    down: list[int] = []
    client.download_file(s3.bucket, "obj", str(tmp_path / "out"), Config=config, Callback=down.append)
    assert sum(down) == src.stat().st_size and len(down) > 3  # per block of each ranged GET
    assert (tmp_path / "out").read_bytes() == src.read_bytes()


def test_a_stream_of_unknown_length_reports_exactly_its_length(s3: Any, kek: str, config: Any) -> None:
    data = os.urandom((11 << 20) + 5)

    class Pipe(io.RawIOBase):  # not seekable: its length is known only at its end
        def __init__(self) -> None:
            self._src = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            return self._src.readinto(buffer)

    told: list[int] = []
    EncryptedS3Client(s3, keys=[kek]).upload_fileobj(Pipe(), s3.bucket, "piped", Config=config, Callback=told.append)
    assert sum(told) == len(data)


def test_a_small_upload_reports_its_size_once(s3: Any, kek: str, tmp_path: Any) -> None:
    src = tmp_path / "small"
    src.write_bytes(b"hello")
    told: list[int] = []
    EncryptedS3Client(s3, keys=[kek]).upload_file(str(src), s3.bucket, "small", Callback=told.append)
    assert told == [5]


def test_parts_carry_crc32_checksums_as_boto3s_transfers_do(s3: Any, kek: str, config: Any, tmp_path: Any) -> None:
    """S3 checks every part and keeps a checksum of the object, exactly as for boto3's own upload_file."""
    src = tmp_path / "in"
    src.write_bytes(os.urandom(11 << 20))
    s3.upload_file(str(src), s3.bucket, "plain", Config=config)
    EncryptedS3Client(s3, keys=[kek]).upload_file(str(src), s3.bucket, "sealed", Config=config)
    plain = s3.head_object(Bucket=s3.bucket, Key="plain", ChecksumMode="ENABLED")
    sealed = s3.head_object(Bucket=s3.bucket, Key="sealed", ChecksumMode="ENABLED")
    assert "ChecksumCRC32" in plain
    assert "ChecksumCRC32" in sealed and sealed.get("ChecksumType") == plain.get("ChecksumType")


def test_a_download_within_one_part_is_one_get_and_no_head(s3: Any, kek: str, tmp_path: Any) -> None:
    """The first GET brings the header, the length, the ETag and the chunks: no request boto3 would not make."""
    from boto3.s3.transfer import TransferConfig

    data = os.urandom(3 << 20)
    client = EncryptedS3Client(s3, keys=[kek])
    client.put_object(Bucket=s3.bucket, Key="obj", Body=data)
    calls: list[str] = []
    s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    client.download_file(s3.bucket, "obj", str(tmp_path / "out"), Config=TransferConfig(multipart_chunksize=8 << 20))
    assert (tmp_path / "out").read_bytes() == data
    assert calls == ["GetObject"]

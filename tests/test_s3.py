"""EncryptedS3Client against a real S3 server: moto's, on 127.0.0.1, through boto3."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")

from botocore.exceptions import ClientError  # noqa: E402

from envelope.exceptions import AuthenticationError, EnvelopeError, FormatError, KeyNotFoundError  # noqa: E402
from envelope.s3 import EncryptedS3Client  # noqa: E402
from keyfiles import write_key_file  # noqa: E402

CHUNK = 64 << 10


@pytest.fixture
def enc(s3: Any, kek: str) -> EncryptedS3Client:
    return EncryptedS3Client(s3, keys=[kek], context={"app": "backups"}, chunk_size=CHUNK)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_put_and_get_round_trip_at_chunk_edges(s3: Any, enc: EncryptedS3Client, size: int) -> None:
    data = os.urandom(size)
    enc.put_object(Bucket=s3.bucket, Key="obj", Body=data, ContentType="application/x-tar",
                   Metadata={"owner": "ops"})
    got = enc.get_object(Bucket=s3.bucket, Key="obj")
    assert got["Body"].read() == data
    assert got["ContentLength"] == size and got["Metadata"] == {"owner": "ops"}
    assert got["ContentType"] == "application/x-tar"
    head = enc.head_object(Bucket=s3.bucket, Key="obj")
    assert head["ContentLength"] == size and head["EncryptedContentLength"] > size


def test_the_stored_object_is_an_envelope_file_and_not_the_plaintext(s3: Any, enc: EncryptedS3Client) -> None:
    data = b"payroll " * 10_000
    enc.put_object(Bucket=s3.bucket, Key="p", Body=data)
    raw = s3.get_object(Bucket=s3.bucket, Key="p")
    stored = raw["Body"].read()
    assert stored[:4] != data[:4] and b"payroll" not in stored
    assert raw["Metadata"]["envelope"] == "1" and raw["Metadata"]["envelope-plaintext-size"] == str(len(data))
    assert raw["Metadata"]["envelope-chunk-size"] == str(CHUNK)


def test_a_file_like_body_is_read_in_a_stream(s3: Any, enc: EncryptedS3Client, tmp_path: Any) -> None:
    path = tmp_path / "dump"
    path.write_bytes(os.urandom(5 * CHUNK + 123))
    with open(path, "rb") as fh:
        enc.put_object(Bucket=s3.bucket, Key="dump", Body=fh)
    assert enc.get_object(Bucket=s3.bucket, Key="dump")["Body"].read() == path.read_bytes()


@pytest.mark.parametrize("method", ["readinto", "read"])
def test_a_non_blocking_body_is_waited_for_not_taken_as_ended(s3: Any, enc: EncryptedS3Client,
                                                              method: str) -> None:
    """A pipe left O_NONBLOCK answers "nothing yet" (None) while its writer pauses: that is never the end."""
    import fcntl
    import threading
    import time

    data = os.urandom(3 * CHUNK + 9)
    r, w = os.pipe()
    fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_NONBLOCK)

    def writer() -> None:
        os.write(w, data[:1000])
        time.sleep(0.3)
        with open(w, "wb", closefd=True) as out:
            out.write(data[1000:])

    class ReadOnly:  # a body with read() only, as many file-likes are
        def __init__(self, raw: Any) -> None:
            self.raw = raw

        def read(self, n: int = -1) -> Any:
            return self.raw.read(n)

        def fileno(self) -> int:
            return int(self.raw.fileno())

    thread = threading.Thread(target=writer)
    with open(r, "rb", buffering=0) as raw:
        thread.start()
        enc.put_object(Bucket=s3.bucket, Key="nb", Body=raw if method == "readinto" else ReadOnly(raw))
    thread.join()
    assert enc.get_object(Bucket=s3.bucket, Key="nb")["Body"].read() == data


SIZE = 10 * CHUNK + 777


@pytest.fixture
def stored(s3: Any, enc: EncryptedS3Client) -> bytes:
    data = os.urandom(SIZE)
    enc.put_object(Bucket=s3.bucket, Key="big", Body=data)
    return data


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-0", 0, 0),
    ("bytes=10-4105", 10, 4105),                              # inside the first chunk
    (f"bytes={CHUNK - 2}-{CHUNK + 1}", CHUNK - 2, CHUNK + 1),  # across a chunk boundary
    (f"bytes={CHUNK}-{2 * CHUNK - 1}", CHUNK, 2 * CHUNK - 1),  # exactly one chunk
    (f"bytes={SIZE - 100}-", SIZE - 100, SIZE - 1),           # open range
    ("bytes=-100", SIZE - 100, SIZE - 1),                     # suffix range
    (f"bytes=-{SIZE + 50}", 0, SIZE - 1),                     # suffix longer than the object
    (f"bytes={SIZE - 5}-{SIZE + 500}", SIZE - 5, SIZE - 1),   # past the end: shortened, as S3 does
])
def test_ranged_gets_return_exactly_the_bytes_asked_for(s3: Any, enc: EncryptedS3Client, stored: bytes,
                                                        header: str, first: int, last: int) -> None:
    got = enc.get_object(Bucket=s3.bucket, Key="big", Range=header)
    assert got["Body"].read() == stored[first:last + 1]
    assert got["ContentRange"] == f"bytes {first}-{last}/{SIZE}" and got["ContentLength"] == last - first + 1


def test_a_small_range_fetches_the_first_window_the_final_chunk_and_its_chunk_then_only_the_chunk(
        s3: Any, enc: EncryptedS3Client, stored: bytes) -> None:
    from envelope.s3.client import FIRST_WINDOW

    final = SIZE % CHUNK + 16  # the final chunk, opened when the object is, proves its length
    for fetched in (FIRST_WINDOW + final + CHUNK + 16, CHUNK + 16):  # the second time, the header is cached
        got = enc.get_object(Bucket=s3.bucket, Key="big", Range=f"bytes={5 * CHUNK + 100}-{5 * CHUNK + 4195}")
        assert got["Body"].read() == stored[5 * CHUNK + 100:5 * CHUNK + 4196]
        assert got["EnvelopeBytesFetched"] == fetched


def test_a_range_that_starts_past_the_end_is_s3s_416(s3: Any, enc: EncryptedS3Client, stored: bytes) -> None:
    with pytest.raises(ClientError) as info:
        enc.get_object(Bucket=s3.bucket, Key="big", Range=f"bytes={SIZE}-")
    assert info.value.response["Error"]["Code"] == "InvalidRange"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def _chunk_twice(blob: bytearray, index: int) -> bytes:
    from envelope.format import read_header

    at = read_header(io.BytesIO(bytes(blob)))[0].size + index * (CHUNK + 16)
    return bytes(blob[:at + CHUNK + 16] + blob[at:])


def tamper(s3: Any, key: str, change: Any) -> None:
    raw = s3.get_object(Bucket=s3.bucket, Key=key)
    s3.put_object(Bucket=s3.bucket, Key=key, Body=change(bytearray(raw["Body"].read())), Metadata=raw["Metadata"])


def test_a_flipped_byte_in_the_stored_object_fails_authentication(s3: Any, enc: EncryptedS3Client,
                                                                  stored: bytes) -> None:
    def flip(blob: bytearray) -> bytes:
        blob[-5] ^= 1  # in the last chunk's tag
        return bytes(blob)

    tamper(s3, "big", flip)
    with pytest.raises(AuthenticationError):
        enc.get_object(Bucket=s3.bucket, Key="big")
    for text in ("bytes=-10", "bytes=0-99"):  # a bad final chunk leaves the length unproven: no range is served
        with pytest.raises(AuthenticationError):
            enc.get_object(Bucket=s3.bucket, Key="big", Range=text)


def test_a_truncated_object_fails(s3: Any, enc: EncryptedS3Client, stored: bytes) -> None:
    tamper(s3, "big", lambda blob: bytes(blob[:-(CHUNK + 16)]))  # one whole chunk gone
    with pytest.raises((AuthenticationError, FormatError)):
        enc.get_object(Bucket=s3.bucket, Key="big")
    with pytest.raises(EnvelopeError):
        enc.get_object(Bucket=s3.bucket, Key="big", Range="bytes=-10")


def test_the_wrong_key_or_context_cannot_read(s3: Any, enc: EncryptedS3Client, stored: bytes, tmp_path: Any) -> None:
    other = tmp_path / "other"
    write_key_file(other, os.urandom(32))
    with pytest.raises(KeyNotFoundError):
        EncryptedS3Client(s3, keys=[f"raw-aes:{other}"]).get_object(Bucket=s3.bucket, Key="big")
    with pytest.raises(EnvelopeError, match="app"):
        EncryptedS3Client(s3, keys=enc._decrypting.keyrings, context={"app": "other"}) \
            .get_object(Bucket=s3.bucket, Key="big")


def test_plain_objects_are_refused_and_other_methods_pass_through(s3: Any, enc: EncryptedS3Client) -> None:
    s3.put_object(Bucket=s3.bucket, Key="plain.txt", Body=b"not encrypted")
    with pytest.raises(FormatError, match="not an envelope object"):
        enc.head_object(Bucket=s3.bucket, Key="plain.txt")
    with pytest.raises(FormatError, match="not an envelope object"):
        enc.get_object(Bucket=s3.bucket, Key="plain.txt", Range="bytes=0-1")
    names = [o["Key"] for o in enc.list_objects_v2(Bucket=s3.bucket)["Contents"]]
    assert names == ["plain.txt"]
    enc.delete_object(Bucket=s3.bucket, Key="plain.txt")
    assert enc.list_objects_v2(Bucket=s3.bucket)["KeyCount"] == 0


# -- transfers ---------------------------------------------------------------------------------------------


def test_a_large_file_goes_up_in_parts_and_comes_back_whole(s3: Any, enc: EncryptedS3Client, config: Any,
                                                            tmp_path: Any) -> None:
    src = tmp_path / "db.dump"
    src.write_bytes(os.urandom(13 << 20))
    enc.upload_file(str(src), s3.bucket, "db.dump", ExtraArgs={"Metadata": {"db": "prod"}}, Config=config)
    head = enc.head_object(Bucket=s3.bucket, Key="db.dump")
    assert head["ETag"].strip('"').endswith("-3")  # three parts: whole chunks, 5 MiB and up
    assert head["ContentLength"] == 13 << 20 and head["Metadata"] == {"db": "prod"}
    out = tmp_path / "restored"
    enc.download_file(s3.bucket, "db.dump", str(out), Config=config)
    assert out.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.dump", "kek", "restored"]  # no temporary left
    got = enc.get_object(Bucket=s3.bucket, Key="db.dump", Range=f"bytes={7 << 20}-{(7 << 20) + 9}")
    assert got["Body"].read() == src.read_bytes()[7 << 20:(7 << 20) + 10]


def test_a_stream_of_unknown_length_uploads_in_parts(s3: Any, enc: EncryptedS3Client, config: Any) -> None:
    import io

    data = os.urandom(11 << 20)

    class Pipe(io.RawIOBase):  # readable, not seekable: like stdin
        def __init__(self) -> None:
            self.at = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            n = min(len(buffer), len(data) - self.at, 65536)
            buffer[:n] = data[self.at:self.at + n]
            self.at += n
            return n

    enc.upload_fileobj(Pipe(), s3.bucket, "stream", Config=config)
    sink = io.BytesIO()
    enc.download_fileobj(s3.bucket, "stream", sink, Config=config)
    assert sink.getvalue() == data
    assert enc.get_object(Bucket=s3.bucket, Key="stream", Range="bytes=-5")["Body"].read() == data[-5:]


def test_a_failed_upload_is_aborted_and_leaves_nothing(s3: Any, enc: EncryptedS3Client, config: Any) -> None:
    import io

    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            if self.sent > 12 << 20:
                raise OSError("disk read error")
            n = min(len(buffer), 1 << 20)
            buffer[:n] = b"x" * n
            self.sent += n
            return n

    with pytest.raises(OSError, match="disk read error"):
        enc.upload_fileobj(Failing(), s3.bucket, "broken", Config=config)
    assert s3.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=s3.bucket)["KeyCount"] == 0


class _Seekable(io.RawIOBase):
    """A seekable source with no file descriptor (parts are read under a lock), failing past *fail_at*."""

    def __init__(self, data: bytes, fail_at: int | None = None) -> None:
        super().__init__()
        self._data, self._pos, self._fail_at = data, 0, fail_at

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = (0, self._pos, len(self._data))[whence] + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._fail_at is not None and self._pos >= self._fail_at:
            raise OSError("disk read error")
        n = len(self._data[self._pos:self._pos + len(buffer)])
        buffer[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


def test_a_seekable_source_goes_up_from_its_position_in_parallel_parts(s3: Any, enc: EncryptedS3Client,
                                                                       config: Any) -> None:
    data = os.urandom(17 << 20)
    source = _Seekable(data)
    source.seek(1 << 20)  # boto3 uploads what is left from here
    enc.upload_fileobj(source, s3.bucket, "rest", Config=config)
    assert s3.head_object(Bucket=s3.bucket, Key="rest")["ETag"].strip('"').endswith("-4")
    assert enc.get_object(Bucket=s3.bucket, Key="rest")["Body"].read() == data[1 << 20:]


def test_a_part_that_fails_to_read_aborts_the_parallel_upload(s3: Any, enc: EncryptedS3Client, config: Any) -> None:
    with pytest.raises(OSError, match="disk read error"):
        enc.upload_fileobj(_Seekable(os.urandom(17 << 20), fail_at=11 << 20), s3.bucket, "broken", Config=config)
    assert s3.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=s3.bucket)["KeyCount"] == 0


@pytest.mark.parametrize("damage", [
    lambda blob: bytes(blob[:-1]),                                   # the final tag cut short
    lambda blob: bytes(blob[:-(CHUNK + 16)]),                        # a whole final chunk gone
    lambda blob: blob[:-20] + bytes([blob[-20] ^ 1]) + blob[-19:],   # a flipped byte in the last chunk
    lambda blob: _chunk_twice(blob, 1),                              # chunk 1, then chunk 1 again
], ids=["cut-tag", "cut-chunk", "flipped", "duplicated"])
def test_a_download_that_fails_to_verify_leaves_no_file(s3: Any, enc: EncryptedS3Client, stored: bytes,
                                                        tmp_path: Any, damage: Any) -> None:
    from boto3.s3.transfer import TransferConfig

    tamper(s3, "big", damage)
    (tmp_path / "out").write_bytes(b"the file before")
    ranges = TransferConfig(multipart_chunksize=2 * (CHUNK + 16), max_concurrency=4)  # six ranges, four at once
    with pytest.raises(EnvelopeError):
        enc.download_file(s3.bucket, "big", str(tmp_path / "out"), Config=ranges)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kek", "out"]  # no temporary left behind
    assert (tmp_path / "out").read_bytes() == b"the file before"


def test_copy_keeps_the_object_readable_even_when_metadata_is_replaced(s3: Any, enc: EncryptedS3Client,
                                                                       stored: bytes) -> None:
    enc.copy_object(Bucket=s3.bucket, Key="copy", CopySource={"Bucket": s3.bucket, "Key": "big"},
                    MetadataDirective="REPLACE", Metadata={"note": "copied"})
    got = enc.get_object(Bucket=s3.bucket, Key="copy", Range="bytes=-50")
    assert got["Body"].read() == stored[-50:] and got["Metadata"] == {"note": "copied"}


# -- rewrap ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1000, 20 << 20])  # one PutObject; a header part, then parts copied by S3
def test_rewrap_moves_an_object_to_a_new_key_keeping_body_metadata_and_tags(
        s3: Any, enc: EncryptedS3Client, tmp_path: Any, size: int) -> None:
    data = os.urandom(size)
    enc.put_object(Bucket=s3.bucket, Key="r", Body=data, ContentType="application/octet-stream",
                   Metadata={"owner": "ops"}, Tagging="team=db")
    before = s3.get_object(Bucket=s3.bucket, Key="r")["Body"].read()
    new_key = tmp_path / "new"
    write_key_file(new_key, os.urandom(32))
    enc.rewrap_object(Bucket=s3.bucket, Key="r", keys=[f"raw-aes:{new_key}"])
    after = s3.get_object(Bucket=s3.bucket, Key="r")["Body"].read()
    # Same provider, same header size; the body is byte for byte the old one.
    assert len(after) == len(before) and after[-(size // 2):] == before[-(size // 2):] and after != before
    moved = EncryptedS3Client(s3, keys=[f"raw-aes:{new_key}"], context={"app": "backups"}, chunk_size=CHUNK)
    got = moved.get_object(Bucket=s3.bucket, Key="r")
    assert got["Body"].read() == data and got["Metadata"] == {"owner": "ops"}
    assert got["ContentType"] == "application/octet-stream"
    assert s3.get_object_tagging(Bucket=s3.bucket, Key="r")["TagSet"] == [{"Key": "team", "Value": "db"}]
    with pytest.raises(KeyNotFoundError):
        enc.get_object(Bucket=s3.bucket, Key="r")  # the old key no longer opens it
    assert s3.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []

"""A download of one GET receives, opens and writes at once, not one after another.

Against moto's S3 server on 127.0.0.1.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")

from envelope.format import DEFAULT_CHUNK_SIZE, TAG_SIZE, chunk_count  # noqa: E402
from envelope.s3 import EncryptedS3Client  # noqa: E402

SIZE = 6 << 20  # several of the download's steps, inside one part: one GET
WAIT_SECONDS = 10.0


class _CountingBody:
    """A response body that counts the bytes handed out and wakes whoever waits for a count."""

    def __init__(self, body: Any, progress: threading.Condition, read: list[int]) -> None:
        self._body, self._progress, self._read = body, progress, read

    def _count(self, n: int) -> None:
        with self._progress:
            self._read[0] += n
            self._progress.notify_all()

    def read(self, n: int | None = None) -> bytes:
        data = self._body.read(n)
        self._count(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        n = self._body.readinto(buffer)
        self._count(n)
        return n

    def close(self) -> None:
        self._body.close()


def test_a_one_get_download_receives_the_next_chunks_while_it_writes(s3: Any, kek: str, tmp_path: Any) -> None:
    from boto3.s3.transfer import TransferConfig

    data = os.urandom(SIZE)
    client = EncryptedS3Client(s3, keys=[kek])
    client.put_object(Bucket=s3.bucket, Key="obj", Body=data)
    stored = s3.head_object(Bucket=s3.bucket, Key="obj")["ContentLength"]
    header = stored - SIZE - TAG_SIZE * chunk_count(SIZE, DEFAULT_CHUNK_SIZE)
    progress, read = threading.Condition(), [0]
    get_object = s3.get_object

    def counted_get(**kwargs: Any) -> dict[str, Any]:
        response = get_object(**kwargs)
        return {**response, "Body": _CountingBody(response["Body"], progress, read)}

    s3.get_object = counted_get
    told: list[int] = []

    def written(n: int) -> None:
        # The first write is held until bytes past it have been received: a download
        # that receives, opens and writes in series never gets past here.
        if not told:
            beyond = header + sum(told) + n + TAG_SIZE * chunk_count(n, DEFAULT_CHUNK_SIZE)
            with progress:
                if not progress.wait_for(lambda: read[0] > beyond, WAIT_SECONDS):
                    raise TimeoutError("nothing was received while the first plaintext was being written")
        told.append(n)

    client.download_file(s3.bucket, "obj", str(tmp_path / "out"), Config=TransferConfig(multipart_chunksize=8 << 20),
                         Callback=written)
    assert (tmp_path / "out").read_bytes() == data
    assert sum(told) == SIZE


@pytest.mark.parametrize("size, part, gets", [(SIZE, SIZE, 1), (4 << 20, 1 << 20, 4)], ids=["part-as-large", "4-parts"])
def test_download_ranges_carry_part_size_bytes_of_plaintext(s3: Any, kek: str, tmp_path: Any, size: int, part: int,
                                                            gets: int) -> None:
    # As many GETs as boto3 makes for the same plaintext with the same part size: one when the part
    # is as large as the data.  The object is a little longer than its plaintext (header, a tag per
    # chunk): ranges of part-size bytes of it would leave its last chunk to one more GET, and moto
    # (like any server that slices a copy for a range) reads the whole object for every GET.
    from boto3.s3.transfer import TransferConfig

    data = os.urandom(size)
    client = EncryptedS3Client(s3, keys=[kek])
    client.put_object(Bucket=s3.bucket, Key="obj", Body=data)
    ranges: list[str] = []
    get_object = s3.get_object

    def counted_get(**kwargs: Any) -> dict[str, Any]:
        ranges.append(kwargs.get("Range", ""))
        return get_object(**kwargs)

    s3.get_object = counted_get
    client.download_file(s3.bucket, "obj", str(tmp_path / "out"),
                         Config=TransferConfig(multipart_chunksize=part, max_concurrency=4))
    assert (tmp_path / "out").read_bytes() == data
    assert len(ranges) == gets, ranges


def test_a_download_receives_into_its_buffers_without_a_copy_per_read(s3: Any, kek: str, tmp_path: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib3's readinto is a read() (a new bytes object) and a copy of it: a second pass over
    # every byte on the thread the download waits for.  Only the header goes through read().
    import urllib3.response
    from boto3.s3.transfer import TransferConfig

    from envelope.s3.ranged import FIRST_WINDOW

    data = os.urandom(SIZE)
    client = EncryptedS3Client(s3, keys=[kek])
    client.put_object(Bucket=s3.bucket, Key="obj", Body=data)
    copied = [0]
    read = urllib3.response.HTTPResponse.read

    def counted_read(self: Any, *args: Any, **kwargs: Any) -> bytes:
        got = read(self, *args, **kwargs)
        copied[0] += len(got)
        return got

    monkeypatch.setattr(urllib3.response.HTTPResponse, "read", counted_read)
    client.download_file(s3.bucket, "obj", str(tmp_path / "out"), Config=TransferConfig(multipart_chunksize=SIZE))
    assert (tmp_path / "out").read_bytes() == data
    assert copied[0] < FIRST_WINDOW

"""Parallel multipart upload of an envelope stream: parts hold whole chunks, sealed here, sent by a pool.

The sealing pipeline writes the header, then sealed chunks, in order.  This
sink cuts that byte stream into parts at chunk boundaries (part 1 is the
header and the first chunks), hands each full part to a thread pool that
uploads it while the next is being sealed, and holds at most
``max_concurrency + 1`` parts in memory whatever the object's size.  Any
failure aborts the multipart upload, so no half-written upload is left to
accumulate storage charges; only a completed upload makes the object visible.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..format import TAG_SIZE

MIN_PART_SIZE = 5 << 20  # S3's minimum for every part but the last


def part_size_for(chunk_size: int, wanted: int) -> int:
    """The smallest whole number of sealed chunks that is at least *wanted* and S3's minimum."""
    sealed = chunk_size + TAG_SIZE
    target = max(wanted, MIN_PART_SIZE)
    return -(-target // sealed) * sealed


class MultipartSink:
    """A write-only stream that uploads what is written to it as the parts of one multipart upload."""

    def __init__(self, client: Any, bucket: str, key: str, upload_id: str, part_size: int,
                 max_concurrency: int) -> None:
        self._client, self._bucket, self._key, self._upload_id = client, bucket, key, upload_id
        self._part_size = part_size
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="envelope-s3-part")
        self._slots = threading.BoundedSemaphore(max_concurrency + 1)  # parts in memory: in flight + filling
        self._futures: list[Future[dict[str, Any]]] = []
        self._buffer = bytearray()
        self._header_seen = False
        self._limit = 0
        self._number = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if not self._header_seen:  # the first write is the whole header: part 1 carries it with its chunks
            self._header_seen = True
            self._limit = len(view) + self._part_size
        self._buffer += view
        while len(self._buffer) >= self._limit:
            self._submit(bytes(self._buffer[:self._limit]))
            del self._buffer[:self._limit]
            self._limit = self._part_size
        return len(view)

    def finish(self) -> list[dict[str, Any]]:
        """Send what is left as the last part; wait for every part; the list CompleteMultipartUpload takes."""
        if self._buffer or not self._futures:
            self._submit(bytes(self._buffer))
            self._buffer = bytearray()
        try:
            return [f.result() for f in self._futures]
        finally:
            self._pool.shutdown(wait=True)

    def cancel(self) -> None:
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True)

    def _submit(self, body: bytes) -> None:
        for future in self._futures:  # a failed part stops the upload now, not at the end
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        self._slots.acquire()
        self._number += 1
        future = self._pool.submit(self._upload, self._number, body)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def _upload(self, number: int, body: bytes) -> dict[str, Any]:
        response = self._client.upload_part(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                            PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": response["ETag"]}


@contextlib.contextmanager
def multipart_upload(client: Any, bucket: str, key: str, part_size: int, max_concurrency: int,
                     **create_args: Any) -> Iterator[MultipartSink]:
    """CreateMultipartUpload, a sink for the body, then CompleteMultipartUpload; AbortMultipartUpload on any failure."""
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **create_args)["UploadId"]
    sink = MultipartSink(client, bucket, key, upload_id, part_size, max_concurrency)
    try:
        yield sink
        parts = sink.finish()
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
    except BaseException:
        sink.cancel()
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise

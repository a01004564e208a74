"""Parallel multipart upload of an envelope stream: parts hold whole chunks, sealed here, sent by a pool.

A file of known length goes up as boto3 sends a plain file: every worker of
the pool reads its own part's plaintext at its offset, seals it (a chunk's
nonce needs only its index and whether it is last, both known from the
offset), and uploads it (:func:`upload_parts`).  Nothing is serialised
behind one sealing thread, which under ten busy sender threads would wait
for the GIL at every step.

A stream of unknown length cannot be cut that way; for it, the sealing pipeline writes the header, then sealed chunks, in order.  This
sink cuts that byte stream into parts at chunk boundaries (part 1 is the
header and the first chunks), hands each full part to a thread pool that
uploads it while the next is being sealed, and holds at most
``max_concurrency + 1`` parts in memory whatever the object's size.  Part
buffers are reused once S3 has acknowledged them: a 1 GiB upload allocates
those few buffers, not a fresh one per part, and each sealed byte is copied
once, into its part.  Any failure aborts the multipart upload, so no
half-written upload is left to accumulate storage charges; only a completed
upload makes the object visible.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from ..engines import get_engine
from ..engines.base import sealed_size
from ..format import TAG_SIZE, Header
from ..kdf import FileKeys

MIN_PART_SIZE = 5 << 20  # S3's minimum for every part but the last
READ_STEP = 4 << 20  # plaintext read and sealed at a time into a part buffer

# Told of each part S3 acknowledged: its ciphertext offsets [start, end), and the
# object's whole ciphertext length when that part was the last.
PartSent = Callable[[int, int, "int | None"], object]


def checksum_args(client: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """The part checksum boto3's transfer manager asks for: CRC32 (S3 then checks every part and keeps
    a checksum of the object), unless the caller chose one or the client's configuration opted out."""
    if "ChecksumAlgorithm" in extra:
        return {"ChecksumAlgorithm": extra["ChecksumAlgorithm"]}
    config = getattr(getattr(client, "meta", None), "config", None)
    if getattr(config, "request_checksum_calculation", None) == "when_supported":
        return {"ChecksumAlgorithm": "CRC32"}
    return {}


def _completed(number: int, response: dict[str, Any]) -> dict[str, Any]:
    """A part as CompleteMultipartUpload lists it: number, ETag and the checksum S3 checked, if any."""
    checksums = {k: v for k, v in response.items() if k.startswith("Checksum") and k != "ChecksumType"}
    return {"PartNumber": number, "ETag": response["ETag"], **checksums}


def part_size_for(chunk_size: int, wanted: int) -> int:
    """The smallest whole number of sealed chunks that is at least *wanted* and S3's minimum."""
    sealed = chunk_size + TAG_SIZE
    target = max(wanted, MIN_PART_SIZE)
    return -(-target // sealed) * sealed


class MultipartSink:
    """A write-only stream that uploads what is written to it as the parts of one multipart upload."""

    def __init__(self, client: Any, bucket: str, key: str, upload_id: str, part_size: int,
                 max_concurrency: int, *, on_sent: PartSent | None = None,
                 part_args: dict[str, Any] | None = None) -> None:
        self._client, self._bucket, self._key, self._upload_id = client, bucket, key, upload_id
        self._part_args = dict(part_args or {})
        self._part_size = part_size
        self._on_sent = on_sent
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="envelope-s3-part")
        self._slots = threading.BoundedSemaphore(max_concurrency + 1)  # parts in memory: in flight + filling
        self._spare: list[bytearray] = []  # acknowledged part buffers, ready for reuse
        self._lock = threading.Lock()
        self._futures: list[Future[dict[str, Any]]] = []
        self._part: bytearray | None = None
        self._filled = 0
        self._offset = 0  # ciphertext offset of the part being filled
        self.header_size: int | None = None
        self._number = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self.header_size is None:  # the first write is the whole header: part 1 carries it with its chunks
            self.header_size = len(view)
        written = len(view)
        while view:
            if self._part is None:
                self._part = self._buffer(self._part_size + (self.header_size if self._number == 0 else 0))
            n = min(len(view), len(self._part) - self._filled)
            self._part[self._filled:self._filled + n] = view[:n]
            self._filled += n
            view = view[n:]
            if self._filled == len(self._part):
                self._submit(self._part, None)
        return written

    def finish(self) -> list[dict[str, Any]]:
        """Send what is left as the last part; wait for every part; the list CompleteMultipartUpload takes."""
        if self._filled or not self._futures:
            part = self._part if self._part is not None else bytearray()
            del part[self._filled:]
            self._submit(part, self._offset + self._filled)
        try:
            return [f.result() for f in self._futures]
        finally:
            self._pool.shutdown(wait=True)

    def cancel(self) -> None:
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True)

    def _buffer(self, size: int) -> bytearray:
        self._slots.acquire()  # released when S3 has acknowledged (or refused) the part
        with self._lock:
            if self._spare and len(self._spare[-1]) == size:
                return self._spare.pop()
        return bytearray(size)

    def _submit(self, body: bytearray, total: int | None) -> None:
        for future in self._futures:  # a failed part stops the upload now, not at the end
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        if self._part is None:  # the last part of an empty stream: no buffer was taken for it
            self._slots.acquire()
        self._number += 1
        start = self._offset
        self._offset += len(body)
        self._part, self._filled = None, 0
        self._futures.append(self._pool.submit(self._upload, self._number, body, start, total))

    def _upload(self, number: int, body: bytearray, start: int, total: int | None) -> dict[str, Any]:
        try:
            response = self._client.upload_part(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                                PartNumber=number, Body=body, **self._part_args)
            if self._on_sent is not None:
                self._on_sent(start, start + len(body), total)
            with self._lock:
                if len(body) == self._part_size:
                    self._spare.append(body)
            return _completed(number, response)
        finally:
            self._slots.release()


def upload_parts(client: Any, bucket: str, key: str, upload_id: str, source: Any, size: int, header: Header,
                 keys: FileKeys, part_size: int, max_concurrency: int, *,
                 on_sent: Callable[[int], object] | None = None,
                 part_args: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Seal and upload the *size* bytes of a seekable *source* (from its current position) as parts.

    *part_size* is a whole number of sealed chunks; part 1 also carries the
    header.  Each worker keeps one part buffer and a few MiB of plaintext for
    the parts it seals, so memory is about ``max_concurrency`` parts whatever
    the object's size.
    *on_sent* is told the plaintext bytes of each part S3 acknowledged.
    """
    chunk = header.chunk_size
    per_part = part_size // (chunk + TAG_SIZE)
    plain_part = per_part * chunk
    count = max(1, -(-size // plain_part))
    encoded = header.encode()
    engine = get_engine(threads=1)  # the pool is the parallelism
    read_at = _positional_reader(source)
    step = max(1, READ_STEP // chunk) * chunk  # whole chunks read and sealed at a time
    local = threading.local()

    def one(number: int) -> dict[str, Any]:
        offset = (number - 1) * plain_part
        length, final = min(plain_part, size - offset), number == count
        lead = len(encoded) if number == 1 else 0
        if not hasattr(local, "body"):
            local.plain, local.body = bytearray(min(plain_part, step)), bytearray(part_size)
        body_size = lead + sealed_size(length, chunk, final)
        body = local.body if body_size == part_size else bytearray(body_size)
        if lead:
            body[:lead] = encoded
        out, index, done = lead, (number - 1) * per_part, 0
        while True:  # a step of plaintext at a time, sealed into its place in the part
            n = min(step, length - done)
            plain = memoryview(local.plain)[:n]
            if read_at(plain, offset + done) != n:
                raise OSError("the source ended early: it shrank while it was being uploaded")
            last = final and done + n == length
            out += engine.seal(keys.payload, index, plain, memoryview(body)[out:], chunk, last)
            index, done = index + n // chunk, done + n
            if done == length:
                break
        response = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body,
                                      **(part_args or {}))
        if on_sent is not None:
            on_sent(length)
        return _completed(number, response)

    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="envelope-s3-part") as pool:
        futures = [pool.submit(one, number) for number in range(1, count + 1)]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _positional_reader(source: Any) -> Callable[[memoryview, int], int]:
    """read_at(buffer, offset) from *source*'s current position on, safe from many threads at once."""
    base = source.tell()
    try:
        fd = source.fileno()
        os.pread(fd, 0, base)
    except (AttributeError, OSError, ValueError):
        fd = None
    lock = threading.Lock()

    def read_at(buffer: memoryview, offset: int) -> int:
        got = 0
        while got < len(buffer):
            if fd is not None:
                n = os.preadv(fd, [buffer[got:]], base + offset + got)
            else:
                with lock:
                    source.seek(base + offset + got)
                    n = source.readinto(buffer[got:])
            if not n:
                break
            got += n
        return got

    return read_at

@dataclass
class OpenUpload:
    """A multipart upload in progress: its id, the arguments every part must carry, and the parts sent."""

    upload_id: str
    part_args: dict[str, Any]
    parts: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def open_upload(client: Any, bucket: str, key: str, **create_args: Any) -> Iterator[OpenUpload]:
    """CreateMultipartUpload; CompleteMultipartUpload with the parts the block listed in ``parts``;
    AbortMultipartUpload on any failure, so nothing half-written is left behind."""
    checksum = checksum_args(client, create_args)
    response = client.create_multipart_upload(Bucket=bucket, Key=key, **{**create_args, **checksum})
    upload = OpenUpload(response["UploadId"], checksum)
    try:
        yield upload
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload.upload_id,
                                         MultipartUpload={"Parts": upload.parts})
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload.upload_id)
        raise


@contextlib.contextmanager
def multipart_upload(client: Any, bucket: str, key: str, part_size: int, max_concurrency: int, *,
                     on_sent: PartSent | None = None, **create_args: Any) -> Iterator[MultipartSink]:
    """:func:`open_upload` with a sink for the body: the parts are whatever is written to it, in order."""
    with open_upload(client, bucket, key, **create_args) as upload:
        sink = MultipartSink(client, bucket, key, upload.upload_id, part_size, max_concurrency, on_sent=on_sent,
                             part_args=upload.part_args)
        try:
            yield sink
            upload.parts = sink.finish()
        except BaseException:
            sink.cancel()
            raise

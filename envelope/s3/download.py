"""download_file for envelope objects: ranges fetched concurrently, each opened as it arrives.

The first GET, of the header and the first part, gives the object's header
(opened and authenticated: one call to the key manager), its length, ETag and
metadata, and its first chunks, opened from the same response.  The rest is
cut into ranges of whole sealed chunks carrying ``multipart_chunksize`` bytes
of plaintext each, as boto3 cuts the same data, so a part as large as the
data is one GET.  The workers of a pool fetch their range (pinned to the
ETag, so a replaced object fails instead of mixing versions), receive it
straight into reused buffers, open its chunks a MiB at a time and write the
plaintext at its place in a temporary file beside the destination (the
caller's, from :func:`envelope.atomic.atomic_output`).  Each range runs
through :func:`envelope.pipeline.run`, so its network reads, the cipher and
the disk writes overlap: a download of one GET is not three waits in series.
Only when every range verified, the chunk the length says is last included
(opened as last, so a cut object fails), is the file put in place.  Nothing
else touches the disk: no ciphertext copy, and memory is a few MiB per range
in flight whatever the object's size.
"""

from __future__ import annotations

import http.client
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, Callable, cast

from .. import pipeline
from ..engines import get_engine
from ..exceptions import AuthenticationError, FormatError
from ..format import MAX_HEADER_SIZE, MIN_CHUNK_SIZE, TAG_SIZE, chunk_count, chunk_offset, plaintext_size
from ..kdf import FileKeys
from ..stream import open_header
from .metadata import META_SIZE
from .ranged import FIRST_WINDOW, object_length, pinned_args

#: Ciphertext read and opened at a time in one range: a few of these are in flight
#: per range (being received, opened, written), so memory stays small.
STEP = 1 << 20


def first_window(part: int) -> int:
    """Bytes the first GET asks for: the header and *part* bytes of plaintext, in whole chunks.

    Ranges carry ``part`` bytes of plaintext, so a download has as many GETs as
    boto3's of the same data, and one when the part is as large as the data.
    The header's length and the chunk size are known only once the header is
    read, so this allows for the longest header and a tag per smallest chunk;
    a window past the object's end is cut short by the server.
    """
    return max(FIRST_WINDOW, MAX_HEADER_SIZE + part + TAG_SIZE * chunk_count(part, MIN_CHUNK_SIZE))


class FirstRange:
    """The first GET of a download, streamed: bytes 0 up to the first part's end, header first.

    It tells the object's length, ETag and metadata, and its chunks are opened
    from the same response, so a download makes no request that boto3's would not.
    """

    def __init__(self, client: Any, bucket: str, key: str, part: int, extra: dict[str, Any] | None) -> None:
        response = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{first_window(part) - 1}",
                                     **(extra or {}))
        self.body = response["Body"]
        self.response = {k: v for k, v in response.items() if k != "Body"}
        self.covered = int(response["ContentLength"])
        self.size = object_length(response, self.covered)
        self.etag = response["ETag"]
        self.pinned = pinned_args(extra)

    def read(self, n: int = -1) -> bytes:
        return bytes(self.body.read(n if n >= 0 else None))

    def close(self) -> None:
        self.body.close()


def download_opened(s3: Any, first: FirstRange, bucket: str, key: str, fd: int, part: int, concurrency: int,
                    callback: Callable[[int], object] | None) -> None:
    """Decrypt the envelope object *first* was opened on into the file *fd*, which the caller releases
    (renames into place) only if this returns."""
    # No metadata needed: an envelope file uploaded by any tool downloads too; its header decides.
    header, keys = open_header(cast(BinaryIO, first), s3.decryption_keyring, required_context=s3.context)
    chunk, total, sealed = header.chunk_size, first.size, header.chunk_size + TAG_SIZE
    try:
        size = plaintext_size(header.size, total, chunk)
    except FormatError as exc:  # the header is authentic: a length no plaintext has means cut or extended
        raise AuthenticationError(f"s3://{bucket}/{key}: stream is truncated or extended: {exc}") from None
    metadata = first.response.get("Metadata") or {}
    if META_SIZE in metadata and int(metadata[META_SIZE]) != size:
        raise FormatError(f"s3://{bucket}/{key}: its metadata says {metadata[META_SIZE]} bytes of plaintext, "
                          f"its length {size}")
    chunks = chunk_count(size, chunk)
    in_first = chunks if first.covered >= total else max(0, (first.covered - header.size) // sealed)
    per_range = max(1, part // chunk)
    opener = _RangeOpener(s3.wrapped_client, bucket, key, first, header.size, chunk, chunks, keys, callback)
    os.ftruncate(fd, size)
    opener.fd = fd
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="envelope-s3-get") as pool:
        futures = [pool.submit(opener.open_range, 0, in_first, first.body)] if in_first else []
        futures += [pool.submit(opener.open_range, start, min(chunks, start + per_range))
                    for start in range(in_first, chunks, per_range)]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


class _Received:
    """A response body read straight into the caller's buffer.

    botocore's body reads through urllib3, whose readinto is a read (a new bytes
    object) and a copy of it: a second pass over every byte, on the thread the
    whole download waits for.  Under both lies the http.client response, whose
    readinto fills the buffer from the socket itself; it is used when the layers
    are the ones botocore makes (urllib3 not decoding, so holding nothing back),
    and its errors, and a body that ends before its Content-Length, become the
    ones botocore's body raises.
    """

    def __init__(self, body: Any) -> None:
        raw = getattr(body, "_raw_stream", None)
        direct = getattr(raw, "_fp", None)
        if not isinstance(direct, http.client.HTTPResponse) or getattr(raw, "decode_content", True):
            direct = None
        self._body, self._direct, self._url = body, direct, getattr(raw, "url", None)

    def readinto(self, view: memoryview) -> int:
        if self._direct is None:
            return int(self._body.readinto(view))
        try:
            n = self._direct.readinto(view)
        except TimeoutError as exc:
            from botocore.exceptions import ReadTimeoutError

            raise ReadTimeoutError(endpoint_url=self._url, error=exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            from botocore.exceptions import ResponseStreamingError

            raise ResponseStreamingError(error=exc) from exc
        if not n and len(view) and self._direct.length:  # closed before its Content-Length: a network failure
            from botocore.exceptions import IncompleteReadError

            expected = int(self._direct.getheader("Content-Length") or 0)
            raise IncompleteReadError(actual_bytes=expected - self._direct.length, expected_bytes=expected)
        return n


class _RangeOpener:
    """Fetches chunks [first, end) of the object, opens them and writes their plaintext in place."""

    def __init__(self, client: Any, bucket: str, key: str, first: FirstRange, header_size: int, chunk: int,
                 chunks: int, keys: FileKeys, callback: Callable[[int], object] | None) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._etag, self._total, self._pinned = first.etag, first.size, first.pinned
        self._header_size, self._chunk, self._chunks = header_size, chunk, chunks
        self._keys, self._callback = keys, callback
        self._engine = get_engine(threads=1)  # the pool is the parallelism
        self._step = max(1, STEP // chunk)
        self.fd = -1

    def open_range(self, first: int, end: int, body: Any = None) -> None:
        """*body*, when given, is a response already positioned at chunk *first* (the caller closes it)."""
        owned = body is None
        if owned:
            stop = self._offset(end) - 1
            body = self._client.get_object(Bucket=self._bucket, Key=self._key,
                                           Range=f"bytes={self._offset(first)}-{stop}",
                                           IfMatch=self._etag, **self._pinned)["Body"]
        source = cast(BinaryIO, _Received(body))
        read, opened = first, first  # the next chunk to receive, the next to open

        def fill(buf: bytearray) -> tuple[int, bool]:
            nonlocal read
            last = min(end, read + self._step)
            want = self._offset(last) - self._offset(read)
            if pipeline.fill(source, memoryview(buf)[:want]) != want:
                raise AuthenticationError(f"s3://{self._bucket}/{self._key}: the object ended early "
                                          f"(chunk {read}): truncated while being read?")
            read = last
            return want, last == end

        def open_step(sealed: memoryview, _: bool, plain: bytearray) -> int:
            nonlocal opened
            last = min(end, opened + self._step)
            n = self._engine.open(self._keys.payload, opened, sealed, plain, self._chunk, last == self._chunks)
            opened = last
            return n

        try:
            pipeline.run(fill, open_step, cast(BinaryIO, _WriteAt(self.fd, first * self._chunk, self._callback)),
                         self._step * (self._chunk + TAG_SIZE), self._step * self._chunk)
        finally:
            if owned:
                body.close()

    def _offset(self, index: int) -> int:
        """Where chunk *index* starts in the object; the end of the object for the chunk after the last."""
        if index == self._chunks:
            return self._total
        return chunk_offset(self._header_size, self._chunk, index)


class _WriteAt:
    """Writes plaintext at its place in the file, then tells the caller's callback."""

    def __init__(self, fd: int, offset: int, callback: Callable[[int], object] | None) -> None:
        self._fd, self._offset, self._callback = fd, offset, callback

    def write(self, data: memoryview) -> int:
        n = os.pwrite(self._fd, data, self._offset)
        self._offset += n
        if self._callback is not None and n:
            self._callback(n)
        return n

"""A seekable, read-only view of one S3 object version, read with ranged GETs.

It lets the random-access reader (:mod:`envelope.reader`) decrypt any byte
range of an object while fetching only the chunks that cover it.  Reads go
through a window (one ranged GET fills it) so the header's many small reads
cost one request; every GET names the object's ETag (``IfMatch``), so an
object replaced between two reads fails instead of mixing two versions.
:meth:`RangedObject.first` needs no HeadObject: its first GET, of the first
window, tells the object's length, ETag and metadata, and that window is kept
while the object is open (the reader fetches the final chunk next, to prove the
length, and then usually wants the header's neighbours).  ``fetched`` counts
the bytes that crossed the network, ``requests`` the GETs.
"""

from __future__ import annotations

import re
from typing import Any

from ..exceptions import FormatError, UsageError
from ..format import DEFAULT_CHUNK_SIZE, MAX_HEADER_SIZE, TAG_SIZE
from ..reader import SeekableReader

DEFAULT_WINDOW = 1 << 20
# The first GET of an object read in parts: room for the largest header and a first chunk of the
# default size, so a range near the start costs one request; later GETs fetch just the chunks needed.
FIRST_WINDOW = MAX_HEADER_SIZE + DEFAULT_CHUNK_SIZE + TAG_SIZE
#: The most one prefetch holds in memory: a read of many chunks costs a GET per this much.
PREFETCH_MAX = 64 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)\Z")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)\Z")


class RangedObject(SeekableReader):
    def __init__(self, client: Any, bucket: str, key: str, size: int, etag: str, *,
                 window: int = DEFAULT_WINDOW, extra: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._client, self._bucket, self._key, self._etag = client, bucket, key, etag
        self.pinned = pinned_args(extra)
        self.size, self.window = size, window  # what one GET fetches, at least
        self._pos = 0
        self._start, self._data = 0, b""
        self._first = b""  # the first window, from first(); bytes 0.. of the object
        self.fetched = 0
        self.requests = 0
        self.response: dict[str, Any] = {}  # the last GET's response, without its body

    @classmethod
    def first(cls, client: Any, bucket: str, key: str, *, window: int = DEFAULT_WINDOW,
              extra: dict[str, Any] | None = None) -> RangedObject:
        """Open an object with one GET of its first *window* bytes, which also gives its length and ETag."""
        response = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{window - 1}", **(extra or {}))
        data = _body(response)
        self = cls(client, bucket, key, object_length(response, len(data)), response["ETag"], window=window,
                   extra=extra)
        self._keep(0, data, response)
        self._first = data
        return self

    @property
    def etag(self) -> str:
        return self._etag

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        want = min(len(out), self.size - self._pos)
        if want <= 0:
            return 0
        if self._start <= self._pos < self._start + len(self._data):
            start, data = self._start, self._data
        elif self._pos < len(self._first):
            start, data = 0, self._first
        else:
            self._fill(self._pos, max(want, self.window))
            start, data = self._start, self._data
        skip = self._pos - start
        n = min(want, len(data) - skip)
        out[:n] = data[skip:skip + n]
        self._pos += n
        return n

    def prefetch(self, start: int, end: int) -> None:
        """Fetch bytes [start, end) in one GET, up to :data:`PREFETCH_MAX`, for the reads that follow."""
        if not self._start <= start < end <= self._start + len(self._data):
            self._fill(start, min(end - start, PREFETCH_MAX))

    def _fill(self, start: int, length: int) -> None:
        end = min(self.size, start + length) - 1
        response = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={start}-{end}",
                                           IfMatch=self._etag, **self.pinned)
        data = _body(response)
        if len(data) != end - start + 1:
            raise FormatError(f"s3://{self._bucket}/{self._key}: asked for {end - start + 1} bytes, got {len(data)}")
        self._keep(start, data, response)

    def _keep(self, start: int, data: bytes, response: dict[str, Any]) -> None:
        self.requests += 1
        self.fetched += len(data)
        self._start, self._data = start, data
        self.response = {k: v for k, v in response.items() if k != "Body"}


def pinned_args(extra: dict[str, Any] | None) -> dict[str, Any]:
    """The caller's arguments every later GET of the object repeats: its version and SSE-C fields
    (the caller's conditions go on the first GET only; the later ones name its ETag instead)."""
    return {k: v for k, v in (extra or {}).items() if k == "VersionId" or k.startswith("SSECustomer")}


def object_length(response: dict[str, Any], received: int) -> int:
    """The whole object's length from a ranged GET's Content-Range; without one, S3 sent it all."""
    match = _CONTENT_RANGE.match(str(response.get("ContentRange", "")))
    return int(match.group(3)) if match else received


def _body(response: dict[str, Any]) -> bytes:
    body = response["Body"]
    try:
        return bytes(body.read())
    finally:
        body.close()


def is_replaced(exc: Exception) -> bool:
    """A GET that named an ETag found another: the object was replaced since it was opened."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("PreconditionFailed", "412")


def range_header(start: int, end: int | None) -> str:
    """The HTTP Range of plaintext bytes [start, end) (*end* None: to the end), or with a negative *start*
    the last -start bytes: ``bytes=A-B`` (B inclusive), ``bytes=A-`` or ``bytes=-N``."""
    if start < 0:
        return f"bytes={start}"
    return f"bytes={start}-{'' if end is None else end - 1}"


def parse_range(text: str, size: int, bucket: str, key: str) -> tuple[int, int]:
    """S3's single-range forms: ``bytes=A-B``, ``bytes=A-``, ``bytes=-N``; past the end shortens, as S3 does."""
    match = _RANGE.match(text.replace(" ", ""))
    if not match or match.group(1) == match.group(2) == "":
        raise UsageError(f"unsupported Range {text!r}: expected bytes=A-B, bytes=A- or bytes=-N")
    start_text, end_text = match.groups()
    if start_text == "":
        n = int(end_text)
        if n == 0 or size == 0:
            raise _invalid_range(bucket, key, text, size)
        return max(0, size - n), size - 1
    start = int(start_text)
    end = size - 1 if end_text == "" else min(int(end_text), size - 1)
    if end_text and int(end_text) < start:
        raise UsageError(f"Range {text!r} ends before it starts")
    if start >= size:
        raise _invalid_range(bucket, key, text, size)
    return start, end


def _invalid_range(bucket: str, key: str, text: str, size: int) -> Exception:
    """The error S3 gives: a botocore ClientError with code InvalidRange and HTTP status 416."""
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "InvalidRange", "Message": f"The requested range {text} is not "
                                  f"satisfiable (the object has {size} bytes of plaintext)",
                                  "RangeRequested": text, "ActualObjectSize": str(size)},
                        "ResponseMetadata": {"HTTPStatusCode": 416}}, "GetObject")

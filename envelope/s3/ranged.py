"""A seekable, read-only view of one S3 object version, read with ranged GETs.

It lets the random-access reader (:mod:`envelope.reader`) decrypt any byte
range of an object while fetching only the chunks that cover it.  Reads go
through a window (one ranged GET fills it) so the header's many small reads
cost one request; every GET names the object's ETag (``IfMatch``), so an
object replaced between two reads fails instead of mixing two versions.
``fetched`` counts the bytes that crossed the network.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import FormatError
from ..reader import SeekableReader

DEFAULT_WINDOW = 1 << 20


class RangedObject(SeekableReader):
    def __init__(self, client: Any, bucket: str, key: str, size: int, etag: str, *,
                 window: int = DEFAULT_WINDOW) -> None:
        super().__init__()
        self._client, self._bucket, self._key, self._etag = client, bucket, key, etag
        self.size, self._window = size, window
        self._pos = 0
        self._start, self._data = 0, b""
        self.fetched = 0
        self.requests = 0

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        want = min(len(out), self.size - self._pos)
        if want <= 0:
            return 0
        if not self._start <= self._pos < self._start + len(self._data):
            self._fill(self._pos, max(want, self._window))
        skip = self._pos - self._start
        n = min(want, len(self._data) - skip)
        out[:n] = self._data[skip:skip + n]
        self._pos += n
        return n

    def _fill(self, start: int, length: int) -> None:
        end = min(self.size, start + length) - 1
        response = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={start}-{end}",
                                           IfMatch=self._etag)
        body = response["Body"]
        try:
            data = body.read()
        finally:
            body.close()
        if len(data) != end - start + 1:
            raise FormatError(f"s3://{self._bucket}/{self._key}: asked for {end - start + 1} bytes, got {len(data)}")
        self.requests += 1
        self.fetched += len(data)
        self._start, self._data = start, data

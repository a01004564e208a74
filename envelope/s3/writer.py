"""An S3 object as the destination of a streaming writer (:mod:`envelope.writer`).

Sealed bytes wait in memory until they pass the multipart threshold: an
object smaller than that is one PutObject, sent only on commit; a larger one
becomes a multipart upload (:func:`envelope.s3.multipart.multipart_upload`)
whose parts are sent as they fill and which is completed on commit and
aborted on discard.  Either way, nothing appears under the key unless the
writer was closed cleanly.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..format import plaintext_size
from ..writer import exit_discarding
from .multipart import MultipartSink, multipart_upload, part_size_for
from .transfer import DEFAULT_CONCURRENCY, DEFAULT_PART, DEFAULT_THRESHOLD


class S3Destination:
    def __init__(self, s3: Any, bucket: str, key: str, *, extra: dict[str, Any] | None = None,
                 threshold: int = DEFAULT_THRESHOLD, part_size: int = DEFAULT_PART,
                 concurrency: int = DEFAULT_CONCURRENCY) -> None:
        """*s3* is an :class:`~envelope.s3.client.EncryptedS3Client` (its client, chunk size, metadata)."""
        self._s3, self._bucket, self._key = s3, bucket, key
        self._extra = dict(extra or {})
        self._threshold, self._part, self._concurrency = threshold, part_size, concurrency
        self._held = bytearray()
        self._header_size: int | None = None
        self._upload: contextlib.AbstractContextManager[MultipartSink] | None = None
        self._sink: MultipartSink | None = None

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self._header_size is None:
            self._header_size = len(view)  # the writer's first write is the whole header
        if self._sink is not None:
            return self._sink.write(view)
        self._held += view
        if len(self._held) >= self._threshold:
            self._start_multipart()
        return len(view)

    def commit(self) -> None:
        client = self._s3.wrapped_client
        if self._upload is not None:
            self._upload.__exit__(None, None, None)
        else:
            assert self._header_size is not None
            size = plaintext_size(self._header_size, len(self._held), self._s3.chunk_size)
            metadata = {**dict(self._extra.pop("Metadata", None) or {}), **self._s3.envelope_metadata(size)}
            client.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._held), Metadata=metadata,
                              **self._extra)
        self._held = bytearray()
        self._s3.forget(self._bucket, self._key)

    def discard(self) -> None:
        self._held = bytearray()
        if self._upload is not None:
            exit_discarding(self._upload)  # AbortMultipartUpload
            self._upload = self._sink = None

    def _start_multipart(self) -> None:
        metadata = {**dict(self._extra.pop("Metadata", None) or {}), **self._s3.envelope_metadata(None)}
        upload = multipart_upload(self._s3.wrapped_client, self._bucket, self._key,
                                  part_size_for(self._s3.chunk_size, self._part), self._concurrency,
                                  Metadata=metadata, **self._extra)
        sink = upload.__enter__()
        self._upload, self._sink = upload, sink
        try:
            assert self._header_size is not None
            sink.write(memoryview(self._held)[:self._header_size])  # part 1 starts with the header
            sink.write(memoryview(self._held)[self._header_size:])
        except BaseException:
            self.discard()
            raise
        self._held = bytearray()

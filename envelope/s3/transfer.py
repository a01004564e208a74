"""upload_file / upload_fileobj / download_file / download_fileobj for :class:`EncryptedS3Client`.

boto3's transfer methods, with its ``TransferConfig`` (``multipart_threshold``,
``multipart_chunksize``, ``max_concurrency``) meaning what it means there:

- Uploads at or above the threshold go up as a multipart upload whose parts
  are whole sealed chunks, sealed here while earlier parts are being sent
  (:mod:`envelope.s3.multipart`); below it, one PutObject.
- Downloads fetch the ciphertext in ranges of ``multipart_chunksize``,
  concurrently, into an unnamed temporary file, then decrypt it with the native
  engine.  ``download_file`` writes beside the destination and renames only
  when every chunk and the end of the stream verified; ``download_fileobj``
  writes to the caller's file only after that.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, cast

from ..atomic import atomic_output, scratch_file
from ..engines import get_engine
from ..stream import decrypt_stream, encrypt_stream
from .multipart import MultipartSink, part_size_for

DEFAULT_THRESHOLD = 8 << 20
DEFAULT_PART = 8 << 20
DEFAULT_CONCURRENCY = 10


def settings(config: Any) -> tuple[int, int, int]:
    """(threshold, part size, concurrency) from a boto3 TransferConfig, or boto3's defaults."""
    if config is None:
        return DEFAULT_THRESHOLD, DEFAULT_PART, DEFAULT_CONCURRENCY
    return (int(getattr(config, "multipart_threshold", DEFAULT_THRESHOLD)),
            int(getattr(config, "multipart_chunksize", DEFAULT_PART)),
            max(1, int(getattr(config, "max_concurrency", DEFAULT_CONCURRENCY))))


def remaining(fileobj: Any) -> int | None:
    """Bytes left in a seekable file object; None for a stream of unknown length."""
    try:
        here = fileobj.tell()
        end = fileobj.seek(0, os.SEEK_END)
        fileobj.seek(here)
        return int(end - here)
    except (AttributeError, OSError, ValueError):
        return None


def upload(s3: Any, fileobj: Any, bucket: str, key: str, extra: dict[str, Any] | None, config: Any) -> None:
    """Encrypt *fileobj* into s3://bucket/key: one PutObject below the threshold, else parallel multipart."""
    threshold, part, concurrency = settings(config)
    extra = dict(extra or {})
    size = remaining(fileobj)
    if size is not None and size < threshold:
        s3.put_object(Bucket=bucket, Key=key, Body=fileobj, **extra)
        return
    metadata = dict(extra.pop("Metadata", None) or {})
    metadata.update(s3.envelope_metadata(size))
    client = s3.wrapped_client
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, Metadata=metadata, **extra)["UploadId"]
    sink = MultipartSink(client, bucket, key, upload_id, part_size_for(s3.chunk_size, part), concurrency)
    try:
        encrypt_stream(cast(BinaryIO, fileobj), cast(BinaryIO, sink), s3.encryption_keyring, context=s3.context,
                       chunk_size=s3.chunk_size, plaintext_size=size)
        parts = sink.finish()
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
    except BaseException:
        sink.cancel()
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


def fetch(client: Any, bucket: str, key: str, fd: int, config: Any, extra: dict[str, Any] | None) -> None:
    """The stored (encrypted) object into the file *fd*, in concurrent ranged GETs pinned to one ETag."""
    _, part, concurrency = settings(config)
    head = client.head_object(Bucket=bucket, Key=key, **(extra or {}))
    size, etag = int(head["ContentLength"]), head["ETag"]
    os.ftruncate(fd, size)

    def one(start: int) -> None:
        end = min(size, start + part) - 1
        body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}", IfMatch=etag)["Body"]
        try:
            offset = start
            for block in iter(lambda: body.read(1 << 20), b""):
                os.pwrite(fd, block, offset)
                offset += len(block)
        finally:
            body.close()
        if offset != end + 1:
            raise OSError(f"s3://{bucket}/{key}: range {start}-{end} came back short")

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="envelope-s3-get") as pool:
        for future in [pool.submit(one, start) for start in range(0, size, part)]:
            future.result()


def _fetch_and_decrypt(s3: Any, bucket: str, key: str, scratch: str, out: BinaryIO, config: Any,
                       extra: dict[str, Any] | None) -> None:
    """Ciphertext into an unnamed file in *scratch* (nothing left there if we are killed), then verified into *out*."""
    with scratch_file(scratch) as sealed:
        fetch(s3.wrapped_client, bucket, key, sealed, config, extra)
        with open(sealed, "rb", buffering=0, closefd=False) as fin:
            decrypt_stream(fin, out, s3.decryption_keyring, required_context=s3.context, engine=get_engine())


def download_file(s3: Any, bucket: str, key: str, filename: str | os.PathLike[str], extra: dict[str, Any] | None,
                  config: Any) -> None:
    target = os.path.abspath(filename)
    with atomic_output(target, force=True) as out:
        _fetch_and_decrypt(s3, bucket, key, os.path.dirname(target), out, config, extra)


def download_fileobj(s3: Any, bucket: str, key: str, fileobj: Any, extra: dict[str, Any] | None,
                     config: Any) -> None:
    # The caller's file gets nothing until the whole stream verified; until then the plaintext
    # waits in an unnamed file that a killed process cannot leave behind.
    with scratch_file(tempfile.gettempdir()) as plain_fd, open(plain_fd, "w+b", closefd=False) as plain:
        _fetch_and_decrypt(s3, bucket, key, tempfile.gettempdir(), plain, config, extra)
        plain.seek(0)
        shutil.copyfileobj(plain, fileobj, 1 << 20)

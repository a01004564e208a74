"""upload_file / upload_fileobj / download_file / download_fileobj for :class:`EncryptedS3Client`.

boto3's transfer methods, with its ``TransferConfig`` (``multipart_threshold``,
``multipart_chunksize``, ``max_concurrency``) meaning what it means there:

- Uploads at or above the threshold go up as a multipart upload whose parts
  are whole sealed chunks, sealed here while earlier parts are being sent
  (:mod:`envelope.s3.multipart`); below it, one PutObject.
- Downloads fetch the ciphertext in ranges of ``multipart_chunksize``,
  concurrently, into a private temporary file, then decrypt it with the native
  engine.  ``download_file`` writes beside the destination and renames only
  when every chunk and the end of the stream verified; ``download_fileobj``
  writes to the caller's file only after that.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, cast

from .. import api
from ..stream import encrypt_stream
from .multipart import multipart_upload, part_size_for
from .s3ec import decrypt_downloaded
from .s3ec_format import is_s3ec

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
    with multipart_upload(s3.wrapped_client, bucket, key, part_size_for(s3.chunk_size, part), concurrency,
                          Metadata=metadata, **extra) as sink:
        encrypt_stream(cast(BinaryIO, fileobj), cast(BinaryIO, sink), s3.encryption_keyring, context=s3.context,
                       chunk_size=s3.chunk_size, plaintext_size=size)


def fetch(client: Any, bucket: str, key: str, dst: Path, config: Any,
          extra: dict[str, Any] | None) -> dict[str, Any]:
    """The stored (encrypted) object into *dst*, in concurrent ranged GETs pinned to one ETag; its HeadObject."""
    _, part, concurrency = settings(config)
    head = client.head_object(Bucket=bucket, Key=key, **(extra or {}))
    size, etag = int(head["ContentLength"]), head["ETag"]
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
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
    finally:
        os.close(fd)
    return dict(head)


def download_file(s3: Any, bucket: str, key: str, filename: str | os.PathLike[str], extra: dict[str, Any] | None,
                  config: Any) -> None:
    target = Path(filename)
    with tempfile.TemporaryDirectory(prefix=".envelope-s3-", dir=target.parent) as work:
        sealed = Path(work) / "object.envelope"
        head = fetch(s3.wrapped_client, bucket, key, sealed, config, extra)
        if is_s3ec(head.get("Metadata")):
            decrypt_downloaded(s3, head, sealed, target, bucket, key)
            return
        api.decrypt_file(sealed, target, keys=s3.decryption_keyring, context=s3.context, force=True)


def download_fileobj(s3: Any, bucket: str, key: str, fileobj: Any, extra: dict[str, Any] | None,
                     config: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="envelope-s3-") as work:
        plain = Path(work) / "object"
        download_file(s3, bucket, key, plain, extra, config)
        with open(plain, "rb") as fh:
            shutil.copyfileobj(fh, fileobj, 1 << 20)

"""upload_file / upload_fileobj / download_file / download_fileobj for :class:`EncryptedS3Client`.

boto3's transfer methods, with its ``TransferConfig`` (``multipart_threshold``,
``multipart_chunksize``, ``max_concurrency``) meaning what it means there:

- Uploads at or above the threshold go up as a multipart upload whose parts
  are whole sealed chunks, each read, sealed and sent by a worker of the pool
  (a stream of unknown length: sealed in order while earlier parts are being
  sent) (:mod:`envelope.s3.multipart`); below it, one PutObject.
- Downloads fetch ranges of about ``multipart_chunksize`` concurrently and
  open each as it arrives (:mod:`envelope.s3.download`); ``download_file``
  writes beside the destination and renames only when every chunk and the end
  of the stream verified; ``download_fileobj`` writes to the caller's file
  only after that.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, Callable, cast

from ..atomic import atomic_output, scratch_file
from ..format import plaintext_before, plaintext_size
from ..stream import encrypt_stream, start_stream
from .download import FirstRange, download_opened
from .multipart import MultipartSink, multipart_upload, open_upload, part_size_for, upload_parts
from .s3ec import decrypt_downloaded
from .s3ec_format import TAG_SIZE as S3EC_TAG_SIZE
from .s3ec_format import is_s3ec

DEFAULT_THRESHOLD = 8 << 20
DEFAULT_PART = 8 << 20
DEFAULT_CONCURRENCY = 10

Callback = Callable[[int], object]  # boto3's: told of bytes transferred since its last call


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


def upload(s3: Any, fileobj: Any, bucket: str, key: str, extra: dict[str, Any] | None, config: Any,
           callback: Callback | None = None) -> None:
    """Encrypt *fileobj* into s3://bucket/key: one PutObject below the threshold, else parallel multipart.

    *callback*, as boto3's ``Callback``, is told of plaintext bytes as the parts
    carrying them are acknowledged by S3; the calls add up to the object's size.
    """
    threshold, part, concurrency = settings(config)
    extra = dict(extra or {})
    size = remaining(fileobj)
    if size is not None and size < threshold:
        s3.put_object(Bucket=bucket, Key=key, Body=fileobj, **extra)
        if callback is not None and size:
            callback(size)
        return
    metadata = dict(extra.pop("Metadata", None) or {})
    metadata.update(s3.envelope_metadata(size))
    client = s3.wrapped_client
    part_size = part_size_for(s3.chunk_size, part)
    if size is not None:  # parts sealed and sent by the pool, each from its own offset
        ctx = s3.context
        with s3.encryption_keyring.generate_data_key(ctx, size) as data_key:
            header, keys = start_stream(data_key.plaintext, data_key.wrapped, context=ctx, chunk_size=s3.chunk_size)
        with open_upload(client, bucket, key, Metadata=metadata, **extra) as upload:
            upload.parts = upload_parts(client, bucket, key, upload.upload_id, fileobj, size, header, keys,
                                        part_size, concurrency, on_sent=callback, part_args=upload.part_args)
        return
    sink: MultipartSink | None = None  # a stream of unknown length: sealed in order, parts sent as they fill

    def sent(start: int, end: int, total: int | None) -> None:
        assert sink is not None and sink.header_size is not None and callback is not None
        cap = None if total is None else plaintext_size(sink.header_size, total, s3.chunk_size)
        before = functools.partial(plaintext_before, sink.header_size, s3.chunk_size, plaintext_size=cap)
        callback(before(end) - before(start))

    with multipart_upload(client, bucket, key, part_size, concurrency, on_sent=sent if callback else None,
                          Metadata=metadata, **extra) as sink:
        encrypt_stream(cast(BinaryIO, fileobj), cast(BinaryIO, sink), s3.encryption_keyring, context=s3.context,
                       chunk_size=s3.chunk_size)


def fetch(client: Any, bucket: str, key: str, fd: int, config: Any, head: dict[str, Any]) -> None:
    """The stored (encrypted) object into the file *fd*, in concurrent ranged GETs pinned to the ETag of *head*."""
    _, part, concurrency = settings(config)
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


def download_file(s3: Any, bucket: str, key: str, filename: str | os.PathLike[str], extra: dict[str, Any] | None,
                  config: Any, callback: Callback | None = None) -> None:
    """*callback* is told of plaintext bytes as they are verified and written; the calls add up to the size."""
    target = os.path.abspath(filename)
    with atomic_output(target, force=True) as out:
        if not stat.S_ISREG(os.fstat(out.fileno()).st_mode):  # a device or FIFO written in place:
            # in order, each chunk once it verified (as to stdout); parts at offsets need a regular file
            s3.download_stream(bucket, key, out, extra, callback)
            return
        _download_into(s3, bucket, key, out, os.path.dirname(target), extra, config, callback)


def download_fileobj(s3: Any, bucket: str, key: str, fileobj: Any, extra: dict[str, Any] | None,
                     config: Any, callback: Callback | None = None) -> None:
    # The caller's file gets nothing until the whole stream verified; until then the plaintext
    # waits in an unnamed file that a killed process cannot leave behind.
    with scratch_file(tempfile.gettempdir()) as plain_fd, open(plain_fd, "w+b", closefd=False) as plain:
        _download_into(s3, bucket, key, plain, tempfile.gettempdir(), extra, config, callback)
        plain.seek(0)
        shutil.copyfileobj(plain, fileobj, 1 << 20)


def _download_into(s3: Any, bucket: str, key: str, out: BinaryIO, scratch: str, extra: dict[str, Any] | None,
                   config: Any, callback: Callback | None) -> None:
    _, part, concurrency = settings(config)
    first = FirstRange(s3.wrapped_client, bucket, key, part, extra)
    try:
        head = {**first.response, "ContentLength": first.size}
        if not is_s3ec(head.get("Metadata")):
            download_opened(s3, first, bucket, key, out.fileno(), part, concurrency, callback)
            return
    finally:
        first.close()
    # AWS's format is one GCM stream: fetched whole into an unnamed file in *scratch*, then decrypted.
    with scratch_file(scratch) as fd, open(fd, "rb", buffering=0, closefd=False) as sealed:
        fetch(s3.wrapped_client, bucket, key, fd, config, head)
        decrypt_downloaded(s3, head, sealed, out, bucket, key)
    if callback is not None:
        callback(first.size - S3EC_TAG_SIZE)

"""Rewrap an S3 object: new wrapped data keys, and the body copied by S3 itself, never downloaded.

Only the header of an envelope object depends on the master keys
(:mod:`envelope.rewrap`).  So the new object is the new header followed by
the old body: a multipart upload whose first part is the new header and the
first few MiB of the body (S3 wants every part but the last to be at least
5 MiB, and a header is a few hundred bytes), and whose other parts are
UploadPartCopy of the old body's byte ranges, inside S3.  An object small
enough for one part is read and written whole.  The object's metadata,
content type and tags are kept; any failure aborts the upload and leaves the
original in place.
"""

from __future__ import annotations

from typing import Any, BinaryIO, cast

from ..keyrings.base import MultiKeyring
from ..rewrap import rewrap_header
from .multipart import MIN_PART_SIZE
from .ranged import RangedObject

COPY_PART = 64 << 20  # each UploadPartCopy: large, S3 does the work
#: A body up to this many bytes is read and put again with the new header in one PutObject; a larger one
#: goes up as a multipart upload (the new header and the first part, then parts copied inside S3).
SINGLE_PUT_BODY = MIN_PART_SIZE + COPY_PART // 8
_KEPT = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl",
         "ServerSideEncryption", "SSEKMSKeyId", "StorageClass")


def rewrap_object(client: Any, bucket: str, key: str, unwrap: MultiKeyring, wrap: MultiKeyring,
                  context: dict[str, str] | None = None) -> dict[str, Any]:
    """Give s3://bucket/key new wrapped keys under *wrap*; returns the new header's wrapped keys and ETag."""
    head = client.head_object(Bucket=bucket, Key=key)
    size, etag = int(head["ContentLength"]), head["ETag"]
    source = RangedObject(client, bucket, key, size, etag, window=64 << 10)
    old, new = rewrap_header(cast(BinaryIO, source), unwrap, wrap, required_context=context)
    encoded = new.encode()
    body_start = old.size
    extra = {name: head[name] for name in _KEPT if head.get(name)}
    tags = client.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
    if tags:
        from urllib.parse import urlencode

        extra["Tagging"] = urlencode([(t["Key"], t["Value"]) for t in tags])
    metadata = head.get("Metadata", {})
    body_size = size - body_start
    if body_size <= SINGLE_PUT_BODY:  # small: one PutObject of the new bytes
        body = _read(client, bucket, key, etag, body_start, size - 1)
        response = client.put_object(Bucket=bucket, Key=key, Body=encoded + body, Metadata=metadata, **extra)
        return {"ETag": response["ETag"], "WrappedKeys": new.wrapped_keys}
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, Metadata=metadata, **extra)["UploadId"]
    try:
        first_end = body_start + MIN_PART_SIZE  # exclusive
        parts = [{"PartNumber": 1, "ETag": client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1,
            Body=encoded + _read(client, bucket, key, etag, body_start, first_end - 1))["ETag"]}]
        start = first_end
        while start < size:
            end = min(size, start + COPY_PART) - 1
            number = len(parts) + 1
            copied = client.upload_part_copy(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                             CopySource={"Bucket": bucket, "Key": key},
                                             CopySourceRange=f"bytes={start}-{end}", CopySourceIfMatch=etag)
            parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
            start = end + 1
        response = client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                                    MultipartUpload={"Parts": parts})
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    return {"ETag": response["ETag"], "WrappedKeys": new.wrapped_keys}


def _read(client: Any, bucket: str, key: str, etag: str, first: int, last: int) -> bytes:
    if last < first:
        return b""
    body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={first}-{last}", IfMatch=etag)["Body"]
    try:
        return bytes(body.read())
    finally:
        body.close()

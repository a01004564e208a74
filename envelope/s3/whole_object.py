"""Whole-object GETs of envelope objects: one request, read in order, each chunk checked as it arrives.

:meth:`EncryptedS3Client.get_object <envelope.s3.client.EncryptedS3Client.get_object>`
without ``Range`` decrypts into a spooled temporary file (memory up to
:data:`SPOOL_BYTES`, then disk) and returns it only once the last chunk and the
end of the stream verified; :meth:`~envelope.s3.client.EncryptedS3Client.download_stream`
writes each chunk to a stream that cannot be taken back (a pipe, stdout) as
soon as its own tag verified.  Objects in AWS's S3 Encryption Client format
have one tag for the whole body and go to :mod:`envelope.s3.s3ec`.  The
functions take the encrypting client (its wrapped boto3 client, its decrypting
keyring and required context), as :mod:`envelope.s3.transfer` does.
"""

from __future__ import annotations

import functools
import io
import tempfile
from typing import Any, BinaryIO, cast

from ..exceptions import FormatError
from ..format import plaintext_before, plaintext_size
from ..pipeline import write_all
from ..stream import open_body, open_header
from . import s3ec, s3ec_format
from .metadata import plaintext_view

#: Plaintext kept in memory by a whole-object GET (and a PutObject's sealed body) before it spills to disk.
SPOOL_BYTES = 8 << 20


def response_view(response: dict[str, Any], bucket: str, key: str) -> dict[str, Any]:
    """A HeadObject/GetObject response as the caller sees it, for envelope's format or AWS's."""
    if s3ec_format.is_s3ec(response.get("Metadata")):
        return s3ec.plaintext_view(response, bucket, key)
    return plaintext_view(response, bucket, key)


def get_whole(s3: Any, bucket: str, key: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """GetObject without a range: the plaintext in a spooled file, returned once all of it verified."""
    response = dict(s3.wrapped_client.get_object(Bucket=bucket, Key=key, **kwargs))
    if s3ec_format.is_s3ec(response.get("Metadata")):
        return s3ec.get_whole(s3, response, bucket, key)
    plain = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    try:
        decrypt_body(s3, response, plain)
    except BaseException:
        plain.close()
        raise
    length = plain.tell()
    plain.seek(0)
    response = response_view(response, bucket, key)
    response.update(Body=plain, ContentLength=length)
    return response


def download_stream(s3: Any, bucket: str, key: str, out: Any, extra: dict[str, Any] | None,
                    callback: Any = None) -> None:
    """One GET into *out*, chunks as they verify (an S3EC object: once all of it verified)."""
    response = dict(s3.wrapped_client.get_object(Bucket=bucket, Key=key, **(extra or {})))
    if s3ec_format.is_s3ec(response.get("Metadata")):
        with s3ec.get_whole(s3, response, bucket, key)["Body"] as plain:
            for block in iter(lambda: plain.read(1 << 20), b""):
                write_all(out, memoryview(block))
                if callback is not None:
                    callback(len(block))
        return
    decrypt_body(s3, response, out, callback)


def decrypt_body(s3: Any, response: dict[str, Any], out: Any, callback: Any = None) -> None:
    """An envelope object's body, from a whole-object GET, into *out*: chunks as they verify."""
    body = response["Body"]
    try:
        src = cast(BinaryIO, RawStreamingBody(body))
        header, keys = open_header(src, s3.decryption_keyring, required_context=s3.context)
        progress = None
        if callback is not None:  # told of sealed bytes read; plaintext is what boto3's callers count
            try:
                size: int | None = plaintext_size(header.size, int(response["ContentLength"]), header.chunk_size)
            except FormatError:
                size = None  # an impossible length: the stream fails at its end anyway
            before = functools.partial(plaintext_before, 0, header.chunk_size, plaintext_size=size)
            seen = [0]

            def progress(n: int) -> None:
                start, seen[0] = before(seen[0]), seen[0] + n
                callback(before(seen[0]) - start)
        open_body(src, cast(BinaryIO, out), header, keys, progress=progress)
    finally:
        body.close()


class RawStreamingBody(io.RawIOBase):
    """botocore's StreamingBody as a raw binary stream (``readinto``), for what reads a GET's body as a file:
    the decrypting reader here, a bulk task's source or object to verify."""

    def __init__(self, body: Any) -> None:
        super().__init__()
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._body.read(len(view))
        view[:len(data)] = data
        return len(data)

"""What an envelope object's S3 metadata says, and the plaintext view of a response built from it.

An object's body is an envelope v1 stream; its user metadata marks it as one
and carries what a reader needs to plan ranged reads without fetching the
header first::

    x-amz-meta-envelope                 1 (the format version)
    x-amz-meta-envelope-plaintext-size  the plaintext's length (absent for a stream of unknown length)
    x-amz-meta-envelope-chunk-size      the chunk size

Nothing here is trusted for security: the header, authenticated when the
object is opened, decides.  Metadata only saves requests.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import FormatError

META_VERSION = "envelope"
META_SIZE = "envelope-plaintext-size"
META_CHUNK = "envelope-chunk-size"


def require_envelope(metadata: dict[str, str], bucket: str, key: str) -> None:
    if META_VERSION not in metadata:
        raise FormatError(f"s3://{bucket}/{key} is not an envelope object (no {META_VERSION} metadata)")


def plaintext_view(response: dict[str, Any], bucket: str, key: str) -> dict[str, Any]:
    """A HeadObject/GetObject response as the caller of the encrypting client sees it.

    ContentLength becomes the plaintext's (the stored length moves to
    EncryptedContentLength) and envelope's own metadata is hidden.
    """
    metadata = dict(response.get("Metadata") or {})
    require_envelope(metadata, bucket, key)
    response["EncryptedContentLength"] = response.get("ContentLength")
    if META_SIZE in metadata:  # absent for a stream of unknown length uploaded in parts
        response["ContentLength"] = int(metadata[META_SIZE])
    response["Metadata"] = {k: v for k, v in metadata.items() if not k.startswith(META_VERSION)}
    response.pop("ContentRange", None)
    return response

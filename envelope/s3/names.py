"""Object keys and s3:// URLs: what names a copy may give, shared by ``s3 cp --recursive`` and bulk jobs.

Object keys are written by whoever can write to the bucket, so a key becomes
a local path only through :func:`envelope.paths.local_path`, which refuses any
name that would land outside the destination directory.
"""

from __future__ import annotations

from ..exceptions import UsageError

S3_SCHEME = "s3://"


def split_url(url: str) -> tuple[str, str]:
    if not url.startswith(S3_SCHEME):
        raise UsageError(f"{url!r} is not an s3://BUCKET/KEY URL")
    bucket, _, key = url[len(S3_SCHEME):].partition("/")
    if not bucket:
        raise UsageError(f"{url!r} names no bucket")
    return bucket, key

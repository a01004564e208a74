"""Object keys and s3:// URLs: what names a copy may give, shared by ``s3 cp --recursive`` and bulk jobs.

Object keys are written by whoever can write to the bucket, so a key becomes
a local path only through :func:`local_path`, which refuses any name that
would land outside the destination directory.
"""

from __future__ import annotations

import os

from ..exceptions import UsageError

S3_SCHEME = "s3://"


def split_url(url: str) -> tuple[str, str]:
    if not url.startswith(S3_SCHEME):
        raise UsageError(f"{url!r} is not an s3://BUCKET/KEY URL")
    bucket, _, key = url[len(S3_SCHEME):].partition("/")
    if not bucket:
        raise UsageError(f"{url!r} names no bucket")
    return bucket, key


def local_path(root: str, rest: str) -> str:
    """Where the object whose key ends in *rest* goes when copied under the directory *root*.

    Object keys are written by whoever can write to the bucket, so a key
    becomes a path only if every ``/``-separated part is a plain name here (not
    empty, ``.`` or ``..``; no NUL; no separator or drive of this OS; a
    backslash is a name character on POSIX) and the path, with the symbolic
    links already under *root* resolved, stays inside *root*.  Else UsageError.
    """
    parts = rest.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UsageError(f"it has a {part!r} part, a directory reference, not a file name" if part else
                             "it has an empty part (a leading, doubled or trailing '/')")
        if "\0" in part:
            raise UsageError("it has a NUL byte")
        if any(sep in part for sep in (os.sep, os.altsep) if sep) or os.path.splitdrive(part)[0] \
                or os.path.isabs(part):
            raise UsageError(f"its part {part!r} is a path on this system, not a name")
    path = os.path.join(root, *parts)
    inside = os.path.realpath(root)
    if os.path.commonpath([inside, os.path.realpath(path)]) != inside:
        raise UsageError("its path leads out of the destination through a symbolic link")
    return path

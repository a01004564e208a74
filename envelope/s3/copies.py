"""What a copy between local paths and S3 does: which objects or files, where each goes, and each copy.

``envelope s3 cp`` is this with a command line around it.  A source or a
destination is a local path, ``-`` (stdin or stdout) or an ``s3://BUCKET/KEY``
URL; at least one of the two is an S3 URL.  :func:`plan` turns the pair into
jobs, one per object or file, each with its size for a progress total, and
lists the objects it refused (a key that cannot be a local file name) without
stopping at them; :func:`copy` performs one job on an
:class:`~envelope.s3.client.EncryptedS3Client`: an upload encrypts, a download
decrypts, and S3 to S3 copies the encrypted body inside S3, never decrypted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from ..atomic import STDIO, atomic_output, check_destination, open_input
from ..exceptions import RangeNotSatisfiableError, UsageError
from ..paths import local_path
from .metadata import META_SIZE
from .names import S3_SCHEME, split_url
from .ranged import range_header

#: (source, destination, bytes): one object or file to copy, and its size (0: unknown until it is read).
Job = tuple[str, str, int]
#: Plaintext bytes [start, end), or with a negative start the last -start bytes (end None: to the end).
ByteSpan = tuple[int, int | None]


def plan(client: Any, src: str, dst: str, *, recursive: bool = False,
         ranged: bool = False) -> tuple[list[Job], list[UsageError]]:
    """Every object or file to copy, and the objects refused (why).

    Without *recursive*, one job: a destination that is a directory or ends
    in ``/`` gets the source's last name appended.  With it, every file under
    a directory goes to the prefix, or every object under a prefix to the
    directory (the prefix itself and empty folder markers are skipped).  A
    *ranged* download's size is left unknown.
    """
    src_s3, dst_s3 = src.startswith(S3_SCHEME), dst.startswith(S3_SCHEME)
    if not recursive:
        if dst == STDIO:
            pass
        elif not dst_s3 and (dst.endswith("/") or os.path.isdir(dst)):
            bucket, key = split_url(src)
            dst = _local_target(dst, bucket, key, key.rsplit("/", 1)[-1])
        elif dst_s3 and dst.endswith("/"):
            if src == STDIO:
                raise UsageError("stdin has no name to put after the prefix: give s3://BUCKET/KEY")
            dst += os.path.basename(src) if not src_s3 else split_url(src)[1].rsplit("/", 1)[-1]
        if src == STDIO:
            size = 0  # unknown until the stream ends
        elif not src_s3:
            size = os.path.getsize(src)
        elif not ranged and not dst_s3:  # the bar's total: the plaintext's size, or near it
            head = client.wrapped_client.head_object(Bucket=split_url(src)[0], Key=split_url(src)[1])
            size = int((head.get("Metadata") or {}).get(META_SIZE, head["ContentLength"]))
        else:
            size = 0
        return [(src, dst, size)], []
    if not src_s3:
        root = Path(src)
        if not root.is_dir():
            raise UsageError(f"--recursive needs a directory, not {src!r}")
        files = sorted(p for p in root.rglob("*") if p.is_file())
        prefix = dst.rstrip("/") + "/"
        return [(str(p), prefix + p.relative_to(root).as_posix(), p.stat().st_size) for p in files], []
    bucket, prefix = split_url(src)
    jobs: list[Job] = []
    refused: list[UsageError] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            rest = key[len(prefix):]
            if prefix and not prefix.endswith("/") and rest.startswith("/"):
                rest = rest[1:]  # the separator after a prefix given without one
            if not rest or (rest.endswith("/") and int(item["Size"]) == 0):
                continue  # the prefix itself, or an empty folder marker (the S3 console's "Create folder")
            if dst_s3:
                target = dst.rstrip("/") + "/" + rest
            else:
                try:
                    target = _local_target(dst, bucket, key, rest)
                except UsageError as exc:
                    refused.append(exc)
                    continue
            jobs.append((f"{S3_SCHEME}{bucket}/{key}", target, int(item["Size"])))
    if not jobs and not refused:
        raise UsageError(f"nothing under {src}")
    return jobs, refused


def copy(client: Any, src: str, dst: str, tick: Callable[[int], None], *, force: bool = False,
         byte_range: ByteSpan | None = None) -> None:
    """One job of :func:`plan` on the encrypting *client*; *tick* is told of plaintext bytes as they move.

    A local destination is replaced only once all of it verified, and an
    existing one only with *force* (a device or FIFO is written in place);
    to stdout, each chunk is released once its own tag verified.
    *byte_range*: only those plaintext bytes of one object.
    """
    if not src.startswith(S3_SCHEME):
        bucket, key = split_url(dst)
        if src != STDIO:
            client.upload_file(src, bucket, key, Callback=tick)
            return
        with open_input(STDIO) as stdin:  # a pipe's length is unknown: sealed in order, sent in parts as they fill
            client.upload_fileobj(stdin, bucket, key, Callback=tick)
        return
    bucket, key = split_url(src)
    if dst.startswith(S3_SCHEME):
        to_bucket, to_key = split_url(dst)
        client.copy_object(Bucket=to_bucket, Key=to_key, CopySource={"Bucket": bucket, "Key": key})
        return
    if dst != STDIO:
        check_destination(dst, force)  # a device or FIFO is written in place, as by decrypt-file
        os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    if byte_range is None:
        if dst != STDIO:
            client.download_file(bucket, key, dst, Callback=tick)
            return
        with atomic_output(STDIO) as stdout:  # cannot be taken back: chunks as they verify, failure by exit status
            client.download_stream(bucket, key, stdout, Callback=tick)
        return
    body = get_range(client, bucket, key, *byte_range)
    with atomic_output(dst, force=True) as out:
        out.write(body)


def get_range(client: Any, bucket: str, key: str, start: int, end: int | None) -> bytes:
    """Plaintext bytes [start, end) of an object (a negative *start*: the last -start bytes);
    a range past its end is the error ``decrypt-file --range`` gives."""
    from botocore.exceptions import ClientError

    try:
        return bytes(client.get_object(Bucket=bucket, Key=key, Range=range_header(start, end))["Body"].read())
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "InvalidRange" and str(error.get("ActualObjectSize", "")).isdigit():
            raise RangeNotSatisfiableError(start, end, int(error["ActualObjectSize"])) from None
        raise


def _local_target(root: str, bucket: str, key: str, rest: str) -> str:
    try:
        return local_path(root, rest)
    except UsageError as exc:
        raise UsageError(f"s3://{bucket}: refusing to copy key {key!r} to a local file: {exc}") from None

"""What a bulk job will do: its source and destination, and one :class:`Item` per object or file.

Listing runs on the driver and reads names and sizes only (ListObjectsV2, a
directory walk), never data.  Each item names its destination already, so a
name that would leave the destination is refused here, per object, by the
same check as ``s3 cp --recursive`` (:func:`envelope.paths.local_path`).
An item also carries its source's *stamp* (ETag, or size and mtime): a
written destination records it, so a rerun knows the work is done.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..api import SUFFIX
from ..exceptions import UsageError
from ..paths import local_path
from ..s3.names import S3_SCHEME, split_url

OPERATIONS = ("encrypt", "decrypt", "rewrap", "verify")
#: Objects at or above this many bytes go up in parts; below it, one PUT.
MULTIPART_THRESHOLD = 8 << 20
#: Object metadata (S3) or extended attribute (local files) naming what a destination was made from.
MARK_METADATA = "envelope-bulk-source"
MARK_XATTR = "user.envelope.bulk-source"


@dataclass(frozen=True)
class Location:
    """``s3://bucket/prefix/`` or a local directory."""

    text: str
    bucket: str | None = None
    prefix: str = ""

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def join(self, rel: str) -> str:
        """The object URL or file path of *rel* under this location (a local name is checked first)."""
        if self.is_s3:
            return f"{S3_SCHEME}{self.bucket}/{self.prefix}{rel}"
        return local_path(self.text, rel)


def parse_location(text: str) -> Location:
    if text.startswith(S3_SCHEME):
        bucket, prefix = split_url(text)
        return Location(text, bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/")
    if not text:
        raise UsageError("an empty path is not a directory")
    return Location(os.path.abspath(text))


@dataclass(frozen=True)
class Item:
    """One object or file: where it is, where it goes (None: in place or nowhere), its size and stamp."""

    rel: str
    src: str
    dst: str | None
    size: int
    stamp: str
    #: Whether the destination may exist already (an object listed there when the job was planned, a rerun):
    #: only then is it worth a HEAD to see whether it records this source.
    check: bool = True
    #: Whether the task may start a multipart upload (recorded before it runs, so a rerun aborts what a killed
    #: attempt left): an object encrypted into S3 at or above the threshold, an object rewrapped in place whose
    #: body is copied in parts.
    multipart: bool = False

    @property
    def mark(self) -> str:
        """What the destination records: a digest of the source's name and stamp (ASCII, for S3 metadata)."""
        return hashlib.sha256(f"{self.src}\0{self.stamp}".encode("utf-8", "surrogateescape")).hexdigest()[:40]


@dataclass(frozen=True)
class Refused:
    src: str
    reason: str


def check_pair(operation: str, src: Location, dst: Location | None) -> None:
    """The combinations that make sense, and no destination inside its source (it would be listed again)."""
    if operation not in OPERATIONS:
        raise UsageError(f"unknown bulk operation {operation!r}: use {', '.join(OPERATIONS)}")
    if operation == "verify" and dst is not None:
        raise UsageError("verify reads SRC only: give no DST")
    if operation in ("encrypt", "decrypt") and dst is None:
        raise UsageError(f"{operation} needs a DST (a directory or s3://BUCKET/PREFIX/)")
    if operation == "encrypt" and src.is_s3 and dst is not None and not dst.is_s3:
        raise UsageError("encrypt writes a local tree from a local tree: for objects give an s3:// DST")
    if operation == "decrypt" and dst is not None and dst.is_s3:
        raise UsageError("decrypt writes plaintext to a local directory, not to S3")
    if operation == "rewrap" and dst is not None and (src.is_s3 or dst.is_s3):
        raise UsageError("rewrap of objects works in place (the body is copied inside S3): give no DST")
    if dst is None:
        return
    if src.is_s3 and dst.is_s3:
        overlap = src.bucket == dst.bucket and (src.prefix.startswith(dst.prefix) or dst.prefix.startswith(src.prefix))
    elif not src.is_s3 and not dst.is_s3:
        a, b = os.path.realpath(src.text), os.path.realpath(dst.text)
        overlap = os.path.commonpath([a, b]) in (a, b)
    else:
        overlap = False
    if overlap:
        raise UsageError(f"{dst.text} and {src.text} overlap: a destination inside its source (or the source "
                         "itself) would be listed as input")


def _wanted(rel: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if include and not any(fnmatch.fnmatchcase(rel, g) for g in include):
        return False
    return not any(fnmatch.fnmatchcase(rel, g) for g in exclude)


def _dst_name(operation: str, rel: str, src: Location, dst: Location) -> str:
    """Local files gain .envelope when encrypted and lose it when decrypted; object keys keep their names."""
    if operation == "encrypt" and not dst.is_s3:
        return rel + SUFFIX
    if operation == "decrypt" and not src.is_s3:
        return rel[: -len(SUFFIX)]
    return rel


def list_source(src: Location, s3: Any, sealed_only: bool) -> Iterator[tuple[str, int, str]]:
    """(relative name, size, stamp) of every object under the prefix or file under the directory."""
    if src.is_s3:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=src.bucket, Prefix=src.prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(src.prefix):]
                if rel and not (rel.endswith("/") and int(obj["Size"]) == 0):  # the console's folder markers
                    yield rel, int(obj["Size"]), str(obj["ETag"])
        return
    if not os.path.isdir(src.text):
        raise UsageError(f"{src.text!r} is not a directory")
    for dirpath, dirnames, filenames in os.walk(src.text):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not os.path.isfile(path) or os.path.islink(path):
                continue  # regular files only: no devices, FIFOs, or links out of the tree
            if sealed_only and (not name.endswith(SUFFIX) or name == SUFFIX):
                continue
            yield os.path.relpath(path, src.text).replace(os.sep, "/"), st.st_size, f"{st.st_size}:{st.st_mtime_ns}"


def _in_parts(operation: str, src: Location, dst: Location | None, size: int) -> bool:
    """Whether the item's task may start a multipart upload (see :attr:`Item.multipart`)."""
    if operation == "encrypt":
        return dst is not None and dst.is_s3 and size >= MULTIPART_THRESHOLD
    if operation == "rewrap" and src.is_s3:
        from ..s3.rewrap import SINGLE_PUT_BODY

        return size > SINGLE_PUT_BODY  # the whole object, header included: never less than its body
    return False


def plan(operation: str, src: Location, dst: Location | None, s3: Any, *, include: Sequence[str] = (),
         exclude: Sequence[str] = ()) -> tuple[list[Item], list[Refused]]:
    """The items of a job, and the objects refused (a name that would leave the destination)."""
    check_pair(operation, src, dst)
    items: list[Item] = []
    refused: list[Refused] = []
    sealed_only = operation != "encrypt"
    existing = None if dst is None or not dst.is_s3 else {
        dst.join(rel) for rel, _, _ in list_source(dst, s3, sealed_only=False)}  # one LIST per 1000 objects
    for rel, size, stamp in list_source(src, s3, sealed_only):
        if not _wanted(rel, include, exclude):
            continue
        source = src.join(rel) if src.is_s3 else os.path.join(src.text, *rel.split("/"))
        target = None
        if dst is not None:
            try:
                target = dst.join(_dst_name(operation, rel, src, dst))
            except UsageError as exc:
                refused.append(Refused(source, f"refusing to write {rel!r} under {dst.text}: {exc}"))
                continue
        items.append(Item(rel, source, target, size, stamp, existing is None or target in existing,
                          _in_parts(operation, src, dst, size)))
    if not items and not refused:
        raise UsageError(f"nothing to {operation} under {src.text}")
    return items, refused

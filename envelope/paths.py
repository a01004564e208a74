"""Names that become local paths: object keys copied down, and the files of a tree encrypted into another.

A name becomes a path under a destination directory only through
:func:`local_path`, which refuses any name that would land outside it; the
tree walk of ``encrypt-file -r`` and the downloads of ``s3 cp --recursive``
and bulk jobs share it.  Nothing here imports S3 code, so encrypting a tree
loads none.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from .exceptions import UsageError


def local_path(root: str, rest: str, *, through_last: bool = True) -> str:
    """Where the object whose key ends in *rest* goes when copied under the directory *root*.

    Object keys are written by whoever can write to the bucket, so a key
    becomes a path only if every ``/``-separated part is a plain name here (not
    empty, ``.`` or ``..``; no NUL; no separator or drive of this OS; a
    backslash is a name character on POSIX) and the path, with the symbolic
    links already under *root* resolved, stays inside *root*.  Else UsageError.

    Without *through_last*, a symbolic link at the last part is left to
    :func:`envelope.atomic.atomic_output`'s rule for every output (replaced
    with ``--force``, else refused; one to a FIFO or device written in place);
    only the directories above it must stay inside *root*.
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
    if os.path.commonpath([inside, os.path.realpath(path if through_last else os.path.dirname(path))]) != inside:
        raise UsageError("its path leads out of the destination through a symbolic link")
    return path


def tree_files(top: str, exclude: str | None = None) -> Iterator[tuple[str, str | None, str]]:
    """Every file under the directory *top*, sorted: (path, its ``/``-joined name below *top*, or None, why not).

    A regular file comes with its relative name.  Anything else comes with None
    and the reason it is left out, for a notice: a symbolic link that leads out
    of *top* (the tree is what was asked for, not what its links reach), one to
    a directory (never descended: it could loop, or repeat the tree), a FIFO
    or device (reading one would wait for a writer, or never end).  A symbolic
    link to a regular file inside *top* is a file of the tree.  The directory
    *exclude* (where the outputs go, which may be inside *top*) is not walked:
    a second run must not encrypt the first one's outputs.
    """
    inside = os.path.realpath(top)
    skip = None if exclude is None else os.path.realpath(exclude)
    for directory, dirs, files in os.walk(top, onerror=_raise):
        dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(directory, d)) != skip)
        rel_dir = os.path.relpath(directory, top)
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]):
            path = os.path.join(directory, name)
            rel = name if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{name}"
            try:
                st = os.stat(path)
            except OSError:
                yield path, None, "a dangling symbolic link" if os.path.islink(path) else "it vanished"
                continue
            if os.path.islink(path):
                real = os.path.realpath(path)
                if os.path.commonpath([inside, real]) != inside:
                    yield path, None, "a symbolic link out of the tree (not followed)"
                    continue
                if stat.S_ISDIR(st.st_mode):
                    yield path, None, "a symbolic link to a directory (not followed)"
                    continue
            if not stat.S_ISREG(st.st_mode):
                yield path, None, "not a regular file"
                continue
            yield path, rel, ""


def _raise(exc: OSError) -> None:
    raise exc

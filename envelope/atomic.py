"""Outputs that appear whole or not at all.

A finished output file only ever holds data that was fully authenticated (for
decryption) or fully written (for encryption): bytes go to a temporary file
beside the destination, on the same filesystem, and a rename puts it in place
after the last check passed.  Any failure, Ctrl-C included, removes the
temporary file, and the destination is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from .exceptions import OutputExistsError

STDIO = "-"
TEMP_PREFIX = ".envelope-tmp-"


def check_destination(path: str, force: bool) -> None:
    """Refuse early, before any work, to overwrite an existing file."""
    if path != STDIO and not force and os.path.lexists(path):
        raise OutputExistsError(f"{path!r} already exists (use --force to overwrite)")


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_output(path: str, *, force: bool = False, mode: int | None = None) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes *path* only if the block completes.

    ``-`` yields stdout, which cannot be withdrawn: a caller writing there
    must report failure through its exit status.
    """
    if path == STDIO:
        sys.stdout.flush()
        # Unbuffered, lock-free access to fd 1: the pipeline's writer thread owns it.
        with open(sys.stdout.fileno(), "wb", buffering=0, closefd=False) as out:
            yield out  # type: ignore[misc]
        return
    check_destination(path, force)
    directory = os.path.dirname(os.path.abspath(path))
    # mkstemp makes the file 0600, and it stays so while it is written: a decryption's
    # temporary holds plaintext not yet authenticated, which no other user may read.
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb", buffering=0) as out:
            yield out  # type: ignore[misc]
            os.fchmod(fd, _default_mode() if mode is None else mode)
        if force:
            os.replace(tmp, path)
        else:
            # link() refuses an existing name, so a file that appeared while we
            # worked is not clobbered; then the temporary name goes.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise OutputExistsError(f"{path!r} already exists (use --force to overwrite)") from None
            except OSError:
                # A filesystem without hard links: check, then rename (a tiny race).
                check_destination(path, force)
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def open_input(path: str) -> Iterator[BinaryIO]:
    """Open *path* for reading, or stdin for ``-``; never opened for writing."""
    if path == STDIO:
        # Unbuffered fd 0: a reader thread still blocked in it at exit must not hold
        # the lock of sys.stdin's buffer, which the interpreter takes at shutdown.
        with open(sys.stdin.fileno(), "rb", buffering=0, closefd=False) as f:
            yield f  # type: ignore[misc]
        return
    with open(path, "rb", buffering=0) as f:
        yield f  # type: ignore[misc]

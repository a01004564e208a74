"""Outputs that appear whole or not at all, and leave nothing behind when killed.

A finished output file only ever holds data that was fully authenticated (for
decryption) or fully written (for encryption): bytes go to a temporary file
beside the destination, on the same filesystem, and a link or rename puts it in
place after the last check passed.  Any failure, Ctrl-C included, removes the
temporary file, and the destination is left as it was.

A process killed outright (SIGKILL, the OOM killer) runs no cleanup, so the
temporary file has no name where the kernel allows it (Linux ``O_TMPFILE``):
the kernel frees it when the last descriptor closes, and it gets a name only
when it is complete.  Where a name is needed (``--force`` replacing a file, a
filesystem without ``O_TMPFILE``) it starts with :data:`TEMP_PREFIX`, and its
creator holds an ``flock`` on it while it lives; the next output written to the
same directory removes such names that no live process holds any more.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO

from .exceptions import OutputExistsError

try:
    import fcntl
except ImportError:  # not POSIX: no locks, so no sweeping either
    fcntl = None  # type: ignore[assignment]

STDIO = "-"
TEMP_PREFIX = ".envelope-tmp-"

#: errno values with which open(O_TMPFILE) says "not here" rather than "not allowed".
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}
_swept: set[str] = set()


class _Labelled(io.FileIO):
    """An unbuffered file whose I/O errors name it.

    The pipeline reads and writes on worker threads that see only file objects,
    and a bare ``EIO`` or ``ENOSPC`` would not say which file failed.
    """

    label = ""

    def readinto(self, buffer: Any) -> int | None:
        try:
            return super().readinto(buffer)
        except OSError as exc:
            raise self._named(exc) from None

    def write(self, data: Any, /) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            raise self._named(exc) from None

    def _named(self, exc: OSError) -> OSError:
        if exc.filename is not None or exc.errno is None:
            return exc
        return type(exc)(exc.errno, exc.strerror, self.label)


def _labelled(file: int | str, mode: str, label: str) -> _Labelled:
    f = _Labelled(file, mode, closefd=not isinstance(file, int))
    f.label = label
    return f


def check_destination(path: str, force: bool) -> None:
    """Refuse early, before any work, to overwrite an existing file."""
    if path != STDIO and not force and os.path.lexists(path):
        raise OutputExistsError(f"{path!r} already exists (use --force to overwrite)")


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def sweep_stale(directory: str) -> list[str]:
    """Remove the temporary names of killed runs in *directory* (once per process); return them.

    A name is stale when nobody holds its lock: its creator died before it could clean up.
    """
    directory = os.path.abspath(directory)
    if directory in _swept or fcntl is None:
        return []
    _swept.add(directory)
    removed: list[str] = []
    try:
        entries = [e.path for e in os.scandir(directory) if e.name.startswith(TEMP_PREFIX)]
    except OSError:
        return removed
    for path in entries:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            held = os.fstat(fd)
            if not stat.S_ISREG(held.st_mode):
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while its creator lives
            now = os.lstat(path)
            if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                os.unlink(path)
                removed.append(path)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _unnamed(directory: str) -> int | None:
    """A descriptor of a new file in *directory* with no name at all, or None where the kernel cannot."""
    if not hasattr(os, "O_TMPFILE") or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in _NO_TMPFILE:
            return None
        raise


def _named(directory: str) -> tuple[int, str]:
    """A new file under a fresh :data:`TEMP_PREFIX` name, locked by us before anyone can think it stale."""
    while True:
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
        if fcntl is None:
            return fd, name
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(OSError):
            held, now = os.fstat(fd), os.lstat(name)
            if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                return fd, name
        os.close(fd)  # a sweep took it between creation and lock: try another name


def _link_fd(fd: int, path: str) -> None:
    """linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/FD: how an unnamed file gets a name without privileges.

    (os.link on a plain path calls link(), which would link the /proc symlink itself.)
    """
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(str(fd), path, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


def _name_unnamed(fd: int, directory: str) -> str:
    """Give the unnamed file *fd* a fresh temporary name (its lock, on the file, comes along)."""
    while True:
        name = os.path.join(directory, TEMP_PREFIX + os.urandom(6).hex())
        try:
            _link_fd(fd, name)
            return name
        except FileExistsError:
            continue


@contextlib.contextmanager
def scratch_file(directory: str) -> Iterator[int]:
    """A read-write descriptor of a file in *directory* that no one can open and no kill leaves behind."""
    fd = _unnamed(directory)
    if fd is None:
        fd, name = _named(directory)
        os.unlink(name)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str, *, force: bool = False, mode: int | None = None) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes *path* only if the block completes.

    ``-`` yields stdout, which cannot be withdrawn: a caller writing there
    must report failure through its exit status.
    """
    if path == STDIO:
        sys.stdout.flush()
        # Unbuffered, lock-free access to fd 1: the pipeline's writer thread owns it.
        with _labelled(sys.stdout.fileno(), "wb", "<stdout>") as out:
            yield out
        return
    check_destination(path, force)
    directory = os.path.dirname(os.path.abspath(path))
    sweep_stale(directory)
    fd = _unnamed(directory)
    tmp: str | None = None
    if fd is None:
        fd, tmp = _named(directory)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with _labelled(fd, "wb", path) as out:
            yield out
        # The mode only now: while it is written, a decryption's temporary holds plaintext not yet
        # authenticated, which no other user may read (it was created 0600).
        os.fchmod(fd, _default_mode() if mode is None else mode)
        if tmp is None:
            try:
                # linkat() refuses an existing name, so a file that appeared while we worked is not clobbered.
                _link_fd(fd, path)
                return
            except FileExistsError:
                if not force:
                    raise OutputExistsError(f"{path!r} already exists (use --force to overwrite)") from None
            tmp = _name_unnamed(fd, directory)  # replacing needs a name to rename: killed from here on, swept later
        if force:
            os.replace(tmp, path)
        else:
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
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        os.close(fd)


@contextlib.contextmanager
def open_input(path: str) -> Iterator[BinaryIO]:
    """Open *path* for reading, or stdin for ``-``; never opened for writing."""
    if path == STDIO:
        # Unbuffered fd 0: a reader thread still blocked in it at exit must not hold
        # the lock of sys.stdin's buffer, which the interpreter takes at shutdown.
        with _labelled(sys.stdin.fileno(), "rb", "<stdin>") as f:
            yield f
        return
    with _labelled(path, "rb", path) as f:
        yield f

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

What the output path already names decides how it is written, one rule for
every command:

* nothing, a regular file, or a symlink to one (or a dangling symlink): the
  path *name* gets the new file.  An existing name is refused without
  ``--force``; with it, the name is replaced by a rename, so a symlink there
  is replaced itself and never written through: a link planted at the output
  path cannot redirect the output into another file.
* a character or block device, a FIFO or a socket, directly or through
  symlinks (``/dev/stdout`` -> ``/proc/self/fd/1`` -> a pipe): it is opened
  and written in place, as ``cp``, ``cat`` and ``age`` do, never replaced by a
  regular file.  Such a target holds nothing to lose, so no ``--force`` is
  needed, except for a block device (a disk), whose contents are overwritten.
  Its mode is left alone.  What is written there cannot be withdrawn: like
  stdout (``-``), a decryption releases each chunk only once its tag has
  verified, and a stream that turns out truncated or forged fails with a
  non-zero exit status, which the reader must check.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

from .exceptions import OutputExistsError
from .pipeline import wait_readable, wait_writable

try:
    import fcntl
except ImportError:  # not POSIX: no locks, so no sweeping either
    fcntl = None  # type: ignore[assignment]

STDIO = "-"
TEMP_PREFIX = ".envelope-tmp-"
#: The mode of secret outputs, and of every temporary while it is written.
PRIVATE_MODE = 0o600

#: errno values with which open(O_TMPFILE) says "not here" rather than "not allowed".
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}
_swept: set[str] = set()


class _Labelled(io.FileIO):
    """An unbuffered file whose I/O errors name it, and that blocks even on a non-blocking descriptor.

    The pipeline reads and writes on worker threads that see only file objects,
    and a bare ``EIO`` or ``ENOSPC`` would not say which file failed.  A stdin or
    stdout may come with ``O_NONBLOCK`` set by whoever shares it; its "nothing
    yet" (None) is waited out here, so no reader of an input takes it for the end.
    """

    label = ""

    def readinto(self, buffer: Any) -> int:
        try:
            while (n := super().readinto(buffer)) is None:
                wait_readable(self)
            return n
        except OSError as exc:
            raise self._named(exc) from None

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            return self.readall()
        buffer = bytearray(size)
        return bytes(buffer[:self.readinto(buffer)])

    def readall(self) -> bytes:
        parts = []
        while part := self.read(1 << 20):
            parts.append(part)
        return b"".join(parts)

    def write(self, data: Any, /) -> int:
        try:
            while (n := super().write(data)) is None:
                wait_writable(self)
            return n
        except OSError as exc:
            raise self._named(exc) from None

    def _named(self, exc: OSError) -> OSError:
        if exc.filename is not None or exc.errno is None:
            return exc
        return type(exc)(exc.errno, exc.strerror, self.label)


def _labelled(file: int | str, mode: str, label: str, *, closefd: bool | None = None) -> _Labelled:
    f = _Labelled(file, mode, closefd=not isinstance(file, int) if closefd is None else closefd)
    f.label = label
    return f


def _written_in_place(path: str) -> os.stat_result | None:
    """What *path* resolves to when it is written in place (a device, FIFO or socket), else None."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return None if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) else st


def check_destination(path: str, force: bool) -> None:
    """Refuse early, before any work, to overwrite an existing file (see the module's rule)."""
    if path == STDIO or force or not os.path.lexists(path):
        return
    target = _written_in_place(path)
    if target is None or stat.S_ISBLK(target.st_mode):
        raise OutputExistsError.at(path)


def _open_in_place(path: str) -> _Labelled | None:
    """*path* opened for writing where it is, if it is a device, FIFO or socket; else None.

    Neither created nor truncated by the open, so a regular file swapped in since
    it was looked at is left as it was (and takes the atomic way instead).
    """
    if _written_in_place(path) is None:
        return None
    fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return _labelled(fd, "wb", path, closefd=True)
    except BaseException:
        os.close(fd)
        raise


def _umask_by_setting() -> int:
    """The umask as os.umask reports it: by setting it and back, so only safe before threads exist."""
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


#: The umask at import, for systems whose /proc does not show it.  Setting the umask
#: to read it, as any later call would have to, races with every other thread: one
#: that reads it in between sees, and then restores, the wrong value for good.
_UMASK_AT_IMPORT = _umask_by_setting()


def _umask() -> int:
    """The process umask, read without changing it (Linux 4.7+: ``Umask:`` in /proc/self/status)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _UMASK_AT_IMPORT


def _default_mode() -> int:
    return 0o666 & ~_umask()


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
        return os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, PRIVATE_MODE)
    except OSError as exc:
        if exc.errno in _NO_TMPFILE:
            return None
        raise


def _named(directory: str) -> tuple[int, str]:
    """A new file under a fresh :data:`TEMP_PREFIX` name, locked by us before anyone can think it stale."""
    import tempfile  # only where the kernel has no O_TMPFILE: it costs every start-up ~5 ms (random, shutil)

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


def _replace(tmp: str, path: str) -> None:
    """Rename *tmp* over *path*, unless what is there now is not a file or a symlink.

    A device or FIFO at *path* was written in place; one that appeared while
    the output was being written must not be replaced by a regular file either.
    """
    with contextlib.suppress(FileNotFoundError):
        now = os.lstat(path).st_mode
        if not (stat.S_ISREG(now) or stat.S_ISLNK(now)):
            raise OutputExistsError(f"{path!r} is no longer a regular file; not replaced")
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_output(path: str, *, force: bool = False, mode: int | None = None) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes *path* only if the block completes.

    ``-`` yields stdout, and an existing device or FIFO is written in place
    (see the module's rule): neither can be withdrawn, so a caller writing
    there must report failure through its exit status.  *mode* (default: what
    the umask allows) applies to a new file only.
    """
    if path == STDIO:
        sys.stdout.flush()
        # Unbuffered, lock-free access to fd 1: the pipeline's writer thread owns it.
        with _labelled(sys.stdout.fileno(), "wb", "<stdout>") as out:
            yield out
        return
    check_destination(path, force)
    in_place = _open_in_place(path)
    if in_place is not None:
        with in_place as out:
            yield out
        return
    directory = os.path.dirname(os.path.abspath(path))
    sweep_stale(directory)
    tmp: str | None = None
    with _as_output(path):
        fd = _unnamed(directory)
        if fd is None:
            fd, tmp = _named(directory)
        else:
            fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with _labelled(fd, "wb", path) as out:
            yield out
        with _as_output(path):
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
                        raise OutputExistsError.at(path) from None
                tmp = _name_unnamed(fd, directory)  # replacing needs a name to rename: killed from here on, swept later
            if force:
                _replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise OutputExistsError.at(path) from None
                except OSError:
                    # A filesystem without hard links: check, then rename (a tiny race).
                    if os.path.lexists(path):
                        raise OutputExistsError.at(path) from None
                    _replace(tmp, path)
                else:
                    os.unlink(tmp)
            tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        os.close(fd)


@contextlib.contextmanager
def _as_output(path: str) -> Iterator[None]:
    """An OSError of the temporary's own steps names *path*, the output the user gave.

    The temporary's name, its descriptor number (the /proc link that names an
    unnamed file) or its directory mean nothing to the user, and the temporary
    is gone by the time the message is read.
    """
    try:
        yield
    except OSError as exc:
        if isinstance(exc, OutputExistsError) or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, path) from None


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

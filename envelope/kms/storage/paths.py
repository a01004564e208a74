"""Where the keystore lives, and how its file comes into being.

The keystore file holds master key material in the clear, so its protection is
its permissions, exactly like an SSH private key: the file is created 0600 by
``os.open`` before SQLite ever sees it (SQLite's own journal files copy the
database's mode), directories we create are 0700, and both are ``chmod``-ed
after creation so a permissive umask cannot widen them.  A keystore that other
users can read is refused, as ``ssh`` refuses such a private key.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ...exceptions import KeyringError

if TYPE_CHECKING:
    from pathlib import Path

StrPath = str | os.PathLike[str]

FILE_MODE = 0o600
DIR_MODE = 0o700
KEYSTORE_ENV = "ENVELOPE_KEYSTORE"


def default_keystore_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$ENVELOPE_KEYSTORE``, else ``$XDG_DATA_HOME/envelope/keystore.db``, else ``~/.local/share/...``.

    An empty variable counts as unset, and a relative ``XDG_DATA_HOME`` is
    ignored, as the XDG base directory specification requires.
    """
    from pathlib import Path

    return Path(default_keystore_file(environ))


def default_keystore_file(environ: Mapping[str, str] | None = None) -> str:
    """:func:`default_keystore_path` as a string: what opening a keystore uses, without pathlib's import."""
    env = os.environ if environ is None else environ
    explicit = env.get(KEYSTORE_ENV)
    if explicit:
        return os.path.expanduser(explicit)
    xdg = env.get("XDG_DATA_HOME")
    base = xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "envelope", "keystore.db")


def create_keystore_file(path: StrPath) -> None:
    """Create *path* empty with mode 0600, and any missing parent directories with 0700.

    An existing file is left alone (another process may have won the race).
    """
    _make_private_dirs(parent_directory(os.fspath(path)))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError:
        return
    except OSError as exc:
        raise KeyringError(f"cannot create the local keystore at {path}: {exc.strerror}") from None
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, FILE_MODE)  # the umask may only have narrowed it, but be exact
    finally:
        os.close(fd)


def check_private(path: StrPath) -> None:
    """Refuse a keystore file that users other than its owner can read or write."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise KeyringError(f"cannot open the local keystore at {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyringError(f"the local keystore path {path} is not a regular file")
    require_private_mode(st.st_mode, path, "the local keystore", "master keys")


def require_private_mode(st_mode: int, path: str | os.PathLike[str], what: str, holds: str) -> None:
    """Refuse a file of key material (*what*, holding *holds*) that users other than its owner may touch.

    The keystore, its key file and raw-aes key files share this one refusal
    and its ``chmod`` hint.
    """
    mode = stat.S_IMODE(st_mode)
    if os.name == "posix" and mode & 0o077:
        raise KeyringError(
            f"{what} {os.fspath(path)} is accessible to other users (mode {mode:04o}); "
            f"it holds {holds}: run chmod 600 {os.fspath(path)}"
        )


def parent_directory(path: str) -> str:
    """The directory *path* is in, as ``Path.parent`` says it: ``.`` for a bare name."""
    return os.path.dirname(path) or os.curdir


def _make_private_dirs(directory: str) -> None:
    missing: list[str] = []
    current = directory
    while not os.path.exists(current):
        missing.append(current)
        parent = parent_directory(current)
        if parent == current:
            break
        current = parent
    for item in reversed(missing):
        try:
            os.mkdir(item, DIR_MODE)
        except FileExistsError:
            continue
        except OSError as exc:
            raise KeyringError(f"cannot create the keystore directory {item}: {exc.strerror}") from None
        os.chmod(item, DIR_MODE)

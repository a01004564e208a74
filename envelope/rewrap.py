"""Rewrapping: give a file new wrapped data keys without touching its chunks.

After a master key rotates, or to move a file to another master key (or add
one), only the header changes: the data key is unwrapped with a key the file
already has, authenticated against the header (commitment and MAC), wrapped
under the new master keys, and a new header is written with the same file id,
context and chunk size, so the same payload key still opens every chunk.  The
cost is one KMS round trip per key and, at most, a copy of the body; the
chunks are never decrypted or re-encrypted.

By default the new file replaces the old one atomically (a temporary file
beside it, renamed into place).  ``in_place`` overwrites the header bytes
where they are, which is only possible when the new header has the same size.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence
from typing import BinaryIO

from .atomic import atomic_output, check_destination
from .context import EncryptionContext
from .exceptions import UsageError
from .format import Header
from .kdf import seal_header
from .keyrings.base import DEFAULT_MAX_WRAPPED_KEYS, Keyring, MultiKeyring
from .pipeline import write_all
from .stream import unwrap_header


def rewrap_header(src: BinaryIO, unwrap: MultiKeyring, wrap: MultiKeyring, *,
                  required_context: EncryptionContext | None = None) -> tuple[Header, Header]:
    """Read and authenticate *src*'s header; return (old header, new header)."""
    header, keys, data_key = unwrap_header(src, unwrap, required_context=required_context)
    try:
        wrapped = tuple(k.wrap_data_key(data_key, header.context) for k in wrap.keyrings)
    finally:
        data_key[:] = bytes(len(data_key))
    return header, seal_header(header._replace(wrapped_keys=wrapped), keys)


def _copy_from(src: BinaryIO, offset: int, dst: BinaryIO) -> None:
    """Copy *src* from *offset* to its end onto *dst*; inside the kernel where possible.

    The source offset is explicit: a buffered reader's position need not be its
    descriptor's.  A pipe or FIFO cannot seek: it is read on from where the
    header ended, which is *offset*.
    """
    try:
        while n := os.copy_file_range(src.fileno(), dst.fileno(), 1 << 30, offset):
            offset += n
    except (AttributeError, OSError, ValueError):
        if src.seekable():
            src.seek(offset)
        shutil.copyfileobj(src, dst, 1 << 20)  # type: ignore[misc]


def rewrap_file(
    path: str | os.PathLike[str],
    keys: Sequence[str | Keyring],
    *,
    output: str | os.PathLike[str] | None = None,
    unwrap_keys: Sequence[str | Keyring] | None = None,
    context: EncryptionContext | None = None,
    in_place: bool = False,
    force: bool = False,
    keystore: str | None = None,
    max_wrapped_keys: int = DEFAULT_MAX_WRAPPED_KEYS,
) -> Header:
    """Replace the wrapped data keys of *path* with copies under *keys*; return the new header.

    The data key is unwrapped with *unwrap_keys* if given, else with any key of
    the local keystore or any of *keys*.  *context* pairs must be present.
    """
    from .master_keys import decryption_keyring, encryption_keyring

    if not keys:
        raise UsageError("rewrap needs at least one --key to wrap the data key under")
    wrap = encryption_keyring(keys, keystore=keystore)
    if unwrap_keys:
        unwrap = decryption_keyring(unwrap_keys, keystore=keystore, max_wrapped_keys=max_wrapped_keys)
    else:
        unwrap = MultiKeyring([*decryption_keyring(None, keystore=keystore).keyrings, *wrap.keyrings],
                              max_wrapped_keys=max_wrapped_keys)
    src_path = os.fspath(path)
    dst_path = os.fspath(output) if output is not None else src_path
    if in_place and dst_path != src_path:
        raise UsageError("--in-place rewrites FILE itself; it cannot be combined with -o")
    if dst_path != src_path:
        check_destination(dst_path, force)

    with open(src_path, "rb") as src:
        replacing = dst_path == src_path
        if replacing and not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            raise UsageError(f"{src_path!r} is not a regular file, so it cannot be rewritten: give -o")
        old, new = rewrap_header(src, unwrap, wrap, required_context=context)
        encoded = new.encode()
        if in_place:
            if len(encoded) != old.size:
                raise UsageError(f"the new header is {len(encoded)} bytes and the old one {old.size}: "
                                 "rewrap without --in-place")
            with open(src_path, "r+b", buffering=0) as f:
                write_all(f, memoryview(encoded))
                os.fsync(f.fileno())
            return new
        # Replacing FILE itself is what the user asked for, so --force is implied
        # there, and the file keeps its permissions.
        mode = os.stat(src.fileno()).st_mode & 0o7777 if replacing else None
        with atomic_output(dst_path, force=force or replacing, mode=mode) as out:
            write_all(out, memoryview(encoded))
            _copy_from(src, old.size, out)
    return new

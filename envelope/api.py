"""The Python API: files and bytes in, files and bytes out.

These functions add defaults and file handling on top of :mod:`envelope.stream`:
keys are chosen as :mod:`envelope.master_keys` chooses them (references through
the keyring registry; no ``keys`` means the local keystore), and output files
are written atomically.
"""

from __future__ import annotations

import io
import os

from .atomic import STDIO, atomic_output, check_destination, open_input
from .context import EncryptionContext
from .engines import get_engine
from .exceptions import RangeNotSatisfiableError, UsageError
from .format import DEFAULT_CHUNK_SIZE, Header, read_header
from .cache import DataKeyCache
from .keyrings.base import DEFAULT_MAX_WRAPPED_KEYS
from .master_keys import Keys, Notify, decryption_keyring, encryption_keyring
from .pipeline import regular_size, write_all
from .stream import Progress, decrypt_stream, encrypt_stream

SUFFIX = ".envelope"

def default_encrypted_name(path: str, suffix: str = SUFFIX) -> str:
    return STDIO if path == STDIO else path + suffix


def default_decrypted_name(path: str, suffix: str = SUFFIX) -> str:
    """*path* without *suffix*; a name that is only the suffix (``dir/.envelope``) has none to give."""
    if path == STDIO:
        return STDIO
    if not path.endswith(suffix) or os.path.basename(path) == suffix:
        raise UsageError(f"cannot name the output of {path!r}: it does not end in {suffix}; give -o")
    return path[: -len(suffix)]


def encrypt_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    *,
    keys: Keys | None = None,
    context: EncryptionContext | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    force: bool = False,
    engine: str | None = None,
    threads: int | None = None,
    keystore: str | None = None,
    progress: Progress | None = None,
    notify: Notify | None = None,
    cache: DataKeyCache | None = None,
) -> Header:
    """Encrypt the file *src* to *dst* (default ``SRC.envelope``); ``-`` is stdin/stdout.

    With *cache*, a data key from an earlier file may be reused (see :mod:`envelope.cache`).
    """
    src_s = os.fspath(src)
    dst_s = os.fspath(dst) if dst is not None else default_encrypted_name(src_s)
    check_destination(dst_s, force)
    chosen = get_engine(engine, threads)
    with open_input(src_s) as fin:
        keyring = encryption_keyring(keys, keystore=keystore, notify=notify, cache=cache)
        with atomic_output(dst_s, force=force) as fout:
            return encrypt_stream(fin, fout, keyring, context=context, chunk_size=chunk_size,
                                  engine=chosen, progress=progress, plaintext_size=regular_size(fin))


def decrypt_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    *,
    keys: Keys | None = None,
    context: EncryptionContext | None = None,
    force: bool = False,
    engine: str | None = None,
    threads: int | None = None,
    keystore: str | None = None,
    progress: Progress | None = None,
    cache: DataKeyCache | None = None,
    max_wrapped_keys: int = DEFAULT_MAX_WRAPPED_KEYS,
) -> Header:
    """Decrypt *src* to *dst* (default: *src* without ``.envelope``).

    *context* pairs must all be present in the file.  *dst* appears only once
    the whole stream has verified.  Files with more than *max_wrapped_keys*
    wrapped keys are refused before any key manager is asked.
    """
    src_s = os.fspath(src)
    dst_s = os.fspath(dst) if dst is not None else default_decrypted_name(src_s)
    check_destination(dst_s, force)
    chosen = get_engine(engine, threads)
    keyring = decryption_keyring(keys, keystore=keystore, cache=cache, max_wrapped_keys=max_wrapped_keys)
    with open_input(src_s) as fin, atomic_output(dst_s, force=force) as fout:
        return decrypt_stream(fin, fout, keyring, required_context=context, engine=chosen, progress=progress)


def decrypt_range(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    start: int,
    end: int | None = None,
    *,
    keys: Keys | None = None,
    context: EncryptionContext | None = None,
    force: bool = False,
    engine: str | None = None,
    threads: int | None = None,
    keystore: str | None = None,
    max_wrapped_keys: int = DEFAULT_MAX_WRAPPED_KEYS,
) -> int:
    """Write plaintext bytes [start, end) of *src* to *dst*, opening only the chunks that hold them.

    A negative *start* (with no *end*) means the last -start bytes, as HTTP's
    ``bytes=-N`` and slicing do.  An *end* past the plaintext is shortened; a
    *start* at or past it is :class:`RangeNotSatisfiableError`, naming the
    size, as S3's InvalidRange is.  Returns the byte count.
    """
    if end is not None and not 0 <= start <= end:
        raise UsageError("a range needs 0 <= START <= END (or a negative START alone: the last bytes)")
    src_s, dst_s = os.fspath(src), os.fspath(dst)
    if src_s == STDIO:
        raise UsageError("--range needs a seekable input file, not stdin")
    check_destination(dst_s, force)
    from .reader import open as open_envelope  # only ranges read at random: whole files stream

    with open_envelope(src_s, keys=keys, context=context, keystore=keystore, engine=engine,
                       threads=threads, max_wrapped_keys=max_wrapped_keys) as plain:
        size = plain.seek(0, os.SEEK_END)  # proven when opened: the final chunk is authenticated then
        if size == 0 or start >= size:
            raise RangeNotSatisfiableError(start, end, size)
        first = max(0, size + start) if start < 0 else start
        plain.seek(first)
        left = None if end is None else end - first
        done = 0
        with atomic_output(dst_s, force=force) as out:
            while left is None or left > 0:
                block = plain.read(1 << 20 if left is None else min(left, 1 << 20))
                if not block:
                    break
                write_all(out, memoryview(block))
                done += len(block)
                left = None if left is None else left - len(block)
        return done


def encrypt(data: bytes, *, keys: Keys | None = None, context: EncryptionContext | None = None,
            chunk_size: int = DEFAULT_CHUNK_SIZE, keystore: str | None = None,
            cache: DataKeyCache | None = None) -> bytes:
    """Encrypt bytes in memory; the output is a complete envelope v1 stream."""
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, encryption_keyring(keys, keystore=keystore, cache=cache),
                   context=context, chunk_size=chunk_size, plaintext_size=len(data))
    return out.getvalue()


def decrypt(data: bytes, *, keys: Keys | None = None, context: EncryptionContext | None = None,
            keystore: str | None = None, cache: DataKeyCache | None = None,
            max_wrapped_keys: int = DEFAULT_MAX_WRAPPED_KEYS) -> bytes:
    """Decrypt a complete envelope v1 stream held in memory."""
    out = io.BytesIO()
    keyring = decryption_keyring(keys, keystore=keystore, cache=cache, max_wrapped_keys=max_wrapped_keys)
    decrypt_stream(io.BytesIO(data), out, keyring, required_context=context)
    return out.getvalue()


def inspect_file(path: str | os.PathLike[str]) -> Header:
    """Parse a file's header without any key: what it says, not whether it is true."""
    with open_input(os.fspath(path)) as f:
        header, _ = read_header(f)
    return header

"""The native engine: csrc/ on OpenSSL, one batch, or one whole file, across several threads.

This is the only module that imports ``envelope._native``.  Two layers:

* the low-level calls (:func:`seal_batch`, :func:`open_batch`, :func:`seal_file`,
  :func:`open_file`, :func:`raw_gcm_encrypt`, :func:`raw_gcm_decrypt`, and the
  one-shots of :mod:`envelope.engines.primitives`) hand
  buffers and descriptors to C as they are and turn every return code into an
  exception, and nothing else, so that the C bounds checks can be tested directly;
* :class:`NativeEngine` checks its arguments in Python first, with the same
  helpers and the same messages as the reference engine, so that the two raise
  alike; C then checks everything again.

Buffers cross by ``ffi.from_buffer``, without a copy, and each call releases
the GIL (cffi's default) for the whole batch, or the whole file.  Importing this module fails with
ImportError when the extension is not built; :func:`envelope.engines.get_engine`
falls back to the reference engine then.
"""

from __future__ import annotations

import errno
import os
from typing import NoReturn

from .._native import ffi, lib
from ..exceptions import AuthenticationError, UsageError
from ..format import TAG_SIZE
from .base import Buffer, Engine, FileRun, FileSpan, plan_open, plan_seal

KEY_SIZE: int = lib.ENV_KEY_SIZE
MAX_CHUNK_SIZE: int = lib.ENV_MAX_CHUNK_SIZE
MAX_THREADS: int = lib.ENV_MAX_THREADS
#: Smallest slice of a batch handed to another thread (bytes of input).
MIN_PART_BYTES: int = lib.ENV_MIN_PART_BYTES
#: Longest IV the raw GCM functions take (OpenSSL's limit).
MAX_RAW_IV_SIZE: int = lib.ENV_MAX_IV_SIZE

__all__ = [
    "NativeEngine",
    "NativeFileRun",
    "equal",
    "gcm_open_into",
    "gcm_seal",
    "hkdf_sha512",
    "hmac_sha256",
    "open_batch",
    "open_file",
    "open_inplace",
    "raw_gcm_decrypt",
    "raw_gcm_encrypt",
    "seal_batch",
    "seal_file",
    "seal_inplace",
]


def _fail(rc: int, what: str, failed_index: int = 0) -> NoReturn:
    """Raise the exception that C return code *rc* stands for."""
    if rc == lib.ENV_ERR_AUTH:
        raise AuthenticationError.for_chunk(failed_index)
    if rc == lib.ENV_ERR_ARG:
        raise UsageError(f"{what}: invalid arguments (length, shape, index or buffer)")
    if rc == lib.ENV_ERR_NOMEM:
        raise MemoryError(f"{what}: out of memory in the native engine")
    # ENV_ERR_CRYPTO and any code this module does not know: OpenSSL failed
    # where it cannot, or the extension does not match this module.
    raise SystemError(f"{what}: internal error in the native engine (code {rc})")


def _in(buf: Buffer) -> object:
    return ffi.from_buffer("uint8_t[]", buf)


def _out(buf: bytearray | memoryview) -> object:
    return ffi.from_buffer("uint8_t[]", buf, require_writable=True)


def _nbytes(buf: Buffer) -> int:
    # len() counts items, not bytes, for a memoryview of another format.
    return len(buf) if isinstance(buf, (bytes, bytearray)) else memoryview(buf).nbytes


def _key(key: Buffer) -> object:
    # C reads exactly KEY_SIZE bytes from the pointer: the length is checked
    # here because C cannot see it.
    if _nbytes(key) != KEY_SIZE:
        raise UsageError(f"the payload key must be {KEY_SIZE} bytes")
    return _in(key)


def _check_chunk_size(chunk_size: int) -> None:
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise UsageError(f"chunk size must be 1 to {MAX_CHUNK_SIZE} bytes")


def _c_args(first_index: int, chunk_size: int, threads: int) -> None:
    # Values cffi could not convert would raise OverflowError; say UsageError.
    if not 0 <= first_index < 1 << 64:
        raise UsageError("chunk index out of range")
    _check_chunk_size(chunk_size)
    if not 1 <= threads < 1 << 31:
        raise UsageError("thread count must be at least 1")


def seal_batch(key: Buffer, first_index: int, src: Buffer, dst: bytearray | memoryview,
               chunk_size: int, final: bool, threads: int = 1) -> int:
    """Seal *src* into *dst* in C; return the bytes written.  Low level."""
    _c_args(first_index, chunk_size, threads)
    out_len = ffi.new("size_t *")
    rc = lib.env_seal_batch(_key(key), first_index, _in(src), _nbytes(src), _out(dst),
                            _nbytes(dst), chunk_size, bool(final), threads, out_len)
    if rc != lib.ENV_OK:
        _fail(rc, "seal")
    return int(out_len[0])


def open_batch(key: Buffer, first_index: int, src: Buffer, dst: bytearray | memoryview,
               chunk_size: int, final: bool, threads: int = 1) -> int:
    """Open *src* into *dst* in C; return the plaintext length.  Low level.

    On an authentication failure *dst*'s plaintext region has been zeroed.
    """
    _c_args(first_index, chunk_size, threads)
    out_len = ffi.new("size_t *")
    failed = ffi.new("uint64_t *")
    rc = lib.env_open_batch(_key(key), first_index, _in(src), _nbytes(src), _out(dst),
                            _nbytes(dst), chunk_size, bool(final), threads, out_len, failed)
    if rc != lib.ENV_OK:
        _fail(rc, "open", int(failed[0]))
    return int(out_len[0])


def seal_inplace(key: Buffer, first_index: int, buf: bytearray | memoryview, plain_len: int,
                 chunk_size: int, final: bool) -> int:
    """Seal a batch in its sealed layout, where it lies, in C; return the sealed length.  Low level."""
    _c_args(first_index, chunk_size, 1)
    if plain_len < 0:
        raise UsageError("seal: invalid arguments (length, shape, index or buffer)")
    out_len = ffi.new("size_t *")
    rc = lib.env_seal_inplace(_key(key), first_index, _out(buf), _nbytes(buf), plain_len, chunk_size,
                              bool(final), out_len)
    if rc != lib.ENV_OK:
        _fail(rc, "seal")
    return int(out_len[0])


def open_inplace(key: Buffer, first_index: int, buf: bytearray | memoryview, sealed_len: int,
                 chunk_size: int, final: bool) -> int:
    """Open ``buf[:sealed_len]`` where it lies, in C; return the plaintext length *n*.  Low level.

    The plaintext is then ``buf[:n]``; on an authentication failure those
    *sealed_len* bytes have been zeroed.
    """
    _c_args(first_index, chunk_size, 1)
    if not 0 <= sealed_len <= _nbytes(buf):
        raise UsageError("open: invalid arguments (length, shape, index or buffer)")
    out_len = ffi.new("size_t *")
    failed = ffi.new("uint64_t *")
    rc = lib.env_open_inplace(_key(key), first_index, _out(buf), sealed_len, chunk_size, bool(final),
                              out_len, failed)
    if rc != lib.ENV_OK:
        _fail(rc, "open", int(failed[0]))
    return int(out_len[0])


def raw_gcm_encrypt(key: Buffer, iv: Buffer, aad: Buffer, plaintext: Buffer,
                    tag_size: int = TAG_SIZE) -> tuple[bytes, bytes]:
    """Plain AES-256-GCM through the C path: (ciphertext, tag).  For KATs only."""
    if not 4 <= tag_size <= TAG_SIZE:
        raise UsageError("GCM tags are 4 to 16 bytes")
    size = _nbytes(plaintext)
    out = ffi.new("uint8_t[]", max(size, 1))
    tag = ffi.new("uint8_t[]", tag_size)
    rc = lib.env_gcm_encrypt(_in(key), _nbytes(key), _in(iv), _nbytes(iv), _in(aad),
                             _nbytes(aad), _in(plaintext), size, out, tag, tag_size)
    if rc != lib.ENV_OK:
        _fail(rc, "gcm encrypt")
    return bytes(ffi.buffer(out, size)), bytes(ffi.buffer(tag, tag_size))


def raw_gcm_decrypt(key: Buffer, iv: Buffer, aad: Buffer, ciphertext: Buffer,
                    tag: Buffer) -> bytes:
    """Plain AES-256-GCM decryption through the C path.  For KATs only.

    Raises :class:`AuthenticationError` when the tag does not verify.
    """
    size = _nbytes(ciphertext)
    out = ffi.new("uint8_t[]", max(size, 1))
    rc = lib.env_gcm_decrypt(_in(key), _nbytes(key), _in(iv), _nbytes(iv), _in(aad),
                             _nbytes(aad), _in(ciphertext), size, _in(tag), _nbytes(tag), out)
    if rc == lib.ENV_ERR_AUTH:
        raise AuthenticationError("GCM tag did not verify")
    if rc != lib.ENV_OK:
        _fail(rc, "gcm decrypt")
    return bytes(ffi.buffer(out, size))


def gcm_seal(key: Buffer, nonce: Buffer, plaintext: Buffer, aad: Buffer) -> bytes:
    """AES-256-GCM of one small message: ciphertext then tag (see :mod:`envelope.engines.primitives`)."""
    size = _nbytes(plaintext)
    out = ffi.new("uint8_t[]", size + TAG_SIZE)
    rc = lib.env_gcm_encrypt(_in(key), _nbytes(key), _in(nonce), _nbytes(nonce), _in(aad), _nbytes(aad),
                             _in(plaintext), size, out, out + size, TAG_SIZE)
    if rc != lib.ENV_OK:
        _fail(rc, "gcm seal")
    return bytes(ffi.buffer(out, size + TAG_SIZE))


def gcm_open_into(key: Buffer, nonce: Buffer, sealed: Buffer, aad: Buffer, out: bytearray) -> None:
    """Open what :func:`gcm_seal` made into *out* (``len(sealed) - 16`` bytes), written only if the tag verifies.

    Raises :class:`AuthenticationError` when it does not (C has zeroed *out* then).
    """
    size = _nbytes(sealed) - TAG_SIZE
    if size < 0:
        raise AuthenticationError("GCM tag did not verify")
    if _nbytes(out) != size:
        raise UsageError("gcm open: the output must be the sealed length less the tag")
    held = ffi.from_buffer("uint8_t[]", sealed)
    rc = lib.env_gcm_decrypt(_in(key), _nbytes(key), _in(nonce), _nbytes(nonce), _in(aad), _nbytes(aad),
                             held, size, held + size, TAG_SIZE, _out(out) if size else ffi.NULL)
    if rc == lib.ENV_ERR_AUTH:
        raise AuthenticationError("GCM tag did not verify")
    if rc != lib.ENV_OK:
        _fail(rc, "gcm open")


def hkdf_sha512(key: Buffer, salt: Buffer, info: Buffer, length: int) -> bytes:
    """HKDF-SHA-512 (RFC 5869) of *key*, *length* bytes (see :mod:`envelope.engines.primitives`)."""
    out = ffi.new("uint8_t[]", max(length, 1))
    try:
        rc = lib.env_hkdf_sha512(_in(key), _nbytes(key), _in(salt), _nbytes(salt), _in(info), _nbytes(info),
                                 out, length)
        if rc != lib.ENV_OK:
            _fail(rc, "hkdf")
        return bytes(ffi.buffer(out, length))
    finally:
        ffi.memmove(out, bytes(len(out)), len(out))  # the derived key leaves no copy in C memory


def hmac_sha256(key: Buffer, data: Buffer) -> bytes:
    """HMAC-SHA-256 (RFC 2104) of *data* under *key*."""
    out = ffi.new("uint8_t[]", lib.ENV_HMAC_SHA256_SIZE)
    rc = lib.env_hmac_sha256(_in(key), _nbytes(key), _in(data), _nbytes(data), out)
    if rc != lib.ENV_OK:
        _fail(rc, "hmac")
    return bytes(ffi.buffer(out, lib.ENV_HMAC_SHA256_SIZE))


def equal(a: Buffer, b: Buffer) -> bool:
    """Whether *a* and *b* hold the same bytes, compared in constant time (OpenSSL's CRYPTO_memcmp)."""
    size = _nbytes(a)
    return size == _nbytes(b) and bool(lib.env_equal(_in(a), _in(b), size))


class NativeFileRun:
    """The C loop's shared state: a byte counter to read, a flag to stop it."""

    def __init__(self) -> None:
        self._state = ffi.new("struct env_file_state *")

    @property
    def done(self) -> int:
        return int(self._state.done)

    def cancel(self) -> None:
        self._state.cancel = 1


def _file_call(fn: object, what: str, key: Buffer, src: FileSpan, dst: FileSpan, chunk_size: int,
               run: NativeFileRun, threads: int) -> None:
    _c_args(0, chunk_size, threads)
    state = run._state
    rc = fn(_key(key), src.fd, src.offset, src.length, dst.fd,  # type: ignore[operator]
            dst.offset, chunk_size, threads, state)
    if rc == lib.ENV_OK:
        return
    err = int(state.sys_errno)
    if rc == lib.ENV_ERR_READ:
        raise OSError(err, os.strerror(err), src.name)
    if rc == lib.ENV_ERR_WRITE:
        raise OSError(err, os.strerror(err), dst.name)
    if rc == lib.ENV_ERR_CHANGED:
        # Not a short output: a file that grows or shrinks while it is read has no one content to encrypt.
        raise OSError(errno.EIO, "the input changed size while it was read", src.name)
    if rc == lib.ENV_ERR_CANCELLED:
        raise KeyboardInterrupt
    _fail(rc, what, int(state.failed_index))


def seal_file(key: Buffer, src: FileSpan, dst: FileSpan, chunk_size: int, run: NativeFileRun,
              threads: int = 1) -> None:
    """Seal a whole file body in C, on *threads* threads (the caller's included).  Low level."""
    _file_call(lib.env_seal_file, "seal file", key, src, dst, chunk_size, run, threads)


def open_file(key: Buffer, src: FileSpan, dst: FileSpan, chunk_size: int, run: NativeFileRun,
              threads: int = 1) -> None:
    """Open a whole stream body in C.  Low level: raises AuthenticationError naming the lowest failed chunk."""
    _file_call(lib.env_open_file, "open file", key, src, dst, chunk_size, run, threads)


class NativeEngine(Engine):
    """The C engine; *threads* defaults to the machine's CPU count."""

    name = "native"
    file_loop = True

    def __init__(self, threads: int | None = None) -> None:
        super().__init__(threads or os.cpu_count() or 1)

    def seal(self, key: bytes, first_index: int, src: Buffer, dst: bytearray | memoryview,
             chunk_size: int, final: bool) -> int:
        _check_chunk_size(chunk_size)
        plan_seal(first_index, _nbytes(src), _nbytes(dst), chunk_size, final)
        return seal_batch(key, first_index, src, dst, chunk_size, final, self.threads)

    def open(self, key: bytes, first_index: int, src: Buffer, dst: bytearray | memoryview,
             chunk_size: int, final: bool) -> int:
        _check_chunk_size(chunk_size)
        plan_open(first_index, _nbytes(src), _nbytes(dst), chunk_size, final)
        return open_batch(key, first_index, src, dst, chunk_size, final, self.threads)

    def openssl_version(self) -> str:
        return ffi.string(lib.env_openssl_version()).decode("ascii", "replace")

    def new_run(self) -> NativeFileRun:
        return NativeFileRun()

    def seal_file(self, key: bytes, src: FileSpan, dst: FileSpan, chunk_size: int, run: FileRun) -> None:
        assert isinstance(run, NativeFileRun)
        seal_file(key, src, dst, chunk_size, run, self.threads)

    def open_file(self, key: bytes, src: FileSpan, dst: FileSpan, chunk_size: int, run: FileRun) -> None:
        assert isinstance(run, NativeFileRun)
        open_file(key, src, dst, chunk_size, run, self.threads)

    def seal_in_place(self, key: bytes, first_index: int, buf: bytearray | memoryview, plain_len: int,
                      chunk_size: int, final: bool) -> int:
        _check_chunk_size(chunk_size)
        plan_seal(first_index, plain_len, _nbytes(buf), chunk_size, final)
        return seal_inplace(key, first_index, buf, plain_len, chunk_size, final)

    def open_in_place(self, key: bytes, first_index: int, buf: bytearray | memoryview, sealed_len: int,
                      chunk_size: int, final: bool) -> int:
        _check_chunk_size(chunk_size)
        if sealed_len > _nbytes(buf):
            raise UsageError("source buffer too small")
        plan_open(first_index, sealed_len, sealed_len, chunk_size, final)
        return open_inplace(key, first_index, buf, sealed_len, chunk_size, final)

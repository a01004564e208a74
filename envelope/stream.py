"""Encrypting and decrypting one stream: header, then chunks, batch by batch.

This is the STREAM construction of the v1 format (formats/envelope-v1.md),
independent of which engine does the AES-GCM work.  Memory is constant: a few
buffers of one batch each, reused for the whole stream.  Between regular files
the batches are big and cross threads (:mod:`envelope.pipeline`); when either
end is a pipe or a terminal, one small buffer is filled, sealed or opened in
place and written, which copies each byte the fewest times.

The edges of the stream, each handled where marked below:

* the empty stream is one empty final chunk (never zero chunks);
* the final chunk carries the last-chunk flag in its nonce, so a stream cut at
  a chunk boundary, which leaves a non-final chunk last, fails to verify;
* a final chunk may be empty only as chunk 0: any other empty final chunk is
  refused, so there is exactly one encoding of each plaintext;
* bytes after the final chunk cannot exist: the reader only decides a chunk is
  final when it has hit end of input, so trailing bytes fall inside a chunk and
  break its tag;
* after a failure nothing more is read or written; the caller discards output.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import BinaryIO

from . import context as _context
from . import file_loop, pipeline
from .context import EncryptionContext
from .engines import Engine, get_engine
from .engines.base import in_place_slots
from .exceptions import AuthenticationError
from .format import (
    DEFAULT_CHUNK_SIZE,
    FILE_ID_SIZE,
    SUITE_AES256_GCM_HKDF_SHA512_COMMIT,
    TAG_SIZE,
    Header,
    WrappedKey,
    check_chunk_size,
    read_header,
)
from .kdf import FileKeys, authenticate_header, seal_header
from .keyrings.base import MultiKeyring

#: Plaintext bytes per engine call: big enough that per-call overhead vanishes and
#: a native engine can split the batch over its threads, small enough to keep
#: memory flat.  Never less than one chunk.
BATCH_BYTES = 4 << 20

Progress = Callable[[int], object]


#: Plaintext bytes per batch when either end is a pipe or a terminal: one buffer
#: this size (well inside a core's L2 cache) is filled, sealed or opened in place
#: and written, so each byte crosses main memory once in and once out.
STREAM_BATCH_BYTES = 512 << 10


def batch_chunk_count(chunk_size: int, batch_bytes: int = BATCH_BYTES) -> int:
    return max(1, batch_bytes // chunk_size)


class _LookaheadReader:
    """Fills batches and tells whether each one ends the input.

    A batch is final only if the input ended while filling it, or if a read of
    one more byte right after it finds end of input.  That one byte, when there
    is one, opens the next batch.
    """

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self._carry = b""

    def fill(self, buf: bytearray) -> tuple[int, bool]:
        return self.fill_views([memoryview(buf)])

    def fill_views(self, views: Sequence[memoryview]) -> tuple[int, bool]:
        """Fill *views* in turn, as one batch: the input ends in the first one left short."""
        total = 0
        for view in views:
            start = len(self._carry)
            view[:start] = self._carry
            self._carry = b""
            got = start + pipeline.fill(self._src, view[start:])
            total += got
            if got < len(view):
                return total, True
        # readinto, as every other read: the input's own errors name it (read() does not).
        one = bytearray(1)
        self._carry = bytes(one[:pipeline.fill(self._src, memoryview(one))])
        return total, not self._carry


def encrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    keyring: MultiKeyring,
    *,
    context: EncryptionContext | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    engine: Engine | None = None,
    progress: Progress | None = None,
    plaintext_size: int | None = None,
) -> Header:
    """Encrypt everything *src* yields into *dst* under a fresh data key; return the header.

    *plaintext_size*, when known, lets a caching keyring apply its byte bound.
    """
    check_chunk_size(chunk_size)
    ctx = _context.normalize(context)
    with keyring.generate_data_key(ctx, plaintext_size) as data_key:
        return seal_stream(src, dst, data_key.plaintext, data_key.wrapped, context=ctx,
                           chunk_size=chunk_size, engine=engine, progress=progress)


def start_stream(data_key: bytes | bytearray, wrapped_keys: Sequence[WrappedKey], *,
                 context: EncryptionContext | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 file_id: bytes | None = None) -> tuple[Header, FileKeys]:
    """The sealed header of a new stream and the keys for its chunks.

    For writers that seal chunks out of order (parts of an S3 upload sealed in
    parallel): chunk *i* needs only these keys, *i*, and whether it is last.
    """
    check_chunk_size(chunk_size)
    file_id = os.urandom(FILE_ID_SIZE) if file_id is None else file_id
    keys = FileKeys.derive(data_key, file_id, SUITE_AES256_GCM_HKDF_SHA512_COMMIT)
    header = seal_header(Header(chunk_size=chunk_size, file_id=file_id, context=_context.normalize(context),
                                wrapped_keys=tuple(wrapped_keys), commitment=keys.commitment), keys)
    return header, keys


def seal_stream(
    src: BinaryIO,
    dst: BinaryIO,
    data_key: bytes | bytearray,
    wrapped_keys: Sequence[WrappedKey],
    *,
    context: EncryptionContext | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    engine: Engine | None = None,
    progress: Progress | None = None,
    file_id: bytes | None = None,
) -> Header:
    """Encrypt under a data key already in hand (from a keyring, a cache, or a test vector).

    *file_id* is fixed only by the vector generator; left out, it is fresh and
    random, which is what makes reusing a data key safe.
    """
    engine = engine or get_engine()
    header, keys = start_stream(data_key, wrapped_keys, context=context, chunk_size=chunk_size, file_id=file_id)
    dst.write(header.encode())
    if file_loop.seal_body(src, dst, keys.payload, chunk_size, engine, progress):
        return header

    reader = _LookaheadReader(src)
    index = 0
    if pipeline.streaming(src, dst):
        pipeline.widen_pipes(src, dst)
        _seal_in_place(reader, dst, engine, keys.payload, chunk_size, progress)
        return header

    def seal_batch(plain: memoryview, final: bool, sealed: bytearray) -> int:
        nonlocal index
        # Edge: input ending exactly on a batch boundary makes this batch final, with
        # a full last chunk; an empty input makes batch 0 a single empty chunk.
        n = engine.seal(keys.payload, index, plain, sealed, chunk_size, final)
        index += max(1, -(-len(plain) // chunk_size))
        return n

    count = batch_chunk_count(chunk_size)
    pipeline.run(reader.fill, seal_batch, dst, count * chunk_size, count * (chunk_size + TAG_SIZE),
                 progress=progress, first_sizes=(chunk_size, chunk_size + TAG_SIZE))
    return header


def _seal_in_place(reader: _LookaheadReader, dst: BinaryIO, engine: Engine, key: bytes, chunk_size: int,
                   progress: Progress | None) -> None:
    """Seal a stream batch by batch in one small buffer: fill each chunk's place, seal there, write."""
    count = batch_chunk_count(chunk_size, STREAM_BATCH_BYTES)
    buf = memoryview(bytearray(count * (chunk_size + TAG_SIZE)))
    places = in_place_slots(buf, count * chunk_size, chunk_size)
    index, final = 0, False
    while not final:
        got, final = reader.fill_views(places)
        n = engine.seal_in_place(key, index, buf, got, chunk_size, final)
        index += max(1, -(-got // chunk_size))
        pipeline.write_all(dst, buf[:n])
        if progress is not None:
            progress(got)


def open_header(src: BinaryIO, keyring: MultiKeyring, *,
                required_context: EncryptionContext | None = None) -> tuple[Header, FileKeys]:
    """Read, unwrap and authenticate a header; return it with the file's keys.

    Nothing after the header is read.  The order is fixed: parse (bounded),
    check the caller's required context (cheap, before any KMS call), unwrap,
    then the key commitment and header MAC in constant time.
    """
    header, keys, data_key = unwrap_header(src, keyring, required_context=required_context)
    data_key[:] = bytes(len(data_key))
    return header, keys


def unwrap_header(src: BinaryIO, keyring: MultiKeyring, *,
                  required_context: EncryptionContext | None = None) -> tuple[Header, FileKeys, bytearray]:
    """:func:`open_header`, also returning the data key (for rewrapping).

    The caller owns the returned data key and must zero it when done.
    """
    header, raw = read_header(src)
    _context.require_subset(_context.normalize(required_context), header.context)
    data_key = keyring.unwrap(header.wrapped_keys, header.context)
    try:
        keys = FileKeys.derive(data_key, header.file_id, header.suite)
        authenticate_header(header, keys, raw)
    except BaseException:
        data_key[:] = bytes(len(data_key))
        raise
    return header, keys, data_key


def decrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    keyring: MultiKeyring,
    *,
    required_context: EncryptionContext | None = None,
    engine: Engine | None = None,
    progress: Progress | None = None,
) -> Header:
    """Decrypt *src* into *dst*, writing only chunks whose tags verified.

    *dst* receives authenticated chunks as they verify, but the stream as a whole
    is authentic only if this function returns: a truncated stream raises at the
    end.  Callers that produce a file write to a temporary one and rename it
    only after this returns (see :mod:`envelope.atomic`).
    """
    header, keys = open_header(src, keyring, required_context=required_context)
    open_body(src, dst, header, keys, engine=engine, progress=progress)
    return header


def open_body(
    src: BinaryIO,
    dst: BinaryIO,
    header: Header,
    keys: FileKeys,
    *,
    engine: Engine | None = None,
    progress: Progress | None = None,
) -> None:
    """Open the chunks that follow an authenticated header, to the end of *src*."""
    engine = engine or get_engine()
    chunk_size = header.chunk_size
    if file_loop.open_body(src, dst, keys.payload, chunk_size, engine, progress):
        return
    sealed_chunk = chunk_size + TAG_SIZE
    reader = _LookaheadReader(src)
    index = 0

    def checked_open(got: int, final: bool, open_chunks: Callable[[], int]) -> int:
        """Run *open_chunks* on a batch of *got* sealed bytes, with the stream's edge rules."""
        nonlocal index
        if final:
            # Edges: a stream that stops at a chunk boundary, or with an empty final chunk after data.
            file_loop.check_end(got, index, chunk_size)
        chunks = -(-got // sealed_chunk)
        try:
            n = open_chunks()
        except AuthenticationError as exc:
            if final and exc.chunk_index == index + chunks - 1:
                # Edge: the last chunk fails when the stream was cut inside a chunk.
                raise file_loop.last_chunk_failed(exc) from None
            raise
        index += chunks
        return n

    if pipeline.streaming(src, dst):
        pipeline.widen_pipes(src, dst)
        buf = memoryview(bytearray(batch_chunk_count(chunk_size, STREAM_BATCH_BYTES) * sealed_chunk))
        final = False
        while not final:
            got, final = reader.fill_views([buf])
            n = checked_open(got, final, lambda: engine.open_in_place(keys.payload, index, buf, got,
                                                                      chunk_size, final))
            pipeline.write_all(dst, buf[:n])
            if progress is not None:
                progress(got)
        return

    def open_batch(sealed: memoryview, final: bool, plain: bytearray) -> int:
        return checked_open(len(sealed), final,
                            lambda: engine.open(keys.payload, index, sealed, plain, chunk_size, final))

    count = batch_chunk_count(chunk_size)
    pipeline.run(reader.fill, open_batch, dst, count * sealed_chunk, count * chunk_size, progress=progress,
                 first_sizes=(sealed_chunk, chunk_size))

"""Fuzz target: opening sealed chunks, with both engines side by side.

Input: one selector byte, then the sealed bytes.  The selector picks a format
vector (its payload key and chunk size, so seeds that are real bodies open) and
the call's shape: the whole stream layer (stream.open_body), with the vector's
chunk size or one no encryptor would choose, or one engine call, final or not,
from one of a few first chunk indices.  When an engine call succeeds, the
native core is also called directly with a destination one byte too small,
which its own bounds check must refuse.

Opening may fail with AuthenticationError (forged, truncated, wrong key) and,
for shapes the engine interface refuses, UsageError.  The reference and the
native engine must agree exactly: the same plaintext, or the same exception
class naming the same chunk.  Where the native core is not built the
reference engine runs alone.
"""

from __future__ import annotations

import io
import sys
from functools import lru_cache
from typing import Any

from envelope import kdf, stream
from envelope.engines import ReferenceEngine, native_available
from envelope.engines.base import Engine
from envelope.exceptions import AuthenticationError, UsageError
from envelope.format import SUITE_AES256_GCM_HKDF_SHA512_COMMIT, Header

NAME = "chunk_open"
ALLOWED = (AuthenticationError, UsageError)
MAX_LEN = 16384
#: First chunk indices to try: the start, an ordinary one, and the engines' last.
FIRST_INDICES = (0, 1, 7, (1 << 64) - 1)
#: Chunk sizes for the stream layer: the vector's (None), then sizes the engines
#: accept but the format never uses, so chunk and batch boundaries fall anywhere.
CHUNK_SIZES = (None, 1, 16, 17, 1000, 1023, 1025, 3000)
#: Batches of a few chunks instead of 4 MiB while fuzzing: inputs of a few KiB
#: then cross batch boundaries (and the pipeline's threads), and no call zeroes
#: megabytes.  Set only when run as the fuzzer, never on import.
FUZZ_BATCH_BYTES = 4096
#: Vectors with larger chunks are left out: a reader allocates one chunk per
#: buffer (64 MiB for the largest), a bounded cost that would only slow fuzzing.
MAX_CHUNK_SIZE = 4096


@lru_cache(maxsize=1)
def _files() -> list[tuple[Header, kdf.FileKeys]]:
    files = []
    for v in _vectors():
        keys = kdf.FileKeys.derive(bytes.fromhex(v["data_key"]), bytes.fromhex(v["file_id"]),
                                   SUITE_AES256_GCM_HKDF_SHA512_COMMIT)
        header = Header(chunk_size=v["chunk_size"], file_id=bytes.fromhex(v["file_id"]), context={},
                        wrapped_keys=(), commitment=keys.commitment)
        files.append((header, keys))
    return files


@lru_cache(maxsize=1)
def _engines() -> tuple[Engine, ...]:
    if not native_available():
        return (ReferenceEngine(),)
    from envelope.engines.native import NativeEngine

    return ReferenceEngine(), NativeEngine(threads=2)


def _outcome(call: Any) -> tuple[str, object]:
    try:
        return "ok", call()
    except AuthenticationError as exc:
        return "AuthenticationError", exc.chunk_index
    except UsageError:
        return "UsageError", None


def check(data: bytes) -> None:
    if not data:
        return
    selector, sealed = data[0], data[1:]
    files = _files()
    header, keys = files[(selector >> 4) % len(files)]
    chunk_size = header.chunk_size
    outcomes = []
    if selector & 1:
        header = header._replace(chunk_size=CHUNK_SIZES[(selector >> 1) & 7] or chunk_size)
    final, first = bool(selector & 2), FIRST_INDICES[(selector >> 2) & 3]
    for engine in _engines():
        if selector & 1:
            def call(engine: Engine = engine) -> bytes:
                out = io.BytesIO()
                stream.open_body(io.BytesIO(sealed), out, header, keys, engine=engine)
                return out.getvalue()
        else:
            def call(engine: Engine = engine) -> bytes:
                dst = bytearray(len(sealed))
                n = engine.open(keys.payload, first, sealed, dst, chunk_size, final)
                assert 0 <= n <= len(sealed), f"{engine.name} engine reports {n} plaintext bytes"
                return bytes(dst[:n])
        outcomes.append(_outcome(call))
    assert all(o == outcomes[0] for o in outcomes), f"engines disagree: {outcomes}"
    kind, detail = outcomes[0]
    if kind == "AuthenticationError":
        raise AuthenticationError("both engines refused the input", chunk_index=detail)  # type: ignore[arg-type]
    if kind == "UsageError":
        raise UsageError("both engines refused the call's shape")
    if kind == "ok" and detail and not selector & 1 and len(_engines()) > 1:
        _check_native_bounds(keys.payload, first, sealed, len(detail) - 1, chunk_size, final)  # type: ignore[arg-type]


def _check_native_bounds(key: bytes, first: int, sealed: bytes, dst_len: int, chunk_size: int, final: bool) -> None:
    from envelope.engines.native import open_batch

    try:
        open_batch(key, first, sealed, bytearray(dst_len), chunk_size, final, threads=2)
    except UsageError:
        return
    raise AssertionError("the native core opened into a destination too small for the plaintext")


def _vectors() -> list[dict[str, Any]]:
    from harness import vectors

    return [v for v in vectors() if v["kind"] == "positive" and v["chunk_size"] <= MAX_CHUNK_SIZE]


def seeds() -> list[bytes]:
    out = []
    for i, v in enumerate(_vectors()):
        body = bytes.fromhex(v["ciphertext"])[v["header_size"]:][: MAX_LEN - 1]
        for shape in (0b01, 0b10):  # through the stream layer; one final engine call from chunk 0
            out.append(bytes([(i << 4) | shape]) + body)
    return out


if __name__ == "__main__":
    import harness

    stream.BATCH_BYTES = FUZZ_BATCH_BYTES
    harness.main(sys.modules[__name__])

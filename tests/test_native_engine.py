"""The native engine against the reference engine, byte for byte.

The reference engine (pyca/cryptography, one chunk at a time) is the executable
definition of the chunk format; the C engine must seal to the same bytes, open
what the reference sealed and vice versa, and refuse the same damage naming the
same chunk.  Batches large enough to be split across threads are included, so
that the pool's hand-off and its "first failing chunk" bookkeeping are tested,
not just the single-threaded path.
"""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

native = pytest.importorskip("envelope.engines.native", reason="native engine not built")

from envelope.engines import get_engine  # noqa: E402
from envelope.engines.base import MAX_CHUNK_INDEX, Engine, sealed_size  # noqa: E402
from envelope.engines.reference import ReferenceEngine  # noqa: E402
from envelope.exceptions import AuthenticationError, UsageError  # noqa: E402
from envelope.format import TAG_SIZE  # noqa: E402

NativeEngine = native.NativeEngine
KEY = bytes(range(32))
REF = ReferenceEngine()
THREADS = (1, 2, 4)
CHUNK_SIZES = (1024, 4096, 65536)


def sizes(c: int) -> list[int]:
    return [0, 1, c - 1, c, c + 1, 2 * c + 17]


def seal(engine: Engine, data: bytes, chunk: int, final: bool, first: int = 0,
         key: bytes = KEY) -> bytes:
    out = bytearray(sealed_size(len(data), chunk, final))
    assert engine.seal(key, first, data, out, chunk, final) == len(out)
    return bytes(out)


def open_(engine: Engine, sealed: bytes, chunk: int, final: bool, first: int = 0,
          key: bytes = KEY) -> bytes:
    out = bytearray(len(sealed))
    n = engine.open(key, first, sealed, out, chunk, final)
    return bytes(out[:n])


def failing_chunk(engine: Engine, sealed: bytes, chunk: int, final: bool, first: int) -> str:
    with pytest.raises(AuthenticationError) as info:
        open_(engine, sealed, chunk, final, first)
    return str(info.value)


def big_enough_to_split(threads: int, chunk: int) -> int:
    """A whole-chunk size the C engine must spread over *threads* parts."""
    need = threads * native.MIN_PART_BYTES
    return -(-need // chunk) * chunk + 3 * chunk


# --- byte-identical sealing and cross-opening ------------------------------------


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("chunk", CHUNK_SIZES)
@pytest.mark.parametrize("first", [0, 2**40])
def test_seal_matches_reference_at_chunk_boundaries(threads: int, chunk: int, first: int) -> None:
    engine = NativeEngine(threads)
    for size in sizes(chunk):
        data = os.urandom(size)
        for final in (True, False):
            if not final and (size == 0 or size % chunk):
                # A non-final batch must be whole chunks: both refuse alike.
                for e in (REF, engine):
                    with pytest.raises(UsageError):
                        seal(e, data, chunk, final, first)
                continue
            sealed = seal(engine, data, chunk, final, first)
            assert sealed == seal(REF, data, chunk, final, first), (size, final)
            assert open_(REF, sealed, chunk, final, first) == data
            assert open_(engine, sealed, chunk, final, first) == data


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("chunk", CHUNK_SIZES)
def test_multithreaded_batches_match_reference(threads: int, chunk: int) -> None:
    engine = NativeEngine(threads)
    whole = big_enough_to_split(threads, chunk)
    for size, final in ((whole, False), (whole, True), (whole + 5, True)):
        data = os.urandom(size)
        sealed = seal(engine, data, chunk, final, 2**40)
        assert sealed == seal(REF, data, chunk, final, 2**40)
        assert open_(engine, sealed, chunk, final, 2**40) == data
        assert open_(REF, sealed, chunk, final, 2**40) == data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=3000),
    chunk=st.integers(min_value=1, max_value=700),
    first=st.one_of(st.integers(0, 2**20), st.integers(2**63, 2**64 - 4000)),
    final=st.booleans(),
    threads=st.sampled_from(THREADS),
)
def test_any_batch_seals_like_reference(data: bytes, chunk: int, first: int, final: bool,
                                        threads: int) -> None:
    if not final:
        data = data[: len(data) - len(data) % chunk] or bytes(chunk)
    sealed = seal(NativeEngine(threads), data, chunk, final, first)
    assert sealed == seal(REF, data, chunk, final, first)
    assert open_(NativeEngine(threads), sealed, chunk, final, first) == data


def test_get_engine_returns_native() -> None:
    engine = get_engine("native")
    assert isinstance(engine, NativeEngine)
    assert engine.name == "native"
    assert engine.threads == (os.cpu_count() or 1)


def test_concurrent_batches_from_python_threads() -> None:
    # Several callers share the process-wide pool at once (the GIL is released).
    engine, chunk = NativeEngine(4), 65536
    inputs = [os.urandom(big_enough_to_split(4, chunk) + i) for i in range(6)]
    results: dict[int, bytes] = {}

    def work(i: int) -> None:
        for _ in range(3):
            results[i] = seal(engine, inputs[i], chunk, True, i * 1000)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    for i, data in enumerate(inputs):
        assert results[i] == seal(REF, data, chunk, True, i * 1000)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_pool_works_in_a_forked_child() -> None:
    chunk = 65536
    data = os.urandom(big_enough_to_split(2, chunk))
    expected = seal(REF, data, chunk, True)
    assert seal(NativeEngine(2), data, chunk, True) == expected  # pool now exists
    pid = os.fork()
    if pid == 0:  # child: the workers did not survive the fork; the pool regrows
        ok = seal(NativeEngine(2), data, chunk, True) == expected
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


# --- damage is detected, and the same chunk is named -----------------------------


@pytest.mark.parametrize("final", [True, False])
def test_every_byte_flip_fails_the_same_chunk_in_both_engines(final: bool) -> None:
    chunk, first = 64, 7
    data = os.urandom(2 * chunk + (10 if final else chunk))
    sealed = seal(REF, data, chunk, final, first)
    engine = NativeEngine(2)
    for pos in range(len(sealed)):
        bad = bytearray(sealed)
        bad[pos] ^= 0x01
        expected = f"chunk {first + pos // (chunk + TAG_SIZE)} failed authentication"
        assert failing_chunk(REF, bytes(bad), chunk, final, first) == expected
        assert failing_chunk(engine, bytes(bad), chunk, final, first) == expected


@pytest.mark.parametrize("threads", [2, 4])
def test_first_failing_chunk_is_reported_across_threads(threads: int) -> None:
    chunk = 4096
    data = os.urandom(big_enough_to_split(threads, chunk))
    sealed = bytearray(seal(REF, data, chunk, True))
    count = len(data) // chunk
    early, late = count // 3, count - 2  # in different parts of the split
    for n in (late, early):
        sealed[n * (chunk + TAG_SIZE) + 5] ^= 0x80
    assert failing_chunk(NativeEngine(threads), bytes(sealed), chunk, True, 0) == (
        f"chunk {early} failed authentication")


def test_failed_open_leaves_no_plaintext_behind() -> None:
    chunk = 1024
    data = os.urandom(big_enough_to_split(2, chunk))
    sealed = bytearray(seal(REF, data, chunk, True))
    sealed[-1] ^= 1  # only the last chunk is bad; earlier ones verify
    out = bytearray(len(data))
    with pytest.raises(AuthenticationError):
        native.open_batch(KEY, 0, sealed, out, chunk, True, threads=2)
    assert out == bytes(len(out))


def test_wrong_key_fails_the_first_chunk() -> None:
    sealed = seal(NativeEngine(2), os.urandom(5000), 1024, True, 3)
    with pytest.raises(AuthenticationError, match="chunk 3 failed"):
        open_(NativeEngine(2), sealed, 1024, True, 3, key=bytes(32))


@pytest.mark.parametrize("engine", [REF, NativeEngine(2)], ids=["reference", "native"])
def test_final_flag_mismatch_is_detected(engine: Engine) -> None:
    chunk = 1024
    data = os.urandom(3 * chunk)
    mid_stream = seal(REF, data, chunk, final=False, first=4)
    ending = seal(REF, data, chunk, final=True, first=4)
    # Whole chunks parse either way; only the last chunk's nonce flag differs.
    for sealed, opened_as in ((mid_stream, True), (ending, False)):
        assert failing_chunk(engine, sealed, chunk, opened_as, 4) == "chunk 6 failed authentication"


@pytest.mark.parametrize("engine", [REF, NativeEngine(2)], ids=["reference", "native"])
def test_truncated_final_batch_is_rejected(engine: Engine) -> None:
    chunk = 1024
    sealed = seal(REF, os.urandom(2 * chunk + 100), chunk, True)
    last_start = 2 * (chunk + TAG_SIZE)
    # Cut inside the last chunk's tag, cut the whole last chunk, cut one byte.
    for cut in (last_start + TAG_SIZE - 1, last_start, len(sealed) - 1):
        with pytest.raises(AuthenticationError):
            open_(engine, sealed[:cut], chunk, True)


# --- bounds, in Python and again in C --------------------------------------------


@pytest.mark.parametrize("engine", [REF, NativeEngine(2)], ids=["reference", "native"])
def test_index_overflow_is_rejected(engine: Engine) -> None:
    chunk = 1024
    one, two = os.urandom(chunk), os.urandom(2 * chunk)
    seal(engine, one, chunk, True, MAX_CHUNK_INDEX)  # the very last index is usable
    with pytest.raises(UsageError):
        seal(engine, two, chunk, True, MAX_CHUNK_INDEX)
    sealed = seal(REF, two, chunk, True)
    with pytest.raises(UsageError):
        open_(engine, sealed, chunk, True, MAX_CHUNK_INDEX)


@pytest.mark.parametrize("engine", [REF, NativeEngine(2)], ids=["reference", "native"])
def test_destination_too_small_is_rejected(engine: Engine) -> None:
    chunk = 1024
    data = os.urandom(chunk + 1)
    with pytest.raises(UsageError):
        engine.seal(KEY, 0, data, bytearray(sealed_size(len(data), chunk, True) - 1), chunk, True)
    sealed = seal(REF, data, chunk, True)
    with pytest.raises(UsageError):
        engine.open(KEY, 0, sealed, bytearray(len(data) - 1), chunk, True)


def test_c_checks_bounds_on_its_own() -> None:
    """The low-level calls skip Python's checks: C must refuse by itself."""
    chunk = 1024
    data = os.urandom(2 * chunk)
    sealed = seal(REF, data, chunk, True)
    big = bytearray(4 * len(sealed))
    cases = [
        lambda: native.seal_batch(KEY, MAX_CHUNK_INDEX, data, big, chunk, True),
        lambda: native.seal_batch(KEY, 0, data, bytearray(len(data) + TAG_SIZE), chunk, True),
        lambda: native.seal_batch(KEY, 0, data[:-1], big, chunk, False),  # not whole chunks
        lambda: native.seal_batch(KEY, 0, b"", big, chunk, False),  # empty mid-stream
        lambda: native.open_batch(KEY, MAX_CHUNK_INDEX, sealed, big, chunk, True),
        lambda: native.open_batch(KEY, 0, sealed, bytearray(len(data) - 1), chunk, True),
        lambda: native.open_batch(KEY, 0, sealed[:-1], big, chunk, False),
        lambda: native.open_batch(KEY, 0, sealed[: chunk + TAG_SIZE + 15], big, chunk, True),
    ]
    # What C cannot see or cffi cannot convert is refused at the Python door.
    cases += [
        lambda: native.seal_batch(KEY, 0, data, big, 0, True),
        lambda: native.seal_batch(KEY[:16], 0, data, big, chunk, True),
        lambda: native.seal_batch(KEY, 0, data, big, chunk, True, threads=0),
        lambda: native.seal_batch(KEY, -1, data, big, chunk, True),
    ]
    for case in cases:
        with pytest.raises(UsageError):
            case()


def test_more_threads_than_the_pool_allows_is_capped_not_refused() -> None:
    chunk = 65536
    data = os.urandom(big_enough_to_split(4, chunk))
    many = NativeEngine(native.MAX_THREADS + 10)
    assert seal(many, data, chunk, True) == seal(REF, data, chunk, True)


def test_overlapping_buffers_are_rejected() -> None:
    chunk = 1024
    buf = bytearray(3 * (chunk + TAG_SIZE))
    view = memoryview(buf)
    with pytest.raises(UsageError):
        native.seal_batch(KEY, 0, view[: 2 * chunk], view[chunk:], chunk, True)


def test_memoryview_buffers_are_accepted() -> None:
    chunk = 1024
    data = os.urandom(3 * chunk + 9)
    out = memoryview(bytearray(sealed_size(len(data), chunk, True) + 10))
    n = NativeEngine(2).seal(KEY, 0, memoryview(data), out, chunk, True)
    assert bytes(out[:n]) == seal(REF, data, chunk, True)

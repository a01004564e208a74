"""pytest-benchmark: seal and open of one 16 MiB batch of 256 KiB and 1 MiB chunks, per engine.

Not part of the test suite (tests live in tests/).  Run:

    python -m pytest benchmarks/test_engine_bench.py --benchmark-only

Each benchmark records its plaintext throughput in ``extra_info["MB/s"]``.
"""

from __future__ import annotations

import os

import pytest

from envelope.engines import get_engine, native_available
from envelope.engines.base import sealed_size

BATCH = 16 << 20
KEY = os.urandom(32)
ENGINES = [("python", 1)] + ([("native", 1), ("native", os.cpu_count() or 1)] if native_available() else [])


@pytest.mark.parametrize("chunk", [256 << 10, 1 << 20], ids=["256K", "1M"])
@pytest.mark.parametrize("name, threads", ENGINES, ids=[f"{n}-t{t}" for n, t in ENGINES])
@pytest.mark.parametrize("op", ["seal", "open"])
def test_engine(benchmark, op, name, threads, chunk):  # type: ignore[no-untyped-def]
    engine = get_engine(name, threads)
    plain = bytearray(os.urandom(BATCH))
    sealed = bytearray(sealed_size(BATCH, chunk, False))
    engine.seal(KEY, 0, plain, sealed, chunk, False)
    if op == "seal":
        benchmark(engine.seal, KEY, 0, plain, sealed, chunk, False)
    else:
        benchmark(engine.open, KEY, 0, sealed, plain, chunk, False)
    benchmark.extra_info["MB/s"] = round(BATCH / benchmark.stats.stats.median / 1e6)

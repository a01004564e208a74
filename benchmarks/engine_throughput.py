"""In-memory seal/open throughput of the chunk engines.

Measures, does not test: for each chunk size, one batch of --size MiB is sealed
and opened --runs times per engine; the table shows the median in MB/s (10**6
bytes of plaintext per second).  Buffers are allocated once, outside the
timing, as the streaming loop does.  Compare with the ceiling of one core:

    openssl speed -evp aes-256-gcm -bytes 1048576 -seconds 3

Run: python benchmarks/engine_throughput.py [--size 64] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from envelope.engines.base import Engine, sealed_size
from envelope.engines.reference import ReferenceEngine

try:
    from envelope.engines.native import NativeEngine
except ImportError:  # not built: measure the reference alone
    NativeEngine = None  # type: ignore[assignment,misc]

KiB, MiB = 1 << 10, 1 << 20


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(engines: list[tuple[str, Engine]], data: bytes, chunk: int,
            runs: int) -> dict[str, tuple[float, float]]:
    """Median (seal, open) MB/s per engine.

    Engines take turns within each run, so a slow spell of a shared machine
    lands on all of them rather than on whichever happened to be running.
    """
    key = os.urandom(32)
    sealed = bytearray(sealed_size(len(data), chunk, True))
    opened = bytearray(len(data))
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name, _ in engines}
    for run in range(runs + 1):
        for name, e in engines:
            t_seal = timed(lambda: e.seal(key, 0, data, sealed, chunk, True))
            t_open = timed(lambda: e.open(key, 0, sealed, opened, chunk, True))
            if run:  # run 0 warms up: page faults, thread pool creation
                times[name][0].append(t_seal)
                times[name][1].append(t_open)
    assert opened == data
    return {name: (len(data) / statistics.median(ts) / 1e6, len(data) / statistics.median(to) / 1e6)
            for name, (ts, to) in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="batch size in MiB")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--chunks", default="1024,256,64", help="chunk sizes in KiB")
    args = parser.parse_args()

    data = os.urandom(args.size * MiB)
    engines: list[tuple[str, Engine]] = [("reference", ReferenceEngine())]
    if NativeEngine is not None:
        engines += [("native t=1", NativeEngine(1)), ("native t=2", NativeEngine(2))]
        cpus = os.cpu_count() or 1
        if cpus > 2:
            engines.append((f"native t={cpus}", NativeEngine(cpus)))

    print(f"batch {args.size} MiB, median of {args.runs} runs, MB/s (10^6 B/s of plaintext)")
    print(f"{'engine':<12} {'chunk':>9} {'seal MB/s':>10} {'open MB/s':>10}")
    for chunk_kib in (int(c) for c in args.chunks.split(",")):
        rates = measure(engines, data, chunk_kib * KiB, args.runs)
        for name, (seal_rate, open_rate) in rates.items():
            print(f"{name:<12} {chunk_kib:>6} KiB {seal_rate:>10.0f} {open_rate:>10.0f}")

if __name__ == "__main__":
    main()

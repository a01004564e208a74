"""How the chunk size affects stream throughput: the measurement behind the default.

Encrypts and decrypts a generated in-memory stream of --size through the full
stream code (header, pipeline, engine) into a sink, for each chunk size and
engine, and prints median MB/s over --runs.  CPU-bound on purpose: disk noise
would hide the per-chunk cost this is meant to show.

    python benchmarks/chunk_size.py --size 512M --runs 5
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from envelope.engines import get_engine, native_available  # noqa: E402
from envelope.keyrings.base import MultiKeyring  # noqa: E402
from envelope.keyrings.raw_aes import RawAesKeyring  # noqa: E402
from envelope.stream import decrypt_stream, encrypt_stream  # noqa: E402
from file_throughput import size_arg  # noqa: E402

SIZES = ["16K", "64K", "256K", "1M", "4M", "16M"]


class Sink(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        return len(b)


class Source(io.RawIOBase):
    """Serves the same block over and over: no allocation, no copy from a file."""

    def __init__(self, block: bytes, total: int) -> None:
        self.block, self.left = memoryview(block), total

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = min(len(b), self.left, len(self.block))
        b[:n] = self.block[:n]
        self.left -= n
        return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=size_arg, default=size_arg("512M"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--chunks", default=",".join(SIZES))
    args = ap.parse_args()
    keyring = MultiKeyring([RawAesKeyring(os.urandom(32))])
    block = os.urandom(16 << 20)
    engines = ["python"] + (["native"] if native_available() else [])
    print(f"{args.size / 1e6:.0f} MB stream, {args.runs} runs, {os.cpu_count()} cores; median MB/s")
    print(f"{'chunk':>6}" + "".join(f"{e + ' seal':>14}{e + ' open':>14}" for e in engines))
    for chunk_text in args.chunks.split(","):
        chunk = size_arg(chunk_text)
        row = f"{chunk_text:>6}"
        for name in engines:
            engine = get_engine(name)
            seal_t, open_t = [], []
            sealed = io.BytesIO()
            encrypt_stream(Source(block, 64 << 20), sealed, keyring, chunk_size=chunk, engine=engine)
            blob = sealed.getvalue()  # 64 MiB sealed, replayed for the open runs
            for _ in range(args.runs):
                t = time.perf_counter()
                encrypt_stream(Source(block, args.size), Sink(), keyring, chunk_size=chunk, engine=engine)
                seal_t.append(time.perf_counter() - t)
                t = time.perf_counter()
                for _ in range(max(1, args.size // (64 << 20))):
                    decrypt_stream(io.BytesIO(blob), Sink(), keyring, engine=engine)
                open_t.append(time.perf_counter() - t)
            opened = max(1, args.size // (64 << 20)) * (64 << 20)
            row += f"{args.size / statistics.median(seal_t) / 1e6:>14.0f}{opened / statistics.median(open_t) / 1e6:>14.0f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()

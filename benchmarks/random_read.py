"""Latency of random 4 KiB reads through envelope.open on a large encrypted file.

Encrypts a generated file of --size once (or reuses --encrypted), opens it
(unwrapping the data key), then reads --reads blocks of --block bytes at random
offsets and prints the median, 90th percentile and maximum latency per read,
and how many chunks each read opened.  Usage:

    python benchmarks/random_read.py --size 10G --dir /path/with/space [--reads 200]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import envelope  # noqa: E402
from envelope.engines import get_engine  # noqa: E402
from file_throughput import size_arg  # noqa: E402


class Counting:
    """Wraps an engine to count the chunks each read opens."""

    def __init__(self, engine):  # type: ignore[no-untyped-def]
        self.engine, self.chunks, self.name = engine, 0, engine.name

    def open(self, key, first, src, dst, chunk_size, final):  # type: ignore[no-untyped-def]
        self.chunks += -(-len(src) // (chunk_size + 16))
        return self.engine.open(key, first, src, dst, chunk_size, final)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=size_arg, default=size_arg("1G"))
    ap.add_argument("--block", type=size_arg, default=4096)
    ap.add_argument("--reads", type=int, default=200)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--encrypted", default=None, help="reuse this file (encrypted under --key)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="envelope-rr-", dir=args.dir)
    key = os.path.join(work, "kek")
    with open(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:  # others may not read it
        f.write(os.urandom(32))
    enc = args.encrypted or os.path.join(work, "big.envelope")
    try:
        if not args.encrypted:
            # A stream of random blocks straight into the encryptor: no plaintext file on disk.
            gen = subprocess.Popen(["head", "-c", str(args.size), "/dev/urandom"], stdout=subprocess.PIPE)
            subprocess.run([sys.executable, "-m", "envelope", "encrypt-file", "-", "-o", enc, "--quiet",
                            "--key", f"raw-aes:{key}"], stdin=gen.stdout, check=True)
            gen.wait()
        engine = Counting(get_engine())
        t = time.perf_counter()
        from envelope.reader import DecryptingReader
        from envelope.api import decryption_keyring

        raw = DecryptingReader(open(enc, "rb"), decryption_keyring([f"raw-aes:{key}"]), engine=engine,  # type: ignore[arg-type]
                               close_source=True)
        opened = time.perf_counter() - t
        rng = random.Random(1)
        lat, chunks = [], []
        buf = bytearray(args.block)
        for _ in range(args.reads):
            off = rng.randrange(0, max(1, raw.size - args.block))
            before = engine.chunks
            t = time.perf_counter()
            raw.seek(off)
            got = 0
            while got < args.block:
                n = raw.readinto(memoryview(buf)[got:])
                if not n:
                    break
                got += n
            lat.append((time.perf_counter() - t) * 1000)
            chunks.append(engine.chunks - before)
        lat.sort()
        print(f"file {raw.size / 2**30:.1f} GiB plaintext, chunk {raw.header.chunk_size >> 10} KiB, "
              f"engine {engine.name}; open + unwrap {opened * 1000:.1f} ms")
        print(f"{args.reads} random {args.block}-byte reads: median {statistics.median(lat):.2f} ms, "
              f"p90 {lat[int(0.9 * len(lat))]:.2f} ms, max {lat[-1]:.2f} ms; "
              f"chunks opened per read: {min(chunks)}..{max(chunks)}")
    finally:
        if not args.encrypted:
            for name in os.listdir(work):
                os.unlink(os.path.join(work, name))
            os.rmdir(work)


if __name__ == "__main__":
    main()

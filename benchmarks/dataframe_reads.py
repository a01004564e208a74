"""Parquet reads through fsspec: an envelope-encrypted file next to the same file unencrypted, same backend.

The file is 56.5 MB-style: --rows rows (default 800,000) of 7 float64
columns in 10 row groups, uncompressed (random values do not compress),
encrypted with 256 KiB chunks (--chunk) under a raw AES key (no KMS round trip:
the key manager is not what is measured).  Four reads, each through a file
object that pyarrow gets from fsspec:

- one column of one row group: ``ParquetFile(f).read_row_group(3, columns=["c2"])``;
- the same with the final chunk not kept: the proven final chunk forgotten before each encrypted read
  (the header and data key stay cached), so the read reads and opens the final chunk again, as a
  first open does;
- one column: ``pq.read_table(f, columns=["c2"])``;
- the whole file: ``pq.read_table(f)``.

Backends: local files (fsspec's ``file`` against ``envelope::file``) and moto's
S3 server on 127.0.0.1 (envelope's boto3 S3 filesystem, unencrypted, against
``envelope::s3``); both unencrypted readers fetch exactly the ranges asked
(``cache_type="none"``), as envelope's does.  For each read: ciphertext bytes
read (for the unencrypted file, bytes read), chunks decrypted, and the median
wall time over --runs rounds, the two files read alternately in each round
after one warm-up read each; also the ratio of the median CPU times (the
process's, every thread's: the engine's and pyarrow's), which a loaded machine
disturbs less than wall time (the encrypted file's header, data key and proven
final chunk are then cached, as they are for every later read in a process).

    python benchmarks/dataframe_reads.py --runs 7 --out benchmarks/results/dataframes.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

import fsspec  # noqa: E402
from envelope.filesystem_files import CountedReader  # noqa: E402
from s3_throughput import start_server  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

BUCKET = "bench"
NOTES = """\
Reading the table.  An encrypted read fetches whole chunks: the chunks under the ranges pyarrow
asks for.  The final chunk (it proves the file's length; it also holds the footer) is read and
opened on the first open of a file only: its plaintext is kept with the proof, per ciphertext
(authenticated header and length), for the cache window, so the measured reads, which follow a
warm-up, read it from there.  A column of one row group here is 640 KB, which 256 KiB chunks cover
with 3 or 4 chunks: 4 chunks, 1.05 MB, where the unencrypted read fetches 0.87 MB.  Larger column
chunks (compressed data of more rows per row group) bring the ratio towards 1; smaller chunks
(`chunk_size`) do too, at more tags and calls per byte.  The whole file is fetched once either way;
whole chunks are opened straight into pyarrow's buffer.  moto reads a whole object for every ranged
GET, so S3 times mostly count requests; the encrypted reader prefetches a read of many chunks in
one GET (up to 64 MiB).  Times on this shared 2-core machine vary between runs by up to 2x (more
under load: the load average is printed); compare the two columns of one row, measured alternately.
"""


READS: dict[str, Callable[[Any], Any]] = {
    "one column of one row group": lambda f: pq.ParquetFile(f).read_row_group(3, columns=["c2"]),
    "the same, final chunk not kept": lambda f: pq.ParquetFile(f).read_row_group(3, columns=["c2"]),
    "one column": lambda f: pq.read_table(f, columns=["c2"]),
    "whole file": lambda f: pq.read_table(f),
}


def measure_plain(fs: Any, path: str, read: Callable[[Any], Any]) -> tuple[float, float, int]:
    start, cpu = time.perf_counter(), time.process_time()
    with fs.open(path, "rb", cache_type="none") as f:
        counted = CountedReader(f)
        read(counted)
    return time.perf_counter() - start, time.process_time() - cpu, counted.count


def forget_proven_ends(fs: Any) -> None:
    """Drop the final chunks the filesystem proved (local files, S3 objects): the next open proves again."""
    for owner in (fs, getattr(fs, "_s3_client", None)):
        ends = getattr(owner, "_ends", None)
        if ends is not None:
            ends.clear()


def measure_envelope(fs: Any, path: str, read: Callable[[Any], Any],
                     first_open: bool) -> tuple[float, float, int, int]:
    if first_open:
        forget_proven_ends(fs)
    chunks, fetched = fs.stats.chunks, fs.stats.bytes_read
    start, cpu = time.perf_counter(), time.process_time()
    with fs.open(path, "rb") as f:
        read(f)
    return (time.perf_counter() - start, time.process_time() - cpu, fs.stats.bytes_read - fetched,
            fs.stats.chunks - chunks)


def backends(work: Path, table: Any, chunk: int, key: str, which: str) -> Any:
    """(name, plain fs, plain path, envelope fs, envelope path) for local files, then moto S3."""
    plain_local = str(work / "plain.parquet")
    pq.write_table(table, plain_local, row_group_size=table.num_rows // 10, compression="none")
    enc = fsspec.filesystem("envelope", keys=key, chunk_size=chunk)
    with enc.open(str(work / "sealed.parquet"), "wb") as f:
        f.write(Path(plain_local).read_bytes())
    if which in ("all", "local"):
        yield "local", fsspec.filesystem("file"), plain_local, enc, str(work / "sealed.parquet")
    if which == "local":
        return

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true")
    server, endpoint = start_server()
    try:
        from envelope.s3.fsspec_s3 import BotoS3FileSystem, boto_client

        options = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        client = boto_client(options)
        client.create_bucket(Bucket=BUCKET)
        client.upload_file(plain_local, BUCKET, "plain.parquet")
        enc_s3 = fsspec.filesystem("envelope", target_protocol="s3", target_options=options, keys=key,
                                   chunk_size=chunk)
        with enc_s3.open(f"{BUCKET}/sealed.parquet", "wb") as f:
            f.write(Path(plain_local).read_bytes())
        yield "moto S3", BotoS3FileSystem(client=client), f"{BUCKET}/plain.parquet", enc_s3, f"{BUCKET}/sealed.parquet"
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=800_000)
    parser.add_argument("--chunk", type=int, default=256 << 10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", choices=["all", "local", "s3"], default="all")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    table = pa.table({f"c{i}": rng.random(args.rows) for i in range(7)})
    rows = []
    with tempfile.TemporaryDirectory(prefix="envelope-bench-") as tmp:
        work = Path(tmp)
        key_file = work / "kek"
        key_file.write_bytes(os.urandom(32))
        key_file.chmod(0o600)
        key = f"raw-aes:{key_file}"
        for name, plain_fs, plain_path, enc_fs, enc_path in backends(work, table, args.chunk, key, args.backends):
            size = plain_fs.size(plain_path)
            for label, read in READS.items():
                measure_plain(plain_fs, plain_path, read)
                first_open = label.endswith("not kept")
                measure_envelope(enc_fs, enc_path, read, first_open)
                plain_t, enc_t, plain_c, enc_c = [], [], [], []
                for _ in range(args.runs):
                    t, c, plain_bytes = measure_plain(plain_fs, plain_path, read)
                    plain_t.append(t)
                    plain_c.append(c)
                    t, c, enc_bytes, chunks = measure_envelope(enc_fs, enc_path, read, first_open)
                    enc_t.append(t)
                    enc_c.append(c)
                p, e = statistics.median(plain_t), statistics.median(enc_t)
                cpu = statistics.median(enc_c) / max(statistics.median(plain_c), 1e-9)
                rows.append(f"| {name} | {label} | {plain_bytes / 1e6:.2f} MB | {enc_bytes / 1e6:.2f} MB "
                            f"({enc_bytes / plain_bytes:.2f}x) | {chunks} | {p * 1e3:.1f} ms | {e * 1e3:.1f} ms "
                            f"({e / p:.2f}x) | {cpu:.2f}x |")
                print(rows[-1], flush=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "# Parquet reads through fsspec: encrypted against unencrypted",
        "",
        f"{size / 1e6:.1f} MB Parquet file ({args.rows:,} rows, 7 float64 columns, 10 row groups, uncompressed), "
        f"{args.chunk >> 10} KiB chunks; medians of {args.runs} alternating rounds after a warm-up; "
        "bytes read by the same read of the unencrypted file and of the encrypted one (ciphertext); "
        f"load average at the end: {load}.",
        "",
        "    python benchmarks/dataframe_reads.py --runs %d --out benchmarks/results/dataframes.md" % args.runs,
        "",
        "| backend | read | bytes, unencrypted | bytes, encrypted | chunks decrypted | time, unencrypted | "
        "time, encrypted | CPU time, encrypted |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        *NOTES.splitlines(),
        "",
    ]
    if args.out:
        args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

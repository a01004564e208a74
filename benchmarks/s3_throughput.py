"""S3 upload and download: envelope's encrypted transfers next to plain boto3's, same server, same TransferConfig.

The server is moto's on 127.0.0.1 (``pip install 'moto[server]'``), so the
figures compare client-side work, not a network: plain ``upload_file`` /
``download_file`` against ``EncryptedS3Client``'s, in turns, medians of
--runs; peak RSS of this process is reported after each phase.  Also reported:
the bytes a 4 KiB ranged GET fetches from the middle of the object.

    python benchmarks/s3_throughput.py --size 1G --runs 3
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=1 << 30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", help="where the local files go")
    args = parser.parse_args()

    import logging

    import boto3
    from boto3.s3.transfer import TransferConfig
    from kms_gate import start_moto

    from envelope.s3 import EncryptedS3Client

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_EC2_METADATA_DISABLED="true")
    server, endpoint = start_moto()
    work = Path(tempfile.mkdtemp(prefix="envelope-s3-bench-", dir=args.dir))
    try:
        client = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
        client.create_bucket(Bucket="bench")
        key = work / "kek"
        key.write_bytes(os.urandom(32))
        encrypted = EncryptedS3Client(client, keys=[f"raw-aes:{key}"])
        config = TransferConfig()  # boto3's defaults for both
        src = work / "in.bin"
        with open(src, "wb") as fh:
            for _ in range(args.size >> 20):
                fh.write(os.urandom(1 << 20))
        times: dict[str, list[float]] = {name: [] for name in ("boto3 up", "envelope up", "boto3 down",
                                                              "envelope down")}
        for run in range(args.runs + 1):
            for name, action in (
                    ("boto3 up", lambda: client.upload_file(str(src), "bench", "plain", Config=config)),
                    ("envelope up", lambda: encrypted.upload_file(str(src), "bench", "sealed", Config=config)),
                    ("boto3 down", lambda: client.download_file("bench", "plain", str(work / "p"), Config=config)),
                    ("envelope down", lambda: encrypted.download_file("bench", "sealed", str(work / "e"),
                                                                      Config=config))):
                start = time.perf_counter()
                action()
                if run:
                    times[name].append(time.perf_counter() - start)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        middle = args.size // 2
        got = encrypted.get_object(Bucket="bench", Key="sealed", Range=f"bytes={middle}-{middle + 4095}")
        assert got["Body"].read() == (work / "e").read_bytes()[middle:middle + 4096]

        print(f"{args.size >> 20} MiB, moto on 127.0.0.1, boto3 TransferConfig defaults, median of {args.runs}\n")
        print("| transfer | boto3 s | envelope s | envelope / boto3 |")
        print("|---|---|---|---|")
        for way in ("up", "down"):
            plain, sealed = statistics.median(times[f"boto3 {way}"]), statistics.median(times[f"envelope {way}"])
            print(f"| {'upload_file' if way == 'up' else 'download_file'} | {plain:.2f} | {sealed:.2f} | "
                  f"{sealed / plain:.2f} |")
        print(f"\npeak RSS of this process (moto's server included): {peak:.0f} MiB")
        print(f"4 KiB ranged GET from the middle: {got['EnvelopeBytesFetched']} bytes fetched in "
              f"{got['EnvelopeRequests']} requests (chunk: 256 KiB + 16)")
    finally:
        server.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""S3 upload and download: envelope next to plain boto3 and AWS's S3 Encryption Client, same server.

Every transfer is a process of its own, timed whole (start to exit), with its
peak RSS read from the kernel (``wait4``), so the figures are what
``/usr/bin/time -v`` would print.  The server is moto's (``pip install
'moto[server]'``), started here as a separate process on 127.0.0.1, so the
clients compete with it for the two cores but not for a GIL.  The tools, in
turns (in reverse order every other round, ``sync`` before each transfer, a
download's output deleted after it), one round after another, medians over
--runs rounds after an untimed warm-up round:

- ``boto3``: plain ``upload_file`` / ``download_file`` (no encryption), the floor;
- ``envelope``: ``EncryptedS3Client.upload_file`` / ``download_file`` under an AWS KMS key;
- ``s3ec``: ``amazon-s3-encryption-client-python`` (``pip install
  amazon-s3-encryption-client-python``; skipped if absent): ``upload_file``,
  and ``get_object`` read into a file (it has no download_file), under the same key.

All three use the same part size (``--part-size``; boto3's default is 8 MiB).
moto reads a whole object for every ranged GET, so downloads in ranges of a
large object are slower here than on S3; ``--down-part-size`` as large as the
object makes boto3 and envelope fetch it in one GET, as the S3 Encryption
Client does, which compares the clients' own work.  Also reported: the bytes and requests of a 4 KiB ranged GET from
the middle of the object, the first time and again (the header and data key
then come from the client's per-ETag cache).

    python benchmarks/s3_throughput.py --size 1G --runs 3 --part-size 64M
    python benchmarks/s3_throughput.py --size 1G --runs 3 --down-part-size 1G   # 8 MiB parts up, one GET down
    python benchmarks/s3_throughput.py --size 1G --runs 7 --down-part-size 1G --ways down   # uploads once, untimed

``--base DIR`` adds a fourth tool, ``base``: envelope as another checkout DIR
has it (run by DIR/.venv's Python), so a change is measured against the code
it changes in the same rounds, on the same server.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]
BUCKET = "bench"
TOOLS = ("boto3", "envelope", "s3ec")


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def _clients(endpoint: str) -> tuple[object, object]:
    import boto3

    return (boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint),
            boto3.client("kms", region_name="us-east-1", endpoint_url=endpoint))


def child(tool: str, way: str, endpoint: str, key_arn: str, local: str, name: str, part: int) -> None:
    """One transfer, in this process: what the parent times."""
    from boto3.s3.transfer import TransferConfig

    s3, kms = _clients(endpoint)
    config = TransferConfig(multipart_threshold=part, multipart_chunksize=part)
    if tool == "boto3":
        if way == "up":
            s3.upload_file(local, BUCKET, name, Config=config)  # type: ignore[attr-defined]
        else:
            s3.download_file(BUCKET, name, local, Config=config)  # type: ignore[attr-defined]
    elif tool == "envelope":
        from envelope.s3 import EncryptedS3Client

        encrypted = EncryptedS3Client(s3, keys=[f"aws-kms:{key_arn}"])
        if way == "up":
            encrypted.upload_file(local, BUCKET, name, Config=config)
        else:
            encrypted.download_file(BUCKET, name, local, Config=config)
    else:
        from s3_encryption import S3EncryptionClient, S3EncryptionClientConfig
        from s3_encryption.materials.kms_keyring import KmsKeyring

        s3ec = S3EncryptionClient(s3, S3EncryptionClientConfig(keyring=KmsKeyring(kms, key_arn)))
        if way == "up":
            s3ec.upload_file(local, BUCKET, name, multipart_threshold=part, multipart_chunksize=part)
        else:
            body = s3ec.get_object(Bucket=BUCKET, Key=name)["Body"]
            with open(local, "wb") as fh:
                shutil.copyfileobj(body, fh, 1 << 20)


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one whole process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv[2:5])} failed with exit code {proc.returncode}")
    return elapsed, usage.ru_maxrss / 1024


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("moto_server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=1 << 30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--part-size", type=parse_size, default=8 << 20)
    parser.add_argument("--down-part-size", type=parse_size, help="ranges of downloads (default: --part-size)")
    parser.add_argument("--ways", default="up,down",
                        help="up, down or both (up,down); down alone uploads the objects once, untimed")
    parser.add_argument("--dir", help="where the local files go")
    parser.add_argument("--tools", help=f"comma-separated, of {', '.join(TOOLS)} and base (default: all there are)")
    parser.add_argument("--base", metavar="DIR", help="also time envelope as checkout DIR has it (tool 'base')")
    parser.add_argument("--child", nargs=6, metavar=("TOOL", "WAY", "ENDPOINT", "KEY", "FILE", "NAME"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_EC2_METADATA_DISABLED="true",
                      AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1")
    if args.child:
        child(*args.child, args.part_size)
        return

    try:
        import s3_encryption  # noqa: F401
        tools = TOOLS
    except ImportError:
        tools = TOOLS[:2]
    if args.base:
        tools += ("base",)
    if args.tools:
        tools = tuple(t for t in tools if t in args.tools.split(","))
    server, endpoint = start_server()
    os.environ["AWS_ENDPOINT_URL"] = endpoint  # envelope's aws-kms keys find KMS as boto3 does
    work = Path(tempfile.mkdtemp(prefix="envelope-s3-bench-", dir=args.dir))
    try:
        s3, kms = _clients(endpoint)
        s3.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
        key_arn = kms.create_key()["KeyMetadata"]["Arn"]  # type: ignore[attr-defined]
        src = work / "in.bin"
        with open(src, "wb") as fh:
            for _ in range(args.size >> 20):
                fh.write(os.urandom(1 << 20))
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        ways = [way for way in ("up", "down") if way in args.ways.split(",")]
        for run in range(args.runs + 1):  # round 0 warms the server and the page cache
            # Downloads alone still need the objects: round 0 uploads them, untimed.
            for way in ways if run or "up" in ways else ["up", *ways]:
                # Tools in turns, in reverse order every other round, so none always follows the same one.
                for tool in tools if run % 2 == 0 else tools[::-1]:
                    local = str(src) if way == "up" else str(work / f"out-{tool}")
                    part = args.part_size if way == "up" else args.down_part_size or args.part_size
                    python, script, as_tool = sys.executable, __file__, tool
                    if tool == "base":
                        base = Path(args.base).resolve()
                        python, as_tool = str(base / ".venv/bin/python"), "envelope"
                        script = str(base / "benchmarks" / Path(__file__).name)
                    argv = [python, script, "--part-size", str(part), "--child", as_tool, way,
                            endpoint, key_arn, local, f"object-{tool}"]
                    os.sync()  # no tool pays for another's writeback
                    figure = timed(argv)
                    if way == "down":
                        os.unlink(local)
                    if run and way in ways:
                        results.setdefault((tool, way), []).append(figure)
        report(args, tools, ways, results)
        ranged(s3, key_arn, args.size)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, tools: tuple[str, ...], ways: list[str],
           results: dict[tuple[str, str], list[tuple[float, float]]]) -> None:
    down = args.down_part_size or args.part_size
    print(f"{args.size >> 20} MiB object, moto_server on 127.0.0.1, parts of {args.part_size >> 20} MiB up and "
          f"{down >> 20} MiB down, whole-process figures, median of {args.runs} rounds\n")
    print("| transfer | tool | wall s | / boto3 (median of per-round ratios) | peak RSS MiB |")
    print("|---|---|---|---|---|")
    rounds = []
    for way in ways:
        floor = [t for t, _ in results[("boto3", way)]]
        for tool in tools:
            times = [t for t, _ in results[(tool, way)]]
            ratios = [t / f for t, f in zip(times, floor)]
            peak = max(m for _, m in results[(tool, way)])
            print(f"| {'upload' if way == 'up' else 'download'} | {tool} | {statistics.median(times):.2f} | "
                  f"{statistics.median(ratios):.2f} | {peak:.0f} |")
            rounds.append(f"{way} {tool}: {' '.join(f'{r:.2f}' for r in ratios)}")
    print("\nper-round ratios to boto3:", "; ".join(rounds))


def ranged(s3: object, key_arn: str, size: int) -> None:
    from envelope.s3 import EncryptedS3Client

    encrypted = EncryptedS3Client(s3, keys=[f"aws-kms:{key_arn}"])
    middle = size // 2
    for attempt in ("first", "again"):
        got = encrypted.get_object(Bucket=BUCKET, Key="object-envelope", Range=f"bytes={middle}-{middle + 4095}")
        assert len(got["Body"].read()) == 4096
        print(f"4 KiB ranged GET from the middle, {attempt}: {got['EnvelopeBytesFetched']} bytes fetched in "
              f"{got['EnvelopeRequests']} requests (a sealed chunk: 256 KiB + 16)")


if __name__ == "__main__":
    main()

"""Bulk encryption of a prefix on Dask, next to a serial EncryptedS3Client loop and a plain-boto3 Dask copy.

Protocol.  moto's server runs as its own process on 127.0.0.1; AWS KMS is
moto's too, behind the test suite's gate (tests/kms_gate.py), which counts
the KMS calls.  Every S3 request of every client here waits --latency
(default 20 ms) before it is sent (a botocore ``before-send`` hook, installed
in this process and in every worker), standing in for the round trip to a
real S3 region.  The source prefix holds --small objects of 1–64 KiB (sizes
drawn from a seeded generator) and --large objects of --large-size (default
4 × 20 MiB), plaintext.  In each round, in turns, each job copies the whole
prefix to a fresh destination prefix:

- ``serial``: one loop in this process over ``EncryptedS3Client``: GET the
  object, ``put_object`` (small) or ``upload_fileobj`` (large) encrypted;
- ``bulk N``: ``envelope.bulk.encrypt`` on a LocalCluster of N worker
  processes × --threads threads, started before the rounds (its start-up is
  not in the figure; it is reported once, with a whole-process run of the CLI);
- ``copy N``: the same kind of Dask job with plain boto3 (GET, then
  ``upload_fileobj``, no encryption) on the same cluster: the floor.

Every job encrypts under one aws-kms key with the data-key cache on (300 s).
Reported: the median wall time of each job over --runs rounds, its ratio to
the serial loop and to the plain copy on as many workers, the KMS calls of
each bulk job as the gate counted them, and the CPU time the moto server
spent on the job (from /proc, so Linux only).  moto answers from one Python
process whose Python code runs one request at a time under the interpreter
lock, so no client, however parallel, finishes a job in much less wall time
than moto's CPU time for it: the serial time divided by that CPU time is about
the most any job can gain on this stand-in.

    python benchmarks/bulk_throughput.py --runs 3 --markdown benchmarks/results/bulk.md
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE), str(HERE.parent / "tests")]

from s3_throughput import start_server  # noqa: E402

BUCKET = "bulk-bench"
REGION = "us-east-1"
WORKER_COUNTS = (1, 2, 4)
MULTIPART = 8 << 20


def add_latency(seconds: float) -> None:
    """Every S3 request of boto3's default session (and so of every client made from it) waits *seconds*."""
    import boto3

    boto3.setup_default_session()

    def wait(**_: Any) -> None:
        time.sleep(seconds)

    boto3.DEFAULT_SESSION.events.register("before-send.s3", wait)


def plain_client(endpoint: str, dask_worker: Any = None) -> None:
    """The floor's S3 client, made once per worker process before the rounds (boto3 clients are thread-safe;
    making them from several threads at once is not)."""
    import boto3

    dask_worker._bench_s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)


def copy_plain(src_key: str, dst_key: str, size: int) -> int:
    """The floor's task: GET and PUT (in parts above 8 MiB), no encryption."""
    from boto3.s3.transfer import TransferConfig
    from distributed import get_worker

    s3 = get_worker()._bench_s3  # type: ignore[attr-defined]
    body = s3.get_object(Bucket=BUCKET, Key=src_key)["Body"]
    data = io.BytesIO(body.read())
    s3.upload_fileobj(data, BUCKET, dst_key, Config=TransferConfig(multipart_threshold=MULTIPART))
    return size


def serial(s3: Any, keyring: Any, objects: list[tuple[str, int]], dst: str) -> None:
    from boto3.s3.transfer import TransferConfig

    from envelope.s3 import EncryptedS3Client

    client = EncryptedS3Client(s3, keys=keyring)
    for key, size in objects:
        data = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        name = dst + key.removeprefix("src/")
        if size < MULTIPART:
            client.put_object(Bucket=BUCKET, Key=name, Body=data)
        else:
            client.upload_fileobj(io.BytesIO(data), BUCKET, name, Config=TransferConfig(multipart_threshold=MULTIPART))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=4)
    parser.add_argument("--large-size", type=int, default=20 << 20)
    parser.add_argument("--latency", type=float, default=0.020)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--markdown", metavar="PATH", help="also write the table there")
    args = parser.parse_args()

    import boto3
    import distributed

    from envelope import api
    from envelope.bulk import encrypt
    from envelope.cache import CacheLimits, DataKeyCache
    from kms_gate import serve_gate

    server, endpoint = start_server()
    gates = serve_gate(endpoint)
    gate, kms_endpoint = next(gates)
    env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": REGION,
           "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL_KMS": kms_endpoint,
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    os.environ.update(env)
    clusters: dict[int, Any] = {}
    try:
        add_latency(args.latency)
        s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
        s3.create_bucket(Bucket=BUCKET)
        arn = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
        rng = random.Random(19)
        objects = [(f"src/small/{i:04d}", rng.randint(1 << 10, 64 << 10)) for i in range(args.small)]
        objects += [(f"src/large/{i}", args.large_size) for i in range(args.large)]
        for key, size in objects:
            s3.put_object(Bucket=BUCKET, Key=key, Body=os.urandom(size))
        total = sum(size for _, size in objects)
        for n in WORKER_COUNTS:
            started = time.perf_counter()
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=args.threads, processes=True,
                                               dashboard_address=":0")
            client = distributed.Client(cluster)
            client.run(add_latency, args.latency)
            client.run(plain_client, endpoint)
            clusters[n] = (cluster, client, time.perf_counter() - started)
        key_ref = f"aws-kms:{arn}"
        serial_keyring = api.encryption_keyring([key_ref], cache=DataKeyCache(CacheLimits(300)))
        times: dict[str, list[float]] = {}
        kms: dict[str, list[int]] = {}
        moto_cpu: dict[str, list[float]] = {}
        for round_ in range(args.runs):
            jobs: list[tuple[str, Any]] = [("serial", lambda dst: serial(s3, serial_keyring, objects, dst))]
            for n in WORKER_COUNTS:
                client = clusters[n][1]
                jobs.append((f"bulk {n}", lambda dst, c=client: _bulk(encrypt, c, endpoint, key_ref, dst)))
                jobs.append((f"copy {n}", lambda dst, c=client: _copy(c, endpoint, objects, dst)))
            order = jobs if round_ % 2 == 0 else jobs[::-1]
            for name, job in order:
                dst = f"r{round_}/{name.replace(' ', '')}/"
                gate.reset()
                cpu = server_cpu(server.pid)
                started = time.perf_counter()
                job(dst)
                times.setdefault(name, []).append(time.perf_counter() - started)
                moto_cpu.setdefault(name, []).append(server_cpu(server.pid) - cpu)
                kms.setdefault(name, []).append(len(gate.operations("GenerateDataKey", "Decrypt", "Encrypt")))
                print(f"round {round_ + 1} {name}: {times[name][-1]:.2f} s, {kms[name][-1]} KMS calls, "
                      f"moto CPU {moto_cpu[name][-1]:.2f} s", flush=True)
        cli = _whole_cli(endpoint, key_ref, args, env)
    finally:
        for cluster, client, _ in clusters.values():
            client.close()
            cluster.close()
        gates.close()
        server.terminate()
    report(args, objects, total, times, kms, moto_cpu, {n: c[2] for n, c in clusters.items()}, cli)


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) process *pid* has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _bulk(encrypt: Any, client: Any, endpoint: str, key_ref: str, dst: str) -> None:
    result = encrypt(f"s3://{BUCKET}/src/", f"s3://{BUCKET}/{dst}", keys=[key_ref], client=client,
                     endpoint_url=endpoint, cache_max_age=300, manifest=os.path.join("/tmp", f"bench-{os.getpid()}.sqlite"))
    if not result.ok:
        raise SystemExit(f"bulk job failed: {result.failures[:3]}")


def _copy(client: Any, endpoint: str, objects: list[tuple[str, int]], dst: str) -> None:
    futures = [client.submit(copy_plain, key, dst + key.removeprefix("src/"), size, pure=False)
               for key, size in objects]
    client.gather(futures)


def _whole_cli(endpoint: str, key_ref: str, args: argparse.Namespace, env: dict[str, str]) -> float:
    """One whole-process ``envelope bulk encrypt`` (2 workers): start-up of the cluster included (no added latency)."""
    argv = [sys.executable, "-m", "envelope", "bulk", "encrypt", f"s3://{BUCKET}/src/", f"s3://{BUCKET}/cli/",
            "--key", key_ref, "--workers", "2", "--threads", str(args.threads), "--endpoint-url", endpoint,
            "--cache-max-age", "300", "--manifest", f"/tmp/bench-cli-{os.getpid()}.sqlite", "-q"]
    started = time.perf_counter()
    subprocess.run(argv, env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def report(args: argparse.Namespace, objects: list[tuple[str, int]], total: int, times: dict[str, list[float]],
           kms: dict[str, list[int]], moto_cpu: dict[str, list[float]], startup: dict[int, float],
           cli: float) -> None:
    med = {name: statistics.median(v) for name, v in times.items()}
    cpu = {name: statistics.median(v) for name, v in moto_cpu.items()}
    lines = [f"{len(objects)} objects ({args.small} of 1–64 KiB, {args.large} of {args.large_size >> 20} MiB; "
             f"{total / 1e6:.1f} MB), {args.latency * 1000:.0f} ms added to every S3 request, moto on 127.0.0.1, "
             f"{args.threads} threads per worker, median of {args.runs} rounds (alternating order).", "",
             "| job | wall | × faster than serial | × plain copy, same workers | KMS calls per job | moto CPU "
             "| most gain moto allows (serial ÷ moto CPU) |",
             "|---|---|---|---|---|---|---|"]
    for name in ["serial"] + [f"{kind} {n}" for n in WORKER_COUNTS for kind in ("bulk", "copy")]:
        n = name.split()[-1]
        vs_copy = f"{med[name] / med['copy ' + n]:.2f}" if name.startswith("bulk") else ""
        lines.append(f"| {name} | {med[name]:.2f} s | {med['serial'] / med[name]:.1f} | {vs_copy} | "
                     f"{'/'.join(map(str, kms[name]))} | {cpu[name]:.2f} s | {med['serial'] / cpu[name]:.1f} |")
    lines += ["", "LocalCluster start-up (not in the figures above): " +
              ", ".join(f"{n} workers {s:.1f} s" for n, s in startup.items()) +
              f".  Whole process `envelope bulk encrypt --workers 2 --threads {args.threads}` with no added "
              f"latency, start-up included: {cli:.1f} s."]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text("# Bulk encryption of a prefix\n\n" + __doc__.split("\n\n")[1] + "\n\n"
                                       + "    python benchmarks/bulk_throughput.py --runs 3 --markdown "
                                       "benchmarks/results/bulk.md\n\n" + text + "\n")


if __name__ == "__main__":
    main()

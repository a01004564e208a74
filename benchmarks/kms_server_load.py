"""Load on ``envelope keys serve`` next to moto's KMS server: same boto3 client, same run, alternating.

Protocol.  Both servers run as separate processes on 127.0.0.1: envelope's
(``envelope keys serve --port 0`` on a fresh keystore, with a credential and
one symmetric key) and moto's (``moto_server``, one key made with
``CreateKey``).  For each client count N (default 1, 4, 16, 64) and each
round, each server gets the same load in turn (the order alternates between
rounds): N boto3 KMS clients, spread over ``--procs`` client processes so the
client side is not held to one core's GIL, each looping GenerateDataKey
(AES_256, with an encryption context) then Decrypt of what it got, for
``--seconds``.  Every request is signed (SigV4, botocore's signer); envelope's
server verifies each signature, evaluates the key policy and commits an
audit row per call; moto checks none of that.  Reported per server and N:
requests per second (GenerateDataKey and Decrypt each count one), p50 and p99
latency of single requests, failed requests, and the server's peak RSS
(VmHWM) over the whole run.  Results go to ``benchmarks/results/kms_server.md``
(``--out``).

    python benchmarks/kms_server_load.py --clients 1,4,16,64 --seconds 8 --rounds 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REGION = "us-east-1"
CONTEXT = {"bench": "kms-server"}


def _drive(url: str, key_id: str, secret: str, key: str, threads: int, seconds: float) -> tuple[list[float], int]:
    """One client process: *threads* boto3 clients looping GenerateDataKey + Decrypt; (latencies, failures)."""
    import boto3
    from botocore.config import Config

    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def loop() -> None:
        client = boto3.client("kms", endpoint_url=url, region_name=REGION, aws_access_key_id=key_id,
                              aws_secret_access_key=secret,
                              config=Config(retries={"total_max_attempts": 1}, max_pool_connections=2))
        mine: list[float] = []
        errors = 0
        start.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            try:
                t0 = time.perf_counter()
                made = client.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext=CONTEXT)
                t1 = time.perf_counter()
                client.decrypt(CiphertextBlob=made["CiphertextBlob"], EncryptionContext=CONTEXT)
                t2 = time.perf_counter()
                mine += [t1 - t0, t2 - t1]
            except Exception:  # noqa: BLE001 - counted, not fatal: the table reports failures
                errors += 1
        with lock:
            latencies.extend(mine)
            failures[0] += errors

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return latencies, failures[0]


def load(pool: Any, procs: int, target: dict[str, str], clients: int, seconds: float) -> dict[str, float]:
    used = min(procs, clients)
    shares = [clients // used + (1 if i < clients % used else 0) for i in range(used)]
    began = time.perf_counter()
    results = pool.starmap(_drive, [(target["url"], target["key_id"], target["secret"], target["key"], share,
                                     seconds) for share in shares])
    elapsed = max(seconds, time.perf_counter() - began - 0.0)
    latencies = sorted(x for lat, _ in results for x in lat)
    failures = sum(f for _, f in results)
    count = len(latencies)
    return {"rps": count / seconds if count else 0.0, "elapsed": elapsed, "requests": count,
            "p50": latencies[count // 2] * 1000 if count else float("nan"),
            "p99": latencies[min(count - 1, int(count * 0.99))] * 1000 if count else float("nan"),
            "failures": failures}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_envelope(work: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    from envelope.kms.operations.credentials import create_credential
    from envelope.kms.store import KeyStore

    keystore = work / "keystore.db"
    with KeyStore(keystore, create=True, region=REGION, principal="local:user/bench") as store:
        credential, secret = create_credential(store, "local:user/bench")
        key = store.create_key("load benchmark").key_id
    proc = subprocess.Popen([sys.executable, "-m", "envelope", "keys", "serve", "--port", "0", "--keystore",
                             str(keystore)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        raise SystemExit("envelope keys serve did not start")
    return proc, {"url": url, "key_id": credential.access_key_id, "secret": secret, "key": key}


def start_moto() -> tuple[subprocess.Popen[str], dict[str, str]]:
    import boto3

    port = _free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    else:
        raise SystemExit("moto_server did not start")
    client = boto3.client("kms", endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    key = client.create_key()["KeyMetadata"]["KeyId"]
    return proc, {"url": url, "key_id": "testing", "secret": "testing", "key": key}


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,4,16,64", help="client counts (default 1,4,16,64)")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of load per measurement (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, alternating the order (default 2)")
    parser.add_argument("--procs", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "kms_server.md")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory(prefix="kms-load-") as tmp:
        ours, ours_target = start_envelope(Path(tmp))
        moto, moto_target = start_moto()
        servers = {"envelope keys serve": (ours, ours_target), "moto_server": (moto, moto_target)}
        rows: dict[tuple[str, int], list[dict[str, float]]] = {}
        try:
            with multiprocessing.get_context("spawn").Pool(args.procs) as pool:
                for round_ in range(args.rounds):
                    for clients in counts:
                        order = list(servers) if (round_ + clients) % 2 == 0 else list(reversed(servers))
                        for name in order:
                            result = load(pool, args.procs, servers[name][1], clients, args.seconds)
                            rows.setdefault((name, clients), []).append(result)
                            print(f"round {round_ + 1} {name:20} {clients:3} clients: {result['rps']:7.1f} req/s "
                                  f"p50 {result['p50']:6.1f} ms p99 {result['p99']:6.1f} ms "
                                  f"failures {result['failures']}", flush=True)
            rss = {name: peak_rss_mib(proc.pid) for name, (proc, _) in servers.items()}
        finally:
            for proc, _ in servers.values():
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    report(args, counts, rows, rss)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def report(args: argparse.Namespace, counts: list[int], rows: dict[tuple[str, int], list[dict[str, float]]],
           rss: dict[str, float]) -> None:
    lines = ["# envelope keys serve against moto's KMS server", "",
             f"`python benchmarks/kms_server_load.py --clients {args.clients} --seconds {args.seconds:g} "
             f"--rounds {args.rounds} --procs {args.procs}`; {os.cpu_count()} CPUs, "
             f"{time.strftime('%Y-%m-%d', time.gmtime())}.  GenerateDataKey + Decrypt pairs; every request counted; "
             "medians over rounds (p99: the worst round).", "",
             "| clients | server | requests/s | p50 ms | p99 ms | failed | × moto |", "|---|---|---|---|---|---|---|"]
    for clients in counts:
        moto_rps = _median([r["rps"] for r in rows[("moto_server", clients)]])
        for name in ("envelope keys serve", "moto_server"):
            results = rows[(name, clients)]
            rps = _median([r["rps"] for r in results])
            lines.append(f"| {clients} | {name} | {rps:.0f} | {_median([r['p50'] for r in results]):.1f} | "
                         f"{max(r['p99'] for r in results):.1f} | {sum(int(r['failures']) for r in results)} | "
                         f"{rps / moto_rps:.2f} |")
    lines += ["", "Peak RSS over the run: " + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in rss.items()), ""]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()

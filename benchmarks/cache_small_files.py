"""Many small files, with and without the data-key cache: KMS calls made and time per file.

Runs the real CLI as a user would, one process per pass, over N files at once:

    envelope encrypt-file FILE... --output-dir OUT -q [--cache-max-age 300]
    envelope decrypt-file FILE.envelope... --output-dir OUT -q [--cache-max-age 300]

against two key managers: the local keystore (the default; each call is a
SQLite transaction with an audit row) and AWS KMS as served by moto on
127.0.0.1 (each call an HTTP round trip; needs ``pip install 'moto[server]'``).
KMS calls are counted from the keystore's audit trail, and for AWS KMS by the
loopback proxy the tests use (``tests/kms_gate.py``).  Nothing leaves the machine.

    python benchmarks/cache_small_files.py --files 10000 --size 4K --runs 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def envelope(*argv: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "envelope", *argv], check=True, env=env)
    return time.perf_counter() - start


def local_calls(env: dict[str, str], operation: str) -> int:
    from envelope.kms.store import KeyStore

    with KeyStore(env["ENVELOPE_KEYSTORE"]) as store:
        return len(store.audit_events(operation=operation))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=parse_size, default=4096)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kms", default="local,aws-kms", help="comma-separated: local, aws-kms")
    parser.add_argument("--cache", choices=("both", "off", "on"), default="both", help="passes without/with the cache")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="envelope-cache-bench-"))
    src = work / "src"
    src.mkdir()
    for i in range(args.files):
        (src / f"f{i:06d}.bin").write_bytes(os.urandom(args.size))
    inputs = sorted(str(p) for p in src.iterdir())
    env = dict(os.environ, ENVELOPE_KEYSTORE=str(work / "keystore.db"))
    subprocess.run([sys.executable, "-m", "envelope", "keys", "create", "--alias", "alias/bench"],
                   check=True, env=env, stdout=subprocess.DEVNULL)

    backends: list[tuple[str, list[str], object]] = []
    if "local" in args.kms:
        backends.append(("local", ["--key", "local:alias/bench"], None))
    server = None
    if "aws-kms" in args.kms:
        import logging

        import boto3
        from kms_gate import serve_gate, start_moto

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        server, upstream = start_moto()
        gates = serve_gate(upstream)
        gate, endpoint = next(gates)
        aws = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
               "AWS_REGION": "eu-west-1", "AWS_EC2_METADATA_DISABLED": "true",
               "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        env.update(aws)
        os.environ.update(aws)  # for the boto3 client that creates the key below
        arn = boto3.client("kms", region_name="eu-west-1", endpoint_url=endpoint).create_key()["KeyMetadata"]["Arn"]
        backends.append(("aws-kms (moto, loopback)", ["--key", f"aws-kms:{arn}"], gate))

    print(f"{args.files} files of {args.size} bytes, {args.runs} runs, median; one process per pass\n")
    print("| key manager | pass | cache | KMS calls | total s | ms/file | files/s |")
    print("|---|---|---|---|---|---|---|")
    try:
        for name, key_args, gate in backends:
            for cache in {"both": (False, True), "off": (False,), "on": (True,)}[args.cache]:
                cache_args = ["--cache-max-age", "300"] if cache else []
                for op, verb in (("GenerateDataKey", "encrypt-file"), ("Decrypt", "decrypt-file")):
                    times, calls = [], []
                    for _ in range(args.runs):
                        out = work / "out"
                        shutil.rmtree(out, ignore_errors=True)
                        out.mkdir()
                        if verb == "encrypt-file":
                            files = inputs
                        else:
                            enc = work / "enc"
                            if not enc.exists():
                                enc.mkdir()
                                # Encrypted as this pass decrypts: a decrypt cache can only
                                # help with files that share a data key.
                                envelope("encrypt-file", *inputs, "--output-dir", str(enc), "-q", *key_args,
                                         *cache_args, env=env)
                            files = sorted(str(p) for p in enc.iterdir())
                        before = local_calls(env, op) if gate is None else len(gate.operations(op))
                        times.append(envelope(verb, *files, "--output-dir", str(out), "-q", *key_args,
                                              *cache_args, env=env))
                        after = local_calls(env, op) if gate is None else len(gate.operations(op))
                        calls.append(after - before)
                    t = statistics.median(times)
                    print(f"| {name} | {verb} | {'on' if cache else 'off'} | {statistics.median(calls):.0f} "
                          f"| {t:.2f} | {1000 * t / args.files:.3f} | {args.files / t:,.0f} |", flush=True)
                shutil.rmtree(work / "enc", ignore_errors=True)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

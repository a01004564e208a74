"""One boto3 Session per process: ``envelope s3 cp`` with an aws-kms key, two installs alternating.

Protocol: moto's server (``moto_server``) on 127.0.0.1 in its own process, one
bucket and one KMS key in it, a 4 KiB random file.  Each round runs, for every
install in turn, as whole processes (``python -m envelope``, in a temporary
directory so that neither install's source tree is on ``sys.path``), an upload
``s3 cp FILE s3://BUCKET/o --key aws-kms:ARN -q`` (an S3 client and a KMS
client in one process) and a download of it back; the wall clock around each
child.  Then, in one child per install and round, the milliseconds to make the
command line's S3 client and an aws-kms keyring's KMS client, after every
import, and the child's peak RSS.  Medians (minimum) over the rounds, with the
load average before and after.  The children get only the AWS variables set
here (test credentials, the server as endpoint, no config files).

    python benchmarks/aws_sessions.py OLD_PYTHON NEW_PYTHON [--rounds 15]

where each PYTHON is an interpreter with that envelope importable (the
interpreter of a virtualenv, or a script that sets ``PYTHONPATH`` and runs one)
and with ``boto3``; ``moto_server`` (``moto[server]``) is looked for beside the
interpreter running this script.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from s3_throughput import start_server  # the same moto_server on a free loopback port

# The S3 client as `envelope s3 cp` makes it, then an aws-kms keyring's KMS client: each install's own code.
_PROBE = """
import argparse, resource, sys, time
from envelope.cli.s3 import _boto_client
from envelope.keyrings.aws_kms import AwsKmsKeyring
start = time.perf_counter()
_boto_client(argparse.Namespace(endpoint_url=None))
AwsKmsKeyring(sys.argv[1]).client()
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, cwd=cwd)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pythons", nargs=2, metavar="PYTHON", help="old, then new interpreter")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    server, endpoint = start_server()
    try:
        import boto3

        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                   AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        aws = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        kms = boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1", **aws)
        arn = kms.create_key()["KeyMetadata"]["Arn"]
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **aws).create_bucket(Bucket="bench")
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            plain, back = work / "p", work / "p.back"
            plain.write_bytes(os.urandom(4096))
            up = ["s3", "cp", str(plain), "s3://bench/o", "--key", f"aws-kms:{arn}", "-q"]
            down = ["s3", "cp", "s3://bench/o", str(back), "--key", f"aws-kms:{arn}", "-q", "--force"]
            times: dict[tuple[str, str], list[float]] = {}
            for python in args.pythons:  # warm-up: writes the bytecode caches
                _run([python, "-m", "envelope", *up], env, work)
            load_before = os.getloadavg()[0]
            for _ in range(args.rounds):
                for python in args.pythons:
                    times.setdefault((python, "up"), []).append(_run([python, "-m", "envelope", *up], env, work))
                    times.setdefault((python, "down"), []).append(_run([python, "-m", "envelope", *down], env, work))
                    made, rss = subprocess.run([python, "-c", _PROBE, arn], env=env, check=True, cwd=work,
                                               capture_output=True, text=True).stdout.split()
                    times.setdefault((python, "pair"), []).append(float(made))
                    times.setdefault((python, "rss"), []).append(int(rss) / 1024)
            load_after = os.getloadavg()[0]
    finally:
        server.terminate()
        server.wait()
    old, new = args.pythons
    print(f"{args.rounds} alternating rounds; load average {load_before:.2f} before, {load_after:.2f} after\n")
    print("| median (minimum) | old | new |\n|---|---|---|")
    for what, text in (("up", "`s3 cp` 4 KiB up, aws-kms key, whole process"),
                       ("down", "`s3 cp` 4 KiB down, aws-kms key, whole process")):
        print(f"| {text} | {_ms(times[old, what])} | {_ms(times[new, what])} |")
    print(f"| an S3 client and a KMS client made, in process | {_ms(times[old, 'pair'])} | "
          f"{_ms(times[new, 'pair'])} |")
    print(f"| peak RSS of that process | {statistics.median(times[old, 'rss']):.0f} MiB | "
          f"{statistics.median(times[new, 'rss']):.0f} MiB |")


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms ({min(values) * 1000:.0f})"


if __name__ == "__main__":
    main()

"""What authenticating one request costs the KMS server: SigV4 verification and the access key lookup.

Protocol: one botocore-signed GenerateDataKey request (as boto3 sends it) is
verified N times per round in three ways, alternating round by round on the
same machine: (a) ``sigv4.verify`` with the secret in memory (the signature
work alone), (b) ``credentials.secret_for`` alone (the keystore lookup: an
SQLite read and an AES-GCM open of the sealed secret), (c) both, as the
server does per request.  Reported: the median over rounds of the mean
microseconds per call.  Rerun::

    python benchmarks/sigv4_verify.py --rounds 7 --calls 2000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from envelope.kms.operations import credentials
from envelope.kms.store import KeyStore
from envelope.server import sigv4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, KeyStore(Path(scratch) / "keystore.db") as store:
        credential, secret = credentials.create_credential(store, "bench")
        request = AWSRequest(method="POST", url="http://127.0.0.1:8790/",
                             data=b'{"KeyId": "alias/bench", "KeySpec": "AES_256"}',
                             headers={"Content-Type": "application/x-amz-json-1.1",
                                      "X-Amz-Target": "TrentService.GenerateDataKey"})
        SigV4Auth(Credentials(credential.access_key_id, secret), "kms", "us-east-1").add_auth(request)
        prepared = request.prepare()
        parts = urlsplit(prepared.url)
        headers = {**dict(prepared.headers), "Host": parts.netloc}
        body = prepared.body
        in_memory = ("local:user/bench", secret.encode())

        def verify_only() -> None:
            sigv4.verify("POST", parts.path, parts.query, headers, body, region="us-east-1",
                         secret_for=lambda _: in_memory)

        def lookup_only() -> None:
            credentials.secret_for(store, credential.access_key_id)

        def both() -> None:
            sigv4.verify("POST", parts.path, parts.query, headers, body, region="us-east-1",
                         secret_for=lambda akid: credentials.secret_for(store, akid))

        cases: dict[str, Callable[[], None]] = {"verify (secret in memory)": verify_only,
                                                "secret_for (keystore lookup)": lookup_only,
                                                "verify + secret_for (per request)": both}
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, case in cases.items():  # alternating: each round measures every case
                start = time.perf_counter()
                for _ in range(args.calls):
                    case()
                times[name].append((time.perf_counter() - start) / args.calls * 1e6)
    print("| what | median µs per call | min | max |")
    print("|---|---:|---:|---:|")
    for name, samples in times.items():
        print(f"| {name} | {statistics.median(samples):.0f} | {min(samples):.0f} | {max(samples):.0f} |")


if __name__ == "__main__":
    main()

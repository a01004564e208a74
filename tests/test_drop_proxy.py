"""The fault-injecting proxy of tests/drop_proxy.py must inject only the faults it is told to.

Tests that cut one request (a PUT of one object, every UploadPart after the
first) assert that everything else succeeds.  If the proxy also hurt requests
it was not told to cut, those tests would fail now and then for a reason that
has nothing to do with the code under test.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytest.importorskip("boto3")


def test_requests_the_proxy_does_not_cut_pass_without_a_reset(s3: Any) -> None:
    """No retries: a connection reset the proxy made on its own would fail its PUT here."""
    import boto3
    from botocore.config import Config

    from drop_proxy import serve

    proxy_gen = serve(s3.meta.endpoint_url)
    proxy, endpoint = next(proxy_gen)
    try:
        proxy.cut = lambda line: line.startswith(b"PUT") and b"/cut-me" in line
        once = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint,
                            config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
        body = os.urandom(3000)

        def put(i: int) -> str | None:
            try:
                once.put_object(Bucket=s3.bucket, Key=f"p/{i}", Body=body)  # bytes: no Expect header
                with open(os.devnull, "rb") as empty:  # a file: botocore sends Expect: 100-continue first
                    once.put_object(Bucket=s3.bucket, Key=f"p/{i}.empty", Body=empty)
            except Exception as exc:
                return f"{i}: {type(exc).__name__}: {exc}"
            return None

        with ThreadPoolExecutor(8) as pool:
            failures = [f for f in pool.map(put, range(80)) if f is not None]
    finally:
        proxy_gen.close()
    assert failures == [], failures[:3]
    assert proxy.cuts == 0

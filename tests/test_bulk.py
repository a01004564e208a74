"""Bulk jobs on a real Dask cluster of worker processes, against the moto server (S3 and KMS behind its gate).

One LocalCluster (2 processes x 2 threads) serves the module; its workers were
started with the AWS test credentials and the KMS gate's endpoint in their
environment (workers inherit the environment, not pytest's fixtures), and are
told the S3 endpoint by the job (``endpoint_url``).  The killed-worker,
killed-driver and separate scheduler tests are in tests/test_bulk_processes.py.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import envelope
import envelope.bulk
from envelope.bulk.manifest import SqliteManifest
from envelope.cache import CacheLimits, CachingKeyring, DataKeyCache
from envelope.keyrings.base import MultiKeyring
from envelope.keyrings.raw_aes import RawAesKeyring
from keyfiles import write_key_file

distributed = pytest.importorskip("distributed")

AWS_REGION = "eu-west-1"
SIZES = [0, 1, 1000, 65536, 65537, 200_000]


def worker_environment(kms_endpoint: str, keystore: Path) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": AWS_REGION,
            "AWS_DEFAULT_REGION": AWS_REGION, "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_ENDPOINT_URL_KMS": kms_endpoint,
            "ENVELOPE_KEYSTORE": str(keystore)}


@pytest.fixture(scope="module")
def cluster(kms_server, tmp_path_factory: pytest.TempPathFactory) -> Any:
    _, kms_endpoint = kms_server
    env = worker_environment(kms_endpoint, tmp_path_factory.mktemp("workers") / "keystore.db")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        local = distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0")
        client = distributed.Client(local)
    yield client
    client.close()
    local.close()


@pytest.fixture
def job(cluster: Any, s3_endpoint: str, tmp_path: Path) -> dict[str, Any]:
    """What every job here is given: the cluster, the S3 endpoint, a manifest file of its own."""
    return {"client": cluster, "endpoint_url": s3_endpoint, "manifest": str(tmp_path / "manifest.sqlite")}


def make_tree(root: Path, sizes: list[int] = SIZES) -> dict[str, bytes]:
    files = {}
    for i, size in enumerate(sizes):
        rel = f"d{i % 3}/sub/f{i}.bin" if i % 2 else f"f{i}.dat"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data := os.urandom(size))
        files[rel] = data
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def keys_under(s3: Any, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("Contents", []))


# -- every operation, both directions ---------------------------------------------------------------------


def test_a_tree_encrypted_into_a_prefix_decrypts_back_into_the_same_tree(job, s3, kek, tmp_path) -> None:
    files = make_tree(tmp_path / "src", SIZES + [9 << 20])  # the last goes up in parts
    up = envelope.bulk.encrypt(str(tmp_path / "src"), f"s3://{s3.bucket}/sealed/", keys=[kek], **job)
    assert (up.done, up.failed, up.bytes) == (len(files), 0, sum(map(len, files.values()))), up.failures
    assert keys_under(s3, "sealed/") == sorted(f"sealed/{rel}" for rel in files)  # names kept
    small = s3.head_object(Bucket=s3.bucket, Key="sealed/f0.dat")
    assert "-" not in small["ETag"] and small["Metadata"]["envelope"] == "1"  # one PUT, an envelope object
    assert not s3.list_multipart_uploads(Bucket=s3.bucket).get("Uploads")
    down = envelope.bulk.decrypt(f"s3://{s3.bucket}/sealed/", str(tmp_path / "back"), keys=[kek], **job)
    assert (down.done, down.failed) == (len(files), 0), down.failures
    assert read_tree(tmp_path / "back") == files


def test_a_rerun_skips_every_object_after_one_head_with_no_kms_call(job, s3, kek, tmp_path) -> None:
    files = make_tree(tmp_path / "src")
    envelope.bulk.encrypt(str(tmp_path / "src"), f"s3://{s3.bucket}/p/", keys=[kek], **job)
    etags = {k: s3.head_object(Bucket=s3.bucket, Key=k)["ETag"] for k in keys_under(s3, "p/")}
    again = envelope.bulk.encrypt(str(tmp_path / "src"), f"s3://{s3.bucket}/p/", keys=[kek], **job)
    assert (again.done, again.skipped, again.failed, again.kms_calls) == (0, len(files), 0, 0)
    assert {k: s3.head_object(Bucket=s3.bucket, Key=k)["ETag"] for k in keys_under(s3, "p/")} == etags
    (tmp_path / "src" / "f0.dat").write_bytes(b"changed")  # a changed source is done again
    third = envelope.bulk.encrypt(str(tmp_path / "src"), f"s3://{s3.bucket}/p/", keys=[kek], **job)
    assert (third.done, third.skipped) == (1, len(files) - 1)


def test_a_plaintext_prefix_is_encrypted_into_another_prefix_under_the_same_names(job, s3, kek, tmp_path) -> None:
    for i, size in enumerate([10, 5000, 70_000]):
        s3.put_object(Bucket=s3.bucket, Key=f"plain/x/{i}.csv", Body=os.urandom(size))
    s3.put_object(Bucket=s3.bucket, Key="plain/x/skip.tmp", Body=b"no")
    done = envelope.bulk.encrypt(f"s3://{s3.bucket}/plain/", f"s3://{s3.bucket}/sealed", keys=[kek],
                                 exclude=["*.tmp"], **job)
    assert (done.done, done.failed) == (3, 0), done.failures
    assert keys_under(s3, "sealed/") == [f"sealed/x/{i}.csv" for i in range(3)]
    from envelope.s3 import EncryptedS3Client

    client = EncryptedS3Client(s3, keys=[kek])
    for i in range(3):
        original = s3.get_object(Bucket=s3.bucket, Key=f"plain/x/{i}.csv")["Body"].read()
        assert client.get_object(Bucket=s3.bucket, Key=f"sealed/x/{i}.csv")["Body"].read() == original


def test_a_local_tree_round_trips_gaining_and_losing_the_suffix(job, kek, tmp_path) -> None:
    files = make_tree(tmp_path / "src")
    up = envelope.bulk.encrypt(str(tmp_path / "src"), str(tmp_path / "sealed"), keys=[kek], **job)
    assert up.done == len(files), up.failures
    assert sorted(read_tree(tmp_path / "sealed")) == sorted(rel + ".envelope" for rel in files)
    down = envelope.bulk.decrypt(str(tmp_path / "sealed"), str(tmp_path / "back"), keys=[kek], **job)
    assert down.done == len(files), down.failures
    assert read_tree(tmp_path / "back") == files


def test_rewrap_moves_every_object_to_the_new_key_and_a_rerun_decides_from_headers_alone(job, s3, kek, tmp_path):
    new = f"raw-aes:{write_key_file(tmp_path / 'new', os.urandom(32))}"
    files = make_tree(tmp_path / "src")
    envelope.bulk.encrypt(str(tmp_path / "src"), f"s3://{s3.bucket}/r/", keys=[kek], **job)
    old_id, new_id = (f"raw-aes:{RawAesKeyring.from_file(k.split(':', 1)[1]).key_id}" for k in (kek, new))
    before = envelope.bulk.verify(f"s3://{s3.bucket}/r/", keys=[kek], headers_only=True, **job)
    assert dict(before.key_ids) == {old_id: len(files)}
    moved = envelope.bulk.rewrap(f"s3://{s3.bucket}/r/", keys=[new], from_keys=[kek], **job)
    assert (moved.done, moved.failed) == (len(files), 0), moved.failures
    after = envelope.bulk.verify(f"s3://{s3.bucket}/r/", keys=[new], **job)  # every chunk, under the new key only
    assert (after.done, after.failed, dict(after.key_ids)) == (len(files), 0, {new_id: len(files)})
    again = envelope.bulk.rewrap(f"s3://{s3.bucket}/r/", keys=[new], from_keys=[kek], **job)
    assert (again.skipped, again.kms_calls) == (len(files), 0)
    down = envelope.bulk.decrypt(f"s3://{s3.bucket}/r/", str(tmp_path / "back"), keys=[new], **job)
    assert read_tree(tmp_path / "back") == files


def test_a_local_tree_is_rewrapped_in_place_and_verified(job, kek, tmp_path) -> None:
    new = f"raw-aes:{write_key_file(tmp_path / 'new', os.urandom(32))}"
    files = make_tree(tmp_path / "src")
    envelope.bulk.encrypt(str(tmp_path / "src"), str(tmp_path / "sealed"), keys=[kek], **job)
    moved = envelope.bulk.rewrap(str(tmp_path / "sealed"), keys=[new], from_keys=[kek], **job)
    assert moved.done == len(files), moved.failures
    assert envelope.bulk.verify(str(tmp_path / "sealed"), keys=[kek], **job).failed == len(files)
    checked = envelope.bulk.verify(str(tmp_path / "sealed"), keys=[new], **job)
    assert (checked.done, checked.failed) == (len(files), 0)


# -- hostile names, failures, resume ----------------------------------------------------------------------


def test_keys_that_would_leave_the_destination_are_refused_each_and_the_rest_is_done(job, s3, kek, tmp_path):
    from envelope.s3 import EncryptedS3Client

    client = EncryptedS3Client(s3, keys=[kek])
    for key in ["h/good", "h/../../escape", "h/a//b", "h/./dot", "h/ok/two"]:
        client.put_object(Bucket=s3.bucket, Key=key, Body=b"payload")
    dst = tmp_path / "inner" / "out"
    result = envelope.bulk.decrypt(f"s3://{s3.bucket}/h/", str(dst), keys=[kek], **job)
    assert (result.done, result.failed) == (2, 3)
    assert read_tree(dst) == {"good": b"payload", "ok/two": b"payload"}
    assert not (tmp_path / "escape").exists() and not (tmp_path / "inner" / "escape").exists()
    assert all("refusing" in error for _, error in result.failures)


def test_a_damaged_object_is_a_failed_row_and_resume_runs_only_it(job, s3, kek, tmp_path) -> None:
    files = make_tree(tmp_path / "src")
    envelope.bulk.encrypt(str(tmp_path / "src"), f"s3://{s3.bucket}/dmg/", keys=[kek], **job)
    key = "dmg/f4.dat"
    good = s3.get_object(Bucket=s3.bucket, Key=key)
    sealed, metadata = good["Body"].read(), good["Metadata"]
    s3.put_object(Bucket=s3.bucket, Key=key, Body=sealed[:-1] + bytes([sealed[-1] ^ 1]), Metadata=metadata)
    first = envelope.bulk.decrypt(f"s3://{s3.bucket}/dmg/", str(tmp_path / "back"), keys=[kek], **job)
    assert (first.done, first.failed) == (len(files) - 1, 1)
    assert first.failures[0][0] == f"s3://{s3.bucket}/{key}" and "authentication" in first.failures[0][1]
    assert not (tmp_path / "back" / "f4.dat").exists()  # nothing unauthenticated left behind
    book = SqliteManifest(first.manifest, first.job)
    assert book.rows[f"s3://{s3.bucket}/{key}"]["outcome"] == "failed"
    book.close()
    s3.put_object(Bucket=s3.bucket, Key=key, Body=sealed, Metadata=metadata)  # repaired
    resumed = envelope.bulk.decrypt(None, None, resume=first.job, **job)
    assert (resumed.done, resumed.skipped, resumed.failed) == (1, 0, 0)  # only the one not done
    assert read_tree(tmp_path / "back") == files


def test_a_manifest_under_an_s3_prefix_records_every_row_and_serves_resume(job, s3, kek, tmp_path) -> None:
    import json

    files = make_tree(tmp_path / "src")
    where = {**job, "manifest": f"s3://{s3.bucket}/jobs/"}
    first = envelope.bulk.encrypt(str(tmp_path / "src"), f"s3://{s3.bucket}/sm/", keys=[kek], **where)
    assert first.manifest == f"s3://{s3.bucket}/jobs/{first.job}/" and first.done == len(files)
    parts = [k for k in keys_under(s3, f"jobs/{first.job}/") if k.endswith(".jsonl")]
    rows = {}
    for key in parts:
        for line in s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read().decode().splitlines():
            row = json.loads(line)
            rows[row["src"]] = row
    assert {r["outcome"] for r in rows.values()} == {"done"} and len(rows) == len(files)
    assert all(r["attempts"] == 1 and r["dst"].startswith(f"s3://{s3.bucket}/sm/") for r in rows.values())
    again = envelope.bulk.encrypt(None, None, resume=first.job, **where)
    assert (again.done, again.skipped, again.failed) == (0, 0, 0)  # nothing left to do


def test_injected_s3_failures_fail_their_objects_only_and_resume_finishes(job, s3, kek, tmp_path) -> None:
    from drop_proxy import serve

    files = make_tree(tmp_path / "src")
    proxy_gen = serve(job["endpoint_url"])
    proxy, endpoint = next(proxy_gen)
    try:
        proxy.after = 0
        proxy.cut = lambda line: line.startswith(b"PUT") and b"/f2.dat" in line
        first = envelope.bulk.encrypt(str(tmp_path / "src"), f"s3://{s3.bucket}/inj/", keys=[kek],
                                      **{**job, "endpoint_url": endpoint})
        assert (first.done, first.failed) == (len(files) - 1, 1), first.failures
        assert "inj/f2.dat" not in keys_under(s3, "inj/")
        proxy.cut = lambda line: False
        resumed = envelope.bulk.encrypt(None, None, resume=first.job, **{**job, "endpoint_url": endpoint})
        assert (resumed.done, resumed.failed) == (1, 0)
    finally:
        proxy_gen.close()
    assert len(keys_under(s3, "inj/")) == len(files)


def test_an_injected_kms_failure_fails_its_object_only(job, s3, aws_env, tmp_path) -> None:
    """A failure of the key manager itself, not a refusal of the key (see the test after this one)."""
    import boto3

    arn = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    files = make_tree(tmp_path / "src")
    aws_env.inject("GenerateDataKey", "KMSInternalException")
    first = envelope.bulk.encrypt(str(tmp_path / "src"), f"s3://{s3.bucket}/kf/", keys=[f"aws-kms:{arn}"], **job)
    assert (first.done, first.failed) == (len(files) - 1, 1)
    assert "KMSInternalException" in first.failures[0][1]
    resumed = envelope.bulk.encrypt(None, None, resume=first.job, **job)
    assert (resumed.done, resumed.failed) == (1, 0)


def _outcomes(result: Any) -> Counter[str]:
    book = SqliteManifest(result if isinstance(result, str) else result.manifest, _job_id(result))
    try:
        return Counter(row["outcome"] for row in book.rows.values())
    finally:
        book.close()


def _job_id(result: Any) -> str:
    if not isinstance(result, str):
        return str(result.job)
    with sqlite3.connect(result) as db:
        return str(db.execute("SELECT job FROM jobs").fetchone()[0])


def test_a_key_the_key_manager_refuses_stops_the_job_with_one_error_line(job, s3, aws_env, tmp_path,
                                                                         capsys) -> None:
    from envelope.cli.main import main

    n = 30
    make_tree(tmp_path / "src", [100] * n)
    unknown = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-4000-8000-000000000000"
    code = main(["bulk", "encrypt", str(tmp_path / "src"), f"s3://{s3.bucket}/kr/", "--key", f"aws-kms:{unknown}",
                 "--scheduler", job["client"].scheduler.address, "--endpoint-url", job["endpoint_url"],
                 "--manifest", job["manifest"], "-q"])
    lines = capsys.readouterr().err.splitlines()
    assert code != 0 and len(lines) == 1, lines
    assert unknown in lines[0] and "stopped" in lines[0]
    in_flight = 4 * sum(job["client"].nthreads().values())  # the tasks submitted before the first result
    assert len(aws_env.operations("GenerateDataKey")) <= in_flight
    outcomes = _outcomes(job["manifest"])
    assert outcomes["failed"] <= in_flight and outcomes["pending"] >= n - in_flight and not outcomes["done"]
    assert keys_under(s3, "kr/") == []


def test_a_key_no_worker_can_open_stops_the_job_and_resume_finishes_it_once_it_is_there(job, s3, tmp_path) -> None:
    n = 30
    files = make_tree(tmp_path / "src", [100] * n)
    missing = tmp_path / "keys" / "kek"
    with pytest.raises(envelope.KeyNotFoundError, match=f"{missing}.*stopped"):
        envelope.bulk.encrypt(str(tmp_path / "src"), f"s3://{s3.bucket}/km/", keys=[f"raw-aes:{missing}"], **job)
    outcomes = _outcomes(job["manifest"])
    assert outcomes["failed"] <= 4 * sum(job["client"].nthreads().values()) and sum(outcomes.values()) == n
    missing.parent.mkdir()
    write_key_file(missing, os.urandom(32))
    resumed = envelope.bulk.encrypt(None, None, resume=_job_id(job["manifest"]), **job)
    assert (resumed.done, resumed.failed) == (n, 0), resumed.failures
    assert len(keys_under(s3, "km/")) == len(files)


# -- KMS calls --------------------------------------------------------------------------------------------


def test_with_the_cache_each_worker_process_asks_kms_at_most_once(job, s3, aws_env, tmp_path) -> None:
    import boto3

    arn = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    files = make_tree(tmp_path / "src", [100] * 12)
    cached = envelope.bulk.encrypt(str(tmp_path / "src"), f"s3://{s3.bucket}/c1/", keys=[f"aws-kms:{arn}"],
                                   cache_max_age=300, **job)
    assert cached.done == len(files)
    calls = len(aws_env.operations("GenerateDataKey"))
    assert 1 <= calls <= 2 and cached.kms_calls == calls  # 2 worker processes
    assert not any(job["client"].run(_cached_keys).values())  # the job's cached data keys left with it
    aws_env.reset()
    plain = envelope.bulk.encrypt(str(tmp_path / "src"), f"s3://{s3.bucket}/c2/", keys=[f"aws-kms:{arn}"], **job)
    assert len(aws_env.operations("GenerateDataKey")) == plain.kms_calls == len(files)


def _cached_keys() -> int:
    from envelope.bulk import workerstate

    return sum(len(state.cache) for state in workerstate._STATES.values() if state.cache is not None)


def test_max_kms_rps_holds_across_the_whole_cluster(job, s3, aws_env, tmp_path) -> None:
    import boto3

    arn = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    rate, n = 4, 10
    make_tree(tmp_path / "src", [10] * n)
    aws_env.reset()
    done = envelope.bulk.encrypt(str(tmp_path / "src"), f"s3://{s3.bucket}/rps/", keys=[f"aws-kms:{arn}"],
                                 max_kms_rps=rate, **job)
    assert done.done == n
    times = sorted(r.at for r in aws_env.operations("GenerateDataKey"))
    assert len(times) == n
    busiest = max(sum(1 for t in times if start <= t < start + 0.95) for start in times)
    assert busiest <= rate, times
    assert times[-1] - times[0] >= (n - rate) / rate - 0.2


# -- secrets never travel ---------------------------------------------------------------------------------


class _Recording:
    """A distributed.Client that keeps every argument given to submit()."""

    def __init__(self, client: Any) -> None:
        self._client, self.arguments = client, []

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.arguments += list(args)
        return self._client.submit(fn, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_no_task_argument_carries_a_key_byte(job, s3, tmp_path) -> None:
    import cloudpickle

    secret = os.urandom(32)
    kek = f"raw-aes:{write_key_file(tmp_path / 'kek', secret)}"
    make_tree(tmp_path / "src")
    recording = _Recording(job["client"])
    done = envelope.bulk.encrypt(str(tmp_path / "src"), f"s3://{s3.bucket}/pk/", keys=[kek],
                                 cache_max_age=60, **{**job, "client": recording})
    assert done.done == len(SIZES) and len(recording.arguments) == 2 * len(SIZES)
    pieces = [secret[i:i + 8] for i in range(0, 32, 4)] + [secret.hex().encode()[i:i + 16] for i in range(0, 64, 8)]
    for argument in recording.arguments:
        for blob in (pickle.dumps(argument), cloudpickle.dumps(argument)):
            assert not any(piece in blob for piece in pieces)


@pytest.mark.parametrize("make", [
    lambda k: RawAesKeyring(k),
    lambda k: MultiKeyring([RawAesKeyring(k)]),
    lambda k: CachingKeyring(MultiKeyring([RawAesKeyring(k)]), DataKeyCache(CacheLimits(60))),
    lambda k: DataKeyCache(CacheLimits(60)),
], ids=["keyring", "keyring list", "caching keyring", "cache"])
def test_keyrings_and_caches_refuse_to_be_pickled_with_a_message(make) -> None:
    import cloudpickle

    key = os.urandom(32)
    for dumps in (pickle.dumps, cloudpickle.dumps):
        with pytest.raises(TypeError, match="not picklable.*key references") as caught:
            dumps(make(key))
        assert key.hex() not in str(caught.value)


def test_an_encrypted_s3_client_refuses_to_be_pickled(s3, kek) -> None:
    from envelope.s3 import EncryptedS3Client

    with pytest.raises(TypeError, match="EncryptedS3Client is not picklable"):
        pickle.dumps(EncryptedS3Client(s3, keys=[kek]))


def test_a_keyring_object_given_to_a_bulk_job_is_refused(job, tmp_path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"x")
    with pytest.raises(envelope.UsageError, match="references"):
        envelope.bulk.encrypt(str(tmp_path / "src"), str(tmp_path / "dst"), keys=[RawAesKeyring(os.urandom(32))],
                              **job)  # type: ignore[list-item]


# -- the command line -------------------------------------------------------------------------------------


def test_the_command_line_dry_run_lists_and_writes_nothing(tmp_path, kek) -> None:
    make_tree(tmp_path / "src")
    done = subprocess.run([sys.executable, "-m", "envelope", "bulk", "encrypt", str(tmp_path / "src"),
                           str(tmp_path / "dst"), "--key", kek, "--dry-run"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"{len(SIZES)} objects, {sum(SIZES)} bytes"
    assert not (tmp_path / "dst").exists()


def test_the_command_line_exits_non_zero_with_a_line_per_failure(job, s3, kek, tmp_path) -> None:
    from envelope.cli.main import main
    from envelope.s3 import EncryptedS3Client

    EncryptedS3Client(s3, keys=[kek]).put_object(Bucket=s3.bucket, Key="cl/ok", Body=b"fine")
    s3.put_object(Bucket=s3.bucket, Key="cl/bad", Body=b"not an envelope object")
    address = job["client"].scheduler.address
    code = main(["bulk", "decrypt", f"s3://{s3.bucket}/cl/", str(tmp_path / "out"), "--key", kek, "--scheduler",
                 address, "--endpoint-url", job["endpoint_url"], "--manifest", job["manifest"], "-q"])
    assert code == 7
    assert (tmp_path / "out" / "ok").read_bytes() == b"fine" and not (tmp_path / "out" / "bad").exists()


def test_overlapping_source_and_destination_are_refused(tmp_path, kek) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(envelope.UsageError, match="overlap"):
        envelope.bulk.encrypt(str(tmp_path / "src"), str(tmp_path / "src" / "out"), keys=[kek])
    with pytest.raises(envelope.UsageError, match="overlap"):
        envelope.bulk.encrypt("s3://b/p/", "s3://b/p/q/", keys=[kek])


def test_a_connection_closed_on_the_first_try_of_every_put_and_part_is_retried_with_the_same_bytes(
        s3, s3_endpoint, kek, tmp_path) -> None:
    """In this process (a worker's task, no cluster): botocore must be able to send each body again."""
    from botocore.exceptions import ConnectionClosedError

    from envelope.bulk.plan import Item
    from envelope.bulk.tasks import run_item
    from envelope.bulk.workerstate import JobConfig, forget, state_for
    from envelope.s3 import EncryptedS3Client

    files = make_tree(tmp_path / "src", [70_000, 9 << 20])  # one PUT; parts
    config = JobConfig("encrypt", keys=(kek,), endpoint_url=s3_endpoint)
    client = state_for(config).s3()
    assert client.meta.config.retries["mode"] == "standard"
    tries: dict[tuple[str, str], list[bytes]] = {}

    def close_the_first_try(request: Any, **_: Any) -> None:
        body = request.body
        sent = bytes(body) if isinstance(body, (bytes, bytearray)) else body.read()  # as a send would
        tries.setdefault((request.method, request.url), []).append(sent)
        if len(tries[(request.method, request.url)]) == 1:
            raise ConnectionClosedError(endpoint_url=request.url)
        if hasattr(body, "seek"):
            body.seek(0)  # this try goes out: from the start

    for operation in ("PutObject", "UploadPart"):
        client.meta.events.register(f"before-send.s3.{operation}", close_the_first_try)
    try:
        for rel in files:
            path = tmp_path / "src" / rel
            item = Item(rel, str(path), f"s3://{s3.bucket}/rt/{rel}", path.stat().st_size, "stamp", False)
            result = run_item(config, item)
            assert result["outcome"] == "done", result["error"]
    finally:
        forget(config)
    assert len(tries) == 1 + 2 and all(len(sent) == 2 for sent in tries.values())  # 2 parts of 8 MiB and less
    assert all(first == again for first, again in tries.values())  # the same ciphertext sent again
    opened = EncryptedS3Client(s3, keys=[kek])
    assert {rel: opened.get_object(Bucket=s3.bucket, Key=f"rt/{rel}")["Body"].read() for rel in files} == files
    assert not s3.list_multipart_uploads(Bucket=s3.bucket).get("Uploads")


def test_a_rewrap_that_left_an_incomplete_upload_has_it_aborted_on_resume(job, s3, kek, tmp_path) -> None:
    from drop_proxy import serve

    from envelope.s3 import EncryptedS3Client

    new = f"raw-aes:{write_key_file(tmp_path / 'new', os.urandom(32))}"
    plain = os.urandom(14 << 20)  # a new header and 5 MiB of body, then the body copied inside S3: parts
    EncryptedS3Client(s3, keys=[kek]).put_object(Bucket=s3.bucket, Key="rwm/big", Body=plain)
    proxy_gen = serve(job["endpoint_url"])
    proxy, endpoint = next(proxy_gen)
    try:  # the part copied inside S3 fails, and so does the abort: as if the worker had been killed
        proxy.after = 0
        proxy.cut = lambda line: line.startswith(b"DELETE") or (line.startswith(b"PUT") and b"partNumber=2" in line)
        first = envelope.bulk.rewrap(f"s3://{s3.bucket}/rwm/", keys=[new], from_keys=[kek],
                                     **{**job, "endpoint_url": endpoint})
        assert (first.done, first.failed) == (0, 1)
        assert len(s3.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])) == 1
        book = SqliteManifest(first.manifest, first.job)
        assert book.rows[f"s3://{s3.bucket}/rwm/big"]["multipart"]  # recorded before the upload started
        book.close()
        proxy.cut = lambda line: False
        resumed = envelope.bulk.rewrap(None, resume=first.job, **job)  # the job's endpoint: the proxy
    finally:
        proxy_gen.close()
    assert (resumed.done, resumed.failed) == (1, 0), resumed.failures
    assert not s3.list_multipart_uploads(Bucket=s3.bucket).get("Uploads")
    assert EncryptedS3Client(s3, keys=[new]).get_object(Bucket=s3.bucket, Key="rwm/big")["Body"].read() == plain

"""Bulk jobs when processes die: a worker killed mid-job, the driver killed mid-job, and a cluster of its own.

Each test starts its own processes (a LocalCluster, the command line in a
subprocess, ``dask scheduler`` and ``dask worker``), so together they take
about a minute here: they run with ENVELOPE_SLOW_TESTS=1.  Afterwards every
object must be either done and valid or absent from the destination and not
marked done, no multipart upload may be left behind, and a resume finishes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import envelope.bulk
from envelope.s3 import EncryptedS3Client
from test_bulk import keys_under, make_tree, worker_environment

distributed = pytest.importorskip("distributed")
slow = pytest.mark.skipif(not os.environ.get("ENVELOPE_SLOW_TESTS"), reason="slow: set ENVELOPE_SLOW_TESTS=1")

BIG = 9 << 20  # goes up in parts


def sealed_tree(s3: Any, kek: str, prefix: str) -> dict[str, bytes]:
    client = EncryptedS3Client(s3, keys=[kek])
    return {key[len(prefix):]: client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
            for key in keys_under(s3, prefix)}


def assert_no_upload_left(s3: Any) -> None:
    assert not s3.list_multipart_uploads(Bucket=s3.bucket).get("Uploads")


@slow
def test_a_worker_killed_mid_job_has_its_objects_done_elsewhere(s3, s3_endpoint, kms_server, kek, tmp_path) -> None:
    files = make_tree(tmp_path / "src", [5000] * 40 + [BIG] * 3)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in worker_environment(kms_server[1], tmp_path / "ks.db").items():
            mp.setenv(name, value)
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = distributed.Client(cluster)
    try:
        victim = next(iter(client.run(os.getpid).values()))
        killed = []

        def kill_once(row: dict[str, Any]) -> None:
            if not killed:
                os.kill(victim, signal.SIGKILL)
                killed.append(row["src"])

        result = envelope.bulk.run("encrypt", str(tmp_path / "src"), f"s3://{s3.bucket}/kw/",
                                   options=envelope.bulk.Options(keys=[kek], endpoint_url=s3_endpoint),
                                   client=client, manifest=str(tmp_path / "m.sqlite"), on_result=kill_once)
    finally:
        client.close()
        cluster.close()
    assert killed and (result.done + result.skipped, result.failed) == (len(files), 0), result.failures
    assert sealed_tree(s3, kek, "kw/") == files
    assert_no_upload_left(s3)


def _rows(manifest: Path) -> list[tuple[str, str]]:
    try:
        with sqlite3.connect(manifest) as db:
            return list(db.execute("SELECT src, outcome FROM objects"))
    except sqlite3.Error:
        return []


@slow
def test_a_driver_killed_mid_job_leaves_each_object_valid_or_absent_and_resume_finishes(
        s3, s3_endpoint, kms_server, kek, tmp_path) -> None:
    files = make_tree(tmp_path / "src", [3000] * 150 + [BIG] * 2)
    manifest = tmp_path / "m.sqlite"
    env = {**os.environ, **worker_environment(kms_server[1], tmp_path / "ks.db")}
    argv = [sys.executable, "-m", "envelope", "bulk", "encrypt", str(tmp_path / "src"), f"s3://{s3.bucket}/kd/",
            "--key", kek, "--workers", "2", "--threads", "1", "--manifest", str(manifest),
            "--endpoint-url", s3_endpoint, "--json"]
    driver = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while sum(o == "done" for _, o in _rows(manifest)) < 10:
            assert driver.poll() is None and time.monotonic() < deadline, "the job ended before it could be killed"
            time.sleep(0.05)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        time.sleep(1)
        if _alive_group(driver.pid):  # the orphaned workers, started by this test
            os.killpg(driver.pid, signal.SIGKILL)
    rows = dict(_rows(manifest))
    done = {src for src, outcome in rows.items() if outcome == "done"}
    assert 10 <= len(done) < len(files)
    written = sealed_tree(s3, kek, "kd/")  # every object there opens, and is its source
    assert all(files[rel] == data for rel, data in written.items())
    assert {str(tmp_path / "src" / rel) for rel in written} >= done  # done means written
    with sqlite3.connect(manifest) as db:
        job = db.execute("SELECT job FROM jobs").fetchone()[0]
    resumed = subprocess.run([sys.executable, "-m", "envelope", "bulk", "encrypt", "--resume", job, "--manifest",
                              str(manifest), "--workers", "2", "--threads", "1", "--json"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["failed"] == 0 and summary["done"] + summary["skipped"] == len(files) - len(done)
    assert sealed_tree(s3, kek, "kd/") == files
    assert_no_upload_left(s3)


def _alive_group(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@slow
def test_the_same_job_runs_on_a_separately_started_scheduler_and_workers(s3, s3_endpoint, kms_server, kek,
                                                                         tmp_path) -> None:
    files = make_tree(tmp_path / "src")
    env = {**os.environ, **worker_environment(kms_server[1], tmp_path / "ks.db")}
    info = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler = subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
                                  "--scheduler-file", str(info)], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    workers = None
    try:
        deadline = time.monotonic() + 60
        while not info.exists() or not info.read_text().strip():
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        workers = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2",
                                    "--nthreads", "2", "--host", "127.0.0.1"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        with distributed.Client(address) as client:
            client.wait_for_workers(2, timeout=60)
        common = {"scheduler": address, "endpoint_url": s3_endpoint, "manifest": str(tmp_path / "m.sqlite")}
        up = envelope.bulk.encrypt(str(tmp_path / "src"), f"s3://{s3.bucket}/sep/", keys=[kek], **common)
        assert (up.done, up.failed) == (len(files), 0), up.failures
        down = envelope.bulk.decrypt(f"s3://{s3.bucket}/sep/", str(tmp_path / "back"), keys=[kek], **common)
        assert (down.done, down.failed) == (len(files), 0), down.failures
    finally:
        for process in (workers, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    assert {p.relative_to(tmp_path / "back").as_posix(): p.read_bytes()
            for p in (tmp_path / "back").rglob("*") if p.is_file()} == files

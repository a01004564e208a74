"""Several processes on one keystore: nothing lost, and a process killed mid-transaction breaks nothing."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from envelope.kms.store import KeyStore

WORKERS = 4
ROUNDS = 12


def _worker(path: str, worker: int, shared: str, start: Any) -> dict[str, Any]:
    """Create, rotate, tag and use keys; report every successful call, to be checked against the keystore."""
    start.wait()
    done: Counter[str] = Counter()
    created: dict[str, str] = {}
    rotations: Counter[str] = Counter()
    blobs: list[tuple[bytes, bytes, dict[str, str]]] = []
    with KeyStore(path) as store:
        for i in range(ROUNDS):
            alias = f"alias/w{worker}/k{i}"
            key = store.create_key(alias=alias).key_id
            created[key] = alias
            done["CreateKey"] += 1
            done["CreateAlias"] += 1
            for target in (key, shared):
                store.rotate_key_on_demand(target)
                rotations[target] += 1
                done["RotateKeyOnDemand"] += 1
            ctx = {"worker": str(worker), "round": str(i)}
            plaintext = os.urandom(1 + i)
            blobs.append((store.encrypt(shared, plaintext, ctx), plaintext, ctx))
            data_key, sealed, _ = store.generate_data_key(key, ctx)
            blobs.append((sealed, bytes(data_key), ctx))
            store.tag_key(key, {"worker": str(worker)})
            done["Encrypt"] += 1
            done["GenerateDataKey"] += 1
            done["TagResource"] += 1
    return {"done": done, "created": created, "rotations": rotations, "blobs": blobs}


def test_concurrent_processes_lose_no_key_rotation_or_audit_row(tmp_path: Path) -> None:
    path = tmp_path / "keystore.db"
    with KeyStore(path) as store:
        shared = store.create_key(alias="alias/shared").key_id
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Barrier(WORKERS)
        with ctx.Pool(WORKERS) as pool:
            results = pool.starmap(_worker, [(str(path), w, shared, start) for w in range(WORKERS)])
    with KeyStore(path) as store:
        assert store.verify() == []
        rotations: Counter[str] = sum((r["rotations"] for r in results), Counter())
        for result in results:
            for key, alias in result["created"].items():
                meta = store.describe_key(key)
                assert meta.aliases == (alias,) and meta.backing_versions == 1 + rotations[key]
            for blob, plaintext, context in result["blobs"]:
                assert store.decrypt(blob, context)[0] == plaintext
        assert store.describe_key(shared).backing_versions == 1 + WORKERS * ROUNDS
        done: Counter[str] = sum((r["done"] for r in results), Counter())
        for operation, count in done.items():
            events = store.audit_events(operation=operation)
            assert sum(e.ok for e in events) == count + (operation in ("CreateKey", "CreateAlias")), operation
        assert len(store.list_keys()) == 1 + WORKERS * ROUNDS


def _first_use(path: str, start: Any) -> tuple[str, str, bytes]:
    start.wait()
    with KeyStore(path) as store:
        meta, _ = store.ensure_default_key()
        return store.keystore_id, meta.key_id, store.encrypt(meta.key_id, b"first use")


def test_processes_racing_to_create_a_new_keystore_agree_on_one(tmp_path: Path) -> None:
    path = tmp_path / "new" / "keystore.db"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Barrier(WORKERS)
        with ctx.Pool(WORKERS) as pool:
            results = pool.starmap(_first_use, [(str(path), start)] * WORKERS)
    assert len({r[0] for r in results}) == 1 and len({r[1] for r in results}) == 1
    with KeyStore(path) as store:
        assert all(store.decrypt(blob)[0] == b"first use" for _, _, blob in results)
        assert len(store.list_keys()) == 1 and store.verify() == []


_CHILD = textwrap.dedent("""
    import sys
    from envelope.kms.store import KeyStore
    with KeyStore(sys.argv[1]) as store:
        while True:
            key = store.create_key().key_id
            print("created", key, flush=True)
            store.rotate_key_on_demand(key)
            store.encrypt(key, b"x" * 100, {"k": "v"})
            store.schedule_key_deletion(key, 7)
            store.cancel_key_deletion(key)
            print("cycled", key, flush=True)
""")


def test_killing_a_process_mid_transaction_leaves_a_consistent_keystore(tmp_path: Path) -> None:
    path = tmp_path / "keystore.db"
    KeyStore(path).close()
    committed: list[str] = []
    for attempt in range(5):
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        for _ in range(2 + attempt):  # let it commit a few, then kill it wherever it is
            line = child.stdout.readline().split()
            if line and line[0] == "created":
                committed.append(line[1])
        time.sleep(0.01 * attempt)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with KeyStore(path) as store:
        assert store.verify() == []
        listed = {k.key_id: k for k in store.list_keys()}
        assert set(committed) <= set(listed)
        for meta in listed.values():
            assert meta.state in ("Enabled", "Disabled", "PendingDeletion")
            assert (meta.state == "PendingDeletion") == (meta.deletion_date is not None)
        key = store.create_key().key_id  # and it goes on working
        assert store.decrypt(store.encrypt(key, b"after"))[0] == b"after"
    assert not Path(str(path) + "-journal").exists() or KeyStore(path).verify() == []


def _create_one(path: str) -> str:
    with KeyStore(path) as store:
        return store.create_key().key_id


def test_a_writer_waits_for_another_processes_transaction_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "keystore.db"
    KeyStore(path).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        pending = pool.apply_async(_create_one, (str(path),))
        time.sleep(1.0)
        assert not pending.ready()  # blocked on the lock, not failed
        blocker.execute("COMMIT")
        key = pending.get(timeout=30)
    blocker.close()
    with KeyStore(path) as store:
        assert store.describe_key(key).state == "Enabled"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_keystore_files_open_to_others_are_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keystore.db"
    KeyStore(path).close()
    os.chmod(path, mode)
    with pytest.raises(Exception, match="accessible to other users"):
        KeyStore(path)

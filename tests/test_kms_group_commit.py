"""Group commit in the keystore (``KeyStore.batch``): calls share one transaction, each in its own savepoint.

The server runs the requests that queued up during one commit as one batch
and acknowledges them after its commit; these tests pin the semantics that
makes that sound: a refused call inside a batch is undone alone and still
leaves its failure row, and a batch that does not commit leaves nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from envelope.exceptions import KeyNotFoundError
from envelope.kms.store import KeyStore


def test_a_refused_call_in_a_batch_is_undone_alone_and_audited(tmp_path: Path) -> None:
    with KeyStore(tmp_path / "k.db") as store:
        with store.batch():
            first = store.create_key("first").key_id
            with pytest.raises(KeyNotFoundError):
                store.disable_key("alias/missing")
            second = store.create_key("second").key_id
        assert {k.key_id for k in store.list_keys()} == {first, second}
        refused = store.audit_events(operation="DisableKey")
        assert [(e.ok, e.alias) for e in refused] == [(False, "alias/missing")]


def test_a_batch_that_does_not_commit_leaves_nothing(tmp_path: Path) -> None:
    with KeyStore(tmp_path / "k.db") as store:
        before = len(store.audit_events())
        with pytest.raises(RuntimeError), store.batch():
            store.create_key("never acknowledged")
            raise RuntimeError("the commit failed")
        assert store.list_keys() == []
        assert [e.operation for e in store.audit_events()][before:] == ["ListKeys"]


def test_the_write_ahead_log_is_gone_after_serving(tmp_path: Path) -> None:
    with KeyStore(tmp_path / "k.db") as store:
        with store.serving():
            key = store.create_key().key_id
            assert (tmp_path / "k.db-wal").exists()
            assert oct((tmp_path / "k.db-wal").stat().st_mode & 0o777) == "0o600"
        assert not (tmp_path / "k.db-wal").exists()
    with KeyStore(tmp_path / "k.db") as again:
        assert [k.key_id for k in again.list_keys()] == [key]


def test_the_server_answers_no_call_before_the_fsync_that_covers_it(tmp_path: Path) -> None:
    pytest.importorskip("botocore")
    import asyncio
    import json
    import threading

    from envelope.server.app import Request
    from envelope.server.protocol import CONTENT_TYPE
    from envelope.server.runner import KeystoreRunner
    from envelope.server.sigv4 import Caller
    from envelope.server.wire import Wire

    store = KeyStore(tmp_path / "k.db", principal="local:user/owner")
    release = threading.Event()
    synced: list[bool] = []
    real_sync = store.sync_log

    def held_sync() -> None:
        release.wait(30)
        real_sync()
        synced.append(True)

    store.sync_log = held_sync  # type: ignore[method-assign]
    runner = KeystoreRunner(store, Wire("local", "123456789012"),
                            authenticate=lambda s, r, region: Caller("local:user/owner", "EKIA" + "A" * 16))
    request = Request("POST", "/", "", {"x-amz-target": "TrentService.CreateKey", "content-type": CONTENT_TYPE},
                      b"{}", "127.0.0.1")

    async def call() -> bytes:
        answer = asyncio.ensure_future(runner.handle(request))
        await asyncio.sleep(0.5)
        assert not answer.done() and not synced  # committed, perhaps, but not yet durable: not answered
        release.set()
        return await asyncio.wait_for(answer, 30)

    try:
        body = asyncio.run(call())
    finally:
        release.set()
        runner.close()
    assert synced and json.loads(body)["KeyMetadata"]["KeyState"] == "Enabled"

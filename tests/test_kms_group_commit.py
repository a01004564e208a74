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

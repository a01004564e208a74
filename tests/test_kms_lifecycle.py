"""The local KMS's key lifecycle: states, rotation, scheduled deletion, aliases, tags, ReEncrypt, audit."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from envelope.exceptions import KeyNotFoundError, KeyringError, KeyStateError, UsageError
from envelope.kms.crypto import blob as kms_blob
from envelope.kms.model.clock import ManualClock, parse_iso
from envelope.kms.store import KeyStore

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock):  # type: ignore[no-untyped-def]
    with KeyStore(tmp_path / "keystore.db", clock=clock) as ks:
        yield ks


def version_of(blob: bytes) -> int:
    return kms_blob.parse(blob).backing_version


# -- enable and disable ----------------------------------------------------------------------------


def test_disabled_key_refuses_all_cryptography_and_works_again_once_enabled(store: KeyStore) -> None:
    key = store.create_key().key_id
    blob = store.encrypt(key, b"kept")
    assert store.disable_key(key).state == "Disabled"
    for call in (lambda: store.encrypt(key, b"x"), lambda: store.decrypt(blob),
                 lambda: store.generate_data_key(key), lambda: store.generate_data_key_without_plaintext(key),
                 lambda: store.re_encrypt(blob, key)):
        with pytest.raises(KeyStateError, match=f"key {key} is Disabled: .* needs an Enabled key"):
            call()
    assert store.enable_key(key).state == "Enabled"
    assert store.decrypt(blob)[0] == b"kept"


def test_enable_and_disable_are_idempotent(store: KeyStore) -> None:
    key = store.create_key().key_id
    assert store.enable_key(key).state == "Enabled"
    store.disable_key(key)
    assert store.disable_key(key).state == "Disabled"


def test_a_key_pending_deletion_can_be_neither_enabled_nor_disabled(store: KeyStore) -> None:
    key = store.create_key().key_id
    store.schedule_key_deletion(key, 7)
    for call in (store.enable_key, store.disable_key):
        with pytest.raises(KeyStateError, match="PendingDeletion"):
            call(key)


# -- scheduled deletion ----------------------------------------------------------------------------


def test_deletion_defaults_to_30_days_and_blocks_all_cryptography(store: KeyStore) -> None:
    key = store.create_key().key_id
    blob = store.encrypt(key, b"x")
    plan = store.schedule_key_deletion(key)
    assert plan.pending_window_days == 30 and plan.state == "PendingDeletion"
    assert parse_iso(plan.deletion_date) == START + timedelta(days=30)
    with pytest.raises(KeyStateError, match="PendingDeletion .*destroyed on 2026-01-31"):
        store.decrypt(blob)
    meta = store.describe_key(key)
    assert meta.state == "PendingDeletion" and meta.deletion_date == plan.deletion_date


@pytest.mark.parametrize("days", [0, 6, 31, 365, -1])
def test_deletion_waiting_period_must_be_7_to_30_days(store: KeyStore, days: int) -> None:
    key = store.create_key().key_id
    with pytest.raises(UsageError, match="7 to 30 days"):
        store.schedule_key_deletion(key, days)
    assert store.describe_key(key).state == "Enabled"


def test_cancelled_deletion_leaves_the_key_disabled_with_its_material(store: KeyStore, clock: ManualClock) -> None:
    key = store.create_key().key_id
    blob = store.encrypt(key, b"saved")
    store.schedule_key_deletion(key, 7)
    clock.advance(days=6, hours=23)
    meta = store.cancel_key_deletion(key)
    assert meta.state == "Disabled" and meta.deletion_date is None
    clock.advance(days=30)
    assert store.maintain().deleted == ()
    store.enable_key(key)
    assert store.decrypt(blob)[0] == b"saved"


def test_cancel_deletion_of_a_key_not_pending_deletion_is_refused(store: KeyStore) -> None:
    key = store.create_key().key_id
    with pytest.raises(KeyStateError, match="Enabled: CancelKeyDeletion needs a PendingDeletion key"):
        store.cancel_key_deletion(key)


def test_nothing_is_destroyed_before_the_deletion_date(store: KeyStore, clock: ManualClock) -> None:
    key = store.create_key().key_id
    store.schedule_key_deletion(key, 7)
    clock.advance(timedelta(days=7) - timedelta(seconds=1))
    assert store.maintain().deleted == ()
    assert store.describe_key(key).state == "PendingDeletion"


def test_after_the_waiting_period_the_material_is_destroyed_for_good(store: KeyStore, clock: ManualClock) -> None:
    key = store.create_key(alias="alias/doomed", tags={"t": "v"}).key_id
    blob = store.encrypt(key, b"gone")
    store.schedule_key_deletion(key, 7)
    clock.advance(days=7, seconds=1)
    report = store.maintain()
    assert report.deleted == (key,) and report.rotated == ()
    with pytest.raises(KeyNotFoundError, match=f"key {key} was deleted on 2026-01-08.*nothing encrypted under it can be"):
        store.decrypt(blob)
    with pytest.raises(KeyNotFoundError, match="was deleted"):
        store.describe_key(key)
    with pytest.raises(KeyNotFoundError, match="alias/doomed does not exist"):
        store.encrypt("alias/doomed", b"x")
    assert [k.key_id for k in store.list_keys()] == []
    with store._db.reading() as conn:
        assert conn.execute("SELECT count(*) FROM key_material WHERE key_id = ?", (key,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM tags WHERE key_id = ?", (key,)).fetchone()[0] == 0
    assert store.verify() == []


def test_due_deletion_happens_lazily_on_the_next_call_without_maintain(store: KeyStore, clock: ManualClock) -> None:
    key = store.create_key().key_id
    store.schedule_key_deletion(key, 7)
    clock.advance(days=8)
    assert store.list_keys() == []
    deletes = store.audit_events(operation="DeleteKey")
    assert [(e.key_id, e.ok) for e in deletes] == [(key, True)]


def test_the_default_key_is_recreated_after_its_deletion(store: KeyStore, clock: ManualClock) -> None:
    first, _ = store.ensure_default_key()
    store.schedule_key_deletion(first.key_id, 7)
    clock.advance(days=8)
    second, created = store.ensure_default_key()
    assert created and second.key_id != first.key_id


# -- rotation ---------------------------------------------------------------------------------------


def test_on_demand_rotation_seals_new_blobs_with_the_new_backing_key_and_old_ones_still_open(
        store: KeyStore) -> None:
    key = store.create_key().key_id
    blobs = {}
    for version in (1, 2, 3):
        blobs[version] = store.encrypt(key, f"v{version}".encode(), {"v": str(version)})
        assert version_of(blobs[version]) == version
        if version < 3:
            assert store.rotate_key_on_demand(key).version == version + 1
    for version, blob in blobs.items():
        assert store.decrypt(blob, {"v": str(version)})[0] == f"v{version}".encode()
    status = store.get_key_rotation_status(key)
    assert [(r.version, r.rotation_type) for r in status.rotations] == [(1, None), (2, "ON_DEMAND"),
                                                                       (3, "ON_DEMAND")]
    assert not status.rotation_enabled  # on demand does not turn on the schedule


def test_automatic_rotation_happens_when_the_period_has_passed(store: KeyStore, clock: ManualClock) -> None:
    key = store.create_key().key_id
    status = store.enable_key_rotation(key)
    assert status.rotation_enabled and status.rotation_period_days == 365
    assert parse_iso(status.next_rotation_date or "") == START + timedelta(days=365)
    old = store.encrypt(key, b"old")
    clock.advance(days=364)
    assert store.maintain().rotated == ()
    clock.advance(days=1)
    assert store.maintain().rotated == (key,)
    status = store.get_key_rotation_status(key)
    assert [r.rotation_type for r in status.rotations] == [None, "AUTOMATIC"]
    assert parse_iso(status.next_rotation_date or "") == START + timedelta(days=730)
    assert version_of(store.encrypt(key, b"new")) == 2
    assert store.decrypt(old)[0] == b"old"


def test_automatic_rotation_also_happens_lazily_before_an_encrypt(store: KeyStore, clock: ManualClock) -> None:
    key = store.create_key().key_id
    store.enable_key_rotation(key, 90)
    clock.advance(days=91)
    assert version_of(store.encrypt(key, b"x")) == 2
    rotations = store.audit_events(key=key, operation="RotateKey")
    assert len(rotations) == 1 and rotations[0].ok


def test_a_long_overdue_key_rotates_once_not_once_per_missed_period(store: KeyStore, clock: ManualClock) -> None:
    key = store.create_key().key_id
    store.enable_key_rotation(key, 90)
    clock.advance(days=1000)
    store.maintain()
    assert store.describe_key(key).backing_versions == 2
    assert parse_iso(store.get_key_rotation_status(key).next_rotation_date or "") == clock.now() + timedelta(days=90)


def test_a_disabled_key_is_not_rotated_until_it_is_enabled_again(store: KeyStore, clock: ManualClock) -> None:
    key = store.create_key().key_id
    store.enable_key_rotation(key, 90)
    store.disable_key(key)
    clock.advance(days=100)
    assert store.maintain().rotated == ()
    store.enable_key(key)
    assert store.maintain().rotated == (key,)


def test_on_demand_rotation_leaves_the_automatic_schedule_alone(store: KeyStore, clock: ManualClock) -> None:
    key = store.create_key().key_id
    before = store.enable_key_rotation(key, 180).next_rotation_date
    clock.advance(days=10)
    store.rotate_key_on_demand(key)
    assert store.get_key_rotation_status(key).next_rotation_date == before


def test_changing_the_period_counts_from_the_schedules_start(store: KeyStore, clock: ManualClock) -> None:
    key = store.create_key().key_id
    store.enable_key_rotation(key, 365)
    clock.advance(days=100)
    status = store.enable_key_rotation(key, 90)
    assert parse_iso(status.next_rotation_date or "") == START + timedelta(days=90)


@pytest.mark.parametrize("days", [0, 89, 2561, True])
def test_rotation_period_must_be_90_to_2560_days(store: KeyStore, days: int) -> None:
    key = store.create_key().key_id
    with pytest.raises(UsageError, match="90 to 2560 days"):
        store.enable_key_rotation(key, days)


def test_disabling_rotation_keeps_every_backing_key(store: KeyStore, clock: ManualClock) -> None:
    key = store.create_key().key_id
    store.enable_key_rotation(key, 90)
    clock.advance(days=91)
    store.maintain()
    status = store.disable_key_rotation(key)
    assert not status.rotation_enabled and status.next_rotation_date is None and len(status.rotations) == 2
    clock.advance(days=1000)
    assert store.maintain().rotated == ()


def test_rotation_needs_an_enabled_key(store: KeyStore) -> None:
    key = store.create_key().key_id
    store.disable_key(key)
    for call in (store.rotate_key_on_demand, store.enable_key_rotation):
        with pytest.raises(KeyStateError, match="Disabled"):
            call(key)


def test_re_encrypt_moves_an_old_blob_to_the_newest_backing_key(store: KeyStore) -> None:
    key = store.create_key().key_id
    old = store.encrypt(key, b"data", {"a": "1"})
    store.rotate_key_on_demand(key)
    new, source, dest = store.re_encrypt(old, key, {"a": "1"})
    assert (source, dest, version_of(old), version_of(new)) == (key, key, 1, 2)
    assert store.decrypt(new, {"a": "1"})[0] == b"data"


# -- ReEncrypt, data keys, random ------------------------------------------------------------------


def test_re_encrypt_to_another_key_and_context(store: KeyStore) -> None:
    a, b = store.create_key().key_id, store.create_key(alias="alias/b").key_id
    blob = store.encrypt(a, b"move me", {"x": "1"})
    moved, source, dest = store.re_encrypt(blob, "alias/b", {"x": "1"}, {"y": "2"})
    assert (source, dest) == (a, b) and kms_blob.parse(moved).key_id == b
    assert store.decrypt(moved, {"y": "2"})[0] == b"move me"
    with pytest.raises(KeyringError, match="wrong encryption context"):
        store.decrypt(moved, {"x": "1"})
    event = store.audit_events(operation="ReEncrypt")[-1]
    assert (event.key_id, event.destination_key_id, event.context_keys) == (a, b, ("x",))
    assert "ReEncrypt" in [e.operation for e in store.audit_events(key=b)]  # found under both keys


def test_re_encrypt_with_the_wrong_source_context_or_key_fails(store: KeyStore) -> None:
    a, b = store.create_key().key_id, store.create_key().key_id
    blob = store.encrypt(a, b"x", {"x": "1"})
    with pytest.raises(KeyringError, match="wrong encryption context"):
        store.re_encrypt(blob, b, {"x": "2"})
    with pytest.raises(KeyringError, match="not the expected key"):
        store.re_encrypt(blob, b, {"x": "1"}, expected_source_key_id=b)


@pytest.mark.parametrize(("spec", "size"), [("AES_256", 32), ("AES_128", 16)])
def test_generate_data_key_by_key_spec(store: KeyStore, spec: str, size: int) -> None:
    key = store.create_key().key_id
    plaintext, blob, _ = store.generate_data_key(key, {"c": "d"}, key_spec=spec)
    assert len(plaintext) == size and store.decrypt(blob, {"c": "d"})[0] == plaintext


def test_generate_data_key_takes_a_key_spec_or_a_size_not_both(store: KeyStore) -> None:
    key = store.create_key().key_id
    with pytest.raises(UsageError, match="not both"):
        store.generate_data_key(key, None, 32, key_spec="AES_256")
    with pytest.raises(UsageError, match="unknown data key spec"):
        store.generate_data_key(key, key_spec="AES_512")


def test_data_key_without_plaintext_opens_only_with_decrypt(store: KeyStore) -> None:
    key = store.create_key().key_id
    blob, key_id = store.generate_data_key_without_plaintext(key, {"p": "q"}, 24)
    assert key_id == key and len(store.decrypt(blob, {"p": "q"})[0]) == 24
    assert store.audit_events(limit=2)[0].operation == "GenerateDataKeyWithoutPlaintext"


@pytest.mark.parametrize("size", [0, 1025, -5])
def test_generate_random_makes_1_to_1024_bytes(store: KeyStore, size: int) -> None:
    assert len(store.generate_random(1024)) == 1024 and store.generate_random(16) != store.generate_random(16)
    with pytest.raises(UsageError, match="1 to 1024"):
        store.generate_random(size)


# -- aliases and tags --------------------------------------------------------------------------------


def test_update_alias_rotates_by_hand_without_breaking_old_ciphertexts(store: KeyStore) -> None:
    old = store.create_key(alias="alias/app").key_id
    new = store.create_key().key_id
    before = store.encrypt("alias/app", b"old data")
    assert store.update_alias("alias/app", new).key_id == new
    after = store.encrypt("alias/app", b"new data")
    assert kms_blob.parse(before).key_id == old and kms_blob.parse(after).key_id == new
    assert store.decrypt(before)[0] == b"old data"  # the blob names its key, not the alias
    assert store.describe_key(old).aliases == () and store.describe_key(new).aliases == ("alias/app",)


def test_update_alias_refuses_unknown_aliases_aliases_as_targets_and_doomed_keys(store: KeyStore) -> None:
    a = store.create_key(alias="alias/a").key_id
    b = store.create_key().key_id
    with pytest.raises(KeyNotFoundError, match="alias/nope does not exist"):
        store.update_alias("alias/nope", b)
    with pytest.raises(UsageError, match="not at another alias"):
        store.update_alias("alias/a", "alias/a")
    store.schedule_key_deletion(b, 7)
    with pytest.raises(KeyStateError, match="PendingDeletion"):
        store.update_alias("alias/a", b)
    assert store.describe_key("alias/a").key_id == a


def test_delete_alias_removes_the_name_but_not_the_key(store: KeyStore) -> None:
    key = store.create_key(alias="alias/temp").key_id
    blob = store.encrypt(key, b"x")
    store.delete_alias("alias/temp")
    assert store.list_aliases() == [] and store.decrypt(blob)[0] == b"x"
    with pytest.raises(KeyNotFoundError):
        store.delete_alias("alias/temp")
    with pytest.raises(UsageError, match="reserved"):
        store.delete_alias("alias/aws/s3")


def test_a_key_can_have_several_aliases_and_list_aliases_filters_by_key(store: KeyStore) -> None:
    key = store.create_key(alias="alias/one").key_id
    store.create_alias("alias/two", key)
    store.create_key(alias="alias/other")
    assert [e.alias_name for e in store.list_aliases(key)] == ["alias/one", "alias/two"]
    assert store.describe_key("alias/two").aliases == ("alias/one", "alias/two")


def test_tags_are_added_replaced_removed_and_listed(store: KeyStore) -> None:
    key = store.create_key(tags={"owner": "ops"}).key_id
    assert store.tag_key(key, {"owner": "dba", "env": "prod"}) == {"env": "prod", "owner": "dba"}
    assert store.untag_key(key, ["env", "absent"]) == {"owner": "dba"}
    assert store.list_tags(key) == {"owner": "dba"} and store.describe_key(key).tag_dict == {"owner": "dba"}


@pytest.mark.parametrize("tags", [{"aws:x": "y"}, {"": "v"}, {"k" * 129: "v"}, {"k": "v" * 257}])
def test_invalid_tags_are_refused(store: KeyStore, tags: dict[str, str]) -> None:
    key = store.create_key().key_id
    with pytest.raises(UsageError):
        store.tag_key(key, tags)
    assert store.list_tags(key) == {}


def test_a_key_holds_at_most_50_tags(store: KeyStore) -> None:
    key = store.create_key(tags={f"k{i}": "v" for i in range(50)}).key_id
    with pytest.raises(UsageError, match="at most 50 tags"):
        store.tag_key(key, {"one-more": "v"})
    assert len(store.list_tags(key)) == 50


def test_description_can_be_updated(store: KeyStore) -> None:
    key = store.create_key("old").key_id
    assert store.update_key_description(key, "new").description == "new"


# -- audit ---------------------------------------------------------------------------------------------


def test_audit_filters_by_key_alias_operation_and_time(store: KeyStore, clock: ManualClock) -> None:
    a = store.create_key(alias="alias/a").key_id
    b = store.create_key().key_id
    store.encrypt("alias/a", b"1", {"secret-key-name": "secret-value"})
    clock.advance(days=2)
    store.encrypt(b, b"2")
    store.disable_key(a)
    with pytest.raises(KeyStateError):
        store.encrypt(a, b"3")
    by_a = store.audit_events(key="alias/a")
    assert [e.operation for e in by_a] == ["CreateKey", "CreateAlias", "Encrypt", "DisableKey", "Encrypt"]
    assert by_a[2].alias == "alias/a" and by_a[2].context_keys == ("secret-key-name",)
    assert "secret-value" not in str([e.to_dict() for e in store.audit_events()])
    recent = store.audit_events(since=START + timedelta(days=1))
    assert [e.operation for e in recent] == ["Encrypt", "DisableKey", "Encrypt"]
    refused = [e for e in store.audit_events(operation="Encrypt") if not e.ok]
    assert len(refused) == 1 and "Disabled" in (refused[0].error or "")
    assert store.audit_events(key=b, limit=1)[0].operation == "Encrypt"


def test_audit_rows_survive_the_deletion_of_their_key(store: KeyStore, clock: ManualClock) -> None:
    key = store.create_key().key_id
    store.schedule_key_deletion(key, 7)
    clock.advance(days=8)
    store.maintain()
    assert [e.operation for e in store.audit_events(key=key)] == ["CreateKey", "ScheduleKeyDeletion", "DeleteKey"]

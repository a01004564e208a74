"""The local KMS keystore: its file, its keys and aliases, its crypto, its audit trail."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import uuid
from pathlib import Path

import pytest

from envelope.exceptions import FormatError, KeyNotFoundError, KeyringError, KeyStateError, UsageError
from envelope.kms.crypto import blob as kms_blob
from envelope.kms.storage import schema
from envelope.kms.model.keys import DEFAULT_ALIAS
from envelope.kms.storage.paths import default_keystore_path
from envelope.kms.store import KeyStore

UNWRAP_FAILURE = "wrong encryption context or corrupted ciphertext"


@pytest.fixture
def ks_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "private" / "keystore.db"
    monkeypatch.setenv("ENVELOPE_KEYSTORE", str(path))
    return path


@pytest.fixture
def store(ks_path: Path):  # type: ignore[no-untyped-def]
    with KeyStore(ks_path) as ks:
        yield ks


def _material(store: KeyStore, key_id: str) -> list[bytes]:
    """A key's backing keys in the clear, read the way the store reads them (for checks only)."""
    with store._db.reading() as conn:
        wrapping = store._db.wrapping_key(conn)
        rows = conn.execute("SELECT version, sealed FROM key_material WHERE key_id = ? ORDER BY version", (key_id,))
        return [bytes(wrapping.open(key_id, version, sealed)) for version, sealed in rows]


def _force_state(path: Path, key_id: str, state: str) -> None:
    """Put a key in a state no part-1 call reaches (PendingImport belongs to imported material)."""
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE keys SET state = ? WHERE key_id = ?", (state, key_id))


# -- the file --------------------------------------------------------------------------------------


def test_new_keystore_is_mode_0600_in_a_0700_directory_even_with_an_open_umask(ks_path: Path) -> None:
    old = os.umask(0)
    try:
        KeyStore(ks_path).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(ks_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(ks_path.parent.stat().st_mode) == 0o700
    with KeyStore(ks_path) as ks:  # writes (and SQLite's journal) keep it private
        ks.encrypt(ks.create_key(alias="alias/a").key_id, b"x")
    assert stat.S_IMODE(ks_path.stat().st_mode) == 0o600


def test_a_relative_keystore_path_gets_each_missing_directory_made_private(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with KeyStore(os.path.join("a", "b", "ks.db")) as store:
        store.create_key()
    for directory in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b" / "ks.db").stat().st_mode) == 0o600
    with KeyStore("ks.db") as here:  # a bare name: the working directory, which exists
        assert here.path == Path("ks.db")
    assert (tmp_path / "ks.db").is_file()


def test_default_path_prefers_envelope_keystore_then_xdg_data_home_then_home() -> None:
    assert default_keystore_path({"ENVELOPE_KEYSTORE": "/a/k.db", "XDG_DATA_HOME": "/x"}) == Path("/a/k.db")
    assert default_keystore_path({"XDG_DATA_HOME": "/x"}) == Path("/x/envelope/keystore.db")
    home = Path.home() / ".local" / "share" / "envelope" / "keystore.db"
    assert default_keystore_path({}) == home
    assert default_keystore_path({"ENVELOPE_KEYSTORE": "", "XDG_DATA_HOME": "relative"}) == home


def test_opening_without_create_reports_missing_keystore_and_creates_nothing(ks_path: Path) -> None:
    with pytest.raises(KeyNotFoundError, match="no local keystore at"):
        KeyStore(ks_path, create=False)
    assert not ks_path.exists()


def test_keystore_readable_by_others_is_refused(store: KeyStore, ks_path: Path) -> None:
    store.close()
    ks_path.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        KeyStore(ks_path)


def test_schema_version_and_keystore_id_are_recorded(store: KeyStore, ks_path: Path) -> None:
    with sqlite3.connect(ks_path) as conn:
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
    assert meta["schema_version"] == str(schema.SCHEMA_VERSION)
    assert meta["keystore_id"] == store.keystore_id
    tables = {"keys", "key_material", "aliases", "tags", "grants", "audit", "meta"}
    with sqlite3.connect(ks_path) as conn:
        assert tables <= {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_reopening_keeps_keys_aliases_and_keystore_id(ks_path: Path) -> None:
    with KeyStore(ks_path) as ks:
        key = ks.create_key("kept", alias="alias/kept")
        blob = ks.encrypt("alias/kept", b"secret")
        first_id = ks.keystore_id
    with KeyStore(ks_path, create=False) as ks:
        assert ks.keystore_id == first_id
        assert ks.describe_key("alias/kept") == key
        assert ks.decrypt(blob)[0] == b"secret"


@pytest.mark.parametrize("name", ["100% keys", "what?", "no#fragment", "%3F"])
def test_a_keystore_path_with_uri_characters_opens_that_file(tmp_path: Path, monkeypatch, name: str) -> None:
    """SQLite opens the keystore through a file: URI, so %, ? and # in its path must reach it escaped."""
    directory = tmp_path / name
    with KeyStore(directory / "ks.db") as store:
        key_id = store.create_key().key_id
        assert store.path == directory / "ks.db"
    monkeypatch.chdir(directory)
    with KeyStore("ks.db", create=False) as again:  # a relative path too
        assert again.describe_key(key_id).key_id == key_id
    assert sorted(os.listdir(tmp_path)) == [name]
    assert sorted(os.listdir(directory)) == ["ks.db", "ks.db.key"]


def test_keystore_from_a_newer_version_is_refused(store: KeyStore, ks_path: Path) -> None:
    store.close()
    with sqlite3.connect(ks_path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(KeyringError, match="schema version 99 is newer"):
        KeyStore(ks_path)


def test_a_file_that_is_not_a_keystore_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    path.chmod(0o600)
    with pytest.raises(KeyringError) as info:
        KeyStore(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


# -- keys and aliases ------------------------------------------------------------------------------


def test_create_key_returns_enabled_symmetric_key_with_uuid_and_arn(store: KeyStore) -> None:
    meta = store.create_key("for backups")
    assert str(uuid.UUID(meta.key_id)) == meta.key_id
    assert meta.arn == f"arn:envelope:kms:local:{store.keystore_id}:key/{meta.key_id}"
    assert (meta.state, meta.origin, meta.key_spec, meta.key_usage) == (
        "Enabled", "ENVELOPE", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    assert meta.description == "for backups" and meta.aliases == () and meta.backing_versions == 1


def test_each_key_gets_its_own_32_byte_material(store: KeyStore, ks_path: Path) -> None:
    a, b = store.create_key(), store.create_key()
    ma, mb = _material(store, a.key_id), _material(store, b.key_id)
    assert len(ma[0]) == 32 and len(mb[0]) == 32 and ma != mb


def test_list_keys_returns_every_key_in_creation_order(store: KeyStore) -> None:
    made = [store.create_key(f"k{i}").key_id for i in range(3)]
    assert [k.key_id for k in store.list_keys()] == made


def test_describe_key_accepts_id_uppercase_id_arn_and_alias(store: KeyStore) -> None:
    meta = store.create_key(alias="alias/team/app_1-x")
    for ref in (meta.key_id, meta.key_id.upper(), meta.arn, "alias/team/app_1-x",
                f"arn:envelope:kms:local:{store.keystore_id}:alias/team/app_1-x"):
        assert store.describe_key(ref).key_id == meta.key_id


def test_unknown_key_or_alias_raises_key_not_found(store: KeyStore) -> None:
    with pytest.raises(KeyNotFoundError, match="alias alias/missing does not exist"):
        store.describe_key("alias/missing")
    with pytest.raises(KeyNotFoundError, match="does not exist"):
        store.describe_key(str(uuid.uuid4()))


def test_arn_of_another_keystore_is_not_found_here(store: KeyStore) -> None:
    meta = store.create_key()
    foreign = meta.arn.replace(store.keystore_id, "0123456789abcdef")
    with pytest.raises(KeyNotFoundError, match="belongs to keystore 0123456789abcdef"):
        store.describe_key(foreign)


@pytest.mark.parametrize("ref", ["", "prod", "12345", "arn:aws:kms:us-east-1:1:key/x", "alias/has space"])
def test_malformed_reference_is_a_usage_error(store: KeyStore, ref: str) -> None:
    with pytest.raises(UsageError):
        store.describe_key(ref)


def test_create_alias_points_at_key_and_is_listed(store: KeyStore) -> None:
    meta = store.create_key()
    entry = store.create_alias("alias/second", meta.key_id)
    assert entry.key_id == meta.key_id
    assert store.describe_key("alias/second").aliases == ("alias/second",)
    assert [(a.alias_name, a.key_id) for a in store.list_aliases()] == [("alias/second", meta.key_id)]


@pytest.mark.parametrize("name", ["alias/aws/s3", "alias/AWS/mine"])
def test_aliases_under_alias_aws_are_reserved(store: KeyStore, name: str) -> None:
    meta = store.create_key()
    with pytest.raises(UsageError, match="reserved"):
        store.create_alias(name, meta.key_id)
    with pytest.raises(UsageError, match="reserved"):
        store.create_key(alias=name)
    assert store.list_aliases() == []


@pytest.mark.parametrize("name", ["prod", "alias/", "alias/has space", "alias/caf\u00e9", "alias/a:b",
                                  "alias/dot.ted", "alias/" + "a" * 300, "ALIAS/x"])
def test_invalid_alias_names_are_refused(store: KeyStore, name: str) -> None:
    meta = store.create_key()
    with pytest.raises(UsageError):
        store.create_alias(name, meta.key_id)


def test_duplicate_alias_is_refused_and_keeps_its_key(store: KeyStore) -> None:
    a, b = store.create_key(alias="alias/taken"), store.create_key()
    with pytest.raises(UsageError, match="already exists"):
        store.create_alias("alias/taken", b.key_id)
    assert store.describe_key("alias/taken").key_id == a.key_id


def test_create_key_with_a_taken_alias_creates_no_key(store: KeyStore) -> None:
    store.create_key(alias="alias/taken")
    with pytest.raises(UsageError, match="already exists"):
        store.create_key("second", alias="alias/taken")
    assert len(store.list_keys()) == 1


def test_alias_must_target_a_key_not_another_alias(store: KeyStore) -> None:
    store.create_key(alias="alias/first")
    with pytest.raises(UsageError, match="not at another alias"):
        store.create_alias("alias/other", "alias/first")


def test_ensure_default_key_creates_once_then_returns_the_same_key(store: KeyStore) -> None:
    first, created = store.ensure_default_key()
    again, created_again = store.ensure_default_key()
    assert created and not created_again
    assert first.key_id == again.key_id and first.aliases == (DEFAULT_ALIAS,)


def test_concurrent_first_use_makes_a_single_default_key(ks_path: Path) -> None:
    KeyStore(ks_path).close()
    results: list[str] = []

    def worker() -> None:
        with KeyStore(ks_path) as ks:
            results.append(ks.ensure_default_key()[0].key_id)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with KeyStore(ks_path) as ks:
        assert len(ks.list_keys()) == 1
    assert len(set(results)) == 1 and len(results) == 6


# -- cryptographic operations ----------------------------------------------------------------------


def test_generate_data_key_round_trips_through_decrypt(store: KeyStore) -> None:
    meta = store.create_key(alias="alias/dk")
    plaintext, blob, key_id = store.generate_data_key("alias/dk", {"app": "x"})
    assert key_id == meta.key_id and isinstance(plaintext, bytearray) and len(plaintext) == 32
    opened, opened_id = store.decrypt(blob, {"app": "x"})
    assert opened == plaintext and opened_id == meta.key_id


@pytest.mark.parametrize("size", [1, 16, 64, 1024])
def test_generate_data_key_honours_number_of_bytes(store: KeyStore, size: int) -> None:
    key = store.create_key().key_id
    plaintext, blob, _ = store.generate_data_key(key, None, size)
    assert len(plaintext) == size and store.decrypt(blob)[0] == plaintext


@pytest.mark.parametrize("size", [0, 1025, -1])
def test_generate_data_key_refuses_sizes_outside_1_to_1024(store: KeyStore, size: int) -> None:
    key = store.create_key().key_id
    with pytest.raises(UsageError, match="1 to 1024"):
        store.generate_data_key(key, None, size)


@pytest.mark.parametrize("size", [1, 100, 4096])
def test_encrypt_decrypt_round_trip_up_to_4096_bytes(store: KeyStore, size: int) -> None:
    key = store.create_key().key_id
    data = os.urandom(size)
    blob = store.encrypt(key, data, {"k": "v"})
    assert len(blob) == 21 + 12 + size + 16
    assert store.decrypt(blob, {"k": "v"}) == (bytearray(data), key)


def test_encrypt_over_4096_bytes_points_to_envelope_encryption(store: KeyStore) -> None:
    key = store.create_key().key_id
    with pytest.raises(UsageError, match="at most 4096 bytes.*envelope encryption"):
        store.encrypt(key, b"x" * 4097)
    with pytest.raises(UsageError, match="at least 1 byte"):
        store.encrypt(key, b"")


def test_the_blob_names_its_key_and_backing_version(store: KeyStore) -> None:
    meta = store.create_key()
    blob = store.encrypt(meta.key_id, b"hello")
    assert blob[0] == 1
    assert blob[1:17] == uuid.UUID(meta.key_id).bytes
    assert int.from_bytes(blob[17:21], "big") == 1
    parsed = kms_blob.parse(blob)
    assert (parsed.key_id, parsed.backing_version) == (meta.key_id, 1)


def test_decrypt_needs_no_key_id_and_finds_the_right_key_among_several(store: KeyStore) -> None:
    keys = [store.create_key().key_id for _ in range(3)]
    blobs = [store.encrypt(k, k.encode()) for k in keys]
    for key, blob in zip(keys, blobs):
        assert store.decrypt(blob) == (bytearray(key.encode()), key)


@pytest.mark.parametrize("other", [{"app": "y"}, {}, {"app": "x", "extra": "1"}, {"App": "x"}])
def test_decrypt_under_a_different_context_fails_naming_the_key(store: KeyStore, other: dict[str, str]) -> None:
    key = store.create_key().key_id
    blob = store.encrypt(key, b"secret", {"app": "x"})
    with pytest.raises(KeyringError, match=UNWRAP_FAILURE) as info:
        store.decrypt(blob, other)
    assert key in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("offset", [20, 21, 25, 33, 40, -1])  # backing version, nonce x2, ciphertext x2, tag
def test_tampered_blob_fails_authentication(store: KeyStore, offset: int) -> None:
    key = store.create_key().key_id
    blob = bytearray(store.encrypt(key, b"0123456789"))
    blob[offset] ^= 0x03
    with pytest.raises(KeyringError, match=UNWRAP_FAILURE):
        store.decrypt(bytes(blob))


@pytest.mark.parametrize("blob", [b"", b"\x01" * 20, b"\x01" * 49 + b"", b"\x02" + b"\x00" * 60,
                                  b"\x01" * (21 + 12 + 4096 + 16 + 1)])
def test_malformed_blob_is_refused_before_any_lookup(store: KeyStore, blob: bytes) -> None:
    with pytest.raises(KeyringError, match="cannot decrypt") as info:
        store.decrypt(blob)
    assert not isinstance(info.value, KeyNotFoundError)


def test_blob_parser_raises_format_error_on_bad_version_and_size() -> None:
    with pytest.raises(FormatError, match="too short"):
        kms_blob.parse(b"\x01" * 10)
    with pytest.raises(FormatError, match="version 7"):
        kms_blob.parse(b"\x07" + b"\x00" * 60)
    with pytest.raises(FormatError, match="longer than any"):
        kms_blob.parse(b"\x01" * 5000)


def test_two_keys_make_different_blobs_and_a_blob_never_opens_as_another_key(store: KeyStore) -> None:
    a, b = store.create_key().key_id, store.create_key().key_id
    blob_a, blob_b = store.encrypt(a, b"same"), store.encrypt(b, b"same")
    assert blob_a[1:17] != blob_b[1:17] and blob_a[33:] != blob_b[33:]
    assert store.encrypt(a, b"same")[21:] != blob_a[21:]  # a fresh nonce every time
    relabelled = blob_a[:1] + uuid.UUID(b).bytes + blob_a[17:]
    with pytest.raises(KeyringError, match=f"{b}: {UNWRAP_FAILURE}"):
        store.decrypt(relabelled)


def test_expected_key_id_mismatch_is_refused(store: KeyStore) -> None:
    a, b = store.create_key(alias="alias/a").key_id, store.create_key().key_id
    blob = store.encrypt(a, b"data")
    with pytest.raises(KeyringError, match=f"encrypted under key {a}, not the expected key {b}"):
        store.decrypt(blob, expected_key_id=b)
    assert store.decrypt(blob, expected_key_id="alias/a")[1] == a


def test_unknown_key_in_blob_raises_key_not_found(store: KeyStore) -> None:
    key = store.create_key().key_id
    blob = store.encrypt(key, b"data")
    forged = blob[:1] + uuid.uuid4().bytes + blob[17:]
    with pytest.raises(KeyNotFoundError):
        store.decrypt(forged)


@pytest.mark.parametrize("state", ["Disabled", "PendingDeletion", "PendingImport"])
def test_key_not_enabled_refuses_every_crypto_operation_naming_its_state(store: KeyStore, ks_path: Path,
                                                                       state: str) -> None:
    key = store.create_key().key_id
    other = store.create_key().key_id
    blob = store.encrypt(key, b"data")
    {"Disabled": lambda: store.disable_key(key),
     "PendingDeletion": lambda: store.schedule_key_deletion(key, 7),
     "PendingImport": lambda: _force_state(ks_path, key, "PendingImport")}[state]()
    for call in (lambda: store.encrypt(key, b"x"), lambda: store.generate_data_key(key),
                 lambda: store.generate_data_key_without_plaintext(key), lambda: store.decrypt(blob),
                 lambda: store.re_encrypt(blob, other), lambda: store.re_encrypt(store.encrypt(other, b"y"), key)):
        with pytest.raises(KeyStateError, match=f"key {key} is {state}"):
            call()
    assert store.describe_key(key).state == state  # describing is still allowed
    _force_state(ks_path, key, "Enabled")
    assert store.decrypt(blob)[0] == b"data"


def test_newest_backing_key_seals_and_older_versions_still_open(store: KeyStore) -> None:
    key = store.create_key().key_id
    old_blob = store.encrypt(key, b"before rotation")
    assert store.rotate_key_on_demand(key).version == 2
    new_blob = store.encrypt(key, b"after rotation")
    assert kms_blob.parse(new_blob).backing_version == 2
    assert store.decrypt(old_blob)[0] == b"before rotation"
    assert store.decrypt(new_blob)[0] == b"after rotation"
    assert store.describe_key(key).backing_versions == 2


# -- audit trail and secrecy -----------------------------------------------------------------------


def test_every_operation_leaves_an_audit_row_with_principal_and_outcome(store: KeyStore) -> None:
    key = store.create_key(alias="alias/audited").key_id
    blob = store.encrypt(key, b"data", {"a": "1"})
    store.generate_data_key(key)
    store.describe_key(key)
    store.list_keys()
    store.list_aliases()
    store.decrypt(blob, {"a": "1"})
    with pytest.raises(KeyringError):
        store.decrypt(blob, {"a": "2"})
    events = store.audit_events()
    assert [e.operation for e in events] == ["CreateKey", "CreateAlias", "Encrypt", "GenerateDataKey",
                                             "DescribeKey", "ListKeys", "ListAliases", "Decrypt", "Decrypt"]
    assert all(e.principal for e in events)
    assert [e.ok for e in events] == [True] * 8 + [False]
    assert events[-1].key_id == key and UNWRAP_FAILURE in (events[-1].error or "")
    assert events[-1].context_keys == ("a",)  # the context's keys are on record, its values are not
    assert '"2"' not in (events[-1].request or "") and '"1"' not in (events[2].request or "")


def test_refused_operations_are_audited_too(store: KeyStore) -> None:
    key = store.create_key().key_id
    store.disable_key(key)
    with pytest.raises(KeyStateError):
        store.encrypt(key, b"x")
    with pytest.raises(KeyNotFoundError):
        store.describe_key("alias/none")
    last = store.audit_events(limit=2)
    assert [(e.operation, e.ok) for e in last] == [("Encrypt", False), ("DescribeKey", False)]
    assert "Disabled" in (last[0].error or "")
    assert [e.operation for e in store.audit_events(key=key)] == ["CreateKey", "DisableKey", "Encrypt"]


def test_key_material_never_appears_in_metadata_reprs_audit_or_errors(store: KeyStore, ks_path: Path) -> None:
    meta = store.create_key(alias="alias/secret")
    material = _material(store, meta.key_id)[0]
    blob = store.encrypt("alias/secret", b"data")
    with pytest.raises(KeyringError) as info:
        store.decrypt(blob, {"wrong": "context"})
    text = " ".join([repr(store), repr(meta), str(meta.to_dict()), str(info.value),
                     *(repr(e) for e in store.audit_events())])
    for form in (material.hex(), material.hex().upper(), repr(material)[2:-1]):
        assert form not in text

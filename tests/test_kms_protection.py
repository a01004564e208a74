"""Master keys at rest: sealed under a key file or a passphrase; version-1 keystores upgraded in place."""

from __future__ import annotations

import os
import sqlite3
import stat
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from envelope.exceptions import KeyringError
from envelope.kms.crypto import blob as kms_blob
from envelope.kms.storage import schema
from envelope.kms.storage.protection import PASSPHRASE_ENV, key_file_path
from envelope.kms.store import KeyStore


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    return tmp_path / "ks" / "keystore.db"


def backing_keys(store: KeyStore) -> list[bytes]:
    with store._db.reading() as conn:
        wrapping = store._db.wrapping_key(conn)
        rows = conn.execute("SELECT key_id, version, sealed FROM key_material").fetchall()
        return [bytes(wrapping.open(k, v, s)) for k, v, s in rows]


# -- key file -------------------------------------------------------------------------------------


def test_a_new_keystore_gets_a_private_key_file_and_no_clear_master_key_on_disk(path: Path) -> None:
    with KeyStore(path) as store:
        store.create_key()
        store.rotate_key_on_demand(store.create_key().key_id)
        assert store.protection == "key-file"
        materials = backing_keys(store)
    assert len(materials) == 3 and all(len(m) == 32 for m in materials)
    key_file = Path(key_file_path(path))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    on_disk = path.read_bytes()
    for material in materials:
        assert material not in on_disk


def test_a_missing_key_file_stops_cryptography_with_a_clear_message_but_not_listing(path: Path) -> None:
    with KeyStore(path) as store:
        key = store.create_key().key_id
        blob = store.encrypt(key, b"x")
    Path(key_file_path(path)).unlink()
    with KeyStore(path) as store:
        assert store.describe_key(key).state == "Enabled"
        with pytest.raises(KeyringError, match=r"wrapping key file .*keystore\.db\.key is missing"):
            store.decrypt(blob)


def test_another_keystores_key_file_is_recognised_as_wrong(path: Path, tmp_path: Path) -> None:
    other = tmp_path / "other" / "keystore.db"
    KeyStore(other).close()
    with KeyStore(path) as store:
        blob = store.encrypt(store.create_key().key_id, b"x")
    Path(key_file_path(path)).write_bytes(Path(key_file_path(other)).read_bytes())
    with KeyStore(path) as store, pytest.raises(KeyringError, match="is not the wrapping key of the keystore"):
        store.decrypt(blob)


def test_a_key_file_readable_by_others_is_refused(path: Path) -> None:
    KeyStore(path).close()
    Path(key_file_path(path)).chmod(0o644)
    with pytest.raises(KeyringError, match="accessible to other users .*chmod 600"):
        KeyStore(path)


@pytest.mark.parametrize("content", [b"", b"garbage", b"envelope-keystore-wrapping-key-v1 abcd\n", b"x" * 5000])
def test_a_malformed_key_file_is_refused_in_one_line(path: Path, content: bytes) -> None:
    with KeyStore(path) as store:
        key = store.create_key().key_id
    Path(key_file_path(path)).write_bytes(content)
    with KeyStore(path) as store, pytest.raises(KeyringError) as info:
        store.encrypt(key, b"x")
    assert "\n" not in str(info.value) and "wrapping key" in str(info.value)


def test_a_backing_key_row_moved_to_another_key_does_not_open(path: Path) -> None:
    with KeyStore(path) as store:
        a, b = store.create_key().key_id, store.create_key().key_id
        blob = store.encrypt(b, b"x")
    with sqlite3.connect(path) as conn:
        (sealed_a,) = conn.execute("SELECT sealed FROM key_material WHERE key_id = ?", (a,)).fetchone()
        conn.execute("UPDATE key_material SET sealed = ? WHERE key_id = ?", (sealed_a, b))
    with KeyStore(path) as store:
        with pytest.raises(KeyringError, match=f"backing key 1 of key {b} does not open"):
            store.decrypt(blob)
        assert any(b in problem for problem in store.verify())


# -- passphrase -------------------------------------------------------------------------------------


def test_a_passphrase_keystore_has_no_key_file_and_opens_with_the_passphrase(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with KeyStore(path, passphrase="correct horse") as store:
        assert store.protection == "passphrase"
        blob = store.encrypt(store.create_key(alias="alias/p").key_id, b"secret")
    assert not Path(key_file_path(path)).exists()
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
    with KeyStore(path) as store:
        assert store.decrypt(blob)[0] == b"secret"


def test_a_wrong_passphrase_is_reported_as_such(path: Path) -> None:
    with KeyStore(path, passphrase="right") as store:
        blob = store.encrypt(store.create_key().key_id, b"x")
    with KeyStore(path, passphrase="wrong") as store, pytest.raises(KeyringError, match="wrong passphrase"):
        store.decrypt(blob)


def test_without_a_passphrase_metadata_works_and_cryptography_asks_for_one(path: Path) -> None:
    with KeyStore(path, passphrase="pw") as store:
        key = store.create_key(alias="alias/p").key_id
    with KeyStore(path) as store:  # no terminal under pytest, no environment variable
        assert [k.key_id for k in store.list_keys()] == [key]
        with pytest.raises(KeyringError, match=f"protected by a passphrase: set {PASSPHRASE_ENV}"):
            store.encrypt(key, b"x")


def test_the_environment_variable_makes_new_keystores_passphrase_protected(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "from-env")
    with KeyStore(path) as store:
        assert store.protection == "passphrase"
        store.create_key()
    assert not Path(key_file_path(path)).exists()


def test_hostile_scrypt_parameters_are_refused_before_any_work(path: Path) -> None:
    with KeyStore(path, passphrase="pw") as store:
        key = store.create_key().key_id
    with sqlite3.connect(path) as conn:
        conn.execute("""UPDATE meta SET value = '{"n": 1073741824, "p": 1, "r": 8, "salt": "00000000000000000000000000000000"}'
                        WHERE name = 'scrypt'""")
    with KeyStore(path, passphrase="pw") as store, pytest.raises(KeyringError, match="out of range"):
        store.encrypt(key, b"x")


# -- upgrading a version-1 keystore --------------------------------------------------------------------


def make_v1_keystore(path: Path) -> tuple[str, bytes, bytes]:
    """A keystore as envelope wrote it before version 2: clear backing keys; returns (key id, material, blob)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    key_id, material = str(uuid.uuid4()), os.urandom(32)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    schema._to_v1(conn, lambda: pytest.fail("version 1 needs no wrapping key"))  # type: ignore[arg-type,return-value]
    conn.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                     [("schema_version", "1"), ("keystore_id", "00112233aabbccdd"), ("created_at", "2026-01-01T00:00:00Z")])
    conn.execute("INSERT INTO keys (key_id, arn, created_at, state, origin, policy, updated_at)"
                 " VALUES (?, ?, '2026-01-01T00:00:00Z', 'Enabled', 'ENVELOPE', '{}', '2026-01-01T00:00:00Z')",
                 (key_id, f"arn:envelope:kms:local:00112233aabbccdd:key/{key_id}"))
    conn.execute("INSERT INTO key_material (key_id, version, material, origin, created_at)"
                 " VALUES (?, 1, ?, 'ENVELOPE', '2026-01-01T00:00:00Z')", (key_id, material))
    conn.execute("COMMIT")
    conn.close()
    nonce = os.urandom(12)
    blob = kms_blob.encode_prefix(key_id, 1) + nonce + AESGCM(material).encrypt(
        nonce, b"written by version 1", kms_blob.aad(key_id, 1, {"v": "1"}))
    return key_id, material, blob


def test_a_version_1_keystore_is_upgraded_and_its_old_blobs_still_open(path: Path) -> None:
    key_id, material, blob = make_v1_keystore(path)
    with KeyStore(path) as store:
        assert store.decrypt(blob, {"v": "1"})[0] == b"written by version 1"
        assert store.protection == "key-file" and store.keystore_id == "00112233aabbccdd"
        assert store.verify() == []
        assert backing_keys(store) == [material]
        # Version 3 enforces key policies: the empty one written by version 1 became the owner's.
        assert store.get_key_policy(key_id)["Statement"][0]["Principal"] == {"Local": "local:root"}
        assert store.owner == store.principal
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0] == str(
            schema.SCHEMA_VERSION)
    assert material not in path.read_bytes()  # the clear copy is gone, not left in a free page


def test_an_upgrade_that_fails_leaves_the_version_1_keystore_untouched(path: Path, tmp_path: Path) -> None:
    key_id, material, blob = make_v1_keystore(path)
    Path(key_file_path(path)).write_text("not a key file\n")  # the upgrade cannot get its wrapping key
    Path(key_file_path(path)).chmod(0o600)
    with pytest.raises(KeyringError, match="wrapping key file"):
        KeyStore(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0] == "1"
        assert conn.execute("SELECT material FROM key_material").fetchone()[0] == material
    Path(key_file_path(path)).unlink()
    with KeyStore(path) as store:
        assert store.decrypt(blob, {"v": "1"})[0] == b"written by version 1"

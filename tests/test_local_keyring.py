"""The ``local:`` keyring: data keys generated, wrapped and unwrapped by the local keystore."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from envelope import api
from envelope.exceptions import KeyNotFoundError, KeyringError, KeyStateError, UsageError
from envelope.format import WrappedKey
from envelope.keyrings import MultiKeyring, resolve
from envelope.keyrings.local import LocalKeyring, default_keyring
from envelope.keyrings.raw_aes import RawAesKeyring
from envelope.kms.store import KeyStore

CTX = {"app": "billing", "env": "prod"}


@pytest.fixture
def ks_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keystore.db"
    monkeypatch.setenv("ENVELOPE_KEYSTORE", str(path))
    return path


@pytest.fixture
def store(ks_path: Path):  # type: ignore[no-untyped-def]
    with KeyStore(ks_path) as ks:
        ks.create_key("test key", alias="alias/x")
        yield ks


def test_resolve_local_alias_gives_a_local_keyring_that_round_trips(store: KeyStore, ks_path: Path) -> None:
    ring = resolve("local:alias/x", keystore=str(ks_path))
    assert isinstance(ring, LocalKeyring) and ring.provider == "local"
    plaintext, wrapped = ring.generate_data_key(CTX)
    assert len(plaintext) == 32
    assert wrapped.provider == "local" and wrapped.key_id == store.describe_key("alias/x").key_id
    assert ring.unwrap_data_key(wrapped, CTX) == plaintext


def test_keyring_accepts_an_open_keystore_object_and_leaves_it_open(store: KeyStore) -> None:
    ring = resolve("local:alias/x", keystore=store)
    _, wrapped = ring.generate_data_key({})
    assert isinstance(ring, LocalKeyring)
    ring.close()
    assert store.describe_key(wrapped.key_id).key_id == wrapped.key_id


@pytest.mark.parametrize("form", ["id", "ARN", "alias"])
def test_key_id_arn_and_alias_references_name_the_same_key(store: KeyStore, form: str) -> None:
    meta = store.describe_key("alias/x")
    ref = {"id": meta.key_id, "ARN": meta.arn, "alias": "alias/x"}[form]
    _, wrapped = resolve(f"local:{ref}", keystore=store).generate_data_key(CTX)
    assert wrapped.key_id == meta.key_id


def test_wrap_data_key_seals_another_keyrings_data_key(store: KeyStore) -> None:
    ring = LocalKeyring("alias/x", keystore=store)
    data_key = bytearray(os.urandom(32))
    wrapped = ring.wrap_data_key(data_key, CTX)
    assert wrapped.key_id == ring.key_id()
    assert ring.unwrap_data_key(wrapped, CTX) == data_key


def test_unwrap_under_another_context_fails_naming_the_key(store: KeyStore) -> None:
    ring = LocalKeyring("alias/x", keystore=store)
    _, wrapped = ring.generate_data_key(CTX)
    with pytest.raises(KeyringError, match=f"{ring.key_id()}: wrong encryption context or corrupted ciphertext"):
        ring.unwrap_data_key(wrapped, {"app": "billing"})


def test_keyring_matches_only_its_own_local_key(store: KeyStore) -> None:
    other = store.create_key(alias="alias/other")
    ring = LocalKeyring("alias/x", keystore=store)
    _, mine = ring.generate_data_key({})
    _, theirs = LocalKeyring("alias/other", keystore=store).generate_data_key({})
    assert ring.matches(mine) and not ring.matches(theirs)
    assert theirs.key_id == other.key_id
    assert not ring.matches(WrappedKey("raw-aes", mine.key_id, mine.ciphertext))


def test_discovery_keyring_opens_any_local_key_without_being_told_which(store: KeyStore) -> None:
    store.create_key(alias="alias/y")
    discovery = LocalKeyring.discovery(keystore=store)
    for alias in ("alias/x", "alias/y"):
        plaintext, wrapped = LocalKeyring(alias, keystore=store).generate_data_key(CTX)
        assert discovery.matches(wrapped)
        assert discovery.unwrap_data_key(wrapped, CTX) == plaintext
    assert not discovery.matches(WrappedKey("raw-aes", "abc", b"x"))


def test_discovery_refuses_a_header_key_id_that_disagrees_with_the_blob(store: KeyStore) -> None:
    other = store.create_key().key_id
    _, wrapped = LocalKeyring("alias/x", keystore=store).generate_data_key({})
    relabelled = WrappedKey("local", other, wrapped.ciphertext)
    with pytest.raises(KeyringError, match=f"not the expected key {other}"):
        LocalKeyring.discovery(keystore=store).unwrap_data_key(relabelled, {})


def test_discovery_keyring_cannot_encrypt(store: KeyStore) -> None:
    discovery = LocalKeyring.discovery(keystore=store)
    with pytest.raises(UsageError, match="can only decrypt"):
        discovery.generate_data_key({})
    with pytest.raises(UsageError, match="can only decrypt"):
        discovery.wrap_data_key(bytes(32), {})


def test_discovery_without_a_keystore_reports_it_and_creates_nothing(ks_path: Path) -> None:
    wrapped = WrappedKey("local", str(uuid.uuid4()), b"\x01" * 81)
    with pytest.raises(KeyNotFoundError, match=f"no local keystore at {ks_path}"):
        LocalKeyring.discovery().unwrap_data_key(wrapped, {})
    assert not ks_path.exists()


def test_named_key_without_a_keystore_is_not_found_and_creates_nothing(ks_path: Path) -> None:
    ring = resolve("local:alias/x")
    with pytest.raises(KeyNotFoundError, match="no local keystore"):
        ring.generate_data_key({})
    assert not ks_path.exists()


def test_unknown_alias_is_reported_when_unwrapping(store: KeyStore) -> None:
    _, wrapped = LocalKeyring("alias/x", keystore=store).generate_data_key({})
    ring = LocalKeyring("alias/nope", keystore=store)
    assert ring.matches(wrapped)  # cannot tell without the key: let unwrap say why
    with pytest.raises(KeyNotFoundError, match="alias alias/nope does not exist"):
        ring.unwrap_data_key(wrapped, {})


@pytest.mark.parametrize("reference", ["local:", "local:prod", "local:alias/bad name", "local:arn:x"])
def test_malformed_local_references_are_usage_errors(reference: str) -> None:
    with pytest.raises(UsageError):
        resolve(reference)


def test_disabled_key_reports_its_state_through_the_keyring(store: KeyStore) -> None:
    ring = LocalKeyring("alias/x", keystore=store)
    _, wrapped = ring.generate_data_key({})
    store.disable_key("alias/x")
    with pytest.raises(KeyStateError, match="is Disabled"):
        ring.generate_data_key({})
    with pytest.raises(KeyringError, match="is Disabled"):
        MultiKeyring([ring]).unwrap([wrapped], {})


def test_default_keyring_creates_the_default_key_once_and_says_so_once(ks_path: Path) -> None:
    notices: list[str] = []
    first = default_keyring(notify=notices.append)
    second = default_keyring(notify=notices.append)
    assert first.key_id() == second.key_id()
    assert len(notices) == 1 and "alias/envelope/default" in notices[0] and str(ks_path) in notices[0]
    first.close()
    second.close()


def test_encrypting_under_the_existing_default_key_costs_one_kms_call(ks_path: Path) -> None:
    """Only GenerateDataKey is a call: finding the default key is a lookup, as resolving a named key is,
    so an encrypt commits (and syncs) one audited transaction, not two."""
    api.encrypt(b"first", keystore=str(ks_path))  # creates the key
    with KeyStore(ks_path) as ks:
        before = len(ks.audit_events())
    sealed = api.encrypt(b"second", keystore=str(ks_path))
    with KeyStore(ks_path) as ks:
        after = ks.audit_events()[before:]
    assert [e.operation for e in after] == ["GenerateDataKey"]
    assert api.decrypt(sealed, keystore=str(ks_path)) == b"second"


def test_files_encrypted_under_a_local_key_decrypt_with_the_discovery_keyring(store: KeyStore,
                                                                             ks_path: Path) -> None:
    data = os.urandom(5000)
    sealed = api.encrypt(data, keys=["local:alias/x"], context=CTX, keystore=str(ks_path))
    assert api.decrypt(sealed, context=CTX, keystore=str(ks_path)) == data
    assert api.decrypt(sealed, keys=["local:alias/x"], keystore=str(ks_path)) == data


def test_a_file_with_local_and_raw_keys_opens_with_either(store: KeyStore, ks_path: Path) -> None:
    raw = RawAesKeyring(os.urandom(32))
    sealed = api.encrypt(b"both", keys=["local:alias/x", raw], keystore=str(ks_path))
    assert api.decrypt(sealed, keys=[raw]) == b"both"
    assert api.decrypt(sealed, keystore=str(ks_path)) == b"both"


def test_unwraps_are_audited_as_kms_decrypt_calls(store: KeyStore) -> None:
    ring = LocalKeyring("alias/x", keystore=store)
    _, wrapped = ring.generate_data_key(CTX)
    ring.unwrap_data_key(wrapped, CTX)
    ops = [e.operation for e in store.audit_events(key=ring.key_id())]
    assert ops[-2:] == ["GenerateDataKey", "Decrypt"]

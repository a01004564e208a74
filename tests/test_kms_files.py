"""Files under local keys through the key lifecycle: rotation, disabling, deletion, rewrap."""

from __future__ import annotations

import io
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import envelope
from envelope.cli.main import EXIT_KEY, EXIT_OK, main
from envelope.exceptions import KeyringError
from envelope.format import read_header
from envelope.kms.crypto import blob as kms_blob
from envelope.kms.model.clock import ManualClock
from envelope.kms.store import KeyStore
from envelope.rewrap import rewrap_file


@pytest.fixture
def ks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keystore.db"
    monkeypatch.setenv("ENVELOPE_KEYSTORE", str(path))
    return path


@pytest.fixture
def sealed(tmp_path: Path, ks: Path) -> tuple[Path, bytes, str]:
    with KeyStore(ks) as store:
        key = store.create_key(alias="alias/files").key_id
    data = os.urandom(300_000)
    src = tmp_path / "data.bin"
    src.write_bytes(data)
    envelope.encrypt_file(src, keys=["local:alias/files"], context={"purpose": "test"}, chunk_size=65536)
    src.unlink()
    return tmp_path / "data.bin.envelope", data, key


def header_and_body(path: Path) -> tuple[bytes, bytes]:
    raw = path.read_bytes()
    size = read_header(io.BytesIO(raw))[0].size
    return raw[:size], raw[size:]


def backing_version(path: Path) -> int:
    with open(path, "rb") as fh:
        header = read_header(fh)[0]
    return kms_blob.parse(header.wrapped_keys[0].ciphertext).backing_version


def test_files_encrypted_before_a_rotation_decrypt_after_it(sealed: tuple[Path, bytes, str], ks: Path,
                                                           tmp_path: Path) -> None:
    enc, data, key = sealed
    with KeyStore(ks) as store:
        store.rotate_key_on_demand(key)
        store.rotate_key_on_demand(key)
    envelope.decrypt_file(enc, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    (tmp_path / "new.bin").write_bytes(b"after rotation")
    envelope.encrypt_file(tmp_path / "new.bin", keys=[f"local:{key}"])
    assert backing_version(tmp_path / "new.bin.envelope") == 3 and backing_version(enc) == 1


def test_files_survive_automatic_rotation_over_years(sealed: tuple[Path, bytes, str], ks: Path,
                                                     tmp_path: Path) -> None:
    enc, data, key = sealed
    clock = ManualClock(datetime.now(timezone.utc))
    with KeyStore(ks, clock=clock) as store:
        store.enable_key_rotation(key, 90)
        for _ in range(4):
            clock.advance(days=91)
            store.maintain()
        assert store.describe_key(key).backing_versions == 5
    envelope.decrypt_file(enc, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data


@pytest.mark.parametrize("state", ["Disabled", "PendingDeletion"])
def test_a_file_whose_key_is_not_enabled_fails_naming_the_key_and_state(
        sealed: tuple[Path, bytes, str], ks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        state: str) -> None:
    enc, data, key = sealed
    with KeyStore(ks) as store:
        store.disable_key(key) if state == "Disabled" else store.schedule_key_deletion(key, 7)
    with pytest.raises(KeyringError, match=f"key {key} is {state}"):
        envelope.decrypt_file(enc, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    code = main(["decrypt-file", str(enc), "-o", str(tmp_path / "cli.bin")])
    err = capsys.readouterr().err
    assert code == EXIT_KEY and err.count("\n") == 1 and key in err and state in err
    assert not (tmp_path / "cli.bin").exists()


def test_a_file_whose_key_was_deleted_fails_saying_so(sealed: tuple[Path, bytes, str], ks: Path,
                                                      tmp_path: Path) -> None:
    enc, _, key = sealed
    with KeyStore(ks, clock=ManualClock(datetime.now(timezone.utc) - timedelta(days=31))) as store:
        store.schedule_key_deletion(key, 30)
    with KeyStore(ks) as store:
        assert store.maintain().deleted == (key,)
    with pytest.raises(KeyringError, match=f"key {key} was deleted on"):
        envelope.decrypt_file(enc, tmp_path / "out.bin")


def test_rewrap_after_rotation_moves_the_data_key_to_the_newest_backing_key(
        sealed: tuple[Path, bytes, str], ks: Path, tmp_path: Path) -> None:
    enc, data, key = sealed
    _, body = header_and_body(enc)
    with KeyStore(ks) as store:
        store.rotate_key_on_demand(key)
    assert main(["rewrap", str(enc), "--key", "local:alias/files", "-q"]) == EXIT_OK
    assert backing_version(enc) == 2
    assert header_and_body(enc)[1] == body  # chunks untouched
    envelope.decrypt_file(enc, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data


def test_rewrap_to_a_new_key_then_retiring_the_old_one(sealed: tuple[Path, bytes, str], ks: Path,
                                                       tmp_path: Path) -> None:
    enc, data, old = sealed
    with KeyStore(ks) as store:
        new = store.create_key().key_id
        store.update_alias("alias/files", new)
    rewrap_file(enc, ["local:alias/files"])
    with KeyStore(ks) as store:
        store.disable_key(old)
    envelope.decrypt_file(enc, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    with open(enc, "rb") as fh:
        assert [w.key_id for w in read_header(fh)[0].wrapped_keys] == [new]

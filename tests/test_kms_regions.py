"""Multi-Region keys in local keystores: replicas share id and material, and decrypt without the primary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envelope.cli.main import EXIT_KEY, EXIT_OK, main
from envelope.exceptions import KeyringError, UsageError
from envelope.kms.crypto import blob as _blob
from envelope.kms.store import KeyStore


@pytest.fixture
def primary(tmp_path: Path) -> KeyStore:
    (tmp_path / "east").mkdir()
    with KeyStore(tmp_path / "east" / "keystore.db", region="us-east") as opened:
        yield opened


def replica_store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "east" / "keystore-eu-west.db", create=False)


def test_a_multi_region_key_has_an_mrk_id_and_its_region_in_the_arn(primary: KeyStore) -> None:
    meta = primary.create_key(multi_region=True)
    assert meta.key_id.startswith("mrk-") and len(meta.key_id) == 36
    assert (meta.multi_region, meta.multi_region_role, meta.primary_region) == (True, "PRIMARY", "us-east")
    assert meta.arn == f"arn:envelope:kms:us-east:{primary.keystore_id}:key/{meta.key_id}"
    blob = primary.encrypt(meta.key_id, b"x")
    assert _blob.parse(blob).key_id == meta.key_id
    assert primary.describe_key(meta.arn).key_id == meta.key_id
    assert primary.create_key().multi_region is False


def test_a_blob_from_the_primary_opens_in_the_replica_region_without_the_primary(primary: KeyStore,
                                                                                 tmp_path: Path) -> None:
    key = primary.create_key(multi_region=True, description="payroll").key_id
    blob = primary.encrypt(key, b"payroll", {"run": "2026-12"})
    meta = primary.replicate_key(key, "eu-west")
    assert (meta.key_id, meta.multi_region_role, meta.primary_region, meta.description) == \
        (key, "REPLICA", "us-east", "payroll")
    primary.close()
    for suffix in ("", ".key"):  # the primary's region is down: its keystore and key file are elsewhere
        (tmp_path / "east" / f"keystore.db{suffix}").rename(tmp_path / f"primary-is-gone.db{suffix}")
    with replica_store(tmp_path) as replica:
        assert replica.region == "eu-west"
        assert replica.decrypt(blob, {"run": "2026-12"})[0] == b"payroll"
        assert replica.verify() == []
        # The replica encrypts too, and its blobs are the primary's to open.
        back = replica.encrypt(key, b"from eu")
    with KeyStore(tmp_path / "primary-is-gone.db") as restored:
        assert restored.decrypt(back)[0] == b"from eu"


def test_rotation_happens_on_the_primary_and_replicating_again_carries_it(primary: KeyStore, tmp_path: Path) -> None:
    key = primary.create_key(multi_region=True).key_id
    primary.replicate_key(key, "eu-west")
    primary.rotate_key_on_demand(key)
    newer = primary.encrypt(key, b"after rotation")
    with replica_store(tmp_path) as replica:
        with pytest.raises(KeyringError, match="has not reached this replica: run keys replicate"):
            replica.decrypt(newer)
        with pytest.raises(UsageError, match="multi-Region replica"):
            replica.rotate_key_on_demand(key)
    assert primary.replicate_key(key, "eu-west").backing_versions == 2
    with replica_store(tmp_path) as replica:
        assert replica.decrypt(newer)[0] == b"after rotation"


def test_replicas_have_their_own_state_and_policy(primary: KeyStore, tmp_path: Path) -> None:
    key = primary.create_key(multi_region=True).key_id
    primary.replicate_key(key, "eu-west")
    blob = primary.encrypt(key, b"x")
    with replica_store(tmp_path) as replica:
        replica.disable_key(key)
    assert primary.decrypt(blob)[0] == b"x"  # disabling a replica leaves the primary alone


def test_only_primaries_replicate_and_only_to_other_regions(primary: KeyStore, tmp_path: Path) -> None:
    single = primary.create_key().key_id
    with pytest.raises(UsageError, match="not the primary of a multi-Region key"):
        primary.replicate_key(single, "eu-west")
    key = primary.create_key(multi_region=True).key_id
    with pytest.raises(UsageError, match="another region"):
        primary.replicate_key(key, "us-east")
    with pytest.raises(UsageError, match="invalid region name"):
        primary.replicate_key(key, "EU WEST")
    primary.replicate_key(key, "eu-west")
    with replica_store(tmp_path) as replica:
        with pytest.raises(UsageError, match="not the primary"):
            replica.replicate_key(key, "ap-south")
    with pytest.raises(KeyringError, match="is in region eu-west, not ap-south"):
        KeyStore(tmp_path / "east" / "keystore-eu-west.db", region="ap-south")


def test_cli_files_encrypted_in_one_region_decrypt_in_another(tmp_path: Path) -> None:
    east, west = tmp_path / "east.db", tmp_path / "west.db"
    assert main(["keys", "--keystore", str(east), "init", "--region", "us-east"]) == EXIT_OK
    assert main(["keys", "--keystore", str(east), "create", "--multi-region", "--alias", "alias/backup"]) == EXIT_OK
    with KeyStore(east) as store:
        key = store.resolve_key_id("alias/backup")
    assert main(["keys", "--keystore", str(east), "replicate", "alias/backup", "--region", "eu-west",
                 "--replica-keystore", str(west)]) == EXIT_OK
    src = tmp_path / "dump.sql"
    src.write_bytes(os.urandom(200_000))
    assert main(["encrypt-file", str(src), "--key", "local:alias/backup", "--keystore", str(east), "-q"]) == EXIT_OK
    east.rename(tmp_path / "offline.db")
    out = tmp_path / "restored.sql"
    assert main(["decrypt-file", str(src) + ".envelope", "-o", str(out), "--key", f"local:{key}",
                 "--keystore", str(west), "-q"]) == EXIT_OK
    assert out.read_bytes() == src.read_bytes()
    # An alias is per region: the replica has none until one is made there.
    assert main(["decrypt-file", str(src) + ".envelope", "-o", str(tmp_path / "x"), "--key", "local:alias/backup",
                 "--keystore", str(west)]) == EXIT_KEY

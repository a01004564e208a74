"""Imported key material (BYOK): the whole flow, each failure mode, expiry, deletion, and the OpenSSL steps."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from envelope.cli.main import EXIT_KEY, EXIT_OK, main
from envelope.exceptions import KeyringError, KeyStateError, UsageError
from envelope.kms.crypto import blob as _blob
from envelope.kms.model.clock import ManualClock
from envelope.kms.store import KeyStore
from keyfiles import write_key_file

SHA = {"RSAES_OAEP_SHA_256": hashes.SHA256, "RSAES_OAEP_SHA_1": hashes.SHA1}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> KeyStore:
    with KeyStore(tmp_path / "keystore.db", clock=clock) as opened:
        yield opened


def wrap(public_der: bytes, material: bytes, algorithm: str = "RSAES_OAEP_SHA_256") -> bytes:
    public = serialization.load_der_public_key(public_der)
    digest = SHA[algorithm]
    return public.encrypt(material, padding.OAEP(padding.MGF1(digest()), digest(), None))  # type: ignore[union-attr]


def import_into(store: KeyStore, key: str, material: bytes, algorithm: str = "RSAES_OAEP_SHA_256",
                spec: str = "RSA_2048", **kw: object) -> None:
    params = store.get_parameters_for_import(key, algorithm, spec)
    store.import_key_material(key, params.import_token, wrap(params.public_key, material, algorithm), **kw)


@pytest.mark.parametrize(("algorithm", "spec"), [("RSAES_OAEP_SHA_256", "RSA_2048"), ("RSAES_OAEP_SHA_1", "RSA_3072"),
                                                 ("RSAES_OAEP_SHA_256", "RSA_4096")])
def test_the_whole_flow_makes_a_usable_key(store: KeyStore, algorithm: str, spec: str) -> None:
    meta = store.create_key(origin="EXTERNAL", alias="alias/byok")
    assert (meta.state, meta.origin, meta.backing_versions) == ("PendingImport", "EXTERNAL", 0)
    with pytest.raises(KeyStateError, match="PendingImport"):
        store.encrypt("alias/byok", b"too early")
    import_into(store, "alias/byok", os.urandom(32), algorithm, spec)
    assert store.describe_key("alias/byok").state == "Enabled"
    blob = store.encrypt("alias/byok", b"mine", {"a": "b"})
    assert store.decrypt(blob, {"a": "b"})[0] == b"mine"
    assert store.verify() == []


def test_the_material_really_is_the_imported_key(store: KeyStore) -> None:
    """A blob sealed by the keystore opens with the imported key itself: nothing was substituted."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key_id = store.create_key(origin="EXTERNAL").key_id
    material = os.urandom(32)
    import_into(store, key_id, material)
    parsed = _blob.parse(store.encrypt(key_id, b"check", {"k": "v"}))
    assert AESGCM(material).decrypt(parsed.nonce, parsed.sealed, parsed.aad({"k": "v"})) == b"check"


def test_failure_modes_each_have_their_own_error(store: KeyStore, clock: ManualClock) -> None:
    key = store.create_key(origin="EXTERNAL").key_id
    other = store.create_key(origin="EXTERNAL").key_id
    material = os.urandom(32)
    params = store.get_parameters_for_import(key)
    wrapped = wrap(params.public_key, material)

    with pytest.raises(KeyringError, match="not an envelope import token"):
        store.import_key_material(key, b"junk", wrapped)
    forged = params.import_token[:-1] + bytes([params.import_token[-1] ^ 1])
    with pytest.raises(KeyringError, match="not issued by this keystore"):
        store.import_key_material(key, forged, wrapped)
    with pytest.raises(KeyringError, match=f"issued for key {key}, not {other}"):
        store.import_key_material(other, params.import_token, wrapped)
    stranger = store.get_parameters_for_import(key)  # another wrapping key
    with pytest.raises(KeyringError, match="does not unwrap with this import's wrapping key"):
        store.import_key_material(key, params.import_token, wrap(stranger.public_key, material))
    with pytest.raises(KeyringError, match="does not unwrap .* RSAES_OAEP_SHA_256"):
        store.import_key_material(key, params.import_token, wrap(params.public_key, material, "RSAES_OAEP_SHA_1"))
    with pytest.raises(KeyringError, match="must be a 256-bit"):
        store.import_key_material(key, params.import_token, wrap(params.public_key, os.urandom(16)))
    with pytest.raises(KeyringError, match="was not wrapped with this import's wrapping key"):
        store.import_key_material(key, params.import_token, wrapped[:-1])

    store.import_key_material(key, params.import_token, wrapped)
    with pytest.raises(KeyringError, match="already used"):
        store.import_key_material(key, params.import_token, wrapped)

    late = store.get_parameters_for_import(key)
    clock.advance(timedelta(hours=24, seconds=1))
    with pytest.raises(KeyringError, match="import token expired"):
        store.import_key_material(key, late.import_token, wrap(late.public_key, material))

    fresh = store.get_parameters_for_import(key)
    with pytest.raises(KeyringError, match="not the key material key .* had before"):
        store.import_key_material(key, fresh.import_token, wrap(fresh.public_key, os.urandom(32)))
    assert store.describe_key(key).state == "Enabled"  # no failure changed anything
    events = [(e.operation, e.ok) for e in store.audit_events(key=key, operation="ImportKeyMaterial")]
    # Nine refusals on this key (the tenth was made on the other key), one success.
    assert events.count(("ImportKeyMaterial", False)) == 9 and events.count(("ImportKeyMaterial", True)) == 1


def test_import_parameters_are_refused_for_generated_keys_and_bad_options(store: KeyStore) -> None:
    generated = store.create_key().key_id
    with pytest.raises(UsageError, match="needs a key created with origin EXTERNAL"):
        store.get_parameters_for_import(generated)
    external = store.create_key(origin="EXTERNAL").key_id
    with pytest.raises(UsageError, match="unknown wrapping algorithm"):
        store.get_parameters_for_import(external, "RSAES_PKCS1_V1_5")
    with pytest.raises(UsageError, match="unknown wrapping key spec"):
        store.get_parameters_for_import(external, wrapping_key_spec="RSA_1024")


def test_deleting_material_is_immediate_and_the_same_material_brings_the_key_back(store: KeyStore) -> None:
    key = store.create_key(origin="EXTERNAL").key_id
    material = os.urandom(32)
    import_into(store, key, material)
    blob = store.encrypt(key, b"before")
    store.delete_imported_key_material(key)
    assert store.describe_key(key).state == "PendingImport"
    with pytest.raises(KeyStateError):
        store.decrypt(blob)
    import_into(store, key, material)
    assert store.decrypt(blob)[0] == b"before"


def test_material_expires_at_valid_to_and_the_key_waits_for_it(store: KeyStore, clock: ManualClock) -> None:
    key = store.create_key(origin="EXTERNAL").key_id
    material = os.urandom(32)
    import_into(store, key, material, valid_to=clock.now() + timedelta(hours=1))
    blob = store.encrypt(key, b"short-lived")
    clock.advance(timedelta(hours=1, seconds=1))
    with pytest.raises(KeyStateError, match="PendingImport"):
        store.decrypt(blob)
    assert [e.operation for e in store.audit_events(key=key)][-2] == "DeleteImportedKeyMaterial"
    import_into(store, key, material)
    assert store.decrypt(blob)[0] == b"short-lived"
    with pytest.raises(UsageError, match="not in the future"):
        import_into(store, key, material, valid_to=clock.now() - timedelta(seconds=1))


def test_ciphertexts_are_not_portable_between_keys_with_the_same_material(store: KeyStore) -> None:
    material = os.urandom(32)
    a, b = store.create_key(origin="EXTERNAL").key_id, store.create_key(origin="EXTERNAL").key_id
    import_into(store, a, material)
    import_into(store, b, material)
    blob = store.encrypt(a, b"for a")
    moved = _blob.encode_prefix(b, 1) + blob[len(_blob.encode_prefix(a, 1)):]
    with pytest.raises(KeyringError, match="cannot decrypt"):
        store.decrypt(moved)


def test_keys_with_imported_material_do_not_rotate(store: KeyStore) -> None:
    key = store.create_key(origin="EXTERNAL").key_id
    import_into(store, key, os.urandom(32))
    with pytest.raises(UsageError, match="imported key material"):
        store.enable_key_rotation(key)
    with pytest.raises(UsageError, match="imported key material"):
        store.rotate_key_on_demand(key)


def test_cli_import_in_one_step_then_encrypt_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--origin", "EXTERNAL", "--alias", "alias/byok"]) == EXIT_OK
    raw = tmp_path / "raw.key"
    write_key_file(raw, os.urandom(32))
    assert main(["keys", "import", "alias/byok", "--raw-key", str(raw)]) == EXIT_OK
    src = tmp_path / "data"
    src.write_bytes(os.urandom(5000))
    assert main(["encrypt-file", str(src), "--key", "local:alias/byok", "-q"]) == EXIT_OK
    assert main(["keys", "delete-material", "alias/byok"]) == EXIT_OK
    capsys.readouterr()
    assert main(["decrypt-file", str(src) + ".envelope", "-o", str(tmp_path / "out")]) == EXIT_KEY
    assert "PendingImport" in capsys.readouterr().err
    assert main(["keys", "import", "alias/byok", "--raw-key", str(raw)]) == EXIT_OK
    assert main(["decrypt-file", str(src) + ".envelope", "-o", str(tmp_path / "out"), "-q"]) == EXIT_OK
    assert (tmp_path / "out").read_bytes() == src.read_bytes()
    write_key_file(tmp_path / "short.key", b"x" * 16)
    assert main(["keys", "import", "alias/byok", "--raw-key", str(tmp_path / "short.key")]) != EXIT_OK
    assert "32 raw bytes" in capsys.readouterr().err


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_raw_key_file_other_users_can_read_is_refused_and_nothing_is_imported(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int) -> None:
    """A key others could read is already exposed: it must not become a master key (as raw-aes: files)."""
    assert main(["keys", "create", "--origin", "EXTERNAL", "--alias", "alias/byok"]) == EXIT_OK
    raw = tmp_path / "raw.key"
    raw.write_bytes(os.urandom(32))
    raw.chmod(mode)
    capsys.readouterr()
    assert main(["keys", "import", "alias/byok", "--raw-key", str(raw)]) == EXIT_KEY
    err = capsys.readouterr().err
    assert f"chmod 600 {raw}" in err and len(err.strip().splitlines()) == 1
    with KeyStore() as store:
        assert store.describe_key("alias/byok").state == "PendingImport"
    raw.chmod(0o600)
    assert main(["keys", "import", "alias/byok", "--raw-key", str(raw)]) == EXIT_OK


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize(("algorithm", "md"), [("RSAES_OAEP_SHA_256", "sha256"), ("RSAES_OAEP_SHA_1", "sha1")])
def test_the_openssl_steps_in_the_readme_work(tmp_path: Path, algorithm: str, md: str) -> None:
    assert main(["keys", "create", "--origin", "EXTERNAL", "--alias", "alias/hsm"]) == EXIT_OK
    assert main(["keys", "import-parameters", "alias/hsm", "--wrapping-algorithm", algorithm,
                 "-o", str(tmp_path), "--json"]) == EXIT_OK
    material, wrapped = tmp_path / "PlaintextKeyMaterial.bin", tmp_path / "EncryptedKeyMaterial.bin"
    subprocess.run(["openssl", "rand", "-out", str(material), "32"], check=True)
    subprocess.run(["openssl", "pkeyutl", "-encrypt", "-in", str(material), "-out", str(wrapped),
                    "-inkey", str(tmp_path / "WrappingPublicKey.bin"), "-keyform", "DER", "-pubin",
                    "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", f"rsa_oaep_md:{md}",
                    "-pkeyopt", f"rsa_mgf1_md:{md}"], check=True)
    assert main(["keys", "import-material", "alias/hsm", "--material", str(wrapped),
                 "--token", str(tmp_path / "ImportToken.bin"), "--valid-to", "2099-01-01T00:00:00Z"]) == EXIT_OK
    with KeyStore() as store:
        parsed = _blob.parse(store.encrypt("alias/hsm", b"hsm"))
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    assert AESGCM(material.read_bytes()).decrypt(parsed.nonce, parsed.sealed, parsed.aad({})) == b"hsm"

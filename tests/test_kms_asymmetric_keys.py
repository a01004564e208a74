"""RSA, ECC and HMAC keys in the keystore, and files wrapped offline to an RSA public key."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from envelope.cli.main import EXIT_AUTH, EXIT_KEY, EXIT_OK, main
from envelope.exceptions import AccessDeniedError, KeyringError, UsageError
from envelope.kms.store import KeyStore


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    with KeyStore(tmp_path / "keystore.db") as opened:
        yield opened


def public(store: KeyStore, key: str):  # type: ignore[no-untyped-def]
    return serialization.load_der_public_key(store.get_public_key(key).public_key)


def test_rsa_signatures_verify_with_the_exported_public_key(store: KeyStore) -> None:
    key = store.create_key(key_spec="RSA_3072", key_usage="SIGN_VERIFY").key_id
    info = store.get_public_key(key)
    assert (info.key_spec, info.key_usage, info.encryption_algorithms) == ("RSA_3072", "SIGN_VERIFY", ())
    assert "RSASSA_PSS_SHA_256" in info.signing_algorithms
    message = b"release 1.4.2 checksums"
    pss = store.sign(key, message, "RSASSA_PSS_SHA_256")
    public(store, key).verify(pss, message, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    pkcs1 = store.sign(key, message, "RSASSA_PKCS1_V1_5_SHA_512")
    public(store, key).verify(pkcs1, message, padding.PKCS1v15(), hashes.SHA512())
    assert store.verify_signature(key, message, pss, "RSASSA_PSS_SHA_256")
    assert not store.verify_signature(key, message + b"!", pss, "RSASSA_PSS_SHA_256")
    digest = hashes.Hash(hashes.SHA256())
    digest.update(message)
    by_digest = store.sign(key, digest.finalize(), "RSASSA_PKCS1_V1_5_SHA_256", "DIGEST")
    assert store.verify_signature(key, message, by_digest, "RSASSA_PKCS1_V1_5_SHA_256")


def test_ecdsa_signatures_verify_with_the_exported_public_key(store: KeyStore) -> None:
    key = store.create_key(key_spec="ECC_NIST_P384").key_id
    signature = store.sign(key, b"m", "ECDSA_SHA_384")
    public(store, key).verify(signature, b"m", ec.ECDSA(hashes.SHA384()))
    with pytest.raises(InvalidSignature):
        public(store, key).verify(signature, b"n", ec.ECDSA(hashes.SHA384()))
    with pytest.raises(UsageError, match="ECDSA_SHA_384"):
        store.sign(key, b"m", "ECDSA_SHA_256")


def test_hmac_keys_make_and_check_macs(store: KeyStore) -> None:
    key = store.create_key(key_spec="HMAC_256").key_id
    mac = store.generate_mac(key, b"session=42", "HMAC_SHA_256")
    assert len(mac) == 32 and mac == store.generate_mac(key, b"session=42", "HMAC_SHA_256")
    assert store.verify_mac(key, b"session=42", mac, "HMAC_SHA_256")
    assert not store.verify_mac(key, b"session=43", mac, "HMAC_SHA_256")
    assert not store.verify_mac(key, b"session=42", bytes([mac[0] ^ 1]) + mac[1:], "HMAC_SHA_256")
    other = store.create_key(key_spec="HMAC_256").key_id
    assert store.generate_mac(other, b"session=42", "HMAC_SHA_256") != mac
    with pytest.raises(UsageError, match="has no public key|needs a key for"):
        store.get_public_key(key)


def test_rsa_encryption_keys_decrypt_what_was_encrypted_offline(store: KeyStore) -> None:
    key = store.create_key(key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT").key_id
    ciphertext = public(store, key).encrypt(b"offline secret", padding.OAEP(padding.MGF1(hashes.SHA1()),
                                                                            hashes.SHA1(), None))
    assert store.decrypt_asymmetric(key, ciphertext, "RSAES_OAEP_SHA_1") == b"offline secret"
    with pytest.raises(KeyringError, match="cannot decrypt"):
        store.decrypt_asymmetric(key, ciphertext, "RSAES_OAEP_SHA_256")
    sealed = store.encrypt_asymmetric(key, b"x" * 190, "RSAES_OAEP_SHA_256")
    assert store.decrypt_asymmetric(key, sealed, "RSAES_OAEP_SHA_256") == b"x" * 190
    with pytest.raises(UsageError):
        store.encrypt_asymmetric(key, b"x" * 191, "RSAES_OAEP_SHA_256")


def test_each_key_does_only_what_its_usage_says(store: KeyStore) -> None:
    signing = store.create_key(key_spec="RSA_2048", key_usage="SIGN_VERIFY").key_id
    encrypting = store.create_key(key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT").key_id
    symmetric = store.create_key().key_id
    with pytest.raises(UsageError, match="needs a key for ENCRYPT_DECRYPT"):
        store.encrypt_asymmetric(signing, b"x", "RSAES_OAEP_SHA_256")
    with pytest.raises(UsageError, match="needs a key for SIGN_VERIFY"):
        store.sign(encrypting, b"x", "RSASSA_PSS_SHA_256")
    with pytest.raises(UsageError, match="needs a symmetric key"):
        store.generate_data_key(encrypting)
    with pytest.raises(UsageError, match="needs a symmetric key"):
        store.encrypt(signing, b"x")
    with pytest.raises(UsageError, match="needs a key for"):
        store.sign(symmetric, b"x", "RSASSA_PSS_SHA_256")
    with pytest.raises(UsageError, match="symmetric keys"):
        store.enable_key_rotation(signing)
    with pytest.raises(UsageError, match="ENCRYPT_DECRYPT"):
        store.create_key(key_spec="ECC_NIST_P256", key_usage="ENCRYPT_DECRYPT")
    with pytest.raises(UsageError, match="only symmetric keys take imported material"):
        store.create_key(key_spec="RSA_2048", origin="EXTERNAL")
    assert store.verify() == []


def test_signing_is_governed_by_the_key_policy(tmp_path: Path) -> None:
    with KeyStore(tmp_path / "ks.db", principal="owner") as owner:
        key = owner.create_key(key_spec="ECC_NIST_P256", users=["signer"]).key_id
        signature = owner.sign(key, b"m", "ECDSA_SHA_256")
    with KeyStore(tmp_path / "ks.db", principal="signer") as signer:
        assert signer.verify_signature(key, b"m", signature, "ECDSA_SHA_256")
    with KeyStore(tmp_path / "ks.db", principal="stranger") as stranger:
        with pytest.raises(AccessDeniedError, match="may not Sign"):
            stranger.sign(key, b"m", "ECDSA_SHA_256")


# -- the command line, and files wrapped offline -----------------------------------------------------


def test_cli_sign_and_verify_with_openssl_checking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--spec", "ECC_NIST_P256", "--alias", "alias/release"]) == EXIT_OK
    message, signature, pem = tmp_path / "SHA256SUMS", tmp_path / "SHA256SUMS.sig", tmp_path / "release.pem"
    message.write_bytes(b"abc  envelope-1.0.tar.gz\n")
    assert main(["keys", "public-key", "alias/release", "-o", str(pem)]) == EXIT_OK
    assert pem.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert main(["keys", "sign", "alias/release", "--algorithm", "ECDSA_SHA_256", "--in", str(message),
                 "-o", str(signature)]) == EXIT_OK
    assert main(["keys", "verify", "alias/release", "--algorithm", "ECDSA_SHA_256", "--in", str(message),
                 "--signature", str(signature)]) == EXIT_OK
    tampered = tmp_path / "tampered"
    tampered.write_bytes(message.read_bytes() + b"x")
    assert main(["keys", "verify", "alias/release", "--algorithm", "ECDSA_SHA_256", "--in", str(tampered),
                 "--signature", str(signature)]) == EXIT_AUTH
    if shutil.which("openssl"):
        checked = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pem), "-signature", str(signature),
                                  str(message)], capture_output=True, text=True)
        assert checked.returncode == 0 and "Verified OK" in checked.stdout


def test_cli_mac_and_verify_mac(tmp_path: Path) -> None:
    assert main(["keys", "create", "--spec", "HMAC_512", "--alias", "alias/tokens"]) == EXIT_OK
    msg, mac = tmp_path / "msg", tmp_path / "mac"
    msg.write_bytes(b"user=7")
    assert main(["keys", "mac", "alias/tokens", "--algorithm", "HMAC_SHA_512", "--in", str(msg),
                 "-o", str(mac)]) == EXIT_OK
    assert len(mac.read_bytes()) == 64
    assert main(["keys", "verify-mac", "alias/tokens", "--algorithm", "HMAC_SHA_512", "--in", str(msg),
                 "--mac", str(mac)]) == EXIT_OK
    msg.write_bytes(b"user=8")
    assert main(["keys", "verify-mac", "alias/tokens", "--algorithm", "HMAC_SHA_512", "--in", str(msg),
                 "--mac", str(mac)]) == EXIT_AUTH


@pytest.fixture
def escrow(tmp_path: Path) -> Path:
    """An RSA key in the keystore and its public key exported to a PEM file, as a holder would hand it out."""
    assert main(["keys", "create", "--spec", "RSA_3072", "--usage", "ENCRYPT_DECRYPT",
                 "--alias", "alias/escrow"]) == EXIT_OK
    pem = tmp_path / "escrow.pem"
    assert main(["keys", "public-key", "alias/escrow", "-o", str(pem)]) == EXIT_OK
    return pem


def test_a_file_wrapped_offline_to_the_public_key_opens_with_the_kms_key(
        escrow: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    src, enc, out = tmp_path / "ledger.db", tmp_path / "ledger.db.envelope", tmp_path / "ledger.out"
    src.write_bytes(os.urandom(300_000))
    holder_keystore = os.environ["ENVELOPE_KEYSTORE"]
    # The sender has no keystore at all: only the PEM file.
    monkeypatch.setenv("ENVELOPE_KEYSTORE", str(tmp_path / "sender-has-none.db"))
    assert main(["encrypt-file", str(src), "-o", str(enc), "--key", f"rsa-public:{escrow}", "--context",
                 "site=berlin", "-q"]) == EXIT_OK
    assert not (tmp_path / "sender-has-none.db").exists()
    code = main(["decrypt-file", str(enc), "-o", str(out), "--key", f"rsa-public:{escrow}"])
    assert code == EXIT_KEY and "only the holder of its private key" in capsys.readouterr().err
    monkeypatch.setenv("ENVELOPE_KEYSTORE", holder_keystore)
    assert main(["decrypt-file", str(enc), "-o", str(out), "--key", "local:alias/escrow", "--context",
                 "site=berlin", "-q"]) == EXIT_OK
    assert out.read_bytes() == src.read_bytes()
    with KeyStore() as store:
        assert [e.operation for e in store.audit_events(operation="Decrypt")] == ["Decrypt"]


def test_the_local_keyring_encrypts_to_an_rsa_key_and_mixes_with_others(escrow: Path, tmp_path: Path,
                                                                        kek_file: Path) -> None:
    src = tmp_path / "a"
    src.write_bytes(os.urandom(10_000))
    assert main(["encrypt-file", str(src), "--key", "local:alias/escrow", "--key", f"raw-aes:{kek_file}",
                 "-q"]) == EXIT_OK
    for key in ("local:alias/escrow", f"raw-aes:{kek_file}"):
        out = tmp_path / "out"
        assert main(["decrypt-file", str(src) + ".envelope", "-o", str(out), "--key", key, "--force", "-q"]) == EXIT_OK
        assert out.read_bytes() == src.read_bytes()


def test_an_offline_wrap_is_bound_to_the_encryption_context(escrow: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    src, enc = tmp_path / "a", tmp_path / "a.envelope"
    src.write_bytes(os.urandom(1000))
    assert main(["encrypt-file", str(src), "-o", str(enc), "--key", f"rsa-public:{escrow}", "--context", "t=blue",
                 "-q"]) == EXIT_OK
    blob = bytearray(enc.read_bytes())
    at = blob.index(b"blue")
    blob[at:at + 4] = b"bleu"
    enc.write_bytes(blob)
    capsys.readouterr()
    assert main(["decrypt-file", str(enc), "-o", str(tmp_path / "out"), "--key", "local:alias/escrow"]) == EXIT_KEY
    assert "wrong encryption context" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("content", "needle"), [(b"not a key", "not a PEM or DER public key"),
                                                 (None, "does not exist")])
def test_bad_public_key_files_are_named(tmp_path: Path, content: bytes | None, needle: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    pem = tmp_path / "k.pem"
    if content is not None:
        pem.write_bytes(content)
    (tmp_path / "a").write_bytes(b"x")
    assert main(["encrypt-file", str(tmp_path / "a"), "--key", f"rsa-public:{pem}"]) == EXIT_KEY
    assert needle in capsys.readouterr().err


def test_a_small_or_non_rsa_public_key_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pem = tmp_path / "ec.pem"
    pem.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp_path / "a").write_bytes(b"x")
    assert main(["encrypt-file", str(tmp_path / "a"), "--key", f"rsa-public:{pem}"]) == EXIT_KEY
    assert "not an RSA public key" in capsys.readouterr().err


@pytest.mark.parametrize(("spec", "size"), [("RSA_2048", 317), ("RSA_3072", 445), ("RSA_4096", 573)])
def test_the_rsa_oaep_blob_has_the_specified_layout(store: KeyStore, spec: str, size: int) -> None:
    from envelope.keyrings import rsa_public

    key = store.create_key(key_spec=spec, key_usage="ENCRYPT_DECRYPT").key_id
    der = store.get_public_key(key).public_key
    ring = rsa_public.RsaPublicKeyring(rsa_public.load_public_key(der, "k"))
    data_key = os.urandom(32)
    wrapped = ring.wrap_data_key(data_key, {"a": "b"})
    assert (wrapped.provider, wrapped.key_id) == ("rsa-oaep-sha256", "sha256:" + hashlib.sha256(der).hexdigest())
    assert len(wrapped.ciphertext) == size and wrapped.ciphertext[:1] == b"\x01"

    def kms_decrypt(part: bytes) -> bytearray:
        return store.decrypt_asymmetric(key, part, "RSAES_OAEP_SHA_256")

    assert rsa_public.open_blob(kms_decrypt, wrapped.key_id, wrapped.ciphertext, {"a": "b"}) == data_key
    for bad in (wrapped.ciphertext[:-1], b"\x02" + wrapped.ciphertext[1:]):
        with pytest.raises(KeyringError, match="malformed"):
            rsa_public.open_blob(kms_decrypt, wrapped.key_id, bad, {"a": "b"})
    with pytest.raises(KeyringError, match="failed authentication"):
        rsa_public.open_blob(kms_decrypt, wrapped.key_id, wrapped.ciphertext, {"a": "c"})

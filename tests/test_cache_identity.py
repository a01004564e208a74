"""A data-key cache shared by several identities never hands one of them what only another may unwrap.

The cache is partitioned by the master keys' references, the encryption context
and (to decrypt) the wrapped keys; a reference names a key, not who calls with
it.  So each keyring also names the identity behind it (the local keystore and
principal, the AWS credentials and region, the raw key itself), and a cache hit
needs the same identity as the miss that filled it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import envelope
from envelope.cache import CacheLimits, CachingKeyring, DataKeyCache
from envelope.exceptions import EnvelopeError
from envelope.keyrings.base import Keyring, MultiKeyring
from envelope.keyrings.local import LocalKeyring
from envelope.keyrings.raw_aes import RawAesKeyring
from envelope.keyrings.registry import resolve
from envelope.kms.store import KeyStore
from keyfiles import write_key_file

CTX = {"dept": "finance"}


def new_cache() -> DataKeyCache:
    return DataKeyCache(CacheLimits(max_age=600))


@pytest.fixture
def keystore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A keystore owned by admin with one key, alias/reports, that alice may use and bob may not."""
    path = tmp_path / "keystore.db"
    monkeypatch.setenv("ENVELOPE_KEYSTORE", str(path))
    with KeyStore(path, principal="admin", create=True) as admin:
        admin.create_key(alias="alias/reports", admins=["admin"], users=["alice"])
    return path


def test_bob_cannot_decrypt_through_alices_cached_data_key(keystore: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    src, enc = tmp_path / "r.csv", tmp_path / "r.csv.envelope"
    src.write_bytes(os.urandom(3000))
    monkeypatch.setenv("ENVELOPE_PRINCIPAL", "alice")
    envelope.encrypt_file(src, enc, keys=["local:alias/reports"], context=CTX)
    cache = new_cache()
    envelope.decrypt_file(enc, tmp_path / "alice.csv", keys=["local:alias/reports"], cache=cache)

    monkeypatch.setenv("ENVELOPE_PRINCIPAL", "bob")
    with pytest.raises(EnvelopeError, match="local:user/bob may not Decrypt"):
        envelope.decrypt_file(enc, tmp_path / "bob.csv", keys=["local:alias/reports"])
    with pytest.raises(EnvelopeError, match="local:user/bob may not Decrypt"):
        envelope.decrypt_file(enc, tmp_path / "bob.csv", keys=["local:alias/reports"], cache=cache)
    assert not (tmp_path / "bob.csv").exists()
    # Any key of the keystore (no key named) is no way round it either.
    with pytest.raises(EnvelopeError, match="local:user/bob may not Decrypt"):
        envelope.decrypt_file(enc, tmp_path / "bob.csv", cache=cache)


def test_bob_cannot_encrypt_with_alices_cached_data_key(keystore: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hit would give bob the data key of alice's files, and files under a key he may not use."""
    cache = new_cache()
    monkeypatch.setenv("ENVELOPE_PRINCIPAL", "alice")
    envelope.encrypt(b"alice's", keys=["local:alias/reports"], context=CTX, cache=cache)
    monkeypatch.setenv("ENVELOPE_PRINCIPAL", "bob")
    with pytest.raises(EnvelopeError, match="local:user/bob may not GenerateDataKey"):
        envelope.encrypt(b"bob's", keys=["local:alias/reports"], context=CTX, cache=cache)


def test_keystores_opened_as_different_principals_do_not_share_entries(keystore: Path) -> None:
    cache = new_cache()
    with KeyStore(keystore, principal="alice") as alice, KeyStore(keystore, principal="bob") as bob:
        blob = envelope.encrypt(b"x", keys=[LocalKeyring("alias/reports", keystore=alice)], context=CTX)
        assert envelope.decrypt(blob, keys=[LocalKeyring("alias/reports", keystore=alice)], cache=cache) == b"x"
        with pytest.raises(EnvelopeError, match="may not Decrypt"):
            envelope.decrypt(blob, keys=[LocalKeyring("alias/reports", keystore=bob)], cache=cache)


# -- the pattern: every keyring type's partition follows its identity --------------------------------


def _hits_after(first: Keyring, second: Callable[[], Keyring], between: Callable[[], None] = lambda: None) -> int:
    """Encrypt through *first*, call *between*, then through a keyring *second* makes, with one cache: the hits."""
    cache = new_cache()
    CachingKeyring(MultiKeyring([first]), cache).generate_data_key(CTX, 10).clear()
    between()
    CachingKeyring(MultiKeyring([second()]), cache).generate_data_key(CTX, 10).clear()
    return cache.stats.encrypt_hits


def _raw_aes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Callable[[], Keyring], Callable[[], None]]:
    path = tmp_path / "kek"
    write_key_file(path, os.urandom(32))
    return (lambda: resolve(f"raw-aes:{path}")), (lambda: path.write_bytes(os.urandom(32)))


def _rsa_public(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Callable[[], Keyring],
                                                                          Callable[[], None]]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    path = tmp_path / "pub.pem"

    def new_key() -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        path.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    new_key()
    return (lambda: resolve(f"rsa-public:{path}")), new_key


def _local_principal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Callable[[], Keyring],
                                                                               Callable[[], None]]:
    path = tmp_path / "ks.db"
    monkeypatch.setenv("ENVELOPE_KEYSTORE", str(path))
    with KeyStore(path, principal="admin", create=True) as admin:
        admin.create_key(alias="alias/k", users=["alice", "bob"])
    monkeypatch.setenv("ENVELOPE_PRINCIPAL", "alice")
    return (lambda: resolve("local:alias/k")), (lambda: monkeypatch.setenv("ENVELOPE_PRINCIPAL", "bob"))


def _local_keystore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Callable[[], Keyring],
                                                                              Callable[[], None]]:
    """The same reference in another keystore (``local:alias/k`` names a key per keystore)."""
    stores = [tmp_path / "one.db", tmp_path / "two.db"]
    for path in stores:
        with KeyStore(path, principal="admin", create=True) as admin:
            admin.create_key(alias="alias/k")
    monkeypatch.setenv("ENVELOPE_PRINCIPAL", "admin")
    monkeypatch.setenv("ENVELOPE_KEYSTORE", str(stores[0]))
    return (lambda: resolve("local:alias/k")), (lambda: monkeypatch.setenv("ENVELOPE_KEYSTORE", str(stores[1])))


KINDS: dict[str, Callable[[Path, pytest.MonkeyPatch], tuple[Callable[[], Keyring], Callable[[], None]]]] = {
    "raw-aes: another key in the same file": _raw_aes,
    "rsa-public: another public key in the same file": _rsa_public,
    "local: another principal": _local_principal,
    "local: another keystore": _local_keystore,
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_keyring_shares_cache_entries_only_with_the_same_identity(kind: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    make, change_identity = KINDS[kind](tmp_path, monkeypatch)
    assert _hits_after(make(), make) == 1                     # same identity, a new keyring object: a hit
    assert _hits_after(make(), make, change_identity) == 0


def test_a_keyring_of_unknown_kind_shares_entries_with_no_other_object() -> None:
    """A plugin's keyring cannot say who it acts as: each object is its own partition."""

    class Plugin(RawAesKeyring):
        def cache_identity(self) -> tuple[str, ...]:  # as a keyring written before the method existed
            return Keyring.cache_identity(self)

    key = os.urandom(32)
    one = Plugin(key)
    assert _hits_after(one, lambda: one) == 1
    assert _hits_after(one, lambda: Plugin(key)) == 0


# -- AWS KMS: credentials, region, profile, endpoint ---------------------------------------------------

AWS_IDENTITY_CHANGES: dict[str, dict[str, str]] = {
    "another access key": {"AWS_ACCESS_KEY_ID": "AKIDOTHERUSER"},
    "another region": {"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "eu-central-1"},
}


@pytest.mark.parametrize("change", sorted(AWS_IDENTITY_CHANGES))
@pytest.mark.parametrize("scheme", ["aws-kms", "aws-kms-discovery"])
def test_aws_keyrings_share_cache_entries_only_with_the_same_credentials_and_region(
        aws_env: Any, monkeypatch: pytest.MonkeyPatch, scheme: str, change: str) -> None:
    import boto3

    kms = boto3.client("kms")
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    alias = "alias/cache-" + os.urandom(4).hex()
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    # Decrypt through a cache: discovery only decrypts.
    blob = envelope.encrypt(b"x", keys=[f"aws-kms:{arn}"], context=CTX)
    ref = f"aws-kms:{alias}" if scheme == "aws-kms" else "aws-kms-discovery:"

    cache = new_cache()
    assert envelope.decrypt(blob, keys=[ref], cache=cache) == b"x"
    assert envelope.decrypt(blob, keys=[ref], cache=cache) == b"x"
    assert cache.stats.decrypt_hits == 1                   # the same identity, a new keyring: a hit
    for name, value in AWS_IDENTITY_CHANGES[change].items():
        monkeypatch.setenv(name, value)
    before = len(aws_env.operations("Decrypt"))
    try:
        envelope.decrypt(blob, keys=[ref], cache=cache)
    except EnvelopeError:
        pass                                               # another region has no such key: a refusal is right
    assert cache.stats.decrypt_hits == 1
    assert len(aws_env.operations("Decrypt", "DescribeKey")) > before


def test_aws_identity_names_no_secret(aws_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SECRETSECRETSECRET")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "TOKENTOKENTOKEN")
    for ref in ("aws-kms:alias/x", "aws-kms-discovery:"):
        identity = " ".join(resolve(ref).cache_identity())
        assert "testing" in identity and "SECRET" not in identity and "TOKEN" not in identity


def test_raw_aes_identity_is_no_key_material(tmp_path: Path) -> None:
    key = os.urandom(32)
    identity = " ".join(RawAesKeyring(key).cache_identity())
    assert key.hex() not in identity and key.hex()[:16] not in identity


@pytest.mark.parametrize("scheme", ["aws-kms:alias/x", "aws-kms-discovery:"])
def test_aws_identity_follows_the_profile_and_the_endpoint(aws_env: Any, monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path, scheme: str) -> None:
    config = tmp_path / "config"
    config.write_text("[profile other]\nregion = eu-west-1\n")
    credentials = tmp_path / "credentials"
    credentials.write_text("[other]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    base = resolve(scheme).cache_identity()
    assert resolve(scheme).cache_identity() == base
    assert resolve(scheme, profile="other").cache_identity() != base          # same key id, another profile
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:9")
    assert resolve(scheme).cache_identity() != base

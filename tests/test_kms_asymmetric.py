"""Asymmetric and HMAC key operations, checked against pyca/cryptography and the stdlib directly.

Every signature the module makes is verified by cryptography from the exported
public key, and every signature cryptography makes is verified by the module, so
the two agree on padding, PSS salt length, hashing and DER encoding rather than
merely agreeing with themselves.
"""

from __future__ import annotations

import hashlib
import hmac as std_hmac
import os
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from envelope.exceptions import KeyringError, UsageError
from envelope.kms.crypto import asymmetric

Material = Callable[[str], bytearray]

HASH_BY_BITS: dict[str, type[hashes.HashAlgorithm]] = {
    "1": hashes.SHA1, "256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512,
}
HASHLIB_BY_BITS = {"1": "sha1", "256": "sha256", "384": "sha384", "512": "sha512"}

RSA_SIGNING = [f"RSASSA_{s}_SHA_{b}" for s in ("PSS", "PKCS1_V1_5") for b in (256, 384, 512)]
SIGNING_CASES = ([("RSA_2048", a) for a in RSA_SIGNING]
                 + [("ECC_NIST_P256", "ECDSA_SHA_256"), ("ECC_NIST_P384", "ECDSA_SHA_384")])
OAEP = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
HMAC_CASES = [("HMAC_256", "HMAC_SHA_256", 32), ("HMAC_384", "HMAC_SHA_384", 48), ("HMAC_512", "HMAC_SHA_512", 64)]
MESSAGE = b"the quick brown fox jumps over the lazy dog"


@pytest.fixture(scope="module")
def material() -> Material:
    """Private material per key spec, generated once per module (RSA_4096 is slow) and only when asked for."""
    cache: dict[str, bytearray] = {}

    def get(key_spec: str) -> bytearray:
        if key_spec not in cache:
            cache[key_spec] = asymmetric.generate(key_spec)
        return cache[key_spec]

    return get


def bits(algorithm: str) -> str:
    return algorithm.rsplit("_", 1)[1]


def hash_of(algorithm: str) -> hashes.HashAlgorithm:
    return HASH_BY_BITS[bits(algorithm)]()


def digest(algorithm: str, message: bytes) -> bytes:
    return hashlib.new(HASHLIB_BY_BITS[bits(algorithm)], message).digest()


def independent_verify(public_der: bytes, message: bytes, signature: bytes, algorithm: str) -> None:
    """Verify with cryptography alone, as AWS documents the algorithms; raises InvalidSignature."""
    key = serialization.load_der_public_key(public_der)
    h = hash_of(algorithm)
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, message, ec.ECDSA(h))
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(signature, message, independent_padding(algorithm), h)


def independent_sign(private: bytes | bytearray, message: bytes, algorithm: str) -> bytes:
    key = serialization.load_der_private_key(bytes(private), password=None)
    h = hash_of(algorithm)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(message, ec.ECDSA(h))
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.sign(message, independent_padding(algorithm), h)


def independent_padding(algorithm: str) -> padding.AsymmetricPadding:
    if "PSS" in algorithm:  # AWS KMS: MGF1 with the same hash, salt as long as the digest
        h = hash_of(algorithm)
        return padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
    return padding.PKCS1v15()


def flip(data: bytes, index: int = 0) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


# -- key specs and generation ---------------------------------------------------------------------


def test_check_spec_defaults_to_the_first_allowed_usage_and_accepts_each_allowed_one() -> None:
    assert asymmetric.check_spec("RSA_2048", None) == "ENCRYPT_DECRYPT"
    assert asymmetric.check_spec("RSA_4096", "SIGN_VERIFY") == "SIGN_VERIFY"
    assert asymmetric.check_spec("ECC_NIST_P384", None) == "SIGN_VERIFY"
    assert asymmetric.check_spec("HMAC_512", None) == "GENERATE_VERIFY_MAC"
    assert "SYMMETRIC_DEFAULT" not in asymmetric.KEY_SPECS


@pytest.mark.parametrize(("key_spec", "usage", "allowed"), [
    ("ECC_NIST_P256", "ENCRYPT_DECRYPT", "SIGN_VERIFY"),
    ("ECC_NIST_P384", "ENCRYPT_DECRYPT", "SIGN_VERIFY"),
    ("HMAC_256", "SIGN_VERIFY", "GENERATE_VERIFY_MAC"),
    ("RSA_2048", "GENERATE_VERIFY_MAC", "ENCRYPT_DECRYPT or SIGN_VERIFY"),
])
def test_check_spec_refuses_a_usage_the_spec_lacks_and_names_the_allowed_ones(key_spec: str, usage: str,
                                                                              allowed: str) -> None:
    with pytest.raises(UsageError, match=allowed):
        asymmetric.check_spec(key_spec, usage)


def test_check_spec_refuses_an_unknown_spec_and_lists_the_supported_ones() -> None:
    with pytest.raises(UsageError, match="RSA_2048.*HMAC_512"):
        asymmetric.check_spec("RSA_1024", None)
    with pytest.raises(UsageError):
        asymmetric.generate("SYMMETRIC_DEFAULT")


@pytest.mark.parametrize(("key_spec", "size"), [("RSA_2048", 2048), ("RSA_3072", 3072), ("RSA_4096", 4096)])
def test_generated_rsa_material_is_unencrypted_pkcs8_der_with_exponent_65537(material: Material, key_spec: str,
                                                                             size: int) -> None:
    private = material(key_spec)
    assert isinstance(private, bytearray)
    key = serialization.load_der_private_key(bytes(private), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == size and key.public_key().public_numbers().e == 65537
    assert bytes(private) == key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption())


@pytest.mark.parametrize(("key_spec", "curve"), [("ECC_NIST_P256", ec.SECP256R1), ("ECC_NIST_P384", ec.SECP384R1)])
def test_generated_ecc_material_is_pkcs8_der_on_the_named_curve(material: Material, key_spec: str,
                                                                curve: type[ec.EllipticCurve]) -> None:
    key = serialization.load_der_private_key(bytes(material(key_spec)), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, curve)


@pytest.mark.parametrize(("key_spec", "_algorithm", "size"), HMAC_CASES)
def test_generated_hmac_keys_are_fresh_random_bytes_of_the_hash_size(key_spec: str, _algorithm: str,
                                                                     size: int) -> None:
    first, second = asymmetric.generate(key_spec), asymmetric.generate(key_spec)
    assert isinstance(first, bytearray) and len(first) == len(second) == size and first != second


@pytest.mark.parametrize("key_spec", ["RSA_2048", "ECC_NIST_P256", "ECC_NIST_P384"])
def test_public_key_is_the_subject_public_key_info_der_of_the_private_key(material: Material, key_spec: str) -> None:
    private = serialization.load_der_private_key(bytes(material(key_spec)), password=None)
    expected = private.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    assert asymmetric.public_key(key_spec, material(key_spec)) == expected


def test_public_key_is_refused_for_hmac_and_for_material_of_another_spec(material: Material) -> None:
    with pytest.raises(UsageError, match="HMAC"):
        asymmetric.public_key("HMAC_256", asymmetric.generate("HMAC_256"))
    with pytest.raises(UsageError, match="not a RSA_3072"):
        asymmetric.public_key("RSA_3072", material("RSA_2048"))
    with pytest.raises(UsageError, match="not a ECC_NIST_P384"):
        asymmetric.public_key("ECC_NIST_P384", material("ECC_NIST_P256"))
    with pytest.raises(UsageError):
        asymmetric.public_key("RSA_2048", bytearray(b"not der"))


def test_algorithm_lists_follow_the_spec_and_usage() -> None:
    for key_spec in ("RSA_2048", "RSA_3072", "RSA_4096"):
        assert asymmetric.encryption_algorithms(key_spec, "ENCRYPT_DECRYPT") == tuple(OAEP)
        assert asymmetric.encryption_algorithms(key_spec, "SIGN_VERIFY") == ()
        assert asymmetric.signing_algorithms(key_spec, "SIGN_VERIFY") == tuple(RSA_SIGNING)
        assert asymmetric.signing_algorithms(key_spec, "ENCRYPT_DECRYPT") == ()
    assert asymmetric.signing_algorithms("ECC_NIST_P256", "SIGN_VERIFY") == ("ECDSA_SHA_256",)
    assert asymmetric.signing_algorithms("ECC_NIST_P384", "SIGN_VERIFY") == ("ECDSA_SHA_384",)
    assert asymmetric.encryption_algorithms("ECC_NIST_P256", "SIGN_VERIFY") == ()
    for key_spec, algorithm, _ in HMAC_CASES:
        assert asymmetric.mac_algorithms(key_spec) == (algorithm,)
        assert asymmetric.signing_algorithms(key_spec, "GENERATE_VERIFY_MAC") == ()
    assert asymmetric.mac_algorithms("RSA_2048") == ()


# -- signing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key_spec", "algorithm"), SIGNING_CASES)
def test_module_signature_verifies_with_cryptography_from_the_exported_public_key(
        material: Material, key_spec: str, algorithm: str) -> None:
    public = asymmetric.public_key(key_spec, material(key_spec))
    signature = asymmetric.sign(key_spec, material(key_spec), MESSAGE, "RAW", algorithm)
    independent_verify(public, MESSAGE, signature, algorithm)


@pytest.mark.parametrize(("key_spec", "algorithm"), SIGNING_CASES)
def test_cryptography_signature_verifies_with_the_module(material: Material, key_spec: str, algorithm: str) -> None:
    public = asymmetric.public_key(key_spec, material(key_spec))
    signature = independent_sign(material(key_spec), MESSAGE, algorithm)
    assert asymmetric.verify(key_spec, public, MESSAGE, "RAW", signature, algorithm)
    assert asymmetric.verify(key_spec, public, digest(algorithm, MESSAGE), "DIGEST", signature, algorithm)


@pytest.mark.parametrize(("key_spec", "algorithm"), SIGNING_CASES)
def test_signing_the_digest_of_a_message_equals_signing_the_raw_message(material: Material, key_spec: str,
                                                                         algorithm: str) -> None:
    private, public = material(key_spec), asymmetric.public_key(key_spec, material(key_spec))
    by_digest = asymmetric.sign(key_spec, private, digest(algorithm, MESSAGE), "DIGEST", algorithm)
    assert asymmetric.verify(key_spec, public, MESSAGE, "RAW", by_digest, algorithm)
    independent_verify(public, MESSAGE, by_digest, algorithm)
    by_raw = asymmetric.sign(key_spec, private, MESSAGE, "RAW", algorithm)
    assert asymmetric.verify(key_spec, public, digest(algorithm, MESSAGE), "DIGEST", by_raw, algorithm)


@pytest.mark.parametrize(("key_spec", "algorithm"), SIGNING_CASES)
def test_a_flipped_bit_in_message_or_signature_verifies_false(material: Material, key_spec: str,
                                                              algorithm: str) -> None:
    public = asymmetric.public_key(key_spec, material(key_spec))
    signature = asymmetric.sign(key_spec, material(key_spec), MESSAGE, "RAW", algorithm)
    assert asymmetric.verify(key_spec, public, MESSAGE, "RAW", signature, algorithm)
    assert not asymmetric.verify(key_spec, public, flip(MESSAGE), "RAW", signature, algorithm)
    assert not asymmetric.verify(key_spec, public, flip(digest(algorithm, MESSAGE)), "DIGEST", signature, algorithm)
    for index in (0, len(signature) // 2, len(signature) - 1):
        assert not asymmetric.verify(key_spec, public, MESSAGE, "RAW", flip(signature, index), algorithm)


@pytest.mark.parametrize(("key_spec", "algorithm"), SIGNING_CASES)
def test_malformed_signatures_verify_false_without_raising(material: Material, key_spec: str,
                                                           algorithm: str) -> None:
    public = asymmetric.public_key(key_spec, material(key_spec))
    signature = asymmetric.sign(key_spec, material(key_spec), MESSAGE, "RAW", algorithm)
    for bad in (b"", b"\x00", signature[:-1], signature + b"\x00", os.urandom(len(signature))):
        assert not asymmetric.verify(key_spec, public, MESSAGE, "RAW", bad, algorithm)


def test_a_signature_by_another_key_verifies_false(material: Material) -> None:
    other = asymmetric.generate("ECC_NIST_P256")
    signature = asymmetric.sign("ECC_NIST_P256", other, MESSAGE, "RAW", "ECDSA_SHA_256")
    public = asymmetric.public_key("ECC_NIST_P256", material("ECC_NIST_P256"))
    assert not asymmetric.verify("ECC_NIST_P256", public, MESSAGE, "RAW", signature, "ECDSA_SHA_256")


@pytest.mark.parametrize(("key_spec", "algorithm", "size"), [("ECC_NIST_P256", "ECDSA_SHA_256", 256),
                                                             ("ECC_NIST_P384", "ECDSA_SHA_384", 384)])
def test_ecdsa_signatures_are_der_encoded(material: Material, key_spec: str, algorithm: str, size: int) -> None:
    signature = asymmetric.sign(key_spec, material(key_spec), MESSAGE, "RAW", algorithm)
    r, s = decode_dss_signature(signature)
    assert 0 < r < 2 ** size and 0 < s < 2 ** size


@pytest.mark.parametrize("key_spec", ["RSA_3072", "RSA_4096"])
@pytest.mark.parametrize("algorithm", ["RSASSA_PSS_SHA_512", "RSASSA_PKCS1_V1_5_SHA_256"])
def test_larger_rsa_keys_sign_and_verify_both_ways(material: Material, key_spec: str, algorithm: str) -> None:
    private, public = material(key_spec), asymmetric.public_key(key_spec, material(key_spec))
    signature = asymmetric.sign(key_spec, private, MESSAGE, "RAW", algorithm)
    assert len(signature) == int(key_spec[4:]) // 8
    independent_verify(public, MESSAGE, signature, algorithm)
    assert asymmetric.verify(key_spec, public, MESSAGE, "RAW", independent_sign(private, MESSAGE, algorithm),
                             algorithm)
    assert not asymmetric.verify(key_spec, public, MESSAGE, "RAW", flip(signature, 7), algorithm)


@pytest.mark.parametrize(("key_spec", "algorithm"), [
    ("ECC_NIST_P256", "ECDSA_SHA_384"),
    ("ECC_NIST_P384", "ECDSA_SHA_256"),
    ("ECC_NIST_P256", "RSASSA_PSS_SHA_256"),
    ("RSA_2048", "ECDSA_SHA_256"),
    ("RSA_2048", "RSAES_OAEP_SHA_256"),
    ("RSA_2048", "RSASSA_PSS_SHA_1"),
    ("HMAC_256", "HMAC_SHA_256"),
])
def test_signing_algorithm_not_allowed_for_the_spec_is_refused(material: Material, key_spec: str,
                                                               algorithm: str) -> None:
    private = material("RSA_2048") if key_spec.startswith("HMAC") else material(key_spec)
    with pytest.raises(UsageError):
        asymmetric.sign(key_spec, private, MESSAGE, "RAW", algorithm)
    with pytest.raises(UsageError):
        asymmetric.verify(key_spec, b"", MESSAGE, "RAW", b"sig", algorithm)


@pytest.mark.parametrize(("key_spec", "algorithm"), SIGNING_CASES)
def test_a_digest_of_the_wrong_length_is_refused(material: Material, key_spec: str, algorithm: str) -> None:
    public = asymmetric.public_key(key_spec, material(key_spec))
    good = digest(algorithm, MESSAGE)
    for bad in (good[:-1], good + b"\x00", hashlib.sha1(MESSAGE).digest()):
        with pytest.raises(UsageError, match="DIGEST"):
            asymmetric.sign(key_spec, material(key_spec), bad, "DIGEST", algorithm)
        with pytest.raises(UsageError, match="DIGEST"):
            asymmetric.verify(key_spec, public, bad, "DIGEST", b"sig", algorithm)


def test_raw_messages_of_1_to_4096_bytes_are_signed_and_others_refused(material: Material) -> None:
    private = material("ECC_NIST_P256")
    public = asymmetric.public_key("ECC_NIST_P256", private)
    for size in (1, 4096):
        message = os.urandom(size)
        signature = asymmetric.sign("ECC_NIST_P256", private, message, "RAW", "ECDSA_SHA_256")
        assert asymmetric.verify("ECC_NIST_P256", public, message, "RAW", signature, "ECDSA_SHA_256")
    for size in (0, 4097):
        with pytest.raises(UsageError, match="4096"):
            asymmetric.sign("ECC_NIST_P256", private, bytes(size), "RAW", "ECDSA_SHA_256")
        with pytest.raises(UsageError, match="4096"):
            asymmetric.verify("ECC_NIST_P256", public, bytes(size), "RAW", b"sig", "ECDSA_SHA_256")


def test_an_unknown_message_type_is_refused(material: Material) -> None:
    private = material("RSA_2048")
    public = asymmetric.public_key("RSA_2048", private)
    for message_type in ("raw", "HASH", ""):
        with pytest.raises(UsageError, match="RAW or DIGEST"):
            asymmetric.sign("RSA_2048", private, MESSAGE, message_type, "RSASSA_PSS_SHA_256")
        with pytest.raises(UsageError, match="RAW or DIGEST"):
            asymmetric.verify("RSA_2048", public, MESSAGE, message_type, b"sig", "RSASSA_PSS_SHA_256")


def test_verify_refuses_a_public_key_of_another_spec(material: Material) -> None:
    public = asymmetric.public_key("ECC_NIST_P256", material("ECC_NIST_P256"))
    with pytest.raises(UsageError, match="public key"):
        asymmetric.verify("ECC_NIST_P384", public, MESSAGE, "RAW", b"sig", "ECDSA_SHA_384")


# -- RSA-OAEP -------------------------------------------------------------------------------------


def test_max_plaintext_is_the_aws_oaep_limit() -> None:
    expected = {("RSA_2048", "RSAES_OAEP_SHA_1"): 214, ("RSA_2048", "RSAES_OAEP_SHA_256"): 190,
                ("RSA_3072", "RSAES_OAEP_SHA_1"): 342, ("RSA_3072", "RSAES_OAEP_SHA_256"): 318,
                ("RSA_4096", "RSAES_OAEP_SHA_1"): 470, ("RSA_4096", "RSAES_OAEP_SHA_256"): 446}
    for (key_spec, algorithm), limit in expected.items():
        assert asymmetric.max_plaintext(key_spec, algorithm) == limit
    with pytest.raises(UsageError):
        asymmetric.max_plaintext("ECC_NIST_P256", "RSAES_OAEP_SHA_256")
    with pytest.raises(UsageError):
        asymmetric.max_plaintext("RSA_2048", "RSAES_OAEP_SHA_384")


@pytest.mark.parametrize("algorithm", OAEP)
def test_oaep_round_trips_at_every_length_boundary(material: Material, algorithm: str) -> None:
    private = material("RSA_2048")
    public = asymmetric.public_key("RSA_2048", private)
    for size in (1, 32, asymmetric.max_plaintext("RSA_2048", algorithm)):
        plaintext = os.urandom(size)
        ciphertext = asymmetric.encrypt("RSA_2048", public, plaintext, algorithm)
        assert len(ciphertext) == 256
        recovered = asymmetric.decrypt("RSA_2048", private, ciphertext, algorithm)
        assert isinstance(recovered, bytearray) and recovered == plaintext


@pytest.mark.parametrize("key_spec", ["RSA_3072", "RSA_4096"])
@pytest.mark.parametrize("algorithm", OAEP)
def test_oaep_round_trips_with_larger_keys_at_their_limit(material: Material, key_spec: str, algorithm: str) -> None:
    private = material(key_spec)
    public = asymmetric.public_key(key_spec, private)
    plaintext = os.urandom(asymmetric.max_plaintext(key_spec, algorithm))
    ciphertext = asymmetric.encrypt(key_spec, public, plaintext, algorithm)
    assert asymmetric.decrypt(key_spec, private, ciphertext, algorithm) == plaintext
    with pytest.raises(UsageError):
        asymmetric.encrypt(key_spec, public, plaintext + b"x", algorithm)


@pytest.mark.parametrize("algorithm", OAEP)
def test_a_ciphertext_made_by_cryptography_from_the_exported_public_key_decrypts(material: Material,
                                                                                 algorithm: str) -> None:
    key = serialization.load_der_public_key(asymmetric.public_key("RSA_2048", material("RSA_2048")))
    assert isinstance(key, rsa.RSAPublicKey)
    h = hash_of(algorithm)
    ciphertext = key.encrypt(b"data key", padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None))
    assert asymmetric.decrypt("RSA_2048", material("RSA_2048"), ciphertext, algorithm) == b"data key"


@pytest.mark.parametrize("algorithm", OAEP)
def test_a_module_ciphertext_decrypts_with_cryptography(material: Material, algorithm: str) -> None:
    public = asymmetric.public_key("RSA_2048", material("RSA_2048"))
    ciphertext = asymmetric.encrypt("RSA_2048", public, b"data key", algorithm)
    key = serialization.load_der_private_key(bytes(material("RSA_2048")), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    h = hash_of(algorithm)
    assert key.decrypt(ciphertext, padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)) == b"data key"


@pytest.mark.parametrize("algorithm", OAEP)
def test_empty_and_over_long_plaintexts_are_refused(material: Material, algorithm: str) -> None:
    public = asymmetric.public_key("RSA_2048", material("RSA_2048"))
    limit = asymmetric.max_plaintext("RSA_2048", algorithm)
    for size in (0, limit + 1, 4096):
        with pytest.raises(UsageError, match=f"1 to {limit} bytes"):
            asymmetric.encrypt("RSA_2048", public, bytes(size), algorithm)


@pytest.mark.parametrize(("key_spec", "algorithm"), [
    ("RSA_2048", "RSAES_OAEP_SHA_384"),
    ("RSA_2048", "RSASSA_PSS_SHA_256"),
    ("RSA_2048", "SYMMETRIC_DEFAULT"),
    ("ECC_NIST_P256", "RSAES_OAEP_SHA_256"),
    ("HMAC_256", "RSAES_OAEP_SHA_256"),
])
def test_encryption_algorithm_not_allowed_for_the_spec_is_refused(material: Material, key_spec: str,
                                                                  algorithm: str) -> None:
    public = asymmetric.public_key("RSA_2048", material("RSA_2048"))
    with pytest.raises(UsageError):
        asymmetric.encrypt(key_spec, public, b"x", algorithm)
    with pytest.raises(UsageError):
        asymmetric.decrypt(key_spec, material("RSA_2048"), bytes(256), algorithm)


def test_decryption_failures_are_one_keyring_error_that_reveals_nothing(material: Material) -> None:
    private = material("RSA_2048")
    public = asymmetric.public_key("RSA_2048", private)
    ciphertext = asymmetric.encrypt("RSA_2048", public, b"secret", "RSAES_OAEP_SHA_256")
    other = asymmetric.generate("RSA_2048")
    attempts = [
        (private, ciphertext, "RSAES_OAEP_SHA_1"),  # the other allowed algorithm
        (private, flip(ciphertext, 100), "RSAES_OAEP_SHA_256"),  # damaged
        (private, ciphertext[:-1], "RSAES_OAEP_SHA_256"),  # wrong length
        (private, b"", "RSAES_OAEP_SHA_256"),
        (other, ciphertext, "RSAES_OAEP_SHA_256"),  # another key
    ]
    for key, blob, algorithm in attempts:
        with pytest.raises(KeyringError) as caught:
            asymmetric.decrypt("RSA_2048", key, blob, algorithm)
        assert str(caught.value) == asymmetric.DECRYPT_FAILURE
        assert caught.value.__cause__ is None and caught.value.__suppress_context__


# -- HMAC -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key_spec", "algorithm", "size"), HMAC_CASES)
def test_hmac_matches_the_stdlib_and_verifies(key_spec: str, algorithm: str, size: int) -> None:
    key = asymmetric.generate(key_spec)
    for message in (b"x", MESSAGE, os.urandom(4096)):
        mac = asymmetric.generate_mac(key_spec, key, message, algorithm)
        assert mac == std_hmac.new(bytes(key), message, HASHLIB_BY_BITS[bits(algorithm)]).digest()
        assert len(mac) == size
        assert asymmetric.verify_mac(key_spec, key, message, mac, algorithm)


@pytest.mark.parametrize(("key_spec", "algorithm", "_size"), HMAC_CASES)
def test_verify_mac_rejects_a_flipped_or_truncated_mac_another_message_or_key(key_spec: str, algorithm: str,
                                                                               _size: int) -> None:
    key = asymmetric.generate(key_spec)
    mac = asymmetric.generate_mac(key_spec, key, MESSAGE, algorithm)
    for index in (0, len(mac) - 1):
        assert not asymmetric.verify_mac(key_spec, key, MESSAGE, flip(mac, index), algorithm)
    assert not asymmetric.verify_mac(key_spec, key, MESSAGE, mac[:-1], algorithm)
    assert not asymmetric.verify_mac(key_spec, key, MESSAGE, b"", algorithm)
    assert not asymmetric.verify_mac(key_spec, key, flip(MESSAGE), mac, algorithm)
    assert not asymmetric.verify_mac(key_spec, asymmetric.generate(key_spec), MESSAGE, mac, algorithm)


def test_mac_refuses_the_wrong_algorithm_an_empty_key_and_messages_outside_1_to_4096_bytes() -> None:
    key = asymmetric.generate("HMAC_256")
    for key_spec, algorithm in (("HMAC_256", "HMAC_SHA_384"), ("HMAC_512", "HMAC_SHA_256"),
                                ("RSA_2048", "HMAC_SHA_256"), ("HMAC_256", "ECDSA_SHA_256")):
        with pytest.raises(UsageError):
            asymmetric.generate_mac(key_spec, key, MESSAGE, algorithm)
        with pytest.raises(UsageError):
            asymmetric.verify_mac(key_spec, key, MESSAGE, b"mac", algorithm)
    for size in (0, 4097):
        with pytest.raises(UsageError, match="4096"):
            asymmetric.generate_mac("HMAC_256", key, bytes(size), "HMAC_SHA_256")
        with pytest.raises(UsageError, match="4096"):
            asymmetric.verify_mac("HMAC_256", key, bytes(size), b"mac", "HMAC_SHA_256")
    with pytest.raises(UsageError, match="empty"):
        asymmetric.generate_mac("HMAC_256", bytearray(), MESSAGE, "HMAC_SHA_256")

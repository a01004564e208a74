"""Asymmetric and HMAC keys for the local KMS: the operations, without the store.

AWS KMS offers RSA keys (for RSA-OAEP encryption or for signing), NIST-curve ECC
keys (for ECDSA) and HMAC keys besides its symmetric default.  The local KMS
mimics that, and the rules of each call (which algorithm a key spec allows, how
long a message or plaintext may be, how a digest is signed, what PSS salt is
used) are the part most easily got subtly wrong.  So they live here, as pure
functions over key material, apart from the key store that seals that material
and decides whether a key may be used at all: each can be tested against
pyca/cryptography directly, and every cryptographic step is pyca/cryptography's.

Private material is PKCS#8 DER (RSA, ECC) or raw bytes (HMAC), held in a
``bytearray`` that the caller zeroes; public keys are SubjectPublicKeyInfo DER,
as GetPublicKey returns them.  Bad requests raise :class:`UsageError`; a failed
decryption raises :class:`KeyringError` with a message that says nothing about
why, so the call is no oracle.  A bad signature or MAC is a ``False``, not an
exception.
"""

from __future__ import annotations

import os
from typing import Union

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ...exceptions import InvalidCiphertextError, UsageError

#: Key spec -> the key usages it allows, the first being the default.
KEY_SPECS: dict[str, tuple[str, ...]] = {
    "RSA_2048": ("ENCRYPT_DECRYPT", "SIGN_VERIFY"),
    "RSA_3072": ("ENCRYPT_DECRYPT", "SIGN_VERIFY"),
    "RSA_4096": ("ENCRYPT_DECRYPT", "SIGN_VERIFY"),
    "ECC_NIST_P256": ("SIGN_VERIFY",),
    "ECC_NIST_P384": ("SIGN_VERIFY",),
    "HMAC_256": ("GENERATE_VERIFY_MAC",),
    "HMAC_384": ("GENERATE_VERIFY_MAC",),
    "HMAC_512": ("GENERATE_VERIFY_MAC",),
}

#: Longest Message of Sign, Verify, GenerateMac and VerifyMac, as in AWS KMS.
MAX_MESSAGE_BYTES = 4096

DECRYPT_FAILURE = "cannot decrypt: the ciphertext is not for this key, or the algorithm is wrong"

_RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
_CURVES: dict[str, tuple[type[ec.EllipticCurve], str]] = {
    "ECC_NIST_P256": (ec.SECP256R1, "ECDSA_SHA_256"),
    "ECC_NIST_P384": (ec.SECP384R1, "ECDSA_SHA_384"),
}
_HMAC_BYTES = {"HMAC_256": 32, "HMAC_384": 48, "HMAC_512": 64}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA_1": hashes.SHA1, "SHA_256": hashes.SHA256, "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512,
}
_OAEP = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")
_RSA_SIGNING = tuple(f"RSASSA_{scheme}_SHA_{bits}" for scheme in ("PSS", "PKCS1_V1_5") for bits in (256, 384, 512))

_Private = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]
_Public = Union[rsa.RSAPublicKey, ec.EllipticCurvePublicKey]


def check_spec(key_spec: str, key_usage: str | None) -> str:
    """The key usage for a new key of *key_spec*: *key_usage* if allowed, else the spec's default."""
    usages = KEY_SPECS.get(key_spec)
    if usages is None:
        raise UsageError(f"key spec {key_spec!r} is not supported; use one of {', '.join(KEY_SPECS)}")
    if key_usage is None:
        return usages[0]
    if key_usage not in usages:
        raise UsageError(f"key usage {key_usage!r} is not valid for {key_spec}; use {' or '.join(usages)}")
    return key_usage


def generate(key_spec: str) -> bytearray:
    """New private material: PKCS#8 DER for RSA and ECC, random bytes for HMAC; the caller zeroes it."""
    check_spec(key_spec, None)
    if key_spec in _HMAC_BYTES:
        return bytearray(os.urandom(_HMAC_BYTES[key_spec]))
    key: _Private
    if key_spec in _RSA_BITS:
        key = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_spec])
    else:
        key = ec.generate_private_key(_CURVES[key_spec][0]())
    return bytearray(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def public_key(key_spec: str, private: bytes | bytearray) -> bytes:
    """The SubjectPublicKeyInfo DER of an RSA or ECC private key."""
    return _load_private(key_spec, private).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def encryption_algorithms(key_spec: str, key_usage: str) -> tuple[str, ...]:
    return _OAEP if key_spec in _RSA_BITS and key_usage == "ENCRYPT_DECRYPT" else ()


def signing_algorithms(key_spec: str, key_usage: str) -> tuple[str, ...]:
    if key_usage != "SIGN_VERIFY":
        return ()
    if key_spec in _RSA_BITS:
        return _RSA_SIGNING
    if key_spec in _CURVES:
        return (_CURVES[key_spec][1],)
    return ()


def mac_algorithms(key_spec: str) -> tuple[str, ...]:
    return (f"HMAC_SHA_{key_spec[5:]}",) if key_spec in _HMAC_BYTES else ()


def max_plaintext(key_spec: str, algorithm: str) -> int:
    """The longest plaintext RSA-OAEP takes with this key and algorithm: k - 2*hLen - 2 bytes."""
    if algorithm not in encryption_algorithms(key_spec, "ENCRYPT_DECRYPT"):
        raise _not_allowed("encryption", key_spec, algorithm, encryption_algorithms(key_spec, "ENCRYPT_DECRYPT"))
    return _RSA_BITS[key_spec] // 8 - 2 * _hash(algorithm).digest_size - 2


def encrypt(key_spec: str, public_der: bytes, plaintext: bytes, algorithm: str) -> bytes:
    """RSA-OAEP encryption under a public key, MGF1 using the algorithm's hash."""
    limit = max_plaintext(key_spec, algorithm)
    if not 1 <= len(plaintext) <= limit:
        raise UsageError(f"plaintext must be 1 to {limit} bytes for {key_spec} with {algorithm}, "
                         f"not {len(plaintext)}")
    key = _load_public(key_spec, public_der)
    if not isinstance(key, rsa.RSAPublicKey):  # unreachable: _load_public matched the RSA spec
        raise UsageError(f"the public key is not a {key_spec} key")
    return key.encrypt(bytes(plaintext), _oaep(algorithm))


def decrypt(key_spec: str, private: bytes | bytearray, ciphertext: bytes, algorithm: str) -> bytearray:
    """RSA-OAEP decryption; any failure is the same :class:`KeyringError`. The caller zeroes the result."""
    max_plaintext(key_spec, algorithm)
    key = _load_private(key_spec, private)
    if not isinstance(key, rsa.RSAPrivateKey):  # unreachable: _load_private matched the RSA spec
        raise UsageError(f"the key material is not a {key_spec} private key")
    try:
        return bytearray(key.decrypt(bytes(ciphertext), _oaep(algorithm)))
    except ValueError:
        raise InvalidCiphertextError(DECRYPT_FAILURE) from None


def sign(key_spec: str, private: bytes | bytearray, message: bytes, message_type: str, algorithm: str) -> bytes:
    """A signature of *message* (``RAW``) or of a digest (``DIGEST``); ECDSA signatures are DER."""
    digest = _signing_hash(key_spec, algorithm)
    how = _message_hash(message, message_type, digest, algorithm)
    key = _load_private(key_spec, private)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(bytes(message), ec.ECDSA(how))
    return key.sign(bytes(message), _rsa_padding(algorithm, digest), how)


def verify(key_spec: str, public_der: bytes, message: bytes, message_type: str, signature: bytes,
           algorithm: str) -> bool:
    """Whether *signature* is the key's signature of *message*; a bad signature is ``False``."""
    digest = _signing_hash(key_spec, algorithm)
    how = _message_hash(message, message_type, digest, algorithm)
    key = _load_public(key_spec, public_der)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(bytes(signature), bytes(message), ec.ECDSA(how))
        else:
            key.verify(bytes(signature), bytes(message), _rsa_padding(algorithm, digest), how)
    except InvalidSignature:
        return False
    return True


def generate_mac(key_spec: str, key: bytes | bytearray, message: bytes, algorithm: str) -> bytes:
    """The HMAC of *message* (1 to 4096 bytes) under *key*."""
    return _hmac(key_spec, key, message, algorithm).finalize()


def verify_mac(key_spec: str, key: bytes | bytearray, message: bytes, mac: bytes, algorithm: str) -> bool:
    """Whether *mac* is the HMAC of *message*, compared in constant time; a bad MAC is ``False``."""
    context = _hmac(key_spec, key, message, algorithm)
    try:
        context.verify(bytes(mac))
    except InvalidSignature:
        return False
    return True


# -- helpers --------------------------------------------------------------------------------------


def _not_allowed(kind: str, key_spec: str, algorithm: str, allowed: tuple[str, ...]) -> UsageError:
    if not allowed:
        return UsageError(f"{key_spec} keys have no {kind} algorithms")
    return UsageError(f"{kind} algorithm {algorithm!r} is not valid for {key_spec}; use one of {', '.join(allowed)}")


def _hash(algorithm: str) -> hashes.HashAlgorithm:
    """The hash an algorithm name ends with: ``..._SHA_256`` -> SHA-256."""
    return _HASHES["SHA_" + algorithm.rsplit("_", 1)[1]]()


def _oaep(algorithm: str) -> padding.OAEP:
    digest = _hash(algorithm)
    return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)


def _signing_hash(key_spec: str, algorithm: str) -> hashes.HashAlgorithm:
    allowed = signing_algorithms(key_spec, "SIGN_VERIFY")
    if algorithm not in allowed:
        raise _not_allowed("signing", key_spec, algorithm, allowed)
    return _hash(algorithm)


def _message_hash(message: bytes, message_type: str, digest: hashes.HashAlgorithm,
                  algorithm: str) -> hashes.HashAlgorithm | Prehashed:
    """What to hand the signer: the hash itself for a RAW message, Prehashed for a DIGEST."""
    if message_type == "RAW":
        if not 1 <= len(message) <= MAX_MESSAGE_BYTES:
            raise UsageError(f"a RAW message must be 1 to {MAX_MESSAGE_BYTES} bytes, not {len(message)}")
        return digest
    if message_type == "DIGEST":
        if len(message) != digest.digest_size:
            raise UsageError(f"a DIGEST for {algorithm} must be {digest.digest_size} bytes, not {len(message)}")
        return Prehashed(digest)
    raise UsageError(f"message type {message_type!r} is not valid; use RAW or DIGEST")


def _rsa_padding(algorithm: str, digest: hashes.HashAlgorithm) -> padding.AsymmetricPadding:
    """PSS with MGF1 of the same hash and a salt as long as the digest (as AWS KMS), or PKCS #1 v1.5."""
    if algorithm.startswith("RSASSA_PSS_"):
        return padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
    return padding.PKCS1v15()


def _matches(key_spec: str, key: _Private | _Public) -> bool:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return _RSA_BITS.get(key_spec) == key.key_size
    return key_spec in _CURVES and isinstance(key.curve, _CURVES[key_spec][0])


def _asymmetric(key_spec: str) -> None:
    check_spec(key_spec, None)
    if key_spec in _HMAC_BYTES:
        raise UsageError(f"{key_spec} is an HMAC key spec: it has no public key and cannot encrypt or sign")


def _load_private(key_spec: str, private: bytes | bytearray) -> _Private:
    _asymmetric(key_spec)
    try:
        # The only private keys loaded here were generated by this module and come back out of the
        # keystore through AES-GCM under the keystore wrapping key, so they are authentic; re-checking
        # an RSA key's arithmetic on every call would cost 60 ms (2048) to 430 ms (4096).
        key = serialization.load_der_private_key(bytes(private), password=None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)) or not _matches(key_spec, key):
        raise UsageError(f"the key material is not a {key_spec} private key")
    return key


def _load_public(key_spec: str, public_der: bytes) -> _Public:
    _asymmetric(key_spec)
    try:
        key = serialization.load_der_public_key(bytes(public_der))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)) or not _matches(key_spec, key):
        raise UsageError(f"the public key is not a {key_spec} key")
    return key


def _hmac(key_spec: str, key: bytes | bytearray, message: bytes, algorithm: str) -> hmac.HMAC:
    """An HMAC context over *message*, once the spec, algorithm, key and message length are checked."""
    allowed = mac_algorithms(key_spec)
    if algorithm not in allowed:
        raise _not_allowed("MAC", key_spec, algorithm, allowed)
    if not key:
        raise UsageError("the HMAC key is empty")
    if not 1 <= len(message) <= MAX_MESSAGE_BYTES:
        raise UsageError(f"a MAC message must be 1 to {MAX_MESSAGE_BYTES} bytes, not {len(message)}")
    context = hmac.HMAC(key, _hash(algorithm))
    context.update(bytes(message))
    return context

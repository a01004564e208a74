"""Asymmetric and HMAC keys in the keystore, a mix-in of :class:`~envelope.kms.store.KeyStore`.

RSA keys encrypt (RSA-OAEP) or sign (PSS, PKCS #1 v1.5); ECC keys sign
(ECDSA); HMAC keys make and check MACs.  As in AWS KMS, a key has one usage for
life, chosen at creation, and the private or secret half never leaves the
keystore: GetPublicKey exports the public half of an asymmetric key (so anyone
can encrypt to it or verify its signatures offline), and everything needing
the private half is a call.  The cryptography itself is in
:mod:`envelope.kms.crypto.asymmetric`, imported by each call that needs it: that
module loads pyca/cryptography's RSA, EC and serialization code, which the
symmetric calls every encrypt-file and decrypt-file makes never use, and which
was a large part of their start-up time.  This module adds states, policies and audit.
Such keys do not rotate (AWS KMS does not rotate them either): make a new key
and move the alias.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any, NamedTuple

from ...exceptions import KeyUsageError, UsageError
from ..model import lifecycle
from ..storage import material
from .part import StorePart
from ..storage.schema import KEY_SPEC as SYMMETRIC_DEFAULT

MESSAGE_TYPES = ("RAW", "DIGEST")


class PublicKeyInfo(NamedTuple):
    key_id: str
    key_spec: str
    key_usage: str
    public_key: bytes                          # SubjectPublicKeyInfo, DER
    encryption_algorithms: tuple[str, ...]
    signing_algorithms: tuple[str, ...]


class AsymmetricOperations(StorePart):
    """GetPublicKey, Sign, Verify, GenerateMac, VerifyMac, and Encrypt/Decrypt with RSA keys."""

    def get_public_key(self, ref: str) -> PublicKeyInfo:
        """GetPublicKey: the public half of an RSA or ECC key, with what it may be used for."""
        from ..crypto import asymmetric
        with self._private("GetPublicKey", ref, {}, usages=("ENCRYPT_DECRYPT", "SIGN_VERIFY"),
                           states=(lifecycle.ENABLED, lifecycle.DISABLED)) as (key_id, spec, usage, private):
            return PublicKeyInfo(key_id, spec, usage, asymmetric.public_key(spec, private),
                                 asymmetric.encryption_algorithms(spec, usage),
                                 asymmetric.signing_algorithms(spec, usage))

    def sign(self, ref: str, message: bytes, signing_algorithm: str, message_type: str = "RAW") -> bytes:
        """Sign: a signature over *message* (``RAW``, at most 4096 bytes) or its digest (``DIGEST``)."""
        from ..crypto import asymmetric
        _check_message_type(message_type)
        with self._private("Sign", ref, {"algorithm": signing_algorithm, "message_type": message_type},
                           usages=("SIGN_VERIFY",)) as (_, spec, _usage, private):
            return asymmetric.sign(spec, private, message, message_type, signing_algorithm)

    def verify_signature(self, ref: str, message: bytes, signature: bytes, signing_algorithm: str,
               message_type: str = "RAW") -> bool:
        """Verify (AWS's name; ``verify`` is the keystore's consistency check): anyone with the public
        key can do the same offline."""
        from ..crypto import asymmetric
        _check_message_type(message_type)
        with self._private("Verify", ref, {"algorithm": signing_algorithm, "message_type": message_type},
                           usages=("SIGN_VERIFY",)) as (_, spec, _usage, private):
            public = asymmetric.public_key(spec, private)
        return asymmetric.verify(spec, public, message, message_type, signature, signing_algorithm)

    def generate_mac(self, ref: str, message: bytes, mac_algorithm: str) -> bytes:
        """GenerateMac: an HMAC of up to 4096 bytes under an HMAC key."""
        from ..crypto import asymmetric
        with self._private("GenerateMac", ref, {"algorithm": mac_algorithm},
                           usages=("GENERATE_VERIFY_MAC",)) as (_, spec, _usage, secret):
            return asymmetric.generate_mac(spec, secret, message, mac_algorithm)

    def verify_mac(self, ref: str, message: bytes, mac: bytes, mac_algorithm: str) -> bool:
        """VerifyMac: whether *mac* is the HMAC of *message* (compared in constant time)."""
        from ..crypto import asymmetric
        with self._private("VerifyMac", ref, {"algorithm": mac_algorithm},
                           usages=("GENERATE_VERIFY_MAC",)) as (_, spec, _usage, secret):
            return asymmetric.verify_mac(spec, secret, message, mac, mac_algorithm)

    def encrypt_asymmetric(self, ref: str, plaintext: bytes, encryption_algorithm: str) -> bytes:
        """Encrypt with an RSA ENCRYPT_DECRYPT key (RSA-OAEP): small secrets only, no encryption context."""
        from ..crypto import asymmetric
        with self._private("Encrypt", ref, {"algorithm": encryption_algorithm},
                           usages=("ENCRYPT_DECRYPT",)) as (_, spec, _usage, private):
            public = asymmetric.public_key(spec, private)
        return asymmetric.encrypt(spec, public, plaintext, encryption_algorithm)

    def decrypt_asymmetric(self, ref: str, ciphertext: bytes, encryption_algorithm: str) -> bytearray:
        """Decrypt what was encrypted to an RSA key's public half, here or offline; zero the result."""
        from ..crypto import asymmetric
        with self._private("Decrypt", ref, {"algorithm": encryption_algorithm},
                           usages=("ENCRYPT_DECRYPT",)) as (_, spec, _usage, private):
            return asymmetric.decrypt(spec, private, ciphertext, encryption_algorithm)

    @contextlib.contextmanager
    def _private(self, operation: str, ref: str, request: dict[str, Any], usages: tuple[str, ...],
                 states: tuple[str, ...] = (lifecycle.ENABLED,)) -> Iterator[tuple[str, str, str, bytearray]]:
        """One audited call holding the key's private material, zeroed on the way out."""
        with self._operation(operation, {"key": ref, **request}) as call:
            key_id = self._resolve_in(call, ref)
            lifecycle.require(call.conn, key_id, operation, states)
            spec, usage = spec_and_usage(call.conn, key_id)
            if spec == SYMMETRIC_DEFAULT or usage not in usages:
                raise KeyUsageError(f"{operation} needs a key for {' or '.join(usages)}; key {key_id} is {spec} "
                                 f"for {usage}")
            (sealed,) = call.conn.execute("SELECT sealed FROM key_material WHERE key_id = ? AND version = 1",
                                          (key_id,)).fetchone()
            private = self._db.wrapping_key(call.conn).open(key_id, 1, sealed)
            try:
                yield key_id, spec, usage, private
            finally:
                material.wipe(private)


def spec_and_usage(conn: sqlite3.Connection, key_id: str) -> tuple[str, str]:
    spec, usage = conn.execute("SELECT key_spec, key_usage FROM keys WHERE key_id = ?", (key_id,)).fetchone()
    return str(spec), str(usage)


def require_symmetric(conn: sqlite3.Connection, key_id: str, operation: str) -> None:
    """Envelope encryption's calls need a symmetric key; an RSA, ECC or HMAC key is refused by name."""
    spec, usage = spec_and_usage(conn, key_id)
    if spec != SYMMETRIC_DEFAULT:
        hint = " (for an RSA key, use the asymmetric Encrypt/Decrypt)" if usage == "ENCRYPT_DECRYPT" else ""
        raise KeyUsageError(f"{operation} needs a symmetric key; key {key_id} is {spec} for {usage}{hint}")


def _check_message_type(message_type: str) -> None:
    if message_type not in MESSAGE_TYPES:
        raise UsageError(f"message type must be RAW or DIGEST, not {message_type!r}")

"""Imported key material (bring your own key), a mix-in of :class:`~envelope.kms.store.KeyStore`.

The flow is AWS KMS's, step for step, so the same scripts and the same
OpenSSL commands work against both:

1. CreateKey with origin ``EXTERNAL``: a key id with no material, ``PendingImport``.
2. GetParametersForImport: a fresh RSA wrapping key pair (2048, 3072 or 4096
   bits) and a single-use import token, both valid for 24 hours.  The public
   key goes to the caller; the private key stays here, sealed under the
   keystore wrapping key like any backing key.
3. The caller wraps its 256-bit key with RSA-OAEP (SHA-256, or SHA-1 for old
   HSMs) under that public key: envelope's ``keys import``, or ``openssl pkeyutl``.
4. ImportKeyMaterial with the wrapped key and the token: the token must be this
   key's, unexpired and unused; the material must unwrap and be 32 bytes; a key
   that had material before takes only the same material again (ciphertexts
   are not portable between keys, and a key must not silently change).  The key
   becomes ``Enabled``; with ``valid_to`` the material expires then, and the
   key returns to ``PendingImport``.

DeleteImportedKeyMaterial takes effect at once (no waiting period: the owner
still holds a copy).  Re-importing later is how such a key comes back.  Keys
with imported material do not rotate automatically.

To recognise "the same material" after it was deleted, the key keeps a
fingerprint: HMAC-SHA-256 keyed by the material over the key id, which says
nothing about the material without it.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from ...exceptions import KeyringError, UsageError
from ..model import lifecycle
from ..storage import material
from ..model.clock import iso, parse_iso
from .part import StorePart
from ..storage.schema import MATERIAL_SIZE

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.padding import OAEP

WRAPPING_KEY_SPECS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
#: Each wrapping algorithm's hash (OAEP's and MGF1's), by its name in
#: cryptography.hazmat.primitives.hashes: see :func:`oaep_padding`.
WRAPPING_ALGORITHMS = {"RSAES_OAEP_SHA_256": "SHA256", "RSAES_OAEP_SHA_1": "SHA1"}
IMPORT_PARAMETERS_LIFETIME = timedelta(hours=24)
_TOKEN_PREFIX = b"envelope-import-token-v1:"
_TOKEN_SIZE = len(_TOKEN_PREFIX) + 16 + 32  # prefix, key id, random
#: Import wrapping keys are sealed under the keystore wrapping key as "version 0" of their key,
#: a version no backing key ever has.
_WRAPPING_VERSION = 0


class ImportParameters(NamedTuple):
    key_id: str
    import_token: bytes
    public_key: bytes          # SubjectPublicKeyInfo, DER (what AWS calls PublicKey)
    wrapping_algorithm: str
    wrapping_key_spec: str
    parameters_valid_to: str


class ImportOperations(StorePart):
    """GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial."""

    def get_parameters_for_import(self, ref: str, wrapping_algorithm: str = "RSAES_OAEP_SHA_256",
                                  wrapping_key_spec: str = "RSA_2048") -> ImportParameters:
        """GetParametersForImport: a wrapping public key and an import token for *ref*, valid 24 hours."""
        if wrapping_algorithm not in WRAPPING_ALGORITHMS:
            raise UsageError(f"unknown wrapping algorithm {wrapping_algorithm!r} "
                             f"(known: {', '.join(WRAPPING_ALGORITHMS)})")
        if wrapping_key_spec not in WRAPPING_KEY_SPECS:
            raise UsageError(f"unknown wrapping key spec {wrapping_key_spec!r} (known: {', '.join(WRAPPING_KEY_SPECS)})")
        from cryptography.hazmat.primitives import serialization  # RSA code: loaded by imports only
        from cryptography.hazmat.primitives.asymmetric import rsa
        private = rsa.generate_private_key(public_exponent=65537, key_size=WRAPPING_KEY_SPECS[wrapping_key_spec])
        der = bytearray(private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        public = private.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        request = {"key": ref, "wrapping_algorithm": wrapping_algorithm, "wrapping_key_spec": wrapping_key_spec}
        try:
            with self._operation("GetParametersForImport", request) as call:
                key_id = self._resolve_in(call, ref)
                _require_external(call.conn, key_id, "GetParametersForImport")
                lifecycle.require(call.conn, key_id, "GetParametersForImport",
                                  (lifecycle.PENDING_IMPORT, lifecycle.ENABLED, lifecycle.DISABLED))
                token = _TOKEN_PREFIX + bytes.fromhex(key_id.replace("-", "")) + os.urandom(32)
                valid_to = iso(self._db.now() + IMPORT_PARAMETERS_LIFETIME)
                sealed = self._db.wrapping_key(call.conn).seal(key_id, _WRAPPING_VERSION, der)
                call.conn.execute(
                    "INSERT INTO import_tokens (token_sha256, key_id, wrapping_spec, algorithm, sealed_private,"
                    " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (_sha256(token), key_id, wrapping_key_spec, wrapping_algorithm, sealed, self._db.timestamp(),
                     valid_to))
        finally:
            material.wipe(der)
        return ImportParameters(key_id, token, public, wrapping_algorithm, wrapping_key_spec, valid_to)

    def import_key_material(self, ref: str, import_token: bytes, encrypted_key_material: bytes,
                            valid_to: datetime | str | None = None) -> None:
        """ImportKeyMaterial: unwrap the material with the token's private key and make it the key's."""
        expires = _check_valid_to(valid_to, self._db.now())
        with self._operation("ImportKeyMaterial", {"key": ref, "valid_to": expires}) as call:
            key_id = self._resolve_in(call, ref)
            _require_external(call.conn, key_id, "ImportKeyMaterial")
            state = lifecycle.require(call.conn, key_id, "ImportKeyMaterial",
                                      (lifecycle.PENDING_IMPORT, lifecycle.ENABLED, lifecycle.DISABLED))
            row = _token_row(call.conn, import_token)
            if row is None:
                raise KeyringError("the import token is not valid: it was not issued by this keystore")
            token_key, algorithm, sealed_private, token_expires, used_at = row
            if token_key != key_id:
                raise KeyringError(f"the import token was issued for key {token_key}, not {key_id}")
            if used_at is not None:
                raise KeyringError(f"the import token was already used (on {used_at}); get new import parameters")
            if parse_iso(token_expires) <= self._db.now():
                raise KeyringError(f"the import token expired on {token_expires}; get new import parameters")
            clear = self._unwrap(call.conn, key_id, sealed_private, algorithm, encrypted_key_material)
            try:
                fingerprint = _fingerprint(key_id, clear)
                (known,) = call.conn.execute("SELECT import_fingerprint FROM keys WHERE key_id = ?",
                                             (key_id,)).fetchone()
                if known is not None and not _same(known, fingerprint):
                    raise KeyringError(f"this is not the key material key {key_id} had before: a key takes only "
                                       "its own material again (create a new key for new material)")
                sealed = self._db.wrapping_key(call.conn).seal(key_id, 1, clear)
            finally:
                material.wipe(clear)
            now = self._db.timestamp()
            call.conn.execute("DELETE FROM key_material WHERE key_id = ?", (key_id,))
            call.conn.execute(
                "INSERT INTO key_material (key_id, version, sealed, origin, rotation_type, created_at, expires_at)"
                " VALUES (?, 1, ?, 'EXTERNAL', NULL, ?, ?)", (key_id, sealed, now, expires))
            call.conn.execute("UPDATE import_tokens SET used_at = ? WHERE token_sha256 = ?",
                              (now, _sha256(import_token)))
            new_state = lifecycle.ENABLED if state == lifecycle.PENDING_IMPORT else state
            call.conn.execute("UPDATE keys SET state = ?, import_fingerprint = ?, updated_at = ? WHERE key_id = ?",
                              (new_state, fingerprint, now, key_id))

    def delete_imported_key_material(self, ref: str) -> None:
        """DeleteImportedKeyMaterial: at once; the key is ``PendingImport`` until the same material returns."""
        with self._operation("DeleteImportedKeyMaterial", {"key": ref}) as call:
            key_id = self._resolve_in(call, ref)
            _require_external(call.conn, key_id, "DeleteImportedKeyMaterial")
            lifecycle.require(call.conn, key_id, "DeleteImportedKeyMaterial",
                              (lifecycle.ENABLED, lifecycle.DISABLED, lifecycle.PENDING_IMPORT))
            remove_material(call.conn, key_id, self._db.timestamp())

    def _unwrap(self, conn: sqlite3.Connection, key_id: str, sealed_private: bytes, algorithm: str,
                wrapped: bytes) -> bytearray:
        from cryptography.hazmat.primitives import serialization  # RSA code: loaded by imports only
        from cryptography.hazmat.primitives.asymmetric import rsa
        der = self._db.wrapping_key(conn).open(key_id, _WRAPPING_VERSION, sealed_private)
        try:
            private = serialization.load_der_private_key(bytes(der), password=None)
        finally:
            material.wipe(der)
        assert isinstance(private, rsa.RSAPrivateKey)
        if not isinstance(wrapped, (bytes, bytearray)) or len(wrapped) != private.key_size // 8:
            raise KeyringError("the encrypted key material was not wrapped with this import's wrapping key "
                               f"({private.key_size}-bit RSA)")
        try:
            clear = bytearray(private.decrypt(bytes(wrapped), oaep_padding(algorithm)))
        except ValueError:
            raise KeyringError(f"the encrypted key material does not unwrap with this import's wrapping key and "
                               f"{algorithm}: wrapped under another public key or with another algorithm") from None
        if len(clear) != MATERIAL_SIZE:
            material.wipe(clear)
            raise KeyringError(f"the key material must be a 256-bit (32-byte) symmetric key, got {len(clear)} bytes")
        return clear


def remove_material(conn: sqlite3.Connection, key_id: str, now: str) -> None:
    """Delete imported material (on request or on expiry); the key waits for it again."""
    conn.execute("DELETE FROM key_material WHERE key_id = ?", (key_id,))
    conn.execute("UPDATE keys SET state = CASE WHEN state = 'PendingDeletion' THEN state ELSE 'PendingImport' END,"
                 " updated_at = ? WHERE key_id = ?", (now, key_id))


def expired(conn: sqlite3.Connection, now: datetime) -> list[str]:
    """Keys whose imported material has reached its ``valid_to``."""
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT key_id FROM key_material WHERE expires_at IS NOT NULL AND expires_at <= ?", (iso(now),))]


def _require_external(conn: sqlite3.Connection, key_id: str, operation: str) -> None:
    (origin,) = conn.execute("SELECT origin FROM keys WHERE key_id = ?", (key_id,)).fetchone()
    if origin != "EXTERNAL":
        raise UsageError(f"{operation} needs a key created with origin EXTERNAL; key {key_id} has {origin} material")


def _check_valid_to(valid_to: datetime | str | None, now: datetime) -> str | None:
    if valid_to is None:
        return None
    when = parse_iso(valid_to) if isinstance(valid_to, str) else valid_to
    if when <= now:
        raise UsageError(f"valid_to {iso(when)} is not in the future")
    if when > now + timedelta(days=365 * 100):
        raise UsageError("valid_to is more than 100 years away; leave it out for material that does not expire")
    return iso(when)


def oaep_padding(algorithm: str) -> OAEP:
    """The RSA-OAEP padding of wrapping algorithm *algorithm*: its hash for both OAEP and MGF1.

    Built on demand, so that opening a keystore does not import pyca/cryptography's hashes.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    digest = getattr(hashes, WRAPPING_ALGORITHMS[algorithm])
    return padding.OAEP(padding.MGF1(digest()), digest(), None)


def _token_row(conn: sqlite3.Connection, token: bytes) -> tuple[Any, ...] | None:
    if not isinstance(token, (bytes, bytearray)) or len(token) != _TOKEN_SIZE or not token.startswith(_TOKEN_PREFIX):
        raise KeyringError("the import token is not valid: not an envelope import token (wrong or damaged file?)")
    row = conn.execute("SELECT key_id, algorithm, sealed_private, expires_at, used_at FROM import_tokens"
                       " WHERE token_sha256 = ?", (_sha256(token),)).fetchone()
    return tuple(row) if row is not None else None


# hashlib and hmac load with an import of key material, not with every keystore.

def _fingerprint(key_id: str, clear: bytes | bytearray) -> str:
    import hashlib
    import hmac
    return hmac.new(bytes(clear), b"envelope import fingerprint:" + key_id.encode(), hashlib.sha256).hexdigest()


def _same(known: str, fingerprint: str) -> bool:
    import hmac
    return hmac.compare_digest(known, fingerprint)


def _sha256(token: bytes) -> str:
    import hashlib
    return hashlib.sha256(bytes(token)).hexdigest()

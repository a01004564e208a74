"""Backing keys: the versions of a master key's material, and the blobs they seal.

A master key is a name (its key id) for a list of backing keys.  Version 1 is
made with the key; each rotation appends one.  The newest version seals every
new blob; a blob records the version that sealed it (:mod:`envelope.kms.crypto.blob`),
so rotation never strands an old ciphertext.  Rows hold each backing key sealed
under the keystore wrapping key (:mod:`envelope.kms.storage.protection`); the clear
material exists only in a ``bytearray`` for the length of one call, and is
zeroed after it.

Functions here run inside the caller's transaction and trust that the key
exists and may be used; deciding that is the store's job.
"""

from __future__ import annotations

import os
import sqlite3

from ...context import EncryptionContext
from ...engines.primitives import gcm_open_into, gcm_seal
from ...exceptions import AuthenticationError, InvalidCiphertextError, KeyringError
from ..crypto import blob as _blob
from ..model.keys import KeyRotation
from .protection import WrappingKey
from .schema import MATERIAL_SIZE


def add_version(conn: sqlite3.Connection, wrapping: WrappingKey, key_id: str, origin: str,
                rotation_type: str | None, now: str) -> int:
    """Append fresh random material as the key's newest backing version; returns the version."""
    (newest,) = conn.execute("SELECT coalesce(max(version), 0) FROM key_material WHERE key_id = ?",
                             (key_id,)).fetchone()
    version = int(newest) + 1
    material = bytearray(os.urandom(MATERIAL_SIZE))
    try:
        sealed = wrapping.seal(key_id, version, material)
    finally:
        wipe(material)
    conn.execute(
        "INSERT INTO key_material (key_id, version, sealed, origin, rotation_type, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (key_id, version, sealed, origin, rotation_type, now),
    )
    return version


def rotations(conn: sqlite3.Connection, key_id: str) -> tuple[KeyRotation, ...]:
    rows = conn.execute(
        "SELECT version, created_at, rotation_type FROM key_material WHERE key_id = ? ORDER BY version", (key_id,)
    ).fetchall()
    return tuple(KeyRotation(int(r[0]), r[1], r[2]) for r in rows)


def seal(conn: sqlite3.Connection, wrapping: WrappingKey, key_id: str,
         plaintext: bytes | bytearray | memoryview, context: EncryptionContext) -> bytes:
    """Seal *plaintext* under the key's newest backing version; returns the blob."""
    row = conn.execute(
        "SELECT version, sealed FROM key_material WHERE key_id = ? ORDER BY version DESC LIMIT 1", (key_id,)
    ).fetchone()
    if row is None:
        raise KeyringError(f"key {key_id} has no key material")
    version = int(row[0])
    material = wrapping.open(key_id, version, row[1])
    try:
        nonce = os.urandom(_blob.NONCE_SIZE)
        sealed = gcm_seal(material, nonce, plaintext, _blob.aad(key_id, version, context))
    finally:
        wipe(material)
    return _blob.encode_prefix(key_id, version) + nonce + sealed


def open_blob(conn: sqlite3.Connection, wrapping: WrappingKey, parsed: _blob.Blob,
              context: EncryptionContext) -> bytearray:
    """Open a parsed blob with the backing version it names; the caller zeroes the result."""
    row = conn.execute(
        "SELECT sealed FROM key_material WHERE key_id = ? AND version = ?", (parsed.key_id, parsed.backing_version)
    ).fetchone()
    if row is None:
        role = conn.execute("SELECT multi_region_role FROM keys WHERE key_id = ?", (parsed.key_id,)).fetchone()
        if role is not None and role[0] == "REPLICA":
            raise KeyringError(f"backing key {parsed.backing_version} of multi-Region key {parsed.key_id} has not "
                               "reached this replica: run keys replicate for it in the primary's region")
        raise InvalidCiphertextError(unwrap_failure(parsed.key_id))  # a version this key never had: the blob was altered
    material = wrapping.open(parsed.key_id, parsed.backing_version, row[0])
    plaintext = bytearray(len(parsed.sealed) - _blob.TAG_SIZE)
    try:
        gcm_open_into(material, parsed.nonce, parsed.sealed, parsed.aad(context), plaintext)
    except AuthenticationError:  # plaintext is zeroed: no unauthenticated byte is left in it
        raise InvalidCiphertextError(unwrap_failure(parsed.key_id)) from None
    finally:
        wipe(material)
    return plaintext


def check_all(conn: sqlite3.Connection, wrapping: WrappingKey) -> list[str]:
    """Problems with the stored material: gaps in a key's versions, rows that do not open."""
    problems: list[str] = []
    versions: dict[str, list[int]] = {}
    symmetric = {r[0] for r in conn.execute("SELECT key_id FROM keys WHERE key_spec = 'SYMMETRIC_DEFAULT'")}
    for key_id, version, sealed in conn.execute("SELECT key_id, version, sealed FROM key_material"):
        versions.setdefault(key_id, []).append(int(version))
        try:
            material = wrapping.open(key_id, int(version), sealed)
        except KeyringError as exc:
            problems.append(str(exc))
            continue
        if key_id in symmetric and len(material) != MATERIAL_SIZE:
            problems.append(f"backing key {version} of key {key_id} is {len(material)} bytes, not {MATERIAL_SIZE}")
        wipe(material)
    for (key_id,) in conn.execute("SELECT key_id FROM keys"):
        have = sorted(versions.get(key_id, []))
        if have != list(range(1, len(have) + 1)) or (not have and not _pending_import(conn, key_id)):
            problems.append(f"key {key_id} has backing versions {have}, expected 1..n with none missing")
    return problems


def _pending_import(conn: sqlite3.Connection, key_id: str) -> bool:
    row = conn.execute("SELECT state FROM keys WHERE key_id = ?", (key_id,)).fetchone()
    return row is not None and row[0] == "PendingImport"


def unwrap_failure(key_id: str) -> str:
    return f"cannot decrypt with local key {key_id}: wrong encryption context or corrupted ciphertext"


def wipe(buf: bytearray) -> None:
    """Zero a buffer that held key material or plaintext (copies made by libraries are out of reach)."""
    buf[:] = bytes(len(buf))

"""The embedded local KMS: master keys in a private SQLite file.

:class:`KeyStore` answers the AWS KMS calls envelope needs (CreateKey,
ListKeys, DescribeKey, CreateAlias, ListAliases, GenerateDataKey, Encrypt,
Decrypt) with the same semantics, so a file encrypted under the local keystore
behaves like one encrypted under a cloud KMS:

- a master key never leaves the keystore; callers get data keys and blobs;
- Encrypt takes at most 4096 bytes, larger data is for envelope encryption;
- a blob names its key and backing version (:mod:`envelope.kms.blob`), so
  Decrypt needs no key id and keeps working after rotation;
- the encryption context is bound as AAD, so a blob opens only under the
  context it was sealed with;
- only an ``Enabled`` key may be used; every call, successful or not, leaves a
  row in the audit trail.

Key material at rest is stored unencrypted in the keystore file.  What protects
it is the file's permissions, as with an SSH private key: the file is created
0600 in a 0700 directory and refused if others can read it
(:mod:`envelope.kms.paths`).  Protection by a passphrase or the OS keyring may
come later; the schema has room for it.  Plaintext data keys are returned in
``bytearray`` objects the caller should zero after use; key material never
appears in a repr, a log line or an exception message.

Every write is one SQLite transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), so
a crash or a concurrent process never sees half a key.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .. import context as _context
from ..context import EncryptionContext
from ..exceptions import FormatError, KeyNotFoundError, KeyringError, KeyStateError, UsageError
from . import blob as _blob
from . import schema
from .db import Call, Database, timestamp
from .model import (
    DEFAULT_ALIAS,
    AliasEntry,
    AuditEvent,
    KeyMetadata,
    check_new_alias,
    key_arn,
    new_key_id,
    parse_reference,
)
from .paths import check_private, create_keystore_file, default_keystore_path

#: GenerateDataKey's NumberOfBytes range, as in AWS KMS.
MAX_DATA_KEY_BYTES = 1024
MAX_DESCRIPTION_SIZE = 8192

StrPath = str | os.PathLike[str]


class KeyStore:
    """One local keystore file.  Open it, call KMS operations, close it.

    ``create=False`` opens only an existing keystore and raises
    :class:`KeyNotFoundError` otherwise, so looking a key up on a machine that
    has none does not leave an empty database behind.
    """

    def __init__(self, path: StrPath | None = None, *, create: bool = True) -> None:
        self.path = Path(os.fspath(path)).expanduser() if path is not None else default_keystore_path()
        if not self.path.exists():
            if not create:
                raise KeyNotFoundError(f"no local keystore at {self.path}")
            create_keystore_file(self.path)
        check_private(self.path)
        self._db = Database(self.path)
        self.keystore_id = self._db.keystore_id

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<KeyStore {os.fspath(self.path)!r}>"

    # -- management operations -------------------------------------------------------------------

    def create_key(self, description: str = "", alias: str | None = None) -> KeyMetadata:
        """CreateKey: a new Enabled symmetric key with fresh material, optionally with an alias."""
        _check_description(description)
        if alias is not None:
            check_new_alias(alias)
        with self._db.operation("CreateKey", {"description": description, "alias": alias}) as call:
            key_id = self._insert_key(call.conn, description)
            if alias is not None:
                self._insert_alias(call.conn, alias, key_id)
                call.also("CreateAlias", key_id, {"alias": alias, "target": key_id})
            call.key_id = key_id
            meta = self._metadata(call.conn, key_id)
        return meta

    def list_keys(self) -> list[KeyMetadata]:
        """ListKeys, with each key's metadata (oldest first)."""
        with self._db.operation("ListKeys", {}) as call:
            rows = call.conn.execute("SELECT key_id FROM keys ORDER BY rowid").fetchall()
            keys = [self._metadata(call.conn, row[0]) for row in rows]
        return keys

    def describe_key(self, ref: str) -> KeyMetadata:
        """DescribeKey: *ref* is a key id, a key or alias ARN, or ``alias/NAME``; any state."""
        with self._db.operation("DescribeKey", {"key": ref}) as call:
            call.key_id = self._resolve(call.conn, ref)
            meta = self._metadata(call.conn, call.key_id)
        return meta

    def create_alias(self, alias: str, ref: str) -> AliasEntry:
        """CreateAlias: a new unique name for a key (given by id or ARN, as in AWS KMS)."""
        check_new_alias(alias)
        if parse_reference(ref).kind == "alias":
            raise UsageError("an alias must point at a key id or key ARN, not at another alias")
        with self._db.operation("CreateAlias", {"alias": alias, "target": ref}) as call:
            call.key_id = self._resolve(call.conn, ref)
            state = self._state(call.conn, call.key_id)
            if state == "PendingDeletion":
                raise KeyStateError(f"key {call.key_id} is PendingDeletion; it cannot be given an alias")
            entry = self._insert_alias(call.conn, alias, call.key_id)
        return entry

    def list_aliases(self) -> list[AliasEntry]:
        """ListAliases, sorted by name."""
        with self._db.operation("ListAliases", {}) as call:
            rows = call.conn.execute(
                "SELECT alias_name, key_id, created_at FROM aliases ORDER BY alias_name"
            ).fetchall()
        return [AliasEntry(*row) for row in rows]

    def ensure_default_key(self) -> tuple[KeyMetadata, bool]:
        """The key behind ``alias/envelope/default``, created on first use; and whether it was just created.

        Lookup and creation are one transaction, so two processes encrypting
        for the first time at once still end up with a single default key.
        """
        with self._db.operation("DescribeKey", {"key": DEFAULT_ALIAS}) as call:
            row = call.conn.execute("SELECT key_id FROM aliases WHERE alias_name = ?", (DEFAULT_ALIAS,)).fetchone()
            created = row is None
            if created:
                call.operation = "CreateKey"
                call.request = {"description": _DEFAULT_DESCRIPTION, "alias": DEFAULT_ALIAS}
                key_id = self._insert_key(call.conn, _DEFAULT_DESCRIPTION)
                self._insert_alias(call.conn, DEFAULT_ALIAS, key_id)
                call.also("CreateAlias", key_id, {"alias": DEFAULT_ALIAS, "target": key_id})
            else:
                key_id = row[0]
            call.key_id = key_id
            meta = self._metadata(call.conn, key_id)
        return meta, created

    def resolve_key_id(self, ref: str) -> str:
        """The key id *ref* names (a lookup, not an API call: it is not audited)."""
        with self._db.reading() as conn:
            return self._resolve(conn, ref)

    def audit_events(self, key_id: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        """The audit trail, oldest first; optionally only one key's rows, or only the last *limit*."""
        return self._db.audit_events(key_id, limit)

    def _set_key_state(self, ref: str, state: str) -> KeyMetadata:
        """Internal: force a key's state, until EnableKey/DisableKey/ScheduleKeyDeletion exist."""
        if state not in schema.KEY_STATES:
            raise UsageError(f"unknown key state {state!r} (known: {', '.join(schema.KEY_STATES)})")
        operation = {"Enabled": "EnableKey", "Disabled": "DisableKey"}.get(state, "SetKeyState")
        with self._db.operation(operation, {"key": ref, "state": state}) as call:
            call.key_id = self._resolve(call.conn, ref)
            call.conn.execute(
                "UPDATE keys SET state = ?, updated_at = ? WHERE key_id = ?", (state, timestamp(), call.key_id)
            )
            meta = self._metadata(call.conn, call.key_id)
        return meta

    # -- cryptographic operations ----------------------------------------------------------------

    def generate_data_key(
        self, ref: str, context: EncryptionContext | None = None, number_of_bytes: int = 32
    ) -> tuple[bytearray, bytes, str]:
        """GenerateDataKey: fresh random bytes, and the same bytes sealed under *ref*'s newest backing key.

        Returns ``(plaintext, blob, key_id)``; zero *plaintext* when done with it.
        """
        ctx = _context.normalize(context)
        if isinstance(number_of_bytes, bool) or not isinstance(number_of_bytes, int) \
                or not 1 <= number_of_bytes <= MAX_DATA_KEY_BYTES:
            raise UsageError(f"number_of_bytes must be from 1 to {MAX_DATA_KEY_BYTES}")
        request = {"key": ref, "encryption_context": ctx, "number_of_bytes": number_of_bytes}
        with self._db.operation("GenerateDataKey", request) as call:
            key_id = self._usable_key(call, ref)
            plaintext = bytearray(os.urandom(number_of_bytes))
            try:
                sealed = self._seal(call.conn, key_id, plaintext, ctx)
            except BaseException:
                _wipe(plaintext)
                raise
        return plaintext, sealed, key_id

    def encrypt(self, ref: str, plaintext: bytes | bytearray | memoryview,
                context: EncryptionContext | None = None) -> bytes:
        """Encrypt: seal up to 4096 bytes under *ref*'s newest backing key; returns the blob."""
        ctx = _context.normalize(context)
        size = memoryview(plaintext).nbytes
        if size > _blob.MAX_PLAINTEXT_SIZE:
            raise UsageError(
                f"Encrypt takes at most {_blob.MAX_PLAINTEXT_SIZE} bytes of plaintext, got {size}: "
                "use envelope encryption for larger data (a data key from GenerateDataKey, "
                "as envelope encrypt-file does)"
            )
        if size == 0:
            raise UsageError("Encrypt needs at least 1 byte of plaintext")
        with self._db.operation("Encrypt", {"key": ref, "encryption_context": ctx}) as call:
            key_id = self._usable_key(call, ref)
            sealed = self._seal(call.conn, key_id, plaintext, ctx)
        return sealed

    def decrypt(self, blob: bytes | bytearray | memoryview, context: EncryptionContext | None = None,
                expected_key_id: str | None = None) -> tuple[bytearray, str]:
        """Decrypt: open a blob from Encrypt or GenerateDataKey; returns ``(plaintext, key_id)``.

        The blob names its key.  With *expected_key_id* (any reference), a blob
        sealed under another key is refused before any decryption is tried.
        """
        ctx = _context.normalize(context)
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise UsageError("the ciphertext blob must be bytes")
        with self._db.operation("Decrypt", {"encryption_context": ctx, "expected_key": expected_key_id}) as call:
            try:
                parsed = _blob.parse(blob)
            except FormatError as exc:
                raise KeyringError(f"cannot decrypt: {exc}") from None
            if expected_key_id is not None:
                expected = self._resolve(call.conn, expected_key_id)
                if expected != parsed.key_id:
                    raise KeyringError(
                        f"the ciphertext was encrypted under key {parsed.key_id}, not the expected key {expected}"
                    )
            call.key_id = self._usable_key(call, parsed.key_id)
            row = call.conn.execute(
                "SELECT material FROM key_material WHERE key_id = ? AND version = ?",
                (parsed.key_id, parsed.backing_version),
            ).fetchone()
            if row is None:  # a version this key never had: the blob was altered
                raise KeyringError(_unwrap_failure(parsed.key_id))
            plaintext = bytearray(len(parsed.sealed) - _blob.TAG_SIZE)
            try:
                AESGCM(row[0]).decrypt_into(parsed.nonce, parsed.sealed, parsed.aad(ctx), plaintext)
            except InvalidTag:
                _wipe(plaintext)  # decrypt_into may have written unauthenticated bytes
                raise KeyringError(_unwrap_failure(parsed.key_id)) from None
        return plaintext, parsed.key_id

    # -- internals -------------------------------------------------------------------------------

    def _resolve(self, conn: sqlite3.Connection, ref: str) -> str:
        parsed = parse_reference(ref)
        if parsed.keystore_id is not None and parsed.keystore_id != self.keystore_id:
            raise KeyNotFoundError(
                f"{ref} belongs to keystore {parsed.keystore_id}, not to the local keystore at {self.path} "
                f"({self.keystore_id})"
            )
        if parsed.kind == "alias":
            row = conn.execute("SELECT key_id FROM aliases WHERE alias_name = ?", (parsed.value,)).fetchone()
            if row is None:
                raise KeyNotFoundError(f"alias {parsed.value} does not exist in the local keystore at {self.path}")
            return str(row[0])
        if conn.execute("SELECT 1 FROM keys WHERE key_id = ?", (parsed.value,)).fetchone() is None:
            raise KeyNotFoundError(f"key {parsed.value} does not exist in the local keystore at {self.path}")
        return parsed.value

    def _state(self, conn: sqlite3.Connection, key_id: str) -> str:
        return str(conn.execute("SELECT state FROM keys WHERE key_id = ?", (key_id,)).fetchone()[0])

    def _usable_key(self, call: Call, ref: str) -> str:
        """Resolve *ref* for a cryptographic operation: the key must exist and be Enabled."""
        key_id = self._resolve(call.conn, ref)
        call.key_id = key_id
        state = self._state(call.conn, key_id)
        if state != "Enabled":
            raise KeyStateError(f"key {key_id} is {state}; {call.operation} needs an Enabled key")
        return key_id

    def _seal(self, conn: sqlite3.Connection, key_id: str, plaintext: bytes | bytearray | memoryview,
              ctx: EncryptionContext) -> bytes:
        version, material = conn.execute(
            "SELECT version, material FROM key_material WHERE key_id = ? ORDER BY version DESC LIMIT 1", (key_id,)
        ).fetchone()
        nonce = os.urandom(_blob.NONCE_SIZE)
        sealed = AESGCM(material).encrypt(nonce, plaintext, _blob.aad(key_id, version, ctx))
        return _blob.encode_prefix(key_id, version) + nonce + sealed

    def _insert_key(self, conn: sqlite3.Connection, description: str) -> str:
        key_id = new_key_id()
        now = timestamp()
        conn.execute(
            "INSERT INTO keys (key_id, arn, description, created_at, state, origin, key_spec, key_usage, policy,"
            " updated_at) VALUES (?, ?, ?, ?, 'Enabled', 'ENVELOPE', ?, ?, ?, ?)",
            (key_id, key_arn(self.keystore_id, key_id), description, now, schema.KEY_SPEC, schema.KEY_USAGE,
             json.dumps(default_policy(self._db.principal)), now),
        )
        conn.execute(
            "INSERT INTO key_material (key_id, version, material, origin, created_at)"
            " VALUES (?, 1, ?, 'ENVELOPE', ?)",
            (key_id, os.urandom(schema.MATERIAL_SIZE), now),
        )
        return key_id

    def _insert_alias(self, conn: sqlite3.Connection, alias: str, key_id: str) -> AliasEntry:
        row = conn.execute("SELECT key_id FROM aliases WHERE alias_name = ?", (alias,)).fetchone()
        if row is not None:
            raise UsageError(f"alias {alias} already exists (it points to key {row[0]})")
        now = timestamp()
        conn.execute(
            "INSERT INTO aliases (alias_name, key_id, created_at, updated_at) VALUES (?, ?, ?, ?)",
            (alias, key_id, now, now),
        )
        return AliasEntry(alias, key_id, now)

    def _metadata(self, conn: sqlite3.Connection, key_id: str) -> KeyMetadata:
        row = conn.execute(
            "SELECT key_id, arn, description, created_at, state, origin, key_spec, key_usage, key_manager,"
            " rotation_enabled, deletion_date FROM keys WHERE key_id = ?",
            (key_id,),
        ).fetchone()
        if row is None:
            raise KeyNotFoundError(f"key {key_id} does not exist in the local keystore at {self.path}")
        aliases = tuple(r[0] for r in conn.execute(
            "SELECT alias_name FROM aliases WHERE key_id = ? ORDER BY alias_name", (key_id,)
        ))
        (versions,) = conn.execute("SELECT count(*) FROM key_material WHERE key_id = ?", (key_id,)).fetchone()
        return KeyMetadata(
            key_id=row[0], arn=row[1], description=row[2], created_at=row[3], state=row[4], origin=row[5],
            key_spec=row[6], key_usage=row[7], key_manager=row[8], aliases=aliases, backing_versions=int(versions),
            rotation_enabled=bool(row[9]), deletion_date=row[10],
        )


_DEFAULT_DESCRIPTION = "envelope default key (created on first use)"


def default_policy(principal: str) -> dict[str, Any]:
    """The key policy stored with a new key: its local owner may do everything.

    Stored now, in AWS's document shape, so policies can be enforced later
    without rewriting keys; nothing evaluates it yet.
    """
    return {
        "Version": "2012-10-17",
        "Id": "envelope-local-default",
        "Statement": [{
            "Sid": "Allow the keystore owner full access",
            "Effect": "Allow",
            "Principal": {"Local": principal},
            "Action": "kms:*",
            "Resource": "*",
        }],
    }


def _check_description(description: str) -> None:
    if not isinstance(description, str):
        raise UsageError("a key description must be a string")
    if len(description) > MAX_DESCRIPTION_SIZE:
        raise UsageError(f"a key description is at most {MAX_DESCRIPTION_SIZE} characters")


def _unwrap_failure(key_id: str) -> str:
    return f"cannot decrypt with local key {key_id}: wrong encryption context or corrupted ciphertext"


def _wipe(buf: bytearray) -> None:
    buf[:] = bytes(len(buf))

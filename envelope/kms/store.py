"""The embedded local KMS: master keys in a private SQLite file.

:class:`KeyStore` answers AWS KMS's calls with AWS KMS's semantics, so a file
encrypted under the local keystore behaves like one encrypted under a cloud
KMS, and code (and people) moving between the two meet no surprises:

- a master key never leaves the keystore; callers get data keys and blobs;
- keys are named by id, ARN or alias; aliases move (manual rotation), ids never;
- a key is ``Enabled``, ``Disabled`` or ``PendingDeletion``, and only an
  ``Enabled`` key does cryptography (:mod:`envelope.kms.lifecycle`);
- rotation adds backing keys under the same id and keeps the old ones, so
  every blob ever sealed still opens (:mod:`envelope.kms.material`);
- deletion is scheduled 7 to 30 days ahead and can be cancelled until then;
- every call, successful or refused, leaves a row in the audit trail.

This module holds the key and lifecycle calls; aliases and tags are in
:mod:`envelope.kms.naming`, and the cryptographic calls (GenerateDataKey,
Encrypt, Decrypt, ReEncrypt, GenerateRandom) in :mod:`envelope.kms.crypto`,
both mixed into the same class.  Backing keys are sealed at rest under the keystore
wrapping key (:mod:`envelope.kms.protection`).  Every write is one SQLite
``BEGIN IMMEDIATE`` transaction, so a crash or a concurrent process never sees
half a key, and due rotations and deletions run before any call that could be
affected by them (as well as on :meth:`KeyStore.maintain`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ..exceptions import KeyNotFoundError, KeyringError, UsageError
from . import lifecycle, material, schema
from .clock import Clock, SystemClock, parse_iso
from .crypto import CryptoOperations
from .naming import NamingOperations, insert_alias, tags_of
from .db import Call, Database
from .model import (
    DEFAULT_ALIAS,
    MAX_TAGS_PER_KEY,
    AuditEvent,
    DeletionSchedule,
    KeyMetadata,
    KeyRotation,
    MaintenanceReport,
    RotationStatus,
    check_new_alias,
    check_tags,
    key_arn,
    new_key_id,
    parse_reference,
)
from .paths import check_private, create_keystore_file, default_keystore_path
from .protection import key_file_path

MAX_DESCRIPTION_SIZE = 8192

StrPath = str | os.PathLike[str]


class KeyStore(NamingOperations, CryptoOperations):
    """One local keystore file.  Open it, call KMS operations, close it.

    ``create=False`` opens only an existing keystore and raises
    :class:`KeyNotFoundError` otherwise, so looking a key up on a machine that
    has none does not leave an empty database behind.  *clock* decides what
    "now" is for schedules (tests pass a :class:`~envelope.kms.clock.ManualClock`).
    *passphrase* protects a new keystore with a passphrase instead of a key
    file, and opens an existing passphrase keystore; without it
    ``$ENVELOPE_KEYSTORE_PASSPHRASE`` or a terminal prompt is used.
    """

    def __init__(self, path: StrPath | None = None, *, create: bool = True, clock: Clock | None = None,
                 passphrase: str | None = None) -> None:
        self.path = Path(os.fspath(path)).expanduser() if path is not None else default_keystore_path()
        if key_file_path(self.path).exists():  # first, so a refusal leaves no new empty keystore behind
            check_private(key_file_path(self.path))
        if not self.path.exists():
            if not create:
                raise KeyNotFoundError(f"no local keystore at {self.path}")
            create_keystore_file(self.path)
        check_private(self.path)
        self._db = Database(self.path, clock or SystemClock(), passphrase)
        self.keystore_id = self._db.keystore_id

    # -- lifecycle of the object -------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<KeyStore {os.fspath(self.path)!r}>"

    @property
    def protection(self) -> str:
        """``key-file`` or ``passphrase``: what the master keys are sealed under at rest."""
        with self._db.reading() as conn:
            return str(conn.execute("SELECT value FROM meta WHERE name = 'protection'").fetchone()[0])

    # -- keys --------------------------------------------------------------------------------------

    def create_key(self, description: str = "", alias: str | None = None,
                   tags: Mapping[str, str] | None = None) -> KeyMetadata:
        """CreateKey: a new Enabled symmetric key with fresh material, optionally with an alias and tags."""
        _check_description(description)
        tag_map = check_tags(tags or {})
        if len(tag_map) > MAX_TAGS_PER_KEY:
            raise UsageError(f"a key has at most {MAX_TAGS_PER_KEY} tags")
        if alias is not None:
            check_new_alias(alias)
        with self._operation("CreateKey", {"description": description, "alias": alias,
                                           "tag_keys": sorted(tag_map)}) as call:
            key_id = self._insert_key(call.conn, description)
            call.key_id = key_id
            if alias is not None:
                insert_alias(call.conn, alias, key_id, self._db.timestamp())
                call.also("CreateAlias", key_id, {"alias": alias, "target": key_id})
            call.conn.executemany("INSERT INTO tags (key_id, tag_key, tag_value) VALUES (?, ?, ?)",
                                  [(key_id, k, v) for k, v in tag_map.items()])
            return self._metadata(call.conn, key_id)

    def list_keys(self) -> list[KeyMetadata]:
        """ListKeys, with each key's metadata (oldest first)."""
        with self._operation("ListKeys", {}) as call:
            rows = call.conn.execute("SELECT key_id FROM keys ORDER BY rowid").fetchall()
            return [self._metadata(call.conn, row[0]) for row in rows]

    def describe_key(self, ref: str) -> KeyMetadata:
        """DescribeKey: *ref* is a key id, a key or alias ARN, or ``alias/NAME``; any state."""
        with self._operation("DescribeKey", {"key": ref}) as call:
            return self._metadata(call.conn, self._resolve_in(call, ref))

    def update_key_description(self, ref: str, description: str) -> KeyMetadata:
        _check_description(description)
        with self._operation("UpdateKeyDescription", {"key": ref, "description": description}) as call:
            key_id = self._resolve_in(call, ref)
            lifecycle.require(call.conn, key_id, "UpdateKeyDescription",
                              (lifecycle.ENABLED, lifecycle.DISABLED, lifecycle.PENDING_IMPORT))
            call.conn.execute("UPDATE keys SET description = ?, updated_at = ? WHERE key_id = ?",
                              (description, self._db.timestamp(), key_id))
            return self._metadata(call.conn, key_id)

    def enable_key(self, ref: str) -> KeyMetadata:
        """EnableKey: a Disabled key may be used again."""
        return self._set_enabled(ref, True)

    def disable_key(self, ref: str) -> KeyMetadata:
        """DisableKey: the key refuses every cryptographic operation until enabled; nothing is lost."""
        return self._set_enabled(ref, False)

    def schedule_key_deletion(self, ref: str, pending_window_days: int | None = None) -> DeletionSchedule:
        """ScheduleKeyDeletion: after 7-30 days (default 30) the key's material is destroyed for good."""
        with self._operation("ScheduleKeyDeletion", {"key": ref, "pending_window_days": pending_window_days}) as call:
            return lifecycle.schedule_deletion(call.conn, self._resolve_in(call, ref), pending_window_days,
                                               self._db.now())

    def cancel_key_deletion(self, ref: str) -> KeyMetadata:
        """CancelKeyDeletion: the key survives, ``Disabled``; enable it to use it again."""
        with self._operation("CancelKeyDeletion", {"key": ref}) as call:
            key_id = self._resolve_in(call, ref)
            lifecycle.cancel_deletion(call.conn, key_id, self._db.now())
            return self._metadata(call.conn, key_id)

    # -- rotation ----------------------------------------------------------------------------------

    def enable_key_rotation(self, ref: str, rotation_period_days: int | None = None) -> RotationStatus:
        """EnableKeyRotation: a new backing key every *rotation_period_days* (90-2560, default 365)."""
        with self._operation("EnableKeyRotation", {"key": ref, "rotation_period_days": rotation_period_days}) as call:
            key_id = self._resolve_in(call, ref)
            lifecycle.set_rotation(call.conn, key_id, rotation_period_days, self._db.now())
            return self._rotation_status(call.conn, key_id)

    def disable_key_rotation(self, ref: str) -> RotationStatus:
        with self._operation("DisableKeyRotation", {"key": ref}) as call:
            key_id = self._resolve_in(call, ref)
            lifecycle.disable_rotation(call.conn, key_id, self._db.now())
            return self._rotation_status(call.conn, key_id)

    def get_key_rotation_status(self, ref: str) -> RotationStatus:
        """GetKeyRotationStatus with ListKeyRotations: the schedule, and every backing key so far."""
        with self._operation("GetKeyRotationStatus", {"key": ref}) as call:
            return self._rotation_status(call.conn, self._resolve_in(call, ref))

    def rotate_key_on_demand(self, ref: str) -> KeyRotation:
        """RotateKeyOnDemand: a new backing key now; older ones stay, and the automatic schedule is unchanged."""
        with self._operation("RotateKeyOnDemand", {"key": ref}) as call:
            key_id = self._resolve_in(call, ref)
            lifecycle.check_on_demand(call.conn, key_id)
            return self._rotate(call.conn, key_id, automatic=False)

    def maintain(self) -> MaintenanceReport:
        """Perform every due automatic rotation and scheduled deletion; each is audited on its own.

        Calls do this lazily before they run, so a keystore that is only ever
        used still keeps its schedule; ``envelope keys maintain`` (from cron,
        say) makes it happen on time for keys nobody touches.
        """
        return self._maintain(lazy=False)

    # -- for envelope itself -----------------------------------------------------------------------

    def ensure_default_key(self) -> tuple[KeyMetadata, bool]:
        """The key behind ``alias/envelope/default``, created on first use; and whether it was just created.

        Lookup and creation are one transaction, so two processes encrypting
        for the first time at once still end up with a single default key.
        """
        with self._operation("DescribeKey", {"key": DEFAULT_ALIAS}) as call:
            call.alias = DEFAULT_ALIAS
            row = call.conn.execute("SELECT key_id FROM aliases WHERE alias_name = ?", (DEFAULT_ALIAS,)).fetchone()
            created = row is None
            if created:
                call.operation = "CreateKey"
                call.request = {"description": _DEFAULT_DESCRIPTION, "alias": DEFAULT_ALIAS}
                key_id = self._insert_key(call.conn, _DEFAULT_DESCRIPTION)
                insert_alias(call.conn, DEFAULT_ALIAS, key_id, self._db.timestamp())
                call.also("CreateAlias", key_id, {"alias": DEFAULT_ALIAS, "target": key_id})
            else:
                key_id = row[0]
            call.key_id = key_id
            return self._metadata(call.conn, key_id), created

    def resolve_key_id(self, ref: str) -> str:
        """The key id *ref* names (a lookup, not an API call: it is not audited)."""
        with self._db.reading() as conn:
            return self._resolve(conn, ref)

    def audit_events(self, key: str | None = None, since: datetime | str | None = None,
                     operation: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        """The audit trail, oldest first: all of it, or one key's (by any reference, deleted keys by id),
        from *since* on, of one *operation*, or only the last *limit* rows."""
        key_id = None
        if key is not None:
            parsed = parse_reference(key)
            key_id = parsed.value if parsed.kind == "key" else self.resolve_key_id(key)
        when = parse_iso(since) if isinstance(since, str) else since
        return self._db.audit_events(key_id, when, operation, limit)

    def verify(self) -> list[str]:
        """Consistency check: SQLite's integrity and foreign keys, states, and every backing key opening.

        Returns the problems found; an empty list means the keystore is sound.
        """
        with self._db.reading() as conn:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check") if row[0] != "ok"]
            problems += [f"dangling reference in {row[0]}" for row in conn.execute("PRAGMA foreign_key_check")]
            for key_id, state, deletion_date in conn.execute("SELECT key_id, state, deletion_date FROM keys"):
                if (state == lifecycle.PENDING_DELETION) != (deletion_date is not None):
                    problems.append(f"key {key_id} is {state} with deletion date {deletion_date}")
            problems += material.check_all(conn, self._db.wrapping_key(conn))
        return problems

    # -- internals ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _operation(self, name: str, request: dict[str, Any]) -> Iterator[Call]:
        """One audited call, after any rotation or deletion that has come due (so none is ever skipped)."""
        self._maintain(lazy=True)
        with self._db.operation(name, request) as call:
            yield call

    def _maintain(self, lazy: bool) -> MaintenanceReport:
        if lazy:
            with self._db.reading() as conn:
                if not lifecycle.anything_due(conn, self._db.now()):
                    return MaintenanceReport()
        rotated: list[str] = []
        with self._db.operation("Maintain", {"trigger": "lazy" if lazy else "maintain"}) as call:
            now = self._db.now()
            rotations, deletions = lifecycle.due(call.conn, now)
            call.unrecorded = lazy and not (rotations or deletions)  # another process got there first
            for key_id in deletions:
                lifecycle.destroy(call.conn, key_id, now)
                call.also("DeleteKey", key_id, {"trigger": "scheduled deletion"})
            if rotations:
                try:
                    self._db.wrapping_key(call.conn)
                except KeyringError:
                    if not lazy:  # a passphrase keystore opened without one: only an explicit maintain insists
                        raise
                    rotations = []
            for key_id in rotations:
                version = self._rotate(call.conn, key_id, automatic=True).version
                rotated.append(key_id)
                call.also("RotateKey", key_id, {"trigger": "automatic rotation", "version": version})
        return MaintenanceReport(tuple(rotated), tuple(deletions))

    def _rotate(self, conn: sqlite3.Connection, key_id: str, automatic: bool) -> KeyRotation:
        now = self._db.now()
        kind = "AUTOMATIC" if automatic else "ON_DEMAND"
        version = material.add_version(conn, self._db.wrapping_key(conn), key_id, "ENVELOPE", kind,
                                       self._db.timestamp())
        lifecycle.record_rotation(conn, key_id, automatic, now)
        return material.rotations(conn, key_id)[version - 1]

    def _set_enabled(self, ref: str, enabled: bool) -> KeyMetadata:
        with self._operation("EnableKey" if enabled else "DisableKey", {"key": ref}) as call:
            key_id = self._resolve_in(call, ref)
            lifecycle.set_enabled(call.conn, key_id, enabled, self._db.now())
            return self._metadata(call.conn, key_id)

    def _resolve_in(self, call: Call, ref: str) -> str:
        """Resolve *ref* for an audited call, recording the key and the alias the caller used."""
        if parse_reference(ref).kind == "alias":
            call.alias = parse_reference(ref).value
        call.key_id = self._resolve(call.conn, ref)
        return call.key_id

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
            when = lifecycle.deleted_at(conn, parsed.value)
            if when is not None:
                raise KeyNotFoundError(
                    f"key {parsed.value} was deleted on {when}: its key material is destroyed, and nothing "
                    "encrypted under it can be decrypted"
                )
            raise KeyNotFoundError(f"key {parsed.value} does not exist in the local keystore at {self.path}")
        return parsed.value

    def _insert_key(self, conn: sqlite3.Connection, description: str) -> str:
        key_id = new_key_id()
        now = self._db.timestamp()
        conn.execute(
            "INSERT INTO keys (key_id, arn, description, created_at, state, origin, key_spec, key_usage, policy,"
            " updated_at) VALUES (?, ?, ?, ?, 'Enabled', 'ENVELOPE', ?, ?, ?, ?)",
            (key_id, key_arn(self.keystore_id, key_id), description, now, schema.KEY_SPEC, schema.KEY_USAGE,
             json.dumps(default_policy(self._db.principal)), now),
        )
        material.add_version(conn, self._db.wrapping_key(conn), key_id, "ENVELOPE", None, now)
        return key_id

    def _metadata(self, conn: sqlite3.Connection, key_id: str) -> KeyMetadata:
        row = conn.execute(
            "SELECT key_id, arn, description, created_at, state, origin, key_spec, key_usage, key_manager,"
            " rotation_enabled, deletion_date, rotation_period_days, next_rotation_date FROM keys WHERE key_id = ?",
            (key_id,),
        ).fetchone()
        if row is None:
            raise KeyNotFoundError(f"key {key_id} does not exist in the local keystore at {self.path}")
        aliases = tuple(r[0] for r in conn.execute(
            "SELECT alias_name FROM aliases WHERE key_id = ? ORDER BY alias_name", (key_id,)))
        (versions,) = conn.execute("SELECT count(*) FROM key_material WHERE key_id = ?", (key_id,)).fetchone()
        return KeyMetadata(
            key_id=row[0], arn=row[1], description=row[2], created_at=row[3], state=row[4], origin=row[5],
            key_spec=row[6], key_usage=row[7], key_manager=row[8], aliases=aliases, backing_versions=int(versions),
            rotation_enabled=bool(row[9]), deletion_date=row[10], rotation_period_days=row[11],
            next_rotation_date=row[12], tags=tags_of(conn, key_id),
        )

    def _rotation_status(self, conn: sqlite3.Connection, key_id: str) -> RotationStatus:
        enabled, period, next_date = conn.execute(
            "SELECT rotation_enabled, rotation_period_days, next_rotation_date FROM keys WHERE key_id = ?", (key_id,)
        ).fetchone()
        return RotationStatus(key_id, bool(enabled), period, next_date, material.rotations(conn, key_id))


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


__all__ = ["KeyStore", "default_policy"]

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
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ..exceptions import KeyNotFoundError, KeyringError, UsageError
from . import imports, lifecycle, material, schema
from . import grants as _grants
from . import policy as _policy
from .clock import Clock, SystemClock, parse_iso
from .crypto import CryptoOperations
from .grants import GrantOperations
from .part import Delegation
from .asymmetric_ops import AsymmetricOperations
from .credentials import CredentialOperations
from .imports import ImportOperations
from .key_policies import PolicyOperations
from .regions import RegionOperations
from .rotation import RotationOperations
from .naming import NamingOperations, insert_alias, tags_of
from .db import Call, Database
from .model import (
    DEFAULT_ALIAS,
    MAX_TAGS_PER_KEY,
    AuditEvent,
    DeletionSchedule,
    KeyMetadata,
    MaintenanceReport,
    check_new_alias,
    check_region,
    check_tags,
    key_arn,
    new_key_id,
    parse_reference,
)
from .paths import check_private, create_keystore_file, default_keystore_path
from .protection import key_file_path

MAX_DESCRIPTION_SIZE = 8192

StrPath = str | os.PathLike[str]


class KeyStore(PolicyOperations, NamingOperations, CryptoOperations, RotationOperations, GrantOperations,
               ImportOperations, AsymmetricOperations, RegionOperations, CredentialOperations):
    """One local keystore file.  Open it, call KMS operations, close it.

    ``create=False`` opens only an existing keystore and raises
    :class:`KeyNotFoundError` otherwise, so looking a key up on a machine that
    has none does not leave an empty database behind.  *clock* decides what
    "now" is for schedules (tests pass a :class:`~envelope.kms.clock.ManualClock`).
    *passphrase* protects a new keystore with a passphrase instead of a key
    file, and opens an existing passphrase keystore; without it
    ``$ENVELOPE_KEYSTORE_PASSPHRASE`` or a terminal prompt is used.
    *principal* is who calls (default ``$ENVELOPE_PRINCIPAL``, else the OS
    user; see :mod:`envelope.kms.principal`): key policies and grants decide
    what it may do.  *via* names the envelope component making the calls, for
    ``kms:ViaService`` conditions.  *region* names the region of a new
    keystore (default ``local``) and must match an existing one's.
    """

    def __init__(self, path: StrPath | None = None, *, create: bool = True, clock: Clock | None = None,
                 passphrase: str | None = None, principal: str | None = None, via: str | None = None,
                 region: str | None = None) -> None:
        self.path = Path(os.fspath(path)).expanduser() if path is not None else default_keystore_path()
        if key_file_path(self.path).exists():  # first, so a refusal leaves no new empty keystore behind
            check_private(key_file_path(self.path))
        if not self.path.exists():
            if not create:
                raise KeyNotFoundError(f"no local keystore at {self.path}")
            create_keystore_file(self.path)
        check_private(self.path)
        self._db = Database(self.path, clock or SystemClock(), passphrase, principal,
                            check_region(region) if region is not None else None)
        self.keystore_id = self._db.keystore_id
        self.region = self._db.region
        self.via = via

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
    def principal(self) -> str:
        """Who this keystore object calls as."""
        return self._db.principal

    @property
    def owner(self) -> str:
        """The keystore's owner, ``local:root`` in key policies: the principal that created it."""
        return self._db.owner

    @property
    def protection(self) -> str:
        """``key-file`` or ``passphrase``: what the master keys are sealed under at rest."""
        with self._db.reading() as conn:
            return str(conn.execute("SELECT value FROM meta WHERE name = 'protection'").fetchone()[0])

    # -- keys --------------------------------------------------------------------------------------

    def create_key(self, description: str = "", alias: str | None = None,
                   tags: Mapping[str, str] | None = None, *, policy: str | Mapping[str, Any] | None = None,
                   admins: Sequence[str] = (), users: Sequence[str] = (), origin: str = "ENVELOPE",
                   key_spec: str = schema.KEY_SPEC, key_usage: str | None = None, multi_region: bool = False,
                   bypass_policy_lockout_safety_check: bool = False) -> KeyMetadata:
        """CreateKey: a new Enabled symmetric key with fresh material, optionally with an alias and tags.

        The key policy is *policy*, or with *admins* / *users* the console's
        administrators-and-users policy, or else the default (the keystore
        owner and the caller may do everything).  *origin* ``EXTERNAL`` makes
        a key without material, ``PendingImport`` until ImportKeyMaterial.
        *key_spec* ``RSA_2048|3072|4096``, ``ECC_NIST_P256|P384`` or
        ``HMAC_256|384|512`` with *key_usage* makes an asymmetric or HMAC key
        (:mod:`envelope.kms.asymmetric_ops`).  *multi_region* makes the primary
        of a multi-Region key (id ``mrk-…``; see :mod:`envelope.kms.regions`).
        """
        _check_description(description)
        if origin not in schema.KEY_ORIGINS:
            raise UsageError(f"unknown key origin {origin!r} (known: {', '.join(schema.KEY_ORIGINS)})")
        if key_spec == schema.KEY_SPEC:
            if key_usage not in (None, schema.KEY_USAGE):
                raise UsageError(f"a {schema.KEY_SPEC} key is for {schema.KEY_USAGE}, not {key_usage}")
            key_usage = schema.KEY_USAGE
        else:
            from . import asymmetric  # pyca/cryptography's RSA and EC code: only for such keys
            key_usage = asymmetric.check_spec(key_spec, key_usage)
            if origin != "ENVELOPE":
                raise UsageError(f"only symmetric keys take imported material, not {key_spec}")
        document = self._new_key_policy(policy, admins, users, bypass_policy_lockout_safety_check)
        tag_map = check_tags(tags or {})
        if len(tag_map) > MAX_TAGS_PER_KEY:
            raise UsageError(f"a key has at most {MAX_TAGS_PER_KEY} tags")
        if alias is not None:
            check_new_alias(alias)
        with self._operation("CreateKey", {"description": description, "alias": alias, "origin": origin,
                                           "key_spec": key_spec, "key_usage": key_usage,
                                           "multi_region": multi_region,
                                           "tag_keys": sorted(tag_map)}) as call:
            key_id = self._insert_key(call.conn, description, document, origin, key_spec, key_usage,
                                      "PRIMARY" if multi_region else None)
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
        Once the key exists, finding it is a lookup like resolving any named
        key (not an audited call), so an encrypt commits one transaction, its
        GenerateDataKey, instead of two.
        """
        self._maintain(lazy=True)  # a default key whose deletion came due is gone before the lookup
        with self._db.reading() as conn:
            row = conn.execute("SELECT key_id FROM aliases WHERE alias_name = ?", (DEFAULT_ALIAS,)).fetchone()
            if row is not None:
                return self._metadata(conn, row[0]), False
        with self._operation("CreateKey", {"description": _DEFAULT_DESCRIPTION, "alias": DEFAULT_ALIAS}) as call:
            call.alias = DEFAULT_ALIAS
            row = call.conn.execute("SELECT key_id FROM aliases WHERE alias_name = ?", (DEFAULT_ALIAS,)).fetchone()
            created = row is None
            if created:
                key_id = self._insert_key(call.conn, _DEFAULT_DESCRIPTION)
                insert_alias(call.conn, DEFAULT_ALIAS, key_id, self._db.timestamp())
                call.also("CreateAlias", key_id, {"alias": DEFAULT_ALIAS, "target": key_id})
            else:  # another process created it between the lookup and this transaction
                key_id = row[0]
                call.unrecorded = True
            call.key_id = key_id
            return self._metadata(call.conn, key_id), created

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Group commit: the calls made inside commit together, durable only once it exits
        (see :meth:`envelope.kms.db.Database.batch`)."""
        return self._db.batch()

    def serving(self, deferred_sync: bool = False) -> contextlib.AbstractContextManager[None]:
        """For a long-lived server: SQLite's write-ahead log while inside, the rollback journal after
        (see :meth:`envelope.kms.db.Database.write_ahead_log`; with *deferred_sync*, call
        :meth:`sync_log` before acknowledging anything committed)."""
        return self._db.write_ahead_log(deferred_sync)

    def sync_log(self) -> None:
        """Make every call committed so far durable (see :meth:`envelope.kms.db.Database.sync_log`)."""
        self._db.sync_log()

    def key_kind(self, ref: str) -> tuple[str, str, str]:
        """``(key_id, key_spec, key_usage)`` of *ref*: a lookup, not an API call, so not audited."""
        with self._db.reading() as conn:
            key_id = self._resolve(conn, ref)
            spec, usage = conn.execute("SELECT key_spec, key_usage FROM keys WHERE key_id = ?", (key_id,)).fetchone()
            return key_id, str(spec), str(usage)

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

    def _open_region(self, path: Path, region: str) -> KeyStore:
        return KeyStore(path, region=region, principal=self._db.principal)

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
            expirations = imports.expired(call.conn, now)
            call.unrecorded = lazy and not (rotations or deletions or expirations)  # another process got there first
            for key_id in expirations:
                imports.remove_material(call.conn, key_id, self._db.timestamp())
                call.also("DeleteImportedKeyMaterial", key_id, {"trigger": "imported key material expired"})
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

    def _set_enabled(self, ref: str, enabled: bool) -> KeyMetadata:
        with self._operation("EnableKey" if enabled else "DisableKey", {"key": ref}) as call:
            key_id = self._resolve_in(call, ref)
            lifecycle.set_enabled(call.conn, key_id, enabled, self._db.now())
            return self._metadata(call.conn, key_id)

    def _resolve_in(self, call: Call, ref: str, action: str | None = None, *,
                    delegation: Delegation | None = None, **facts: Any) -> str:
        """Resolve *ref* for an audited call, recording the key and the alias the caller used, and
        check that the caller may perform *action* (default: the call's operation) on it."""
        key_id = self._resolve_any(call, ref)
        if call.grant_tokens:  # a bad token is its own error, whatever the policy says
            _grants.check_tokens(call.conn, call.grant_tokens, key_id)
        self._authorize(call, key_id, action or call.operation, call.context, delegation=delegation, **facts)
        return key_id

    def _resolve_any(self, call: Call, ref: str) -> str:
        """Resolve *ref* for an audited call with no authorization (the caller decides who may)."""
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

    def _insert_key(self, conn: sqlite3.Connection, description: str, policy: dict[str, Any] | None = None,
                    origin: str = "ENVELOPE", key_spec: str = schema.KEY_SPEC,
                    key_usage: str = schema.KEY_USAGE, multi_region_role: str | None = None,
                    key_id: str | None = None, primary_region: str | None = None) -> str:
        key_id = key_id or new_key_id(multi_region=multi_region_role is not None)
        now = self._db.timestamp()
        conn.execute(
            "INSERT INTO keys (key_id, arn, description, created_at, state, origin, key_spec, key_usage, policy,"
            " updated_at, multi_region_role, primary_region) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key_id, key_arn(self.keystore_id, key_id, self.region), description, now,
             lifecycle.PENDING_IMPORT if origin == "EXTERNAL" else lifecycle.ENABLED, origin, key_spec,
             key_usage, json.dumps(policy or _policy.default_policy(self._db.owner, self._db.principal)), now,
             multi_region_role, primary_region or (self.region if multi_region_role else None)),
        )
        if multi_region_role == "REPLICA":
            pass  # its material arrives from the primary (envelope.kms.regions)
        elif key_spec != schema.KEY_SPEC:
            from . import asymmetric
            private = asymmetric.generate(key_spec)
            try:
                conn.execute("INSERT INTO key_material (key_id, version, sealed, origin, rotation_type, created_at)"
                             " VALUES (?, 1, ?, 'ENVELOPE', NULL, ?)",
                             (key_id, self._db.wrapping_key(conn).seal(key_id, 1, private), now))
            finally:
                material.wipe(private)
        elif origin == "ENVELOPE":
            material.add_version(conn, self._db.wrapping_key(conn), key_id, "ENVELOPE", None, now)
        return key_id

    def _metadata(self, conn: sqlite3.Connection, key_id: str) -> KeyMetadata:
        row = conn.execute(
            "SELECT key_id, arn, description, created_at, state, origin, key_spec, key_usage, key_manager,"
            " rotation_enabled, deletion_date, rotation_period_days, next_rotation_date, multi_region_role,"
            " primary_region FROM keys WHERE key_id = ?",
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
            next_rotation_date=row[12], tags=tags_of(conn, key_id), multi_region=row[13] is not None,
            multi_region_role=row[13], primary_region=row[14],
        )



_DEFAULT_DESCRIPTION = "envelope default key (created on first use)"


def _check_description(description: str) -> None:
    if not isinstance(description, str):
        raise UsageError("a key description must be a string")
    if len(description) > MAX_DESCRIPTION_SIZE:
        raise UsageError(f"a key description is at most {MAX_DESCRIPTION_SIZE} characters")


__all__ = ["KeyStore"]

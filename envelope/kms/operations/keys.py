"""The keys themselves: CreateKey, ListKeys, DescribeKey, UpdateKeyDescription, EnableKey, DisableKey,
ScheduleKeyDeletion and CancelKeyDeletion; a mix-in of :class:`~envelope.kms.store.KeyStore`.

Also the two helpers every family of calls shares: writing a new key's row
(with its first backing key) and reading a key's metadata.  The states and
schedules these calls move keys through are :mod:`envelope.kms.model.lifecycle`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from ...exceptions import KeyNotFoundError, UsageError
from ..model import lifecycle
from ..model.keys import (
    MAX_TAGS_PER_KEY,
    DeletionSchedule,
    KeyMetadata,
    check_new_alias,
    check_tags,
    key_arn,
    new_key_id,
)
from ..policy import document as _policy
from ..storage import material, schema
from .naming import insert_alias, tags_of
from .part import StorePart

MAX_DESCRIPTION_SIZE = 8192


class KeyOperations(StorePart):
    """CreateKey, ListKeys, DescribeKey, UpdateKeyDescription, Enable/DisableKey, Schedule/CancelKeyDeletion."""

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
        (:mod:`envelope.kms.operations.asymmetric_ops`).  *multi_region* makes the primary
        of a multi-Region key (id ``mrk-…``; see :mod:`envelope.kms.operations.regions`).
        """
        _check_description(description)
        if origin not in schema.KEY_ORIGINS:
            raise UsageError(f"unknown key origin {origin!r} (known: {', '.join(schema.KEY_ORIGINS)})")
        if key_spec == schema.KEY_SPEC:
            if key_usage not in (None, schema.KEY_USAGE):
                raise UsageError(f"a {schema.KEY_SPEC} key is for {schema.KEY_USAGE}, not {key_usage}")
            key_usage = schema.KEY_USAGE
        else:
            from ..crypto import asymmetric  # pyca/cryptography's RSA and EC code: only for such keys
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

    def _set_enabled(self, ref: str, enabled: bool) -> KeyMetadata:
        with self._operation("EnableKey" if enabled else "DisableKey", {"key": ref}) as call:
            key_id = self._resolve_in(call, ref)
            lifecycle.set_enabled(call.conn, key_id, enabled, self._db.now())
            return self._metadata(call.conn, key_id)

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
            pass  # its material arrives from the primary (envelope.kms.operations.regions)
        elif key_spec != schema.KEY_SPEC:
            from ..crypto import asymmetric
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


def _check_description(description: str) -> None:
    if not isinstance(description, str):
        raise UsageError("a key description must be a string")
    if len(description) > MAX_DESCRIPTION_SIZE:
        raise UsageError(f"a key description is at most {MAX_DESCRIPTION_SIZE} characters")

"""The embedded local KMS: master keys in a private SQLite file.

:class:`KeyStore` answers AWS KMS's calls with AWS KMS's semantics, so a file
encrypted under the local keystore behaves like one encrypted under a cloud
KMS, and code (and people) moving between the two meet no surprises:

- a master key never leaves the keystore; callers get data keys and blobs;
- keys are named by id, ARN or alias; aliases move (manual rotation), ids never;
- a key is ``Enabled``, ``Disabled`` or ``PendingDeletion``, and only an
  ``Enabled`` key does cryptography (:mod:`envelope.kms.model.lifecycle`);
- rotation adds backing keys under the same id and keeps the old ones, so
  every blob ever sealed still opens (:mod:`envelope.kms.storage.material`);
- deletion is scheduled 7 to 30 days ahead and can be cancelled until then;
- every call, successful or refused, leaves a row in the audit trail.

The class is assembled here from one mix-in per family of calls, in
:mod:`envelope.kms.operations` (the keys themselves, aliases and tags,
cryptography, policies, rotation, grants, imports, asymmetric keys, regions,
access keys); this module adds opening the file, resolving key references,
maintenance and the audit trail.  Below the operations: the key model
(:mod:`envelope.kms.model`), the policy engine (:mod:`envelope.kms.policy`),
the storage (:mod:`envelope.kms.storage`: backing keys are sealed at rest under
the keystore wrapping key) and the cryptography over key material
(:mod:`envelope.kms.crypto`).  Every write is one SQLite
``BEGIN IMMEDIATE`` transaction, so a crash or a concurrent process never sees
half a key, and due rotations and deletions run before any call that could be
affected by them (as well as on :meth:`KeyStore.maintain`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..exceptions import KeyNotFoundError, KeyringError
from .model import lifecycle
from .model.clock import Clock, SystemClock, parse_iso
from .model.keys import DEFAULT_ALIAS, AuditEvent, KeyMetadata, MaintenanceReport, check_region, parse_reference
from .operations import imports
from .operations.asymmetric_ops import AsymmetricOperations
from .operations.credentials import CredentialOperations
from .operations.crypto import CryptoOperations
from .operations.grants import GrantOperations
from .operations.imports import ImportOperations
from .operations.key_policies import PolicyOperations
from .operations.keys import KeyOperations
from .operations.naming import NamingOperations, insert_alias
from .operations.regions import RegionOperations
from .operations.rotation import RotationOperations
from .policy import grants as _grants
from .policy.grants import Delegation
from .storage import material
from .storage.db import Call, Database
from .storage.paths import check_private, create_keystore_file, default_keystore_file
from .storage.protection import key_file_path

if TYPE_CHECKING:
    from pathlib import Path

StrPath = str | os.PathLike[str]


class KeyStore(KeyOperations, PolicyOperations, NamingOperations, CryptoOperations, RotationOperations,
               GrantOperations, ImportOperations, AsymmetricOperations, RegionOperations, CredentialOperations):
    """One local keystore file.  Open it, call KMS operations, close it.

    ``create=False`` opens only an existing keystore and raises
    :class:`KeyNotFoundError` otherwise, so looking a key up on a machine that
    has none does not leave an empty database behind.  *clock* decides what
    "now" is for schedules (tests pass a :class:`~envelope.kms.model.clock.ManualClock`).
    *passphrase* protects a new keystore with a passphrase instead of a key
    file, and opens an existing passphrase keystore; without it
    ``$ENVELOPE_KEYSTORE_PASSPHRASE`` or a terminal prompt is used.
    *principal* is who calls (default ``$ENVELOPE_PRINCIPAL``, else the OS
    user; see :mod:`envelope.kms.policy.principal`): key policies and grants decide
    what it may do.  *via* names the envelope component making the calls, for
    ``kms:ViaService`` conditions.  *region* names the region of a new
    keystore (default ``local``) and must match an existing one's.
    """

    def __init__(self, path: StrPath | None = None, *, create: bool = True, clock: Clock | None = None,
                 passphrase: str | None = None, principal: str | None = None, via: str | None = None,
                 region: str | None = None) -> None:
        self._file = os.path.expanduser(os.fspath(path)) if path is not None else default_keystore_file()
        if os.path.exists(key_file_path(self._file)):  # first, so a refusal leaves no new empty keystore behind
            check_private(key_file_path(self._file))
        if not os.path.exists(self._file):
            if not create:
                raise KeyNotFoundError(f"no local keystore at {self.path}")
            create_keystore_file(self._file)
        check_private(self._file)
        self._db = Database(self._file, clock or SystemClock(), passphrase, principal,
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
        (see :meth:`envelope.kms.storage.db.Database.batch`)."""
        return self._db.batch()

    def serving(self, deferred_sync: bool = False) -> contextlib.AbstractContextManager[None]:
        """For a long-lived server: SQLite's write-ahead log while inside, the rollback journal after
        (see :meth:`envelope.kms.storage.db.Database.write_ahead_log`; with *deferred_sync*, call
        :meth:`sync_log` before acknowledging anything committed)."""
        return self._db.write_ahead_log(deferred_sync)

    def sync_log(self) -> None:
        """Make every call committed so far durable (see :meth:`envelope.kms.storage.db.Database.sync_log`)."""
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


_DEFAULT_DESCRIPTION = "envelope default key (created on first use)"



__all__ = ["KeyStore"]

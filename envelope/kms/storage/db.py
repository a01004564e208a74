"""The keystore's SQLite connection: transactions, and the audit row of every call.

Every operation of :class:`~envelope.kms.store.KeyStore` runs inside
:meth:`Database.operation`: one ``BEGIN IMMEDIATE`` transaction, committed with
its audit row if the operation succeeds; rolled back if it fails, and then a
failure row written in a transaction of its own, so a refused Decrypt is on
record even though nothing else changed.  SQLite errors leave this module as
:class:`KeyringError` with a one-line message; no traceback reaches the user.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ...exceptions import EnvelopeError, KeyringError
from ..policy import principal as _principal
from . import protection, schema
from ..model.clock import Clock, iso
from ..model.keys import DEFAULT_REGION, AuditEvent
from .paths import parent_directory
from .protection import PassphraseSource, WrappingKey

_BUSY_TIMEOUT = 30.0  # seconds to wait for another process's transaction
#: What a path must escape inside SQLite's ``file:`` URI (%HH, as SQLite decodes it): the escape
#: character itself and the two that would start a query or a fragment.  Every other character
#: stands for itself there, so urllib.parse (~5 ms of every start-up) is not needed for this.
_URI_ESCAPES = str.maketrans({c: f"%{ord(c):02X}" for c in "%?#"})


class Call:
    """The audit record of one operation, filled in as the operation learns more."""

    def __init__(self, conn: sqlite3.Connection, operation: str, request: dict[str, Any]) -> None:
        self.conn = conn
        self.operation = operation
        self.request = request
        self.key_id: str | None = None
        self.alias: str | None = None  # the alias the caller named, if any
        self.context_keys: list[str] | None = None
        self.context: dict[str, str] | None = None  # the whole context, for policy conditions; never audited
        self.grant_tokens: tuple[str, ...] = ()
        self.destination_key_id: str | None = None  # ReEncrypt's target
        self.unrecorded = False  # a successful call that turned out to do nothing worth a row
        self.followups: list[tuple[str, str | None, dict[str, Any]]] = []

    def also(self, operation: str, key_id: str | None, request: dict[str, Any]) -> None:
        """Record a second operation done inside this one (CreateKey with an alias also does CreateAlias)."""
        self.followups.append((operation, key_id, request))


class Database:
    """An open keystore file whose schema is current; :attr:`keystore_id` names it."""

    def __init__(self, path: str, clock: Clock, passphrase: str | None = None,
                 principal: str | None = None, region: str | None = None) -> None:
        self.path = path
        self.clock = clock
        self._own_principal = _principal.current(principal)
        self.owner = self._own_principal  # until _prepare reads the keystore's
        self._region_asked = region
        self.region = region or DEFAULT_REGION
        self._passphrase_explicit = passphrase
        self._passphrase: PassphraseSource = protection.passphrase_source(passphrase, path)
        self._wrapping: WrappingKey | None = None
        self._lock = threading.RLock()
        self._batched = False  # inside batch(): transactions are savepoints of the batch's
        self._log_dir_synced = False
        self._conn = self._connect()
        try:
            self.keystore_id = self._prepare()
        except BaseException:
            self._conn.close()
            raise

    @property
    def principal(self) -> str:
        """Who calls now: the innermost :func:`~envelope.kms.policy.principal.calling_as`'s principal, else ours."""
        caller = _principal.calling()
        return caller.principal if caller is not None else self._own_principal

    def close(self) -> None:
        with self._lock:
            self._wrapping = None
            self._conn.close()

    def now(self) -> datetime:
        return self.clock.now()

    def timestamp(self, precise: bool = False) -> str:
        return iso(self.clock.now(), precise)

    def wrapping_key(self, conn: sqlite3.Connection) -> WrappingKey:
        """The keystore wrapping key, loaded (and for a passphrase, derived) on first need only.

        Listing or describing keys never needs it, so those work without the passphrase.
        """
        if self._wrapping is None:
            self._wrapping = protection.load(conn, self.path, self._passphrase)
        return self._wrapping

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception.

        Inside :meth:`batch` it is a savepoint of the batch's transaction instead.
        """
        with self._lock:
            conn = self._conn
            if self._batched:
                bracket = self._bracket(conn, "SAVEPOINT operation", "RELEASE operation",
                                        ("ROLLBACK TO operation", "RELEASE operation"))
            else:
                bracket = self._bracket(conn, "BEGIN IMMEDIATE", "COMMIT", ("ROLLBACK",))
            with bracket:
                yield conn

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit: the operations inside share one transaction and one set of fsyncs.

        Each operation runs in a savepoint, so a failed one is rolled back
        alone (its failure row stays), and none is durable until the batch
        commits: whoever runs a batch acknowledges its calls only after this
        returns, and fails them all if it raises.  The keystore server runs the
        requests that queued up while the previous batch was committing as one
        batch, which is what lets it answer many clients with few fsyncs.
        """
        with self.transaction():
            self._batched = True
            try:
                yield
            finally:
                self._batched = False

    @contextlib.contextmanager
    def write_ahead_log(self, deferred_sync: bool = False) -> Iterator[None]:
        """SQLite's write-ahead log while a long-lived process (the server) commits many small transactions.

        A rollback-journal commit creates, syncs and deletes a journal file:
        about 35 ms on a virtual disk, against 3 ms for a WAL commit with the
        same durability (``synchronous=FULL``: the log is fsynced before the
        commit returns).  With *deferred_sync* a commit only writes the log
        (``synchronous=NORMAL``) and the caller makes it durable with
        :meth:`sync_log` before it tells anyone the transaction happened: one
        fsync then covers every commit before it, while the next transactions
        run.  On the way out the log is checkpointed into the keystore and
        truncated, and the keystore returns to its usual rollback journal (if
        another process has it open, it stays in WAL mode, which every SQLite
        reads).  The log holds recent pages of the database, sealed key
        material included, exactly as the file does: it is created with the
        file's 0600 mode, beside it.
        """
        with self._lock:
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute(f"PRAGMA synchronous = {'NORMAL' if deferred_sync else 'FULL'}")
                self._conn.execute("PRAGMA journal_size_limit = 4194304")
            except sqlite3.Error as exc:
                raise self.error(exc) from None
        try:
            yield
        finally:
            with self._lock, contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._conn.execute("PRAGMA journal_mode = DELETE")
                self._conn.execute("PRAGMA synchronous = FULL")

    def sync_log(self) -> None:
        """fsync the write-ahead log: every transaction committed before this call is durable when it returns.

        Safe from another thread while transactions run (it takes no lock): an
        fsync covers every write made before it began.  The directory is
        synced too, so the log's own name survives a power cut.  Without a log
        there is nothing uncheckpointed to sync (a checkpoint syncs the database).
        """
        try:
            fd = os.open(self.path + "-wal", os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if not self._log_dir_synced:
            dir_fd = os.open(parent_directory(self.path), os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._log_dir_synced = True

    @contextlib.contextmanager
    def _bracket(self, conn: sqlite3.Connection, begin: str, end: str, undo: tuple[str, ...]) -> Iterator[None]:
        """*begin* ... *end*, or *undo* on any exception; SQLite errors leave as one-line KeyringErrors."""
        try:
            conn.execute(begin)
        except sqlite3.Error as exc:
            raise self.error(exc) from None
        try:
            yield
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                for statement in undo:
                    conn.execute(statement)
            if isinstance(exc, sqlite3.Error):
                raise self.error(exc) from None
            raise
        try:
            conn.execute(end)
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                for statement in undo:
                    conn.execute(statement)
            raise self.error(exc) from None

    @contextlib.contextmanager
    def operation(self, operation: str, request: dict[str, Any]) -> Iterator[Call]:
        """One API call: a transaction plus its audit row (in it on success, after it on failure)."""
        call: Call | None = None
        try:
            with self.transaction() as conn:
                call = Call(conn, operation, request)
                yield call
                if not call.unrecorded:
                    self.audit(conn, call, True, None)
                for operation_, key_id, request_ in call.followups:
                    followup = Call(conn, operation_, request_)
                    followup.key_id = key_id
                    self.audit(conn, followup, True, None)
        except EnvelopeError as exc:
            if call is not None:
                self._audit_failure(call, exc)
            raise

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, for lookups outside any operation (not audited, no transaction)."""
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise self.error(exc) from None

    def audit(self, conn: sqlite3.Connection, call: Call, ok: bool, error: str | None) -> None:
        """Append one audit row.  The request holds non-secret parameters only; the context, keys only.

        A call made through :func:`~envelope.kms.policy.principal.calling_as` also
        records the caller's source address and access key id.
        """
        caller = _principal.calling()
        source, access_key_id = (caller.source, caller.access_key_id) if caller is not None else (None, None)
        conn.execute(
            "INSERT INTO audit (ts, principal, operation, key_id, ok, error, request, alias, context_keys,"
            " destination_key_id, source, access_key_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.timestamp(precise=True), self.principal, call.operation, call.key_id, int(ok), error,
             json.dumps(call.request, sort_keys=True) if call.request else None, call.alias,
             json.dumps(call.context_keys) if call.context_keys is not None else None, call.destination_key_id,
             source, access_key_id),
        )

    def audit_events(self, key_id: str | None = None, since: datetime | None = None,
                     operation: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        where: list[str] = []
        params: list[Any] = []
        if key_id is not None:
            where.append("(key_id = ? OR destination_key_id = ?)")
            params += [key_id, key_id]
        if since is not None:
            where.append("ts >= ?")
            params.append(iso(since, precise=True))
        if operation is not None:
            where.append("operation = ?")
            params.append(operation)
        query = ("SELECT id, ts, principal, operation, key_id, ok, error, request, alias, context_keys,"
                 " destination_key_id, source, access_key_id FROM audit")
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY id DESC"
        if limit is not None:
            query += " LIMIT ?"
            params.append(int(limit))
        with self.reading() as conn:
            rows = conn.execute(query, params).fetchall()
        return [
            AuditEvent(id=r[0], ts=r[1], principal=r[2], operation=r[3], key_id=r[4], ok=bool(r[5]), error=r[6],
                       request=r[7], alias=r[8], context_keys=tuple(json.loads(r[9])) if r[9] else None,
                       destination_key_id=r[10], source=r[11], access_key_id=r[12])
            for r in reversed(rows)
        ]

    def error(self, exc: sqlite3.Error) -> KeyringError:
        text = " ".join(str(exc).split())
        if "readonly" in text:
            # Every call, reads included, writes its audit row, and SQLite writes its journal beside the file.
            text += f" (the keystore and its directory {parent_directory(self.path)} must be writable)"
        return KeyringError(f"local keystore {self.path}: {text}")

    def _audit_failure(self, call: Call, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        # The failure is what the caller needs to see; a keystore too broken to log it must not hide it.
        with contextlib.suppress(EnvelopeError, sqlite3.Error):
            with self.transaction() as conn:
                self.audit(conn, call, False, error)

    def _connect(self) -> sqlite3.Connection:
        # mode=rw: SQLite must never create the file itself, only open the one made 0600 beforehand.
        uri = "file:" + os.path.join(os.getcwd(), self.path).translate(_URI_ESCAPES) + "?mode=rw"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=_BUSY_TIMEOUT,
                                   check_same_thread=False)
            conn.execute("PRAGMA foreign_keys = ON")
            # Destroyed key material must not linger in free pages of the file.
            conn.execute("PRAGMA secure_delete = ON")
        except sqlite3.Error as exc:
            raise self.error(exc) from None
        return conn

    def _prepare(self) -> str:
        """Create the schema in a new file, or check and upgrade an existing one; return the keystore id."""
        with self.transaction() as conn:

            def set_up_protection() -> WrappingKey:
                # Chosen once, when the keystore (or its upgrade from version 1) is written.
                if self._wrapping is None:
                    self._wrapping = protection.set_up(conn, self.path, self._passphrase_for_new_keystore())
                return self._wrapping

            try:
                if schema.has_schema(conn):
                    schema.upgrade(conn, set_up_protection)
                elif conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise schema.SchemaError("it is an SQLite database of something else")
                else:
                    schema.initialize(conn, os.urandom(8).hex(), self.timestamp(), set_up_protection)
            except schema.SchemaError as exc:
                raise KeyringError(f"{self.path} is not a usable envelope keystore: {exc}") from None
            if conn.execute("SELECT 1 FROM meta WHERE name = 'protection'").fetchone() is None:
                set_up_protection()
            # A keystore's first user owns it (the "root" of its key policies).
            conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('owner', ?)", (self._own_principal,))
            self.owner = str(conn.execute("SELECT value FROM meta WHERE name = 'owner'").fetchone()[0])
            # The region is chosen when the keystore is made (for a replica, by keys replicate).
            conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('region', ?)", (self.region,))
            self.region = str(conn.execute("SELECT value FROM meta WHERE name = 'region'").fetchone()[0])
            if self._region_asked is not None and self._region_asked != self.region:
                raise KeyringError(f"the keystore at {self.path} is in region {self.region}, "
                                   f"not {self._region_asked}")
            row = conn.execute("SELECT value FROM meta WHERE name = 'keystore_id'").fetchone()
        if row is None:
            raise KeyringError(f"{self.path} is not a usable envelope keystore: it has no keystore id")
        return str(row[0])

    def _passphrase_for_new_keystore(self) -> str | None:
        """A passphrase given by argument or environment makes a passphrase keystore; never a prompt here."""
        if self._passphrase_explicit is not None:
            return self._passphrase_explicit
        return os.environ.get(protection.PASSPHRASE_ENV) or None

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
import getpass
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..exceptions import EnvelopeError, KeyringError
from . import schema
from .model import AuditEvent

_BUSY_TIMEOUT = 30.0  # seconds to wait for another process's transaction


class Call:
    """The audit record of one operation, filled in as the operation learns more."""

    def __init__(self, conn: sqlite3.Connection, operation: str, request: dict[str, Any]) -> None:
        self.conn = conn
        self.operation = operation
        self.request = request
        self.key_id: str | None = None
        self.followups: list[tuple[str, str | None, dict[str, Any]]] = []

    def also(self, operation: str, key_id: str | None, request: dict[str, Any]) -> None:
        """Record a second operation done inside this one (CreateKey with an alias also does CreateAlias)."""
        self.followups.append((operation, key_id, request))


class Database:
    """An open keystore file whose schema is current; :attr:`keystore_id` names it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.principal = principal()
        self._lock = threading.RLock()
        self._conn = self._connect()
        try:
            self.keystore_id = self._prepare()
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self.error(exc) from None
            try:
                yield conn
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self.error(exc) from None
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise self.error(exc) from None

    @contextlib.contextmanager
    def operation(self, operation: str, request: dict[str, Any]) -> Iterator[Call]:
        """One API call: a transaction plus its audit row (in it on success, after it on failure)."""
        call: Call | None = None
        try:
            with self.transaction() as conn:
                call = Call(conn, operation, request)
                yield call
                self.audit(conn, call.operation, call.key_id, True, None, call.request)
                for operation_, key_id, request_ in call.followups:
                    self.audit(conn, operation_, key_id, True, None, request_)
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

    def audit(self, conn: sqlite3.Connection, operation: str, key_id: str | None, ok: bool,
              error: str | None, request: dict[str, Any]) -> None:
        conn.execute(
            "INSERT INTO audit (ts, principal, operation, key_id, ok, error, request) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (timestamp(precise=True), self.principal, operation, key_id, int(ok), error,
             json.dumps(request, sort_keys=True) if request else None),
        )

    def audit_events(self, key_id: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        query = "SELECT id, ts, principal, operation, key_id, ok, error, request FROM audit"
        params: tuple[Any, ...] = ()
        if key_id is not None:
            query += " WHERE key_id = ?"
            params = (key_id,)
        query += " ORDER BY id DESC"
        if limit is not None:
            query += " LIMIT ?"
            params += (int(limit),)
        with self.reading() as conn:
            rows = conn.execute(query, params).fetchall()
        return [AuditEvent(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7]) for r in reversed(rows)]

    def error(self, exc: sqlite3.Error) -> KeyringError:
        return KeyringError(f"local keystore {self.path}: {' '.join(str(exc).split())}")

    def _audit_failure(self, call: Call, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        # The failure is what the caller needs to see; a keystore too broken to log it must not hide it.
        with contextlib.suppress(EnvelopeError, sqlite3.Error):
            with self.transaction() as conn:
                self.audit(conn, call.operation, call.key_id, False, error, call.request)

    def _connect(self) -> sqlite3.Connection:
        # mode=rw: SQLite must never create the file itself, only open the one made 0600 beforehand.
        uri = "file:" + quote(os.fspath(self.path.absolute())) + "?mode=rw"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=_BUSY_TIMEOUT,
                                   check_same_thread=False)
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise self.error(exc) from None
        return conn

    def _prepare(self) -> str:
        """Create the schema in a new file, or check and upgrade an existing one; return the keystore id."""
        with self.transaction() as conn:
            try:
                if schema.has_schema(conn):
                    schema.upgrade(conn)
                elif conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise schema.SchemaError("it is an SQLite database of something else")
                else:
                    schema.initialize(conn, secrets.token_hex(8), timestamp())
            except schema.SchemaError as exc:
                raise KeyringError(f"{self.path} is not a usable envelope keystore: {exc}") from None
            row = conn.execute("SELECT value FROM meta WHERE name = 'keystore_id'").fetchone()
        if row is None:
            raise KeyringError(f"{self.path} is not a usable envelope keystore: it has no keystore id")
        return str(row[0])


def principal() -> str:
    """The local OS user, the "principal" of every audit row."""
    try:
        return getpass.getuser()
    except Exception:  # no login name in the environment or the password database
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def timestamp(precise: bool = False) -> str:
    """ISO 8601 in UTC with a Z; seconds for records, microseconds for audit rows."""
    now = datetime.now(timezone.utc)
    return now.isoformat(timespec="microseconds" if precise else "seconds").replace("+00:00", "Z")

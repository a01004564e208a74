"""The keystore's SQLite schema, and the one place that creates or upgrades it.

The schema is laid out for the whole KMS lifecycle, not just what is used
today, so later features are new code rather than new tables copied out of old
ones:

- ``keys``: one row per master key (its id, ARN, state, origin, policy, the
  scheduled deletion date and the rotation settings).
- ``key_material``: the backing keys.  A key has one row per backing version;
  rotation adds a version, the newest seals, every version still opens what it
  sealed.  Imported material (origin ``EXTERNAL``) may carry an expiry.
- ``aliases``: friendly names, unique, each pointing at one key.
- ``tags``, ``grants``: per-key metadata and delegated permissions.
- ``audit``: one row per operation, successful or not (a local CloudTrail).
- ``meta``: ``schema_version``, the keystore id (the "account" in ARNs) and its
  creation time.

:data:`SCHEMA_VERSION` is stored in ``meta``.  A keystore written by a newer
envelope is refused rather than guessed at; an older one is upgraded by the
steps in :data:`_MIGRATIONS`, inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1

KEY_STATES = ("Enabled", "Disabled", "PendingDeletion", "PendingImport")
KEY_ORIGINS = ("ENVELOPE", "EXTERNAL")
KEY_SPEC = "SYMMETRIC_DEFAULT"
KEY_USAGE = "ENCRYPT_DECRYPT"
#: The size of every backing key: AES-256.
MATERIAL_SIZE = 32


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


_V1 = f"""
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE keys (
    key_id               TEXT PRIMARY KEY,          -- lowercase UUID
    arn                  TEXT NOT NULL UNIQUE,
    description          TEXT NOT NULL DEFAULT '',
    created_at           TEXT NOT NULL,             -- ISO 8601, UTC
    state                TEXT NOT NULL CHECK (state IN ({_quoted(KEY_STATES)})),
    origin               TEXT NOT NULL CHECK (origin IN ({_quoted(KEY_ORIGINS)})),
    key_spec             TEXT NOT NULL DEFAULT '{KEY_SPEC}',
    key_usage            TEXT NOT NULL DEFAULT '{KEY_USAGE}',
    key_manager          TEXT NOT NULL DEFAULT 'CUSTOMER',
    policy               TEXT NOT NULL,             -- JSON key policy document
    deletion_date        TEXT,                      -- set while PendingDeletion
    pending_window_days  INTEGER,
    rotation_enabled     INTEGER NOT NULL DEFAULT 0 CHECK (rotation_enabled IN (0, 1)),
    rotation_period_days INTEGER,
    next_rotation_date   TEXT,
    last_rotated_at      TEXT,
    updated_at           TEXT NOT NULL
);

CREATE TABLE key_material (
    key_id     TEXT NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
    version    INTEGER NOT NULL CHECK (version >= 1),
    material   BLOB NOT NULL CHECK (length(material) = {MATERIAL_SIZE}),
    origin     TEXT NOT NULL CHECK (origin IN ({_quoted(KEY_ORIGINS)})),
    created_at TEXT NOT NULL,
    expires_at TEXT,                                -- imported material may expire
    PRIMARY KEY (key_id, version)
);

CREATE TABLE aliases (
    alias_name TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX aliases_by_key ON aliases (key_id);

CREATE TABLE tags (
    key_id    TEXT NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
    tag_key   TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (key_id, tag_key)
);

CREATE TABLE grants (
    grant_id           TEXT PRIMARY KEY,
    key_id             TEXT NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
    name               TEXT,
    grantee_principal  TEXT NOT NULL,
    retiring_principal TEXT,
    operations         TEXT NOT NULL,               -- JSON list
    constraints        TEXT,                        -- JSON object
    created_at         TEXT NOT NULL
);
CREATE INDEX grants_by_key ON grants (key_id);

CREATE TABLE audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    ts        TEXT NOT NULL,                        -- ISO 8601, UTC, microseconds
    principal TEXT NOT NULL,                        -- the local OS user
    operation TEXT NOT NULL,                        -- the KMS API name, e.g. 'Decrypt'
    key_id    TEXT,                                 -- no foreign key: rows outlive keys
    ok        INTEGER NOT NULL CHECK (ok IN (0, 1)),
    error     TEXT,                                 -- the one-line error, if not ok
    request   TEXT                                  -- JSON of non-secret parameters
);
CREATE INDEX audit_by_key ON audit (key_id);
"""

#: version -> script that brings a keystore from version-1 to version.
_MIGRATIONS: dict[int, str] = {1: _V1}


class SchemaError(Exception):
    """The file is a database, but not a keystore this version can use."""


def has_schema(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
    return row is not None


def current_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    if row is None:
        raise SchemaError("it has no schema_version")
    try:
        return int(row[0])
    except ValueError:
        raise SchemaError(f"its schema_version {row[0]!r} is not a number") from None


def initialize(conn: sqlite3.Connection, keystore_id: str, now: str) -> None:
    """Create every table in an empty database.  Call inside a write transaction."""
    for version in sorted(_MIGRATIONS):
        _run(conn, _MIGRATIONS[version])
    conn.executemany(
        "INSERT INTO meta (name, value) VALUES (?, ?)",
        [("schema_version", str(SCHEMA_VERSION)), ("keystore_id", keystore_id), ("created_at", now)],
    )


def upgrade(conn: sqlite3.Connection) -> None:
    """Bring an existing keystore to :data:`SCHEMA_VERSION`.  Call inside a write transaction."""
    version = current_version(conn)
    if version > SCHEMA_VERSION:
        raise SchemaError(f"its schema version {version} is newer than this envelope supports ({SCHEMA_VERSION})")
    if version < 1:
        raise SchemaError(f"its schema version {version} is invalid")
    for step in range(version + 1, SCHEMA_VERSION + 1):
        _run(conn, _MIGRATIONS[step])
    if version != SCHEMA_VERSION:
        conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION),))


def _run(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT the caller's transaction first; run statement by statement instead.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)

"""The keystore's SQLite schema, and the one place that creates or upgrades it.

The schema is laid out for the whole KMS lifecycle, not just what is used
today, so later features are new code rather than new tables copied out of old
ones:

- ``keys``: one row per master key (its id, ARN, state, origin, policy, the
  scheduled deletion date and the rotation settings).
- ``key_material``: the backing keys, each sealed under the keystore wrapping
  key (:mod:`envelope.kms.storage.protection`).  A key has one row per backing
  version; rotation adds a version, the newest seals, every version still
  opens what it sealed.  Imported material (origin ``EXTERNAL``) may carry an
  expiry.
- ``aliases``: friendly names, unique, each pointing at one key.
- ``tags``, ``grants``: per-key metadata and delegated permissions.
- ``audit``: one row per operation, successful or not (a local CloudTrail).
- ``deleted_keys``: a tombstone per destroyed key, so "deleted on DATE" can be
  told apart from "never existed".
- ``meta``: ``schema_version``, the keystore id (the "account" in ARNs), its
  creation time and its protection settings.

:data:`SCHEMA_VERSION` is stored in ``meta``.  A keystore written by a newer
envelope is refused rather than guessed at; an older one is upgraded by the
steps in :data:`_MIGRATIONS`, inside the caller's transaction, so a crash mid-
upgrade leaves the old version intact.

Version history:

1. the first layout; backing keys stored in the clear, protected by file mode.
2. backing keys sealed under the keystore wrapping key; rotation type per
   backing key; audit rows name the alias used, the encryption context keys
   and a ReEncrypt's destination key; key tombstones.
3. principals: the keystore's owner in ``meta``, audit principals as
   ``local:user/NAME``; grants record their issuer and a hash of their token;
   ``import_tokens`` for imported key material.
4. multi-Region keys: a key's multi-Region role and its primary's region; the
   keystore's region in ``meta`` (``local`` unless chosen at creation).
5. credentials: ``credentials`` holds access keys for signed requests, each
   secret sealed under the keystore wrapping key; audit rows record the
   caller's source address and access key id.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from ...exceptions import UsageError
from .protection import WrappingKey

SCHEMA_VERSION = 5

KEY_STATES = ("Enabled", "Disabled", "PendingDeletion", "PendingImport")
CREDENTIAL_STATES = ("Enabled", "Disabled")
KEY_ORIGINS = ("ENVELOPE", "EXTERNAL")
ROTATION_TYPES = ("AUTOMATIC", "ON_DEMAND")
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

_V2_TABLES = f"""
CREATE TABLE key_material_v2 (
    key_id        TEXT NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
    version       INTEGER NOT NULL CHECK (version >= 1),
    sealed        BLOB NOT NULL,                    -- nonce || AES-256-GCM(wrapping key, material) || tag
    origin        TEXT NOT NULL CHECK (origin IN ({_quoted(KEY_ORIGINS)})),
    rotation_type TEXT CHECK (rotation_type IN ({_quoted(ROTATION_TYPES)})),  -- NULL for the first version
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    PRIMARY KEY (key_id, version)
);

CREATE TABLE deleted_keys (
    key_id     TEXT PRIMARY KEY,
    arn        TEXT NOT NULL,
    deleted_at TEXT NOT NULL
);

ALTER TABLE audit ADD COLUMN alias TEXT;                -- the alias the caller named, if any
ALTER TABLE audit ADD COLUMN context_keys TEXT;         -- JSON list of encryption context keys
ALTER TABLE audit ADD COLUMN destination_key_id TEXT;   -- ReEncrypt's target key
CREATE INDEX audit_by_destination ON audit (destination_key_id);
CREATE INDEX audit_by_ts ON audit (ts)
"""

_V3 = """
ALTER TABLE grants ADD COLUMN issuing_principal TEXT;
ALTER TABLE grants ADD COLUMN token_sha256 TEXT;
CREATE INDEX grants_by_grantee ON grants (key_id, grantee_principal);
CREATE INDEX grants_by_token ON grants (token_sha256);
CREATE INDEX grants_by_retiring ON grants (retiring_principal);

CREATE TABLE import_tokens (
    token_sha256     TEXT PRIMARY KEY,
    key_id           TEXT NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
    wrapping_spec    TEXT NOT NULL,                 -- RSA_2048, RSA_3072, RSA_4096
    algorithm        TEXT NOT NULL,                 -- RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256
    sealed_private   BLOB NOT NULL,                 -- the wrapping private key, sealed like backing keys
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    used_at          TEXT
);
CREATE INDEX import_tokens_by_key ON import_tokens (key_id);
ALTER TABLE keys ADD COLUMN import_fingerprint TEXT;  -- HMAC(material, key id): recognises re-imports

UPDATE audit SET principal = 'local:user/' || principal WHERE principal NOT LIKE 'local:%';
INSERT OR IGNORE INTO meta (name, value)
    SELECT 'owner', principal FROM audit WHERE principal LIKE 'local:%' ORDER BY id LIMIT 1
"""

_V4 = """
ALTER TABLE keys ADD COLUMN multi_region_role TEXT CHECK (multi_region_role IN ('PRIMARY', 'REPLICA'));
ALTER TABLE keys ADD COLUMN primary_region TEXT
"""

_V5 = f"""
CREATE TABLE credentials (
    access_key_id TEXT PRIMARY KEY,
    principal     TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ({_quoted(CREDENTIAL_STATES)})),
    sealed_secret BLOB NOT NULL,                    -- nonce || AES-256-GCM(wrapping key, secret) || tag
    created_at    TEXT NOT NULL
);
CREATE INDEX credentials_by_principal ON credentials (principal);
ALTER TABLE audit ADD COLUMN source TEXT;           -- the caller's network address (server calls)
ALTER TABLE audit ADD COLUMN access_key_id TEXT;    -- the access key that signed the request
"""

WrappingKeySource = Callable[[], WrappingKey]


def _to_v2(conn: sqlite3.Connection, wrapping: WrappingKeySource) -> None:
    """Seal every backing key under the wrapping key, in a rebuilt table (SQLite cannot alter a CHECK)."""
    _run(conn, _V2_TABLES)
    rows = conn.execute("SELECT key_id, version, material, origin, created_at, expires_at FROM key_material").fetchall()
    if rows:
        key = wrapping()
        conn.executemany(
            "INSERT INTO key_material_v2 (key_id, version, sealed, origin, rotation_type, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(r[0], r[1], key.seal(r[0], r[1], r[2]), r[3], None if r[1] == 1 else "ON_DEMAND", r[4], r[5])
             for r in rows],
        )
    conn.execute("DROP TABLE key_material")
    conn.execute("ALTER TABLE key_material_v2 RENAME TO key_material")


def _to_v1(conn: sqlite3.Connection, wrapping: WrappingKeySource) -> None:
    _run(conn, _V1)


def _to_v3(conn: sqlite3.Connection, wrapping: WrappingKeySource) -> None:
    """Principals and policies become enforced: a stored policy that does not parse gives way to the owner's."""
    from ..policy import document as _policy
    from ..policy.principal import ROOT

    _run(conn, _V3)
    owner_only = json.dumps(_policy.default_policy(ROOT, ROOT))
    for key_id, text in conn.execute("SELECT key_id, policy FROM keys").fetchall():
        try:
            _policy.parse(text)
        except UsageError:
            conn.execute("UPDATE keys SET policy = ? WHERE key_id = ?", (owner_only, key_id))


def _to_v4(conn: sqlite3.Connection, wrapping: WrappingKeySource) -> None:
    _run(conn, _V4)


def _to_v5(conn: sqlite3.Connection, wrapping: WrappingKeySource) -> None:
    _run(conn, _V5)


#: version -> the step that brings a keystore from version-1 to version.
_MIGRATIONS: dict[int, Callable[[sqlite3.Connection, WrappingKeySource], None]] = {
    1: _to_v1, 2: _to_v2, 3: _to_v3, 4: _to_v4, 5: _to_v5}


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


def initialize(conn: sqlite3.Connection, keystore_id: str, now: str, wrapping: WrappingKeySource) -> None:
    """Create every table in an empty database.  Call inside a write transaction."""
    for version in sorted(_MIGRATIONS):
        _MIGRATIONS[version](conn, wrapping)
    conn.executemany(
        "INSERT INTO meta (name, value) VALUES (?, ?)",
        [("schema_version", str(SCHEMA_VERSION)), ("keystore_id", keystore_id), ("created_at", now)],
    )


def upgrade(conn: sqlite3.Connection, wrapping: WrappingKeySource) -> int:
    """Bring an existing keystore to :data:`SCHEMA_VERSION`; returns the version it had.

    Call inside a write transaction.  *wrapping* is asked for the wrapping key
    only by a step that needs it.
    """
    version = current_version(conn)
    if version > SCHEMA_VERSION:
        raise SchemaError(f"its schema version {version} is newer than this envelope supports ({SCHEMA_VERSION})")
    if version < 1:
        raise SchemaError(f"its schema version {version} is invalid")
    for step in range(version + 1, SCHEMA_VERSION + 1):
        _MIGRATIONS[step](conn, wrapping)
    if version != SCHEMA_VERSION:
        conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION),))
    return version


def _run(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT the caller's transaction first; run statement by statement instead.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)

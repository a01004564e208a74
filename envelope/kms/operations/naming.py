"""Aliases and tags: the names and labels of keys, a mix-in of :class:`~envelope.kms.store.KeyStore`.

An alias is a movable name: files and blobs record key ids, never aliases, so
pointing an alias at a new key (UpdateAlias) changes what new data is
encrypted under without touching anything already encrypted -- the way to
rotate keys on your own schedule, and the only way for keys whose material
cannot rotate automatically.  Tags are free-form labels (owner, purpose) with
AWS's size rules.  A key pending deletion takes neither new names nor labels.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from ...exceptions import AlreadyExistsError, KeyNotFoundError, UsageError
from ..model import lifecycle
from .part import StorePart
from ..model.keys import MAX_TAGS_PER_KEY, AliasEntry, check_new_alias, check_tags, parse_reference

_NAMEABLE = (lifecycle.ENABLED, lifecycle.DISABLED, lifecycle.PENDING_IMPORT)


class NamingOperations(StorePart):
    """CreateAlias, UpdateAlias, DeleteAlias, ListAliases, TagResource, UntagResource, ListResourceTags."""

    # -- aliases -----------------------------------------------------------------------------------

    def create_alias(self, alias: str, ref: str) -> AliasEntry:
        """CreateAlias: a new unique name for a key (given by id or ARN, as in AWS KMS)."""
        check_new_alias(alias)
        _require_key_reference(ref)
        with self._operation("CreateAlias", {"alias": alias, "target": ref}) as call:
            key_id = self._resolve_in(call, ref)
            lifecycle.require(call.conn, key_id, "CreateAlias",
                              _NAMEABLE)
            return insert_alias(call.conn, alias, key_id, self._db.timestamp())

    def update_alias(self, alias: str, ref: str) -> AliasEntry:
        """UpdateAlias: point an existing alias at another key -- rotation on your own schedule."""
        check_new_alias(alias)
        _require_key_reference(ref)
        with self._operation("UpdateAlias", {"alias": alias, "target": ref}) as call:
            call.alias = alias
            key_id = self._resolve_in(call, ref)
            lifecycle.require(call.conn, key_id, "UpdateAlias",
                              _NAMEABLE)
            row = call.conn.execute("SELECT created_at FROM aliases WHERE alias_name = ?", (alias,)).fetchone()
            if row is None:
                raise KeyNotFoundError(f"alias {alias} does not exist in the local keystore at {self.path}")
            call.conn.execute("UPDATE aliases SET key_id = ?, updated_at = ? WHERE alias_name = ?",
                              (key_id, self._db.timestamp(), alias))
            return AliasEntry(alias, key_id, row[0])

    def delete_alias(self, alias: str) -> None:
        """DeleteAlias: the name goes; the key and everything encrypted under it are untouched."""
        check_new_alias(alias)
        with self._operation("DeleteAlias", {"alias": alias}) as call:
            call.alias = alias
            row = call.conn.execute("SELECT key_id FROM aliases WHERE alias_name = ?", (alias,)).fetchone()
            if row is None:
                raise KeyNotFoundError(f"alias {alias} does not exist in the local keystore at {self.path}")
            call.key_id = row[0]
            call.conn.execute("DELETE FROM aliases WHERE alias_name = ?", (alias,))

    def list_aliases(self, key: str | None = None) -> list[AliasEntry]:
        """ListAliases, sorted by name; only *key*'s with a key given."""
        with self._operation("ListAliases", {"key": key}) as call:
            query = "SELECT alias_name, key_id, created_at FROM aliases"
            params: tuple[str, ...] = ()
            if key is not None:
                query, params = query + " WHERE key_id = ?", (self._resolve_in(call, key),)
            rows = call.conn.execute(query + " ORDER BY alias_name", params).fetchall()
            return [AliasEntry(*row) for row in rows]

    # -- tags --------------------------------------------------------------------------------------

    def tag_key(self, ref: str, tags: Mapping[str, str]) -> dict[str, str]:
        """TagResource: add or replace tags; returns the key's tags after."""
        tag_map = check_tags(tags)
        with self._operation("TagResource", {"key": ref, "tag_keys": sorted(tag_map)}) as call:
            key_id = self._resolve_in(call, ref)
            lifecycle.require(call.conn, key_id, "TagResource",
                              _NAMEABLE)
            call.conn.executemany("INSERT OR REPLACE INTO tags (key_id, tag_key, tag_value) VALUES (?, ?, ?)",
                                  [(key_id, k, v) for k, v in tag_map.items()])
            after = tags_of(call.conn, key_id)
            if len(after) > MAX_TAGS_PER_KEY:
                raise UsageError(f"a key has at most {MAX_TAGS_PER_KEY} tags")
            return dict(after)

    def untag_key(self, ref: str, tag_keys: Iterable[str]) -> dict[str, str]:
        """UntagResource: remove tags by key (absent ones are ignored); returns the key's tags after."""
        names = sorted(set(tag_keys))
        with self._operation("UntagResource", {"key": ref, "tag_keys": names}) as call:
            key_id = self._resolve_in(call, ref)
            lifecycle.require(call.conn, key_id, "UntagResource",
                              _NAMEABLE)
            call.conn.executemany("DELETE FROM tags WHERE key_id = ? AND tag_key = ?", [(key_id, n) for n in names])
            return dict(tags_of(call.conn, key_id))

    def list_tags(self, ref: str) -> dict[str, str]:
        with self._operation("ListResourceTags", {"key": ref}) as call:
            return dict(tags_of(call.conn, self._resolve_in(call, ref)))



def insert_alias(conn: sqlite3.Connection, alias: str, key_id: str, now: str) -> AliasEntry:
    row = conn.execute("SELECT key_id FROM aliases WHERE alias_name = ?", (alias,)).fetchone()
    if row is not None:
        raise AlreadyExistsError(f"alias {alias} already exists (it points to key {row[0]})")
    conn.execute("INSERT INTO aliases (alias_name, key_id, created_at, updated_at) VALUES (?, ?, ?, ?)",
                 (alias, key_id, now, now))
    return AliasEntry(alias, key_id, now)


def tags_of(conn: sqlite3.Connection, key_id: str) -> tuple[tuple[str, str], ...]:
    return tuple((r[0], r[1]) for r in conn.execute(
        "SELECT tag_key, tag_value FROM tags WHERE key_id = ? ORDER BY tag_key", (key_id,)))


def _require_key_reference(ref: str) -> None:
    if parse_reference(ref).kind == "alias":
        raise UsageError("an alias must point at a key id or key ARN, not at another alias")

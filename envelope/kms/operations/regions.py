"""Multi-Region keys: one key, the same material and id, in keystores of several regions.

A local keystore has a region (``local`` unless chosen when it is made), and
a key created with ``multi_region=True`` gets an ``mrk-`` id and is the
*primary*.  Replicating it writes a *replica* into the keystore of another
region: the same key id, key spec and every backing key, resealed under that
keystore's own wrapping key.  A file or blob encrypted under the primary in
one region then decrypts with the replica in the other, which never calls back
(the other keystore need not even be reachable), just as AWS KMS's
multi-Region keys let a region fail without stranding its data.

Each replica has its own state, policy, aliases and tags.  Backing keys are
shared: rotation happens on the primary, and replicating again carries new
backing keys to the replicas (a replica that lacks one names the fix).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from ...exceptions import UsageError
from ..model import lifecycle
from ..storage import material
from .part import StorePart
from ..model.keys import KeyMetadata

if TYPE_CHECKING:
    from pathlib import Path


def replica_path(primary_path: Path, region: str) -> Path:
    """Where a region's keystore lives by default: ``keystore-REGION.db`` beside the primary's."""
    return primary_path.with_name(f"{primary_path.stem}-{region}{primary_path.suffix}")


class RegionOperations(StorePart):
    """ReplicateKey."""

    def _open_region(self, path: Path, region: str) -> RegionOperations:
        """The keystore at *path* in *region* (created if missing), called as this one's principal.

        The keystore class supplies it, so this mix-in need not import the class it is part of.
        """
        raise NotImplementedError

    def replicate_key(self, ref: str, region: str, replica_keystore: str | os.PathLike[str] | None = None,
                      description: str | None = None) -> KeyMetadata:
        """ReplicateKey: make (or bring up to date) *ref*'s replica in *region*'s keystore.

        The replica keystore is *replica_keystore*, by default
        ``keystore-REGION.db`` beside this one; it is created, in *region*, if
        it does not exist.  Run again after rotating the primary.
        """
        if region == self.region:
            raise UsageError(f"a replica must be in another region than its primary ({self.region})")
        from pathlib import Path

        target_path = Path(replica_keystore) if replica_keystore is not None else replica_path(self.path, region)
        with self._operation("ReplicateKey", {"key": ref, "region": region, "keystore": str(target_path)}) as call:
            key_id = self._resolve_in(call, ref)
            row = call.conn.execute(
                "SELECT multi_region_role, key_spec, key_usage, description, policy FROM keys WHERE key_id = ?",
                (key_id,)).fetchone()
            role, spec, usage, own_description, policy = row
            if role != "PRIMARY":
                raise UsageError(f"key {key_id} is not the primary of a multi-Region key; only those replicate "
                                 "(create one with keys create --multi-region)")
            lifecycle.require(call.conn, key_id, "ReplicateKey", (lifecycle.ENABLED, lifecycle.DISABLED))
            wrapping = self._db.wrapping_key(call.conn)
            versions = [(int(v), wrapping.open(key_id, int(v), sealed), rotation, created)
                        for v, sealed, rotation, created in call.conn.execute(
                            "SELECT version, sealed, rotation_type, created_at FROM key_material WHERE key_id = ?"
                            " ORDER BY version", (key_id,))]
        try:
            target = self._open_region(target_path, region)
            try:
                return target._receive(key_id, self.region, spec, usage,
                                       own_description if description is None else description, policy, versions)
            finally:
                target.close()
        finally:
            for _, clear, _, _ in versions:
                material.wipe(clear)

    def _receive(self, key_id: str, primary_region: str, spec: str, usage: str, description: str,
                 policy: str, versions: list[tuple[int, bytearray, str | None, str]]) -> KeyMetadata:
        """The replica's side, in its own keystore and transaction: the key row once, then missing versions."""
        with self._operation("ReplicateKey", {"key": key_id, "primary_region": primary_region}) as call:
            call.key_id = key_id
            exists = call.conn.execute("SELECT multi_region_role FROM keys WHERE key_id = ?", (key_id,)).fetchone()
            if exists is None:
                self._insert_key(call.conn, description, json.loads(policy), "ENVELOPE", spec, usage, "REPLICA",
                                   key_id=key_id, primary_region=primary_region)
            elif exists[0] != "REPLICA":
                raise UsageError(f"key {key_id} already exists in the keystore at {self.path} and is not a replica")
            have = {int(r[0]) for r in call.conn.execute("SELECT version FROM key_material WHERE key_id = ?",
                                                         (key_id,))}
            wrapping = self._db.wrapping_key(call.conn)
            for version, clear, rotation, created in versions:
                if version not in have:
                    call.conn.execute(
                        "INSERT INTO key_material (key_id, version, sealed, origin, rotation_type, created_at)"
                        " VALUES (?, ?, ?, 'ENVELOPE', ?, ?)",
                        (key_id, version, wrapping.seal(key_id, version, clear), rotation, created))
            return self._metadata(call.conn, key_id)

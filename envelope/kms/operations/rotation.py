"""Rotation: new backing keys under the same key id, on a schedule or on demand; a mix-in of the keystore.

The rules (periods, which keys may rotate, when the next one is due) are in
:mod:`envelope.kms.model.lifecycle`; the backing keys themselves in
:mod:`envelope.kms.storage.material`.  Due automatic rotations run lazily before any
call and from ``maintain`` (:mod:`envelope.kms.store`).
"""

from __future__ import annotations

import sqlite3

from ..model import lifecycle
from ..storage import material
from .part import StorePart
from ..model.keys import KeyRotation, RotationStatus


class RotationOperations(StorePart):
    """EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand."""

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

    def _rotate(self, conn: sqlite3.Connection, key_id: str, automatic: bool) -> KeyRotation:
        now = self._db.now()
        kind = "AUTOMATIC" if automatic else "ON_DEMAND"
        version = material.add_version(conn, self._db.wrapping_key(conn), key_id, "ENVELOPE", kind,
                                       self._db.timestamp())
        lifecycle.record_rotation(conn, key_id, automatic, now)
        return material.rotations(conn, key_id)[version - 1]

    def _rotation_status(self, conn: sqlite3.Connection, key_id: str) -> RotationStatus:
        enabled, period, next_date = conn.execute(
            "SELECT rotation_enabled, rotation_period_days, next_rotation_date FROM keys WHERE key_id = ?", (key_id,)
        ).fetchone()
        return RotationStatus(key_id, bool(enabled), period, next_date, material.rotations(conn, key_id))

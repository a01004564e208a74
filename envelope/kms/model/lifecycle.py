"""The life of a master key: its states, its rotation schedule, its deletion.

The states and the moves between them are AWS KMS's::

    Enabled  <-- enable / disable -->  Disabled
       |                                   |     ^
       +------ schedule deletion ----------+     | cancel deletion
                        v                        |
                 PendingDeletion ----------------+
                        |
                        | the waiting period (7-30 days) ends
                        v
                 destroyed: material gone for good, a tombstone remains

Only an ``Enabled`` key does cryptography.  Nothing destroys a key at once:
deletion is always scheduled, and can be cancelled until the date passes,
after which the key returns to ``Disabled`` so that using it again is a second,
deliberate step.  Disabling is the reversible way to stop a key being used.

Automatic rotation adds a backing key every *period* days (90 to 2560, default
365), counted from when rotation was enabled or last happened.  A key that is
not ``Enabled`` when its date comes is rotated once it is enabled again; a key
whose date passed several periods ago rotates once, not once per period.
On-demand rotation does not move the automatic schedule.

Everything due-dated is compared against the store's clock
(:mod:`envelope.kms.model.clock`); :func:`due` finds the work and the store performs
it, on ``maintain`` or lazily before any other operation.  Functions here run
inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from ...exceptions import KeyStateError, UsageError
from .clock import iso, parse_iso
from .keys import DeletionSchedule

ENABLED, DISABLED, PENDING_DELETION, PENDING_IMPORT = "Enabled", "Disabled", "PendingDeletion", "PendingImport"

DEFAULT_ROTATION_PERIOD_DAYS = 365
MIN_ROTATION_PERIOD_DAYS = 90
MAX_ROTATION_PERIOD_DAYS = 2560
DEFAULT_PENDING_WINDOW_DAYS = 30
MIN_PENDING_WINDOW_DAYS = 7
MAX_PENDING_WINDOW_DAYS = 30


def check_rotation_period(days: int | None) -> int:
    if days is None:
        return DEFAULT_ROTATION_PERIOD_DAYS
    if isinstance(days, bool) or not isinstance(days, int) \
            or not MIN_ROTATION_PERIOD_DAYS <= days <= MAX_ROTATION_PERIOD_DAYS:
        raise UsageError(
            f"the rotation period must be {MIN_ROTATION_PERIOD_DAYS} to {MAX_ROTATION_PERIOD_DAYS} days, got {days}"
        )
    return days


def check_pending_window(days: int | None) -> int:
    if days is None:
        return DEFAULT_PENDING_WINDOW_DAYS
    if isinstance(days, bool) or not isinstance(days, int) \
            or not MIN_PENDING_WINDOW_DAYS <= days <= MAX_PENDING_WINDOW_DAYS:
        raise UsageError(
            f"the deletion waiting period must be {MIN_PENDING_WINDOW_DAYS} to {MAX_PENDING_WINDOW_DAYS} days, "
            f"got {days}"
        )
    return days


def state_of(conn: sqlite3.Connection, key_id: str) -> str:
    return str(conn.execute("SELECT state FROM keys WHERE key_id = ?", (key_id,)).fetchone()[0])


def state_error(conn: sqlite3.Connection, key_id: str, state: str, operation: str, needs: str = ENABLED) -> KeyStateError:
    """The one-line refusal, naming the key, its state and the way out."""
    message = f"key {key_id} is {state}"
    if state == PENDING_DELETION:
        row = conn.execute("SELECT deletion_date FROM keys WHERE key_id = ?", (key_id,)).fetchone()
        message += f" (its material will be destroyed on {row[0]})" if row and row[0] else ""
    message += f": {operation} needs {'an' if needs[0] in 'AEIOU' else 'a'} {needs} key"
    if state == DISABLED and needs == ENABLED:
        message += f"; enable it with: envelope keys enable {key_id}"
    elif state == PENDING_DELETION:
        message += f"; to keep the key: envelope keys cancel-deletion {key_id}"
    elif state == PENDING_IMPORT:
        message += "; its key material has not been imported"
    return KeyStateError(message, state=state)


def require(conn: sqlite3.Connection, key_id: str, operation: str, allowed: tuple[str, ...] = (ENABLED,)) -> str:
    state = state_of(conn, key_id)
    if state not in allowed:
        raise state_error(conn, key_id, state, operation, " or ".join(allowed))
    return state


def set_enabled(conn: sqlite3.Connection, key_id: str, enabled: bool, now: datetime) -> None:
    """EnableKey / DisableKey: between Enabled and Disabled only; repeating one is not an error."""
    operation = "EnableKey" if enabled else "DisableKey"
    require(conn, key_id, operation, (ENABLED, DISABLED))
    conn.execute("UPDATE keys SET state = ?, updated_at = ? WHERE key_id = ?",
                 (ENABLED if enabled else DISABLED, iso(now), key_id))


def schedule_deletion(conn: sqlite3.Connection, key_id: str, days: int | None, now: datetime) -> DeletionSchedule:
    window = check_pending_window(days)
    require(conn, key_id, "ScheduleKeyDeletion", (ENABLED, DISABLED, PENDING_IMPORT))
    when = iso(now + timedelta(days=window))
    conn.execute(
        "UPDATE keys SET state = ?, deletion_date = ?, pending_window_days = ?, updated_at = ? WHERE key_id = ?",
        (PENDING_DELETION, when, window, iso(now), key_id),
    )
    return DeletionSchedule(key_id, PENDING_DELETION, when, window)


def cancel_deletion(conn: sqlite3.Connection, key_id: str, now: datetime) -> None:
    """CancelKeyDeletion: back to Disabled, never straight to Enabled."""
    require(conn, key_id, "CancelKeyDeletion", (PENDING_DELETION,))
    conn.execute(
        "UPDATE keys SET state = ?, deletion_date = NULL, pending_window_days = NULL, updated_at = ? WHERE key_id = ?",
        (DISABLED, iso(now), key_id),
    )


def set_rotation(conn: sqlite3.Connection, key_id: str, period_days: int | None, now: datetime) -> None:
    """EnableKeyRotation: *period_days* (default 365) from now, or from the running schedule's start."""
    period = check_rotation_period(period_days)
    require(conn, key_id, "EnableKeyRotation")
    _require_generated(conn, key_id, "automatic rotation")
    enabled, old_period, next_date = conn.execute(
        "SELECT rotation_enabled, rotation_period_days, next_rotation_date FROM keys WHERE key_id = ?", (key_id,)
    ).fetchone()
    if enabled and next_date and old_period:
        # A new period for a running schedule counts from the schedule's last start, as AWS does.
        start = parse_iso(next_date) - timedelta(days=int(old_period))
    else:
        start = now
    conn.execute(
        "UPDATE keys SET rotation_enabled = 1, rotation_period_days = ?, next_rotation_date = ?, updated_at = ?"
        " WHERE key_id = ?",
        (period, iso(start + timedelta(days=period)), iso(now), key_id),
    )


def disable_rotation(conn: sqlite3.Connection, key_id: str, now: datetime) -> None:
    require(conn, key_id, "DisableKeyRotation", (ENABLED, DISABLED))
    conn.execute("UPDATE keys SET rotation_enabled = 0, next_rotation_date = NULL, updated_at = ? WHERE key_id = ?",
                 (iso(now), key_id))


def check_on_demand(conn: sqlite3.Connection, key_id: str) -> None:
    require(conn, key_id, "RotateKeyOnDemand")
    _require_generated(conn, key_id, "rotation")


def record_rotation(conn: sqlite3.Connection, key_id: str, automatic: bool, now: datetime) -> None:
    """After a new backing version: note when, and if it was the schedule's, when the next one is due."""
    if automatic:
        (period,) = conn.execute("SELECT rotation_period_days FROM keys WHERE key_id = ?", (key_id,)).fetchone()
        conn.execute(
            "UPDATE keys SET last_rotated_at = ?, next_rotation_date = ?, updated_at = ? WHERE key_id = ?",
            (iso(now), iso(now + timedelta(days=int(period or DEFAULT_ROTATION_PERIOD_DAYS))), iso(now), key_id),
        )
    else:
        conn.execute("UPDATE keys SET last_rotated_at = ?, updated_at = ? WHERE key_id = ?",
                     (iso(now), iso(now), key_id))


def due(conn: sqlite3.Connection, now: datetime) -> tuple[list[str], list[str]]:
    """Keys whose automatic rotation is due, and keys whose deletion date has passed."""
    stamp = iso(now)
    rotations = [r[0] for r in conn.execute(
        "SELECT key_id FROM keys WHERE state = ? AND rotation_enabled = 1 AND next_rotation_date <= ?"
        " ORDER BY rowid", (ENABLED, stamp))]
    deletions = [r[0] for r in conn.execute(
        "SELECT key_id FROM keys WHERE state = ? AND deletion_date <= ? ORDER BY rowid", (PENDING_DELETION, stamp))]
    return rotations, deletions


def anything_due(conn: sqlite3.Connection, now: datetime) -> bool:
    stamp = iso(now)
    row = conn.execute(
        "SELECT 1 FROM keys WHERE (state = ? AND rotation_enabled = 1 AND next_rotation_date <= ?)"
        " OR (state = ? AND deletion_date <= ?) LIMIT 1", (ENABLED, stamp, PENDING_DELETION, stamp),
    ).fetchone()
    if row is None:  # imported material past its valid_to
        row = conn.execute("SELECT 1 FROM key_material WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT 1",
                           (stamp,)).fetchone()
    return row is not None


def destroy(conn: sqlite3.Connection, key_id: str, now: datetime) -> None:
    """The end of the waiting period: the key, its material, aliases, tags and grants go; a tombstone stays.

    ``secure_delete`` is on, so SQLite overwrites the freed pages.
    """
    (arn,) = conn.execute("SELECT arn FROM keys WHERE key_id = ?", (key_id,)).fetchone()
    conn.execute("DELETE FROM keys WHERE key_id = ?", (key_id,))
    conn.execute("INSERT OR REPLACE INTO deleted_keys (key_id, arn, deleted_at) VALUES (?, ?, ?)",
                 (key_id, arn, iso(now)))


def deleted_at(conn: sqlite3.Connection, key_id: str) -> str | None:
    row = conn.execute("SELECT deleted_at FROM deleted_keys WHERE key_id = ?", (key_id,)).fetchone()
    return None if row is None else str(row[0])


def _require_generated(conn: sqlite3.Connection, key_id: str, what: str) -> None:
    origin, spec, role, primary = conn.execute(
        "SELECT origin, key_spec, multi_region_role, primary_region FROM keys WHERE key_id = ?", (key_id,)).fetchone()
    if role == "REPLICA":
        raise UsageError(f"key {key_id} is a multi-Region replica: {what} happens on its primary (region "
                         f"{primary}); then run keys replicate again to bring the new backing key here")
    if spec != "SYMMETRIC_DEFAULT":
        raise UsageError(f"key {key_id} is {spec}; {what} is for symmetric keys (make a new key and move the alias)")
    if origin != "ENVELOPE":
        raise UsageError(f"key {key_id} has imported key material ({origin}); {what} needs generated material")

"""The keystore's notion of "now", and how times are written down.

Rotation and deletion are due-date driven: a key rotates when its next
rotation date has passed, and its material is destroyed when its deletion
date has.  Every date the keystore compares or records comes from one
:class:`Clock`, so a test can move time forward by a year in a line
(:class:`ManualClock`) instead of waiting, and the production path is the same
code with :class:`SystemClock`.

Times are stored as ISO 8601 text in UTC with a ``Z``, which sorts in time
order, so SQLite can compare them as strings.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock:
    """A clock that only moves when told to: for tests and for rehearsing a schedule."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = _aware(start) if start is not None else datetime.now(timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by *delta* or by ``timedelta(**kwargs)`` (``days=31``); returns the new time."""
        step = delta if delta is not None else timedelta(**kwargs)
        if step < timedelta(0):
            raise ValueError("a ManualClock only moves forward")
        self._now += step
        return self._now


def iso(moment: datetime, precise: bool = False) -> str:
    """``2026-11-24T10:00:00Z``; microseconds with *precise* (audit rows, which must keep their order)."""
    text = _aware(moment).astimezone(timezone.utc).isoformat(timespec="microseconds" if precise else "seconds")
    return text.replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """Read back what :func:`iso` wrote, or any ISO 8601 date or time (naive means UTC)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    return _aware(datetime.fromisoformat(value))


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment

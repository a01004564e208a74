"""Progress on a terminal: a bar for anything that takes longer than about half a second, then one line.

A size threshold guessed wrong both ways (a slow disk, a batch of many small
files, a KMS far away), so the bar waits :data:`DELAY_SECONDS` instead and is
drawn only if the work is still going.  Until then nothing is imported or
drawn: a quick command on a terminal costs no more than one in a pipe.  When
the bar was drawn it is replaced at the end by one summary line (what, bytes,
time, rate), so a terminal keeps a record of each long run and no clutter of
the short ones.  Nothing at all is drawn when stderr is not a terminal.

This module imports no command module and nothing heavy: every command's
bar (files, batches, ``s3 cp``) is this one.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

#: How long an operation runs before its bar appears.
DELAY_SECONDS = 0.5
#: How often a new file's name is drawn in a batch (tqdm's own pace for its numbers).
REDRAW_SECONDS = 0.1


def wanted(quiet: bool, stream: TextIO | None = None) -> bool:
    """Whether to show progress at all: not with --quiet, and only on a terminal."""
    stream = sys.stderr if stream is None else stream
    return not quiet and stream.isatty()


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Bar:
    """One bar over one operation: a file, a batch of files (``3/120 name``), or a copy of objects.

    *verb* says what was done, for the summary ("encrypted"); *total* is the
    bytes expected (None when unknown, as for stdin); *count* the files of a
    batch.  :meth:`advance` may be called from many threads at once.
    """

    def __init__(self, show: bool, verb: str, total: int | None, *, count: int = 1, label: str = "",
                 noun: str = "files", stream: TextIO | None = None) -> None:
        self._show, self._verb, self._total, self._count, self._noun = show, verb, total, count, noun
        self._stream = sys.stderr if stream is None else stream
        self._label, self._name, self._index, self._done, self._finished = label, label, 0, 0, 0
        self._started = self._drawn = time.monotonic()
        self._bar: Any = None
        self._lock = threading.Lock()

    @property
    def shown(self) -> bool:
        """Whether a bar may be drawn (on a terminal, not --quiet): worth counting bytes for."""
        return self._show

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        self.close(ok=kind is None)

    def start(self, name: str) -> None:
        """The next file of the operation begins: the bar names it (in a batch, ``3/120 name``)."""
        with self._lock:
            self._index += 1
            self._name = name
            self._label = name if self._count == 1 else f"{self._index}/{self._count} {name}"
            if self._bar is None:
                self._draw_if_late()
            else:
                self._bar.set_description_str(self._label, refresh=False)
                if time.monotonic() - self._drawn >= REDRAW_SECONDS:  # a batch of tiny files moves between updates
                    self._bar.refresh()
                    self._drawn = time.monotonic()

    def finished(self) -> None:
        """One file (or object) of the operation is done."""
        with self._lock:
            self._finished += 1

    def advance(self, n: int) -> None:
        """*n* more bytes are done."""
        with self._lock:
            self._done += n
            if self._bar is not None:
                self._bar.update(n)
            else:
                self._draw_if_late()

    def _draw_if_late(self) -> None:
        if not self._show or self._bar is not None or time.monotonic() - self._started < DELAY_SECONDS:
            return
        from tqdm import tqdm

        self._bar = tqdm(total=self._total, initial=self._done, desc=self._label, unit="B", unit_scale=True,
                         unit_divisor=1024, file=self._stream, leave=False, dynamic_ncols=True)
        self._drawn = time.monotonic()

    def close(self, ok: bool = True) -> None:
        """Clear the bar; if it was drawn, leave one line saying what was done, how much, how fast."""
        with self._lock:
            if self._bar is None:
                return
            bar, self._bar = self._bar, None
            bar.close()
            if not ok and self._finished == 0:
                return  # the error line says what happened
            seconds = max(time.monotonic() - self._started, 1e-9)
            what = self._name if self._count == 1 else f"{self._count} {self._noun}" \
                if self._finished == self._count else f"{self._finished} of {self._count} {self._noun}"
            print(f"envelope: {self._verb} {what}: {_size(self._done)} in {seconds:.1f} s, "
                  f"{self._done / seconds / 1e6:.1f} MB/s", file=self._stream)

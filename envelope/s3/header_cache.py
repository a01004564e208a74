"""Opened headers of S3 objects, kept per object version for repeated ranged GETs.

A ranged GET of an envelope object needs the object's header and data key:
fetching the header costs a request, and unwrapping the data key costs a call
to the key manager (a KMS round trip, metered).  An application reading many
small ranges of the same objects would pay both every time.  So the client
keeps, per (bucket, key, version id), the ETag it read, the object's length
(kept only once the final chunk it implies opened as final: a proven length),
the parsed header and the unwrapped data key; a later ranged GET names that
ETag (``IfMatch``) on its one request for the chunks, so an object replaced
since is noticed by S3 (412), dropped from here and opened afresh.

On every use the file keys are derived again and the header authenticated
again (microseconds), and the caller's required context is checked against
the header's, so a hit proves what a miss proves.  The cache is bounded in
entries and age, lives only in the process, and zeroes a data key when its
entry leaves (eviction, expiry, :meth:`HeaderCache.clear`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from .. import context as _context
from ..context import EncryptionContext
from ..format import Header
from ..kdf import FileKeys, authenticate_header

DEFAULT_ENTRIES = 128
DEFAULT_MAX_AGE = 300.0  # seconds; after this the key manager is asked again

Ident = tuple[str, str, "str | None"]  # bucket, key, version id


@dataclass
class OpenedObject:
    etag: str
    size: int  # the stored (ciphertext) length
    header: Header
    data_key: bytearray = field(repr=False)
    created: float = 0.0

    def file_keys(self, required_context: EncryptionContext | None) -> FileKeys:
        """The file's keys, after the checks a fresh open makes: context, commitment, MAC."""
        _context.require_subset(_context.normalize(required_context), self.header.context)
        keys = FileKeys.derive(self.data_key, self.header.file_id, self.header.suite)
        authenticate_header(self.header, keys)
        return keys


class HeaderCache:
    def __init__(self, entries: int = DEFAULT_ENTRIES, max_age: float = DEFAULT_MAX_AGE, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._entries, self._max_age, self._clock = entries, max_age, clock
        self._items: OrderedDict[Ident, OpenedObject] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def open(self, ident: Ident, required_context: EncryptionContext | None) -> tuple[OpenedObject, FileKeys] | None:
        """The entry and its file keys (derived under the lock, so an eviction cannot zero the key midway)."""
        with self._lock:
            entry = self._items.get(ident)
            if entry is None:
                return None
            if self._clock() - entry.created >= self._max_age:
                self._drop(ident)
                return None
            self._items.move_to_end(ident)
            return entry, entry.file_keys(required_context)

    def put(self, ident: Ident, etag: str, size: int, header: Header, data_key: bytearray) -> None:
        """Keep a copy of *data_key* (the caller still owns and zeroes its own)."""
        if self._entries <= 0:
            return
        with self._lock:
            self._drop(ident)
            self._items[ident] = OpenedObject(etag, size, header, bytearray(data_key), self._clock())
            while len(self._items) > self._entries:
                self._drop(next(iter(self._items)))

    def drop(self, ident: Ident) -> None:
        with self._lock:
            self._drop(ident)

    def clear(self) -> None:
        with self._lock:
            for ident in list(self._items):
                self._drop(ident)

    def _drop(self, ident: Ident) -> None:
        entry = self._items.pop(ident, None)
        if entry is not None:
            entry.data_key[:] = bytes(len(entry.data_key))

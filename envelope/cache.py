"""An opt-in, in-process cache of data keys, for many small files under one master key.

Without it, every file costs a KMS round trip to encrypt (GenerateDataKey, and
an Encrypt per extra master key) and one to decrypt (Decrypt).  For 10,000
small objects that is 10,000 calls: slow, billed, and throttled per account.
With it, a data key is reused for several files, within bounds the caller sets:

* ``max_age``: seconds a cached key may be used after KMS produced it (required);
* ``max_messages``: files encrypted under one cached key;
* ``max_bytes``: plaintext bytes encrypted under one cached key.

Reusing a data key is safe here because no file is encrypted with it directly:
each file draws a fresh random 256-bit file id, and its chunk, header and
commitment keys are derived from (data key, file id) with HKDF.  What reuse
does change: files sharing a data key share their wrapped keys, so whoever can
unwrap one can open all of them, and revoking a master key in KMS takes effect
for this process only when cached entries age out.  Hence the bounds.

Entries are partitioned by the keyring and the encryption context, so a key is
never reused across either.  The keyring's part is each master key's reference
*and* the identity behind it (:meth:`~envelope.keyrings.base.Keyring.cache_identity`:
the local keystore and principal, the AWS credentials, region and endpoint,
the raw key's fingerprint), so one cache may serve several identities: what
one of them unwrapped is never handed to another, who has to ask its key
manager.  Plaintext keys are zeroed on eviction and on :meth:`DataKeyCache.clear`.
Share a cache only within one process you trust with every key it holds: the
cached keys are that process's memory.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from . import context as _context
from .context import EncryptionContext
from .exceptions import UsageError
from .format import WrappedKey
from .keyrings.base import DataKey, Keyring, MultiKeyring, refuse_pickle
from .records import FrozenRecord

#: Entries kept at most (encrypt and decrypt together); the oldest used is evicted first.
DEFAULT_CAPACITY = 1000
#: The largest value the bounds accept: AWS's own cache stops at 2**32 messages per key.
MAX_MESSAGES_LIMIT = 1 << 32


class CacheLimits(FrozenRecord):
    """How long and how much one cached data key may be used.  Immutable; checked when made."""

    __slots__ = ("max_age", "max_messages", "max_bytes")

    max_age: float
    max_messages: int | None
    max_bytes: int | None

    def __init__(self, max_age: float, max_messages: int | None = None, max_bytes: int | None = None) -> None:
        if not max_age > 0:
            raise UsageError("the cache's maximum age must be a positive number of seconds")
        if max_messages is not None and not 1 <= max_messages <= MAX_MESSAGES_LIMIT:
            raise UsageError(f"the cache's maximum messages must be from 1 to {MAX_MESSAGES_LIMIT}")
        if max_bytes is not None and max_bytes < 0:
            raise UsageError("the cache's maximum bytes cannot be negative")
        self._set("max_age", max_age)
        self._set("max_messages", max_messages)
        self._set("max_bytes", max_bytes)


class CacheStats:
    """What the cache saved: each hit is a KMS round trip (or several) not made."""

    __slots__ = ("encrypt_hits", "encrypt_misses", "decrypt_hits", "decrypt_misses")

    def __init__(self, encrypt_hits: int = 0, encrypt_misses: int = 0, decrypt_hits: int = 0,
                 decrypt_misses: int = 0) -> None:
        self.encrypt_hits = encrypt_hits
        self.encrypt_misses = encrypt_misses
        self.decrypt_hits = decrypt_hits
        self.decrypt_misses = decrypt_misses

    def __repr__(self) -> str:
        return (f"CacheStats(encrypt_hits={self.encrypt_hits}, encrypt_misses={self.encrypt_misses}, "
                f"decrypt_hits={self.decrypt_hits}, decrypt_misses={self.decrypt_misses})")


class _Entry:
    """One cached data key and what it has been used for (the plaintext is never in the repr)."""

    __slots__ = ("plaintext", "wrapped", "created", "messages", "bytes")

    def __init__(self, plaintext: bytearray, wrapped: tuple[WrappedKey, ...], created: float, messages: int = 0,
                 bytes: int = 0) -> None:
        self.plaintext = plaintext
        self.wrapped = wrapped
        self.created = created
        self.messages = messages
        self.bytes = bytes

    def __repr__(self) -> str:
        return (f"_Entry(wrapped={self.wrapped!r}, created={self.created!r}, messages={self.messages}, "
                f"bytes={self.bytes})")

    def clear(self) -> None:
        self.plaintext[:] = bytes(len(self.plaintext))


class DataKeyCache:
    """A bounded map from (keyring and its identity, context[, wrapped keys]) to a data key; thread-safe."""

    def __init__(self, limits: CacheLimits, *, capacity: int = DEFAULT_CAPACITY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1:
            raise UsageError("the cache needs room for at least one entry")
        self.limits = limits
        self.stats = CacheStats()
        self._capacity = capacity
        self._clock = clock
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __reduce_ex__(self, protocol: object) -> Any:
        raise refuse_pickle("a data-key cache")

    def clear(self) -> None:
        with self._lock:
            for entry in self._entries.values():
                entry.clear()
            self._entries.clear()

    def __enter__(self) -> DataKeyCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()

    # -- used by CachingKeyring ------------------------------------------------------------------------

    def take_for_encrypt(self, key: bytes, size: int | None) -> DataKey | None:
        """A copy of a cached key with room for *size* more bytes, counted as used; or None."""
        with self._lock:
            # Too big for any cached key: bypass the cache, and leave the entry to smaller files.
            entry = self._live(key) if self._fits(size, 0) else None
            if entry is not None and not self._has_room(entry, size):
                self._drop(key)  # used up: the fresh key about to be made replaces it
                entry = None
            if entry is None:
                self.stats.encrypt_misses += 1
                return None
            self.stats.encrypt_hits += 1
            entry.messages += 1
            entry.bytes += size or 0
            return DataKey(bytearray(entry.plaintext), entry.wrapped)

    def put_for_encrypt(self, key: bytes, data_key: DataKey, size: int | None) -> None:
        """Cache a freshly generated key that was just used once, if that use is within bounds."""
        if not self._fits(size, 0) or self.limits.max_messages == 1:
            return
        entry = _Entry(bytearray(data_key.plaintext), data_key.wrapped, self._clock(), 1, size or 0)
        self._store(key, entry)

    def take_for_decrypt(self, key: bytes) -> bytearray | None:
        with self._lock:
            entry = self._live(key)
            if entry is None:
                self.stats.decrypt_misses += 1
                return None
            self.stats.decrypt_hits += 1
            return bytearray(entry.plaintext)

    def put_for_decrypt(self, key: bytes, plaintext: bytearray) -> None:
        self._store(key, _Entry(bytearray(plaintext), (), self._clock()))

    # -- internals -------------------------------------------------------------------------------------

    def _fits(self, size: int | None, used: int) -> bool:
        if self.limits.max_bytes is None:
            return True
        return size is not None and used + size <= self.limits.max_bytes  # an unknown size never fits a byte bound

    def _has_room(self, entry: _Entry, size: int | None) -> bool:
        if self.limits.max_messages is not None and entry.messages >= self.limits.max_messages:
            return False
        return self._fits(size, entry.bytes)

    def _live(self, key: bytes) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() - entry.created >= self.limits.max_age:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def _drop(self, key: bytes) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            entry.clear()

    def _store(self, key: bytes, entry: _Entry) -> None:
        with self._lock:
            self._drop(key)
            self._entries[key] = entry
            while len(self._entries) > self._capacity:
                _, oldest = self._entries.popitem(last=False)
                oldest.clear()


def _partition(kind: bytes, keyrings: Sequence[Keyring], context: EncryptionContext,
               wrapped: Sequence[WrappedKey] = ()) -> bytes:
    """A collision-resistant name for one cache partition (lengths prefixed, so fields cannot run together).

    Each keyring's identity is asked for on every call, not once: it follows
    what the keyring would act as now (``ENVELOPE_PRINCIPAL``, the credentials).
    """
    import hashlib  # only a cache uses it: a command without --cache does not pay its import

    h = hashlib.sha256(kind)

    def put(value: str | bytes) -> None:
        data = value.encode("utf-8") if isinstance(value, str) else value
        h.update(len(data).to_bytes(8, "big") + data)

    for keyring in keyrings:
        put(keyring.reference)
        identity = keyring.cache_identity()
        put(len(identity).to_bytes(8, "big"))
        for part in identity:
            put(part)
    put(b"context")
    for name, value in sorted(context.items()):
        put(name)
        put(value)
    put(b"wrapped")
    for w in sorted(wrapped, key=lambda w: (w.provider, w.key_id, w.ciphertext)):
        put(w.provider)
        put(w.key_id)
        put(w.ciphertext)
    return h.digest()


class CachingKeyring(MultiKeyring):
    """A :class:`MultiKeyring` that asks its master keys only when the cache has nothing usable."""

    def __init__(self, inner: MultiKeyring, cache: DataKeyCache) -> None:
        super().__init__(inner.keyrings, max_wrapped_keys=inner.max_wrapped_keys)
        self._inner = inner
        self.cache = cache

    def generate_data_key(self, context: EncryptionContext, plaintext_size: int | None = None) -> DataKey:
        ctx = _context.normalize(context)
        key = _partition(b"encrypt", self.keyrings, ctx)
        cached = self.cache.take_for_encrypt(key, plaintext_size)
        if cached is not None:
            return cached
        fresh = self._inner.generate_data_key(ctx)
        self.cache.put_for_encrypt(key, fresh, plaintext_size)
        return fresh

    def unwrap(self, wrapped_keys: Sequence[WrappedKey], context: EncryptionContext) -> bytearray:
        self.check_wrapped_count(wrapped_keys)
        key = _partition(b"decrypt", self.keyrings, _context.normalize(context), wrapped_keys)
        cached = self.cache.take_for_decrypt(key)
        if cached is not None:
            return cached
        plaintext = self._inner.unwrap(wrapped_keys, context)
        self.cache.put_for_decrypt(key, plaintext)
        return plaintext

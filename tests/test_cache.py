"""The data-key cache: reuse within its bounds, partitions that never mix, and keys zeroed on the way out."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

import envelope
from envelope.cache import CacheLimits, CachingKeyring, DataKeyCache
from envelope.context import EncryptionContext
from envelope.exceptions import FormatError, UsageError
from envelope.format import WrappedKey, read_header
from envelope.keyrings.base import MultiKeyring
from envelope.keyrings.raw_aes import RawAesKeyring
from envelope.stream import encrypt_stream


class Counting(RawAesKeyring):
    """A raw AES keyring that counts what it is asked, as a KMS bill would."""

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self.wraps = 0
        self.unwraps = 0

    def wrap_data_key(self, plaintext: bytes | bytearray, context: EncryptionContext) -> WrappedKey:
        self.wraps += 1
        return super().wrap_data_key(plaintext, context)

    def unwrap_data_key(self, wrapped: WrappedKey, context: EncryptionContext) -> bytearray:
        self.unwraps += 1
        return super().unwrap_data_key(wrapped, context)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def master() -> Counting:
    return Counting(os.urandom(32))


@pytest.fixture
def clock() -> Clock:
    return Clock()


def caching(master: Counting, clock: Clock, **limits: Any) -> CachingKeyring:
    limits.setdefault("max_age", 60)
    return CachingKeyring(MultiKeyring([master]), DataKeyCache(CacheLimits(**limits), clock=clock))


def header_of(blob: bytes) -> Any:
    return read_header(io.BytesIO(blob))[0]


def test_many_files_share_one_data_key_yet_each_has_its_own_file_id(master: Counting, clock: Clock) -> None:
    ring = caching(master, clock)
    texts = [os.urandom(100) for _ in range(50)]
    blobs = [envelope.encrypt(t, keys=ring) for t in texts]
    assert master.wraps == 1 and ring.cache.stats.encrypt_hits == 49
    headers = [header_of(b) for b in blobs]
    assert len({h.wrapped_keys[0].ciphertext for h in headers}) == 1  # one wrapped key...
    assert len({h.file_id for h in headers}) == 50  # ...but fresh per-file keys
    assert len({h.commitment for h in headers}) == 50
    plain_ring = MultiKeyring([master])
    assert [envelope.decrypt(b, keys=plain_ring) for b in blobs] == texts


def test_message_bound_starts_a_new_data_key(master: Counting, clock: Clock) -> None:
    ring = caching(master, clock, max_messages=3)
    for _ in range(10):
        envelope.encrypt(b"x", keys=ring)
    assert master.wraps == 4  # 3 + 3 + 3 + 1


def test_byte_bound_counts_plaintext_and_never_caches_an_oversized_file(master: Counting, clock: Clock) -> None:
    ring = caching(master, clock, max_bytes=1000)
    for _ in range(4):
        envelope.encrypt(b"a" * 400, keys=ring)  # 400 + 400 fit; the third needs a new key
    assert master.wraps == 2
    envelope.encrypt(b"b" * 2000, keys=ring)  # larger than the bound: fresh key, not cached
    envelope.encrypt(b"c" * 100, keys=ring)  # the 2nd key (800 used) still has room
    assert master.wraps == 3
    assert ring.cache.stats.encrypt_hits == 3


def test_an_unknown_size_bypasses_a_byte_bound(master: Counting, clock: Clock) -> None:
    ring = caching(master, clock, max_bytes=1 << 20)
    for _ in range(3):
        encrypt_stream(io.BytesIO(b"abc"), io.BytesIO(), ring)  # a stream: size unknown
    assert master.wraps == 3


def test_entries_expire_after_max_age(master: Counting, clock: Clock) -> None:
    ring = caching(master, clock, max_age=10)
    envelope.encrypt(b"x", keys=ring)
    clock.now += 9.9
    envelope.encrypt(b"x", keys=ring)
    assert master.wraps == 1
    clock.now += 0.1
    envelope.encrypt(b"x", keys=ring)
    assert master.wraps == 2


def test_encryption_contexts_never_share_a_data_key(master: Counting, clock: Clock) -> None:
    ring = caching(master, clock)
    a = [envelope.encrypt(b"x", keys=ring, context={"tenant": "a"}) for _ in range(3)]
    b = [envelope.encrypt(b"x", keys=ring, context={"tenant": "b"}) for _ in range(3)]
    assert master.wraps == 2
    assert header_of(a[0]).wrapped_keys != header_of(b[0]).wrapped_keys


def test_keyrings_sharing_one_cache_never_share_a_data_key(clock: Clock) -> None:
    cache = DataKeyCache(CacheLimits(max_age=60), clock=clock)
    one, two = Counting(os.urandom(32)), Counting(os.urandom(32))
    blob_one = envelope.encrypt(b"x", keys=CachingKeyring(MultiKeyring([one]), cache))
    blob_two = envelope.encrypt(b"x", keys=CachingKeyring(MultiKeyring([two]), cache))
    assert one.wraps == two.wraps == 1
    assert envelope.decrypt(blob_two, keys=[two]) == b"x"
    assert header_of(blob_one).wrapped_keys[0].key_id != header_of(blob_two).wrapped_keys[0].key_id


def test_decrypting_many_files_unwraps_their_shared_data_key_once(master: Counting, clock: Clock) -> None:
    enc = caching(master, clock)
    blobs = [envelope.encrypt(os.urandom(10), keys=enc) for _ in range(20)]
    dec = caching(master, clock)
    for blob in blobs:
        envelope.decrypt(blob, keys=dec)
    assert master.unwraps == 1 and dec.cache.stats.decrypt_hits == 19


def test_a_cached_key_still_needs_the_file_to_authenticate(master: Counting, clock: Clock) -> None:
    ring = caching(master, clock)
    blob = bytearray(envelope.encrypt(b"payload" * 100, keys=ring))
    envelope.decrypt(bytes(blob), keys=ring)
    blob[-5] ^= 1
    with pytest.raises(envelope.AuthenticationError):
        envelope.decrypt(bytes(blob), keys=ring)


def test_capacity_evicts_the_least_recently_used_entry(master: Counting, clock: Clock) -> None:
    ring = CachingKeyring(MultiKeyring([master]), DataKeyCache(CacheLimits(max_age=60), capacity=2, clock=clock))
    for tenant in ("a", "b", "a", "c", "a", "b"):
        envelope.encrypt(b"x", keys=ring, context={"t": tenant})
    assert len(ring.cache) == 2
    assert master.wraps == 4  # a, b, c, then b again (evicted by c)


def test_clear_zeroes_every_cached_key(master: Counting, clock: Clock) -> None:
    ring = caching(master, clock)
    envelope.encrypt(b"x", keys=ring)
    held = [entry.plaintext for entry in ring.cache._entries.values()]
    assert held and all(any(k) for k in held)
    ring.cache.clear()
    assert len(ring.cache) == 0 and all(not any(k) for k in held)


def test_keys_handed_out_are_copies(master: Counting, clock: Clock) -> None:
    ring = caching(master, clock)
    first = ring.generate_data_key({}, 10)
    first.clear()  # what encrypt_stream does when it is done
    second = ring.generate_data_key({}, 10)
    assert any(second.plaintext) and master.wraps == 1


@pytest.mark.parametrize("limits", [dict(max_age=0), dict(max_age=-1), dict(max_age=5, max_messages=0),
                                    dict(max_age=5, max_messages=(1 << 32) + 1), dict(max_age=5, max_bytes=-1)])
def test_impossible_limits_are_refused(limits: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        CacheLimits(**limits)


def test_files_through_the_api_use_their_size_for_the_byte_bound(master: Counting, clock: Clock,
                                                                  tmp_path: Path) -> None:
    ring = caching(master, clock, max_bytes=5000)
    for i in range(4):
        src = tmp_path / f"f{i}"
        src.write_bytes(os.urandom(2000))
        envelope.encrypt_file(src, keys=ring)
    assert master.wraps == 2  # 2000 + 2000 fit in 5000, the third does not


# -- the wrapped-key limit -------------------------------------------------------------------------------


def test_a_file_with_too_many_wrapped_keys_is_refused_before_any_unwrap() -> None:
    masters = [Counting(os.urandom(32)) for _ in range(11)]
    blob = envelope.encrypt(b"many keys", keys=masters)
    with pytest.raises(FormatError, match="11 wrapped keys; at most 10"):
        envelope.decrypt(blob, keys=[masters[-1]])
    assert masters[-1].unwraps == 0
    assert envelope.decrypt(blob, keys=[masters[-1]], max_wrapped_keys=11) == b"many keys"


def test_the_wrapped_key_limit_applies_to_random_access_and_rewrap(tmp_path: Path) -> None:
    masters = [Counting(os.urandom(32)) for _ in range(3)]
    path = tmp_path / "f.envelope"
    path.write_bytes(envelope.encrypt(b"abc", keys=masters))
    with pytest.raises(FormatError, match="3 wrapped keys"):
        envelope.open(path, keys=masters[:1], max_wrapped_keys=2)
    with pytest.raises(FormatError, match="3 wrapped keys"):
        envelope.rewrap_file(path, masters[:1], unwrap_keys=masters[:1], max_wrapped_keys=2)


@pytest.mark.parametrize("limit", [0, 33])
def test_the_wrapped_key_limit_stays_within_the_format(limit: int) -> None:
    with pytest.raises(UsageError):
        MultiKeyring([RawAesKeyring(os.urandom(32))], max_wrapped_keys=limit)

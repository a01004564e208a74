"""The STREAM payload: round trips over chunk edges, and every way to damage a stream."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envelope.exceptions import AuthenticationError, ContextMismatchError, KeyNotFoundError, KeyringError
from envelope.format import TAG_SIZE, chunk_offset, ciphertext_size, read_header
from envelope.keyrings.base import MultiKeyring
from envelope.keyrings.raw_aes import RawAesKeyring
from envelope.stream import BATCH_BYTES, decrypt_stream, encrypt_stream

C = 1024  # the smallest chunk size keeps every edge cheap to reach


def seal(data: bytes, keyring: MultiKeyring, engine=None, chunk_size: int = C, context=None) -> bytes:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, keyring, context=context, chunk_size=chunk_size, engine=engine)
    return out.getvalue()


def unseal(blob: bytes, keyring: MultiKeyring, engine=None, context=None) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, keyring, required_context=context, engine=engine)
    return out.getvalue()


def header_size(blob: bytes) -> int:
    return read_header(io.BytesIO(blob))[0].size


@pytest.mark.parametrize("size", [0, 1, C - 1, C, C + 1, 2 * C, 2 * C + 7, 5 * C + 3])
def test_round_trip_across_chunk_edges(size, raw_keyring, engine):
    data = os.urandom(size)
    blob = seal(data, raw_keyring, engine)
    assert len(blob) == ciphertext_size(header_size(blob), size, C)
    assert unseal(blob, raw_keyring, engine) == data


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_round_trip_across_batch_edges(extra, raw_keyring, engine):
    # The reader's look-ahead decides finality at batch boundaries: exercise exactly there.
    data = os.urandom(BATCH_BYTES + extra * C)
    assert unseal(seal(data, raw_keyring, engine, chunk_size=64 << 10), raw_keyring, engine) == data


class _Trickle(io.RawIOBase):
    """A reader that returns at most a few bytes per call, as pipes and sockets do."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = min(self._step, len(b), len(self._data) - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


@settings(max_examples=30, deadline=None)
@given(size=st.integers(0, 4 * C + 5), step=st.integers(1, 3 * C))
def test_short_reads_do_not_change_the_output(size, step):
    keyring = MultiKeyring([RawAesKeyring(b"k" * 32)])
    data = os.urandom(size)
    out = io.BytesIO()
    encrypt_stream(_Trickle(data, step), out, keyring, chunk_size=C)
    back = io.BytesIO()
    decrypt_stream(_Trickle(out.getvalue(), step), back, keyring)
    assert back.getvalue() == data


def test_each_file_gets_a_fresh_data_key_and_file_id(raw_keyring):
    a, b = seal(b"same", raw_keyring), seal(b"same", raw_keyring)
    ha, hb = read_header(io.BytesIO(a))[0], read_header(io.BytesIO(b))[0]
    assert ha.file_id != hb.file_id
    assert ha.wrapped_keys[0].ciphertext != hb.wrapped_keys[0].ciphertext
    assert a[ha.size :] != b[hb.size :]


def test_every_header_byte_is_authenticated(raw_keyring):
    blob = seal(b"x" * 100, raw_keyring, context={"purpose": "backup"})
    for i in range(header_size(blob)):
        damaged = bytearray(blob)
        damaged[i] ^= 0x01
        with pytest.raises((AuthenticationError, KeyringError, ValueError)):
            unseal(bytes(damaged), raw_keyring)


def test_every_chunk_byte_is_authenticated(raw_keyring, engine):
    blob = seal(os.urandom(3 * C + 10), raw_keyring, engine)
    h = header_size(blob)
    for i in range(h, len(blob), 7):
        damaged = bytearray(blob)
        damaged[i] ^= 0x80
        with pytest.raises(AuthenticationError):
            unseal(bytes(damaged), raw_keyring, engine)


def test_truncation_at_every_chunk_boundary_is_detected(raw_keyring, engine):
    blob = seal(os.urandom(4 * C), raw_keyring, engine)
    h = header_size(blob)
    for i in range(0, 4):
        with pytest.raises(AuthenticationError, match="truncated|failed"):
            unseal(blob[: chunk_offset(h, C, i)], raw_keyring, engine)


def test_truncation_mid_chunk_is_detected(raw_keyring, engine):
    blob = seal(os.urandom(3 * C + 100), raw_keyring, engine)
    h = header_size(blob)
    for cut in (h + 1, h + TAG_SIZE - 1, h + C, h + C + TAG_SIZE + 5, len(blob) - 1):
        with pytest.raises(AuthenticationError):
            unseal(blob[:cut], raw_keyring, engine)


def test_empty_plaintext_truncated_to_header_is_detected(raw_keyring):
    blob = seal(b"", raw_keyring)
    assert unseal(blob, raw_keyring) == b""
    with pytest.raises(AuthenticationError, match="truncated"):
        unseal(blob[: header_size(blob)], raw_keyring)


def _chunks(blob: bytes) -> tuple[bytes, list[bytes]]:
    h = header_size(blob)
    body = blob[h:]
    step = C + TAG_SIZE
    return blob[:h], [body[i : i + step] for i in range(0, len(body), step)]


def test_swapped_chunks_are_detected(raw_keyring, engine):
    head, chunks = _chunks(seal(os.urandom(3 * C + 5), raw_keyring, engine))
    chunks[0], chunks[1] = chunks[1], chunks[0]
    with pytest.raises(AuthenticationError, match="chunk 0"):
        unseal(head + b"".join(chunks), raw_keyring, engine)


def test_duplicated_chunk_is_detected(raw_keyring, engine):
    head, chunks = _chunks(seal(os.urandom(3 * C + 5), raw_keyring, engine))
    with pytest.raises(AuthenticationError, match="chunk 2"):
        unseal(head + b"".join(chunks[:2] + chunks[1:]), raw_keyring, engine)


def test_removed_middle_chunk_is_detected(raw_keyring, engine):
    head, chunks = _chunks(seal(os.urandom(3 * C + 5), raw_keyring, engine))
    with pytest.raises(AuthenticationError, match="chunk 1"):
        unseal(head + chunks[0] + b"".join(chunks[2:]), raw_keyring, engine)


def test_trailing_bytes_are_detected(raw_keyring, engine):
    blob = seal(os.urandom(2 * C), raw_keyring, engine)
    for extra in (b"\0", os.urandom(TAG_SIZE), os.urandom(C + TAG_SIZE)):
        with pytest.raises(AuthenticationError):
            unseal(blob + extra, raw_keyring, engine)


def test_splicing_chunks_from_another_file_under_the_same_key_is_detected(raw_keyring):
    a, b = seal(os.urandom(2 * C + 1), raw_keyring), seal(os.urandom(2 * C + 1), raw_keyring)
    head_a, chunks_a = _chunks(a)
    _, chunks_b = _chunks(b)
    with pytest.raises(AuthenticationError, match="chunk 1"):
        unseal(head_a + chunks_a[0] + chunks_b[1] + chunks_a[2], raw_keyring)


def test_wrong_master_key_is_a_key_error_naming_the_file_keys(raw_keyring):
    blob = seal(b"secret", raw_keyring)
    other = MultiKeyring([RawAesKeyring(os.urandom(32))])
    with pytest.raises(KeyNotFoundError, match="raw-aes:"):
        unseal(blob, other)


def test_header_context_tampering_fails_to_unwrap(raw_keyring):
    blob = seal(b"secret", raw_keyring, context={"tenant": "aaaa"})
    damaged = blob.replace(b"aaaa", b"bbbb", 1)
    with pytest.raises(KeyringError, match="wrong key or encryption context"):
        unseal(damaged, raw_keyring)


def test_required_context_must_be_present_with_the_same_value(raw_keyring):
    blob = seal(b"data", raw_keyring, context={"tenant": "a", "env": "prod"})
    assert unseal(blob, raw_keyring, context={"tenant": "a"}) == b"data"
    with pytest.raises(ContextMismatchError, match="no key 'region'"):
        unseal(blob, raw_keyring, context={"region": "eu"})
    with pytest.raises(ContextMismatchError, match="'tenant' does not match"):
        unseal(blob, raw_keyring, context={"tenant": "b"})


def test_file_wrapped_for_two_keys_opens_with_either(tmp_path):
    k1, k2 = RawAesKeyring(os.urandom(32)), RawAesKeyring(os.urandom(32))
    blob = seal(b"shared", MultiKeyring([k1, k2]))
    assert len(read_header(io.BytesIO(blob))[0].wrapped_keys) == 2
    assert unseal(blob, MultiKeyring([k1])) == b"shared"
    assert unseal(blob, MultiKeyring([k2])) == b"shared"


def test_a_data_key_that_unwraps_but_is_wrong_fails_the_commitment():
    # A malicious or broken key manager returns some other 32 bytes.
    class Liar(RawAesKeyring):
        def unwrap_data_key(self, wrapped, context):  # type: ignore[no-untyped-def]
            return bytearray(os.urandom(32))

    honest = RawAesKeyring(b"\x01" * 32)
    blob = seal(b"payload", MultiKeyring([honest]))
    with pytest.raises(AuthenticationError, match="commitment"):
        unseal(blob, MultiKeyring([Liar(b"\x01" * 32)]))


def test_memory_stays_flat_for_a_large_stream(raw_keyring):
    # Not a timing test: the buffers are allocated once, so a 64 MiB stream through a
    # sink must not grow the process by anything near its size.
    import resource

    class Zeros(io.RawIOBase):
        def __init__(self, n: int) -> None:
            self.left = n

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[override]
            n = min(len(b), self.left)
            b[:n] = bytes(n)
            self.left -= n
            return n

    class Sink(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b) -> int:  # type: ignore[override]
            return len(b)

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    encrypt_stream(Zeros(64 << 20), Sink(), raw_keyring)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 48 << 10

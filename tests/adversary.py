"""Files built byte by byte from formats/envelope-v1.md, for tests that play the attacker.

Nothing here imports envelope: the key schedule, the raw-aes wrapping, the
header layout and the chunk sealing are written again from the spec with
pyca/cryptography, so an attack built here does not inherit a bug of the code
it attacks.  A test holding a data key can therefore write headers the
reference writer refuses to produce (duplicate context keys, 33 wrapped keys,
a chunk size of 0) that still carry a valid commitment and MAC, and chunks
whose tags verify: only the reader's own rules can stop them.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TAG = 16
PREFIX = 15
MAC = 32


def _hkdf(dek: bytes, file_id: bytes, label: bytes) -> bytes:
    info = b"envelope v1 \x00\x01 " + label
    return HKDF(algorithm=hashes.SHA512(), length=32, salt=file_id, info=info).derive(dek)


def payload_key(dek: bytes, file_id: bytes) -> bytes:
    return _hkdf(dek, file_id, b"payload key")


def header_key(dek: bytes, file_id: bytes) -> bytes:
    return _hkdf(dek, file_id, b"header key")


def commitment(dek: bytes, file_id: bytes) -> bytes:
    return _hkdf(dek, file_id, b"key commitment")


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    mac = HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def raw_aes_key_id(kek: bytes) -> bytes:
    return hmac_sha256(kek, b"envelope raw-aes key id")[:16].hex().encode()


def context_bytes(*pairs: tuple[bytes, bytes]) -> bytes:
    """A context section exactly as given: no sorting, no checks (the attacker's encoder)."""
    out = struct.pack(">H", len(pairs))
    for key, value in pairs:
        out += struct.pack(">H", len(key)) + key + struct.pack(">H", len(value)) + value
    return out


@dataclass(frozen=True)
class Entry:
    provider: bytes
    key_id: bytes
    blob: bytes

    def encode(self) -> bytes:
        return (struct.pack(">B", len(self.provider)) + self.provider + struct.pack(">H", len(self.key_id))
                + self.key_id + struct.pack(">H", len(self.blob)) + self.blob)


def raw_aes_entry(kek: bytes, dek: bytes, context: bytes) -> Entry:
    """A raw-aes wrapped key: 01 || nonce || AES-256-GCM(kek, nonce, dek, label || key id || context)."""
    key_id = raw_aes_key_id(kek)
    nonce = os.urandom(12)
    aad = b"envelope raw-aes v1\x00" + key_id + context
    return Entry(b"raw-aes", key_id, b"\x01" + nonce + AESGCM(kek).encrypt(nonce, dek, aad))


@dataclass(frozen=True)
class RawHeader:
    """Every header field as bytes or an int; nothing validated, so any value can be written."""

    chunk_size: int
    file_id: bytes
    context: bytes
    entries: tuple[Entry, ...]
    commitment: bytes = bytes(32)
    mac: bytes = bytes(32)
    count: int | None = None  # the key_count byte, if it should lie
    magic: bytes = b"ENVELOPE"
    version: int = 1
    suite: int = 1
    extra: bytes = field(default=b"")  # bytes between the last entry and the commitment

    def covered(self) -> bytes:
        """header[0 : L - 32]: what the MAC covers."""
        body = struct.pack(">I", self.chunk_size) + self.file_id + self.context
        body += struct.pack(">B", len(self.entries) if self.count is None else self.count)
        body += b"".join(e.encode() for e in self.entries) + self.extra + self.commitment
        length = PREFIX + len(body) + MAC
        return self.magic + struct.pack(">BHI", self.version, self.suite, length) + body

    def encode(self) -> bytes:
        return self.covered() + self.mac

    def sealed_for(self, dek: bytes) -> RawHeader:
        """This header with the commitment and MAC a holder of *dek* would write."""
        with_commitment = replace(self, commitment=commitment(dek, self.file_id))
        return replace(with_commitment, mac=hmac_sha256(header_key(dek, self.file_id), with_commitment.covered()))


def parse_header(blob: bytes) -> tuple[RawHeader, bytes]:
    """Split a well-formed file into its header fields and its payload (trusting the lengths)."""
    magic, version, suite, length = struct.unpack_from(">8sBHI", blob)
    (chunk_size,) = struct.unpack_from(">I", blob, PREFIX)
    file_id = blob[19:51]
    pos = 51
    (pairs,) = struct.unpack_from(">H", blob, pos)
    pos += 2
    for _ in range(2 * pairs):
        (n,) = struct.unpack_from(">H", blob, pos)
        pos += 2 + n
    context = blob[51:pos]
    count = blob[pos]
    pos += 1
    entries = []
    for _ in range(count):
        provider = blob[pos + 1 : pos + 1 + blob[pos]]
        pos += 1 + len(provider)
        (n,) = struct.unpack_from(">H", blob, pos)
        key_id = blob[pos + 2 : pos + 2 + n]
        pos += 2 + n
        (n,) = struct.unpack_from(">H", blob, pos)
        entries.append(Entry(provider, key_id, blob[pos + 2 : pos + 2 + n]))
        pos += 2 + n
    assert pos == length - 64, "not a well-formed header"
    header = RawHeader(chunk_size, file_id, context, tuple(entries), blob[pos : pos + 32], blob[pos + 32 : length],
                       magic=magic, version=version, suite=suite)
    assert header.encode() == blob[:length]
    return header, blob[length:]


def split_chunks(payload: bytes, chunk_size: int) -> list[bytes]:
    step = chunk_size + TAG
    return [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]


def nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def seal_chunk(key: bytes, index: int, plaintext: bytes, last: bool) -> bytes:
    return AESGCM(key).encrypt(nonce(index, last), plaintext, None)


def seal_payload(dek: bytes, file_id: bytes, plaintext: bytes, chunk_size: int) -> bytes:
    key = payload_key(dek, file_id)
    pieces = [plaintext[i : i + chunk_size] for i in range(0, len(plaintext), chunk_size)] or [b""]
    return b"".join(seal_chunk(key, i, p, i == len(pieces) - 1) for i, p in enumerate(pieces))


def build(dek: bytes, keks: list[bytes], plaintext: bytes, *, chunk_size: int = 1024,
          context: bytes = b"\x00\x00", file_id: bytes | None = None) -> bytes:
    """A complete file, as a conforming writer would produce it (if *context* is canonical)."""
    file_id = os.urandom(32) if file_id is None else file_id
    entries = tuple(raw_aes_entry(kek, dek, context) for kek in keks)
    header = RawHeader(chunk_size, file_id, context, entries).sealed_for(dek)
    return header.encode() + seal_payload(dek, file_id, plaintext, chunk_size)


# -- AES-GCM is not key-committing: one ciphertext block and tag valid under two keys --------------

_R = 0xE1 << 120


def _gf_mul(x: int, y: int) -> int:
    """Multiplication in GCM's GF(2^128), bit-reflected as in SP 800-38D, algorithm 1."""
    z, v = 0, x
    for i in range(127, -1, -1):
        if (y >> i) & 1:
            z ^= v
        v = (v >> 1) ^ (_R if v & 1 else 0)
    return z


def _gf_inverse(x: int) -> int:
    result, base, e = 1 << 127, x, (1 << 128) - 2  # 1 << 127 is the field's one
    while e:
        if e & 1:
            result = _gf_mul(result, base)
        base = _gf_mul(base, base)
        e >>= 1
    return result


def _aes_block(key: bytes, block: bytes) -> int:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return int.from_bytes(enc.update(block) + enc.finalize(), "big")


def colliding_block(key1: bytes, key2: bytes, iv: bytes) -> bytes:
    """16 bytes of ciphertext and a tag that AES-256-GCM opens under both keys (empty AAD).

    With one block C and no AAD the tag is C·H² ⊕ L·H ⊕ E_K(J0), linear in C;
    equating it for two keys gives C = (L·(H1⊕H2) ⊕ S1 ⊕ S2) / (H1²⊕H2²).
    """
    j0 = iv + b"\x00\x00\x00\x01"
    h1, h2 = _aes_block(key1, bytes(16)), _aes_block(key2, bytes(16))
    s1, s2 = _aes_block(key1, j0), _aes_block(key2, j0)
    lengths = 128  # len(AAD) = 0 bits, len(C) = 128 bits
    h1sq, h2sq = _gf_mul(h1, h1), _gf_mul(h2, h2)
    c = _gf_mul(_gf_mul(lengths, h1 ^ h2) ^ s1 ^ s2, _gf_inverse(h1sq ^ h2sq))
    tag = _gf_mul(c, h1sq) ^ _gf_mul(lengths, h1) ^ s1
    return c.to_bytes(16, "big") + tag.to_bytes(16, "big")

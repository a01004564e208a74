#!/usr/bin/env python3
"""Write formats/vectors/envelope-v1.json: the envelope v1 test vectors.

Deterministic by construction: every key, file id and raw-aes wrapping nonce
is SHA-256 of a fixed label, nothing is random, and the JSON is written in a
fixed order, so running this twice gives the same bytes.  Valid files are made
by the real encoder (:func:`envelope.stream.seal_stream` with the reference
engine); damaged ones are made from them here, one scenario per vector, each
with the exception class a decoder must raise.

Forgeries that need the keys (a correctly sealed extra chunk, a header whose
MAC is recomputed over a non-canonical field) are made with the same keys, so
that the one rule each vector tests is the only thing standing in the way.

Usage: ``python formats/generate_vectors.py [--check]``; ``--check`` compares
with the committed file instead of writing it (exit status 1 if it differs).
The JSON layout is described in formats/envelope-v1.md, "Test vectors".
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from envelope import context as _context  # noqa: E402
from envelope import kdf  # noqa: E402
from envelope.engines.base import chunk_nonce  # noqa: E402
from envelope.engines.reference import ReferenceEngine  # noqa: E402
from envelope.format import (  # noqa: E402
    HEADER_MAC_SIZE,
    MAGIC,
    MAX_CHUNK_SIZE,
    MAX_HEADER_SIZE,
    MAX_KEY_ID_SIZE,
    MAX_PROVIDER_SIZE,
    MAX_WRAPPED_KEY_SIZE,
    MAX_WRAPPED_KEYS,
    MIN_CHUNK_SIZE,
    NONCE_SIZE,
    SUITE_AES256_GCM_HKDF_SHA512_COMMIT,
    TAG_SIZE,
    VERSION,
    Header,
    WrappedKey,
    read_header,
)
from envelope.keyrings import raw_aes  # noqa: E402
from envelope.stream import seal_stream  # noqa: E402

OUTPUT = ROOT / "formats" / "vectors" / "envelope-v1.json"
GENERATED_BY = "formats/generate_vectors.py"
SUITE = SUITE_AES256_GCM_HKDF_SHA512_COMMIT
C = MIN_CHUNK_SIZE  # most vectors use the smallest chunk size: every edge is cheap to reach

#: Plaintexts longer than this are written as {"repeat": hex, "length": n}.
INLINE_PLAINTEXT = 64
#: Large plaintexts repeat this 251-byte pattern (a prime length: no two chunks alike).
PATTERN = bytes(range(251))


def fixed(label: str, size: int = 32) -> bytes:
    """A fixed 'random' value: SHA-256 of a label, truncated."""
    return hashlib.sha256(b"envelope-v1 test vector: " + label.encode("ascii")).digest()[:size]


KEKS = {name: fixed(f"raw-aes key {name}") for name in ("kek-1", "kek-2", "kek-other")}
DATA_KEY = fixed("data key")
OTHER_DATA_KEY = fixed("other data key")


def pattern(n: int) -> bytes:
    return (PATTERN * (n // len(PATTERN) + 1))[:n]


def u8(n: int) -> bytes:
    return struct.pack(">B", n)


def u16(n: int) -> bytes:
    return struct.pack(">H", n)


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


# -- building blocks ------------------------------------------------------------------------------


def wrap_raw_aes(kek: bytes, data_key: bytes, context: dict[str, str], nonce: bytes) -> WrappedKey:
    """RawAesKeyring.wrap_data_key with a fixed nonce instead of a random one."""
    ring = raw_aes.RawAesKeyring(kek)
    sealed = AESGCM(kek).encrypt(nonce, data_key, ring._aad(context))
    return WrappedKey(raw_aes.PROVIDER, ring.key_id, raw_aes._BLOB_VERSION + nonce + sealed)


def local_entry() -> WrappedKey:
    """A 'local' keystore entry for a key the decryptor does not have: opaque to the file format.

    Shaped like the keystore's blob (version, key UUID, backing version, nonce,
    sealed key and tag) so that it is realistic, but never opened here.
    """
    key_uuid = uuid.UUID(bytes=fixed("local key uuid", 16), version=4)
    blob = b"\x01" + key_uuid.bytes + u32(1) + fixed("local nonce", NONCE_SIZE) + fixed("local sealed", 32) \
        + fixed("local tag", TAG_SIZE)
    return WrappedKey("local", str(key_uuid), blob)


def raw_entry(provider: bytes, key_id: bytes, blob: bytes) -> bytes:
    return u8(len(provider)) + provider + u16(len(key_id)) + key_id + u16(len(blob)) + blob


def entry_bytes(wk: WrappedKey) -> bytes:
    return raw_entry(wk.provider.encode("ascii"), wk.key_id.encode("utf-8"), wk.ciphertext)


def raw_context(pairs: Sequence[tuple[bytes, bytes]], count: int | None = None) -> bytes:
    """A context section exactly as given: no sorting, no checks."""
    out = u16(len(pairs) if count is None else count)
    for key, value in pairs:
        out += u16(len(key)) + key + u16(len(value)) + value
    return out


def raw_header(
    *,
    file_id: bytes,
    context: bytes,
    entries: Sequence[bytes],
    chunk_size: int = C,
    data_key: bytes = DATA_KEY,
    count: int | None = None,
    commitment: bytes | None = None,
    extra: bytes = b"",
    magic: bytes = MAGIC,
    version: int = VERSION,
    suite: int = SUITE,
) -> bytes:
    """A header written field by field, with a correct commitment and MAC unless told otherwise.

    This is the layout of formats/envelope-v1.md, written independently of
    envelope.format so that headers the encoder refuses to write can be made.
    """
    keys = kdf.FileKeys.derive(data_key, file_id, SUITE)
    body = u32(chunk_size) + file_id + context
    body += u8(len(entries) if count is None else count) + b"".join(entries)
    body += (keys.commitment if commitment is None else commitment) + extra
    length = 15 + len(body) + HEADER_MAC_SIZE
    unauthenticated = magic + u8(version) + u16(suite) + u32(length) + body
    return unauthenticated + kdf.header_mac(keys.header, unauthenticated)


def seal_chunks(data_key: bytes, file_id: bytes, pieces: Sequence[tuple[bytes, bool]]) -> bytes:
    """Seal chunks 0, 1, ... exactly as given: (plaintext, last flag) each.  For forgeries."""
    aead = AESGCM(kdf.payload_key(data_key, file_id, SUITE))
    return b"".join(aead.encrypt(chunk_nonce(i, last), piece, None) for i, (piece, last) in enumerate(pieces))


def encode_plaintext(data: bytes) -> Any:
    if len(data) <= INLINE_PLAINTEXT:
        return data.hex()
    assert data == pattern(len(data))
    return {"repeat": PATTERN.hex(), "length": len(data)}


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


def replace(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


# -- the valid files ------------------------------------------------------------------------------


class Sealed:
    """One valid file made by the real encoder, and everything needed to damage it."""

    def __init__(self, name: str, plaintext: bytes, chunk_size: int, context: dict[str, str],
                 keks: Sequence[str], foreign: Sequence[WrappedKey] = ()) -> None:
        self.name, self.plaintext, self.chunk_size = name, plaintext, chunk_size
        self.context = _context.normalize(context)
        self.file_id = fixed(f"file id {name}")
        self.keks = list(keks)
        self.wrap_nonces = [fixed(f"wrap nonce {name} {kek}", NONCE_SIZE) for kek in keks]
        wrapped = list(foreign) + [
            wrap_raw_aes(KEKS[kek], DATA_KEY, self.context, nonce) for kek, nonce in zip(keks, self.wrap_nonces)
        ]
        out = io.BytesIO()
        self.header: Header = seal_stream(
            io.BytesIO(plaintext), out, DATA_KEY, wrapped, context=self.context, chunk_size=chunk_size,
            engine=ReferenceEngine(), file_id=self.file_id,
        )
        self.ciphertext = out.getvalue()
        self.header_bytes = self.header.encode()
        self.header_size = len(self.header_bytes)
        self.keys = kdf.FileKeys.derive(DATA_KEY, self.file_id, SUITE)
        # The field-by-field writer above must agree with the real encoder, byte for byte.
        rebuilt = raw_header(file_id=self.file_id, context=_context.encode(self.context),
                             entries=[entry_bytes(wk) for wk in wrapped], chunk_size=chunk_size)
        assert rebuilt == self.header_bytes, f"{name}: raw_header disagrees with Header.encode"
        assert read_header(io.BytesIO(self.ciphertext))[1] == self.header_bytes

    @property
    def body(self) -> bytes:
        return self.ciphertext[self.header_size :]

    def chunks(self) -> list[bytes]:
        body, step = self.body, self.chunk_size + TAG_SIZE
        return [body[i : i + step] for i in range(0, len(body), step)]

    def offsets(self) -> dict[str, int]:
        """Offset of every header field (first wrapped key only), from the header bytes."""
        h = self.header_bytes
        off = {"magic": 0, "version": 8, "suite": 9, "header_length": 11, "chunk_size": 15, "file_id": 19,
               "context_count": 51}
        pos = 53
        for i in range(struct.unpack_from(">H", h, 51)[0]):
            off.setdefault("context_key_length", pos)
            klen = struct.unpack_from(">H", h, pos)[0]
            off.setdefault("context_key", pos + 2)
            pos += 2 + klen
            off.setdefault("context_value_length", pos)
            vlen = struct.unpack_from(">H", h, pos)[0]
            off.setdefault("context_value", pos + 2)
            pos += 2 + vlen
        off["key_count"] = pos
        pos += 1
        off["provider_length"], off["provider"] = pos, pos + 1
        pos += 1 + h[pos]
        off["key_id_length"], off["key_id"] = pos, pos + 2
        pos += 2 + struct.unpack_from(">H", h, pos)[0]
        off["blob_length"], off["blob"] = pos, pos + 2
        off["commitment"] = len(h) - 64
        off["mac"] = len(h) - 32
        return off

    def record(self, description: str, required_context: dict[str, str] | None = None) -> dict[str, Any]:
        wrapped = []
        for wk in self.header.wrapped_keys:
            item: dict[str, Any] = {"provider": wk.provider, "key_id": wk.key_id, "blob": wk.ciphertext.hex()}
            if wk.provider == raw_aes.PROVIDER:
                kek = next(k for k in self.keks if raw_aes.key_fingerprint(KEKS[k]) == wk.key_id)
                item["kek"] = KEKS[kek].hex()
                item["wrap_nonce"] = self.wrap_nonces[self.keks.index(kek)].hex()
            wrapped.append(item)
        vector: dict[str, Any] = {
            "name": self.name,
            "description": description,
            "kind": "positive",
            "keks": [KEKS[k].hex() for k in self.keks],
            "data_key": DATA_KEY.hex(),
            "file_id": self.file_id.hex(),
            "chunk_size": self.chunk_size,
            "context": self.context,
        }
        if required_context is not None:
            vector["required_context"] = required_context
        vector.update({
            "wrapped_keys": wrapped,
            "plaintext": encode_plaintext(self.plaintext),
            "header_size": self.header_size,
            "payload_key": self.keys.payload.hex(),
            "header_key": self.keys.header.hex(),
            "commitment": self.keys.commitment.hex(),
            "header_mac": self.header.mac.hex(),
            "ciphertext": self.ciphertext.hex(),
        })
        return vector


# -- the vectors ----------------------------------------------------------------------------------

CTX = {"app": "billing", "env": "prod"}


def positives() -> tuple[list[dict[str, Any]], dict[str, Sealed]]:
    made: dict[str, Sealed] = {}
    vectors: list[dict[str, Any]] = []

    def add(name: str, description: str, size: int, *, chunk_size: int = C, context: dict[str, str] | None = None,
            keks: Sequence[str] = ("kek-1",), foreign: Sequence[WrappedKey] = (),
            required_context: dict[str, str] | None = None) -> None:
        sealed = Sealed(name, pattern(size), chunk_size, context or {}, keks, foreign)
        made[name] = sealed
        vectors.append(sealed.record(description, required_context))

    add("empty", "Empty plaintext: one empty chunk 0 with the last flag.", 0)
    add("one-byte", "One byte: a single short final chunk.", 1)
    add("chunk-minus-one", "chunk_size - 1 bytes: one short final chunk.", C - 1)
    add("one-full-chunk",
        "Exactly chunk_size bytes: one full chunk carrying the last flag, no empty chunk after it.", C)
    add("chunk-plus-one", "chunk_size + 1 bytes: a full chunk, then a 1-byte final chunk.", C + 1)
    add("two-full-chunks", "2 * chunk_size bytes: the final chunk is full.", 2 * C)
    add("two-chunks-plus-seven", "2 * chunk_size + 7 bytes, no encryption context: three chunks.", 2 * C + 7)
    add("context-two-chunks-plus-seven",
        "2 * chunk_size + 7 bytes under a two-pair encryption context.  Most negative vectors damage this file.",
        2 * C + 7, context=CTX)
    add("context-utf8-order",
        "Context keys in UTF-8 byte order, which differs from UTF-16 order: U+FF5A sorts before U+1F600.  "
        "Also an upper-case key before lower-case ones and an empty value.",
        100, context={"\U0001f600": "smile", "\uff5a": "fullwidth z", "a": "", "B": "upper", "\u00e9t\u00e9": "summer"})
    add("required-context-subset", "The decryptor requires one of the file's two context pairs.", 10,
        context=CTX, required_context={"env": "prod"})
    add("two-wrapped-keys", "Two raw-aes master keys wrap the same data key: either one alone opens the file.",
        C + 1, keks=("kek-1", "kek-2"), context=CTX)
    add("foreign-wrapped-key-first",
        "The first wrapped key names a provider the decryptor has no key for (an opaque local blob); "
        "it is skipped and the raw-aes entry after it is used.",
        50, foreign=[local_entry()])
    add("chunk-size-4096", "chunk_size 4096, 2 * chunk_size + 7 bytes.", 2 * 4096 + 7, chunk_size=4096)
    add("chunk-size-1mib", "The default chunk size, 1 MiB, with a short plaintext.", 100, chunk_size=1 << 20)
    add("chunk-size-64mib", "The largest chunk size, 64 MiB, with one byte.", 1, chunk_size=MAX_CHUNK_SIZE)
    return vectors, made


def negatives(made: dict[str, Sealed]) -> list[dict[str, Any]]:
    base = made["context-two-chunks-plus-seven"]
    plain = made["two-chunks-plus-seven"]
    off = base.offsets()
    h, ct, fid = base.header_bytes, base.ciphertext, base.file_id
    vectors: list[dict[str, Any]] = []

    def add(name: str, description: str, ciphertext: bytes, expect: str, stage: str, *,
            source: Sealed | None = base, keks: Sequence[str] = ("kek-1",),
            required_context: dict[str, str] | None = None) -> None:
        vector: dict[str, Any] = {"name": name, "description": description, "kind": "negative",
                                  "keks": [KEKS[k].hex() for k in keks]}
        if source is not None:
            vector.update({"derived_from": source.name, "data_key": DATA_KEY.hex(),
                           "file_id": source.file_id.hex(), "chunk_size": source.chunk_size,
                           "context": source.context, "plaintext": encode_plaintext(source.plaintext)})
        if required_context is not None:
            vector["required_context"] = required_context
        vector.update({"expect": expect, "stage": stage, "ciphertext": ciphertext.hex()})
        vectors.append(vector)

    ctx_bytes = _context.encode(base.context)
    good_entry = entry_bytes(base.header.wrapped_keys[0])

    def forged(context: bytes = ctx_bytes, entries: Sequence[bytes] = (good_entry,), **kw: Any) -> bytes:
        """A header with one defect and a correct commitment and MAC, then base's chunks."""
        return raw_header(file_id=fid, context=context, entries=entries, **kw) + base.body

    def wrapped_for(context: dict[str, str], nonce_label: str, data_key: bytes = DATA_KEY) -> bytes:
        return entry_bytes(wrap_raw_aes(KEKS["kek-1"], data_key, context, fixed(nonce_label, NONCE_SIZE)))

    # -- the prefix: magic, version, suite, length, in that order, before reading on ---------------
    add("empty-file", "Zero bytes.", b"", "FormatError", "header", source=None)
    add("shorter-than-prefix", "The first 10 bytes of a valid file: less than the 15-byte prefix.",
        ct[:10], "FormatError", "header")
    add("bad-magic", "Magic 'ENVELOPF' instead of 'ENVELOPE'.", replace(ct, 7, b"F"), "FormatError", "header")
    add("unknown-version", "Version 2.", replace(ct, off["version"], u8(2)), "FormatError", "header")
    add("unknown-suite", "Suite 0x0002.", replace(ct, off["suite"], u16(2)), "FormatError", "header")
    add("header-length-too-large", "Header length 65537, one more than the limit; rejected before reading on.",
        replace(ct, off["header_length"], u32(MAX_HEADER_SIZE + 1)), "FormatError", "header")
    add("header-length-huge", "Header length 0xffffffff; rejected before reading on.",
        replace(ct, off["header_length"], u32(0xFFFFFFFF)), "FormatError", "header")
    add("header-length-too-small", "Header length 117, less than the fixed fields alone (118).",
        replace(ct, off["header_length"], u32(117)), "FormatError", "header")
    add("header-length-beyond-file", "Header length 65536 (allowed) but the file is shorter than that.",
        replace(ct, off["header_length"], u32(MAX_HEADER_SIZE)), "FormatError", "header")
    add("header-length-minus-one", "Header length one less than the fields: the commitment overruns the MAC.",
        replace(ct, off["header_length"], u32(len(h) - 1)), "FormatError", "header")
    add("truncated-header", "The file ends in the middle of the header.", ct[: len(h) // 2], "FormatError", "header")
    add("truncated-in-mac", "The file ends one byte before the end of the header MAC.",
        ct[: len(h) - 1], "FormatError", "header")

    # -- header fields out of their limits (commitment and MAC correct, so only the rule fails) ---
    for label, size in (("not-power-of-two", 1000), ("too-small", 512), ("too-large", MAX_CHUNK_SIZE * 2),
                        ("zero", 0)):
        add(f"chunk-size-{label}", f"Chunk size {size}: not a power of two from 1 KiB to 64 MiB.",
            forged(chunk_size=size), "FormatError", "header")
    swapped = raw_context([(b"env", b"prod"), (b"app", b"billing")])
    add("context-not-canonical-order", "Context pairs 'env' then 'app': not in UTF-8 byte order of the keys.",
        forged(swapped), "FormatError", "header")
    add("context-duplicate-key", "Context key 'app' twice, with the same value.",
        forged(raw_context([(b"app", b"billing"), (b"app", b"billing"), (b"env", b"prod")]),
               [wrapped_for(CTX, "dup")]), "FormatError", "header")
    add("context-empty-key", "A context pair with an empty key.",
        forged(raw_context([(b"", b"x"), (b"app", b"billing"), (b"env", b"prod")])), "FormatError", "header")
    add("context-invalid-utf8", "A context value that is not UTF-8 (a lone 0xff byte).",
        forged(raw_context([(b"app", b"billing"), (b"env", b"\xff")])), "FormatError", "header")
    add("context-surrogate-utf8", "A context key encoding a UTF-16 surrogate (ed a0 80): not valid UTF-8.",
        forged(raw_context([(b"\xed\xa0\x80", b"x")])), "FormatError", "header")
    many = {f"k{i:02d}": "v" for i in range(65)}
    add("context-too-many-pairs", "65 context pairs; the limit is 64.",
        forged(raw_context([(k.encode(), v.encode()) for k, v in many.items()])),
        "FormatError", "header")
    add("context-too-large", "A context section of 8193 bytes; the limit is 8192.",
        forged(raw_context([(b"big", b"x" * 8184)])), "FormatError", "header")
    add("context-overruns-header", "A context pair count (5000) that runs past the end of the header.",
        forged(raw_context([(b"app", b"billing"), (b"env", b"prod")], count=5000)), "FormatError", "header")
    add("wrapped-keys-zero", "A key count of 0 and no wrapped keys.", forged(entries=()), "FormatError", "header")
    add("wrapped-keys-too-many", "33 wrapped keys; the limit is 32.",
        forged(entries=[wrapped_for(CTX, f"entry {i}") for i in range(MAX_WRAPPED_KEYS + 1)]),
        "FormatError", "header")
    add("wrapped-keys-count-too-high", "A key count of 2 with one entry present.",
        forged(count=2), "FormatError", "header")
    kid = base.header.wrapped_keys[0].key_id.encode()
    blob = base.header.wrapped_keys[0].ciphertext
    for label, entry, what in (
        ("provider-empty", raw_entry(b"", kid, blob), "An empty provider name."),
        ("provider-too-long", raw_entry(b"p" * (MAX_PROVIDER_SIZE + 1), kid, blob), "A 65-byte provider name."),
        ("provider-uppercase", raw_entry(b"Raw-aes", kid, blob), "Provider 'Raw-aes': upper case is not allowed."),
        ("provider-leading-dash", raw_entry(b"-raw-aes", kid, blob), "Provider '-raw-aes': must start with [a-z0-9]."),
        ("provider-non-ascii", raw_entry("r\u00e4w".encode(), kid, blob), "A provider name with non-ASCII bytes."),
        ("key-id-empty", raw_entry(b"raw-aes", b"", blob), "An empty key id."),
        ("key-id-too-long", raw_entry(b"raw-aes", b"k" * (MAX_KEY_ID_SIZE + 1), blob), "A 2049-byte key id."),
        ("key-id-invalid-utf8", raw_entry(b"raw-aes", kid[:-1] + b"\xc3", blob), "A key id that is not UTF-8."),
        ("blob-empty", raw_entry(b"raw-aes", kid, b""), "An empty wrapped-key blob."),
        ("blob-too-long", raw_entry(b"raw-aes", kid, blob + bytes(MAX_WRAPPED_KEY_SIZE + 1 - len(blob))),
         "A wrapped-key blob of 8193 bytes."),
    ):
        add(label, what, forged(entries=[entry]), "FormatError", "header")
    add("header-extra-byte-before-mac", "One byte between the commitment and the MAC, length and MAC adjusted.",
        forged(extra=b"\x00"), "FormatError", "header")

    # -- each header field with its lowest bit flipped, nothing else changed ------------------------
    # (field, expected class, stage, which byte of the field)
    flips: list[tuple[str, str, str, int]] = [
        ("magic", "FormatError", "header", 0),
        ("version", "FormatError", "header", 0),
        ("suite", "FormatError", "header", 1),
        ("header_length", "FormatError", "header", 3),
        ("chunk_size", "FormatError", "header", 3),
        ("file_id", "AuthenticationError", "commitment", 0),
        ("context_count", "FormatError", "header", 1),
        ("context_key_length", "FormatError", "header", 1),
        ("context_key", "KeyringError", "unwrap", 0),
        ("context_value_length", "FormatError", "header", 1),
        ("context_value", "KeyringError", "unwrap", 0),
        ("key_count", "FormatError", "header", 0),
        ("provider_length", "FormatError", "header", 0),
        ("provider", "KeyNotFoundError", "unwrap", 0),
        ("key_id_length", "FormatError", "header", 1),
        ("key_id", "KeyNotFoundError", "unwrap", 0),
        ("blob_length", "FormatError", "header", 1),
        ("blob", "KeyringError", "unwrap", 20),
        ("commitment", "AuthenticationError", "commitment", 0),
        ("mac", "AuthenticationError", "mac", 0),
    ]
    for field, expect, stage, at in flips:
        where = off[field] + at
        add(f"flip-{field.replace('_', '-')}",
            f"Header field {field}: bit 0 of byte {where} flipped, nothing recomputed.",
            flip(ct, where), expect, stage)

    # -- unwrapping ---------------------------------------------------------------------------------
    add("no-matching-key", "The decryptor holds only a master key the file is not wrapped for.",
        ct, "KeyNotFoundError", "unwrap", keks=("kek-other",))
    add("blob-version-unknown", "Raw-aes blob version byte 0x02.",
        replace(ct, off["blob"], b"\x02"), "KeyringError", "unwrap")
    add("blob-wrong-length", "A raw-aes blob one byte short (60 bytes); length field and MAC adjusted.",
        forged(entries=[raw_entry(b"raw-aes", kid, blob[:-1])]), "KeyringError", "unwrap")
    add("blob-wrapped-under-other-context",
        "The data key is wrapped under context {'app': 'billing'} but the header says {'app': 'billing', "
        "'env': 'prod'}; header MAC correct.  The master key's AAD binds the context.",
        forged(entries=[wrapped_for({"app": "billing"}, "other context")]), "KeyringError", "unwrap")
    add("context-byte-flipped",
        "One byte of a context value changed ('prod' to 'prof'), nothing recomputed.  The raw-aes AAD binds the "
        "context, so the unwrap fails before the header MAC is reached.",
        replace(ct, off["key_count"] - 1, b"f"), "KeyringError", "unwrap")

    # -- commitment: checked first, before the MAC ---------------------------------------------------
    add("wrong-data-key",
        "A valid raw-aes blob for another data key, with the header MAC computed under that key: the "
        "commitment of the real data key does not match it.",
        raw_header(file_id=fid, context=ctx_bytes, entries=[wrapped_for(CTX, "wrong key", OTHER_DATA_KEY)],
                   commitment=base.keys.commitment, data_key=OTHER_DATA_KEY) + base.body,
        "AuthenticationError", "commitment")

    # -- the header MAC -----------------------------------------------------------------------------
    rewrapped = {"app": "billing", "env": "prof"}
    add("mac-context-changed-rewrapped",
        "Context value changed ('prod' to 'prof') and the data key re-wrapped under the new context, MAC "
        "not recomputed: only the header MAC catches it.",
        h[: off["key_count"] - 1] + b"f" + h[off["key_count"] : off["key_count"] + 1]
        + wrapped_for(rewrapped, "rewrapped") + h[off["commitment"] :] + base.body,
        "AuthenticationError", "mac")
    add("mac-chunk-size-changed", "Chunk size changed from 1024 to 2048 (a valid value), MAC not recomputed.",
        replace(ct, off["chunk_size"], u32(2048)), "AuthenticationError", "mac")
    added = h[: off["key_count"]] + u8(2) + entry_bytes(WrappedKey("local", "inserted", b"\x00" * 16)) \
        + h[off["key_count"] + 1 :]
    added = replace(added, off["header_length"], u32(len(added)))
    add("mac-wrapped-key-inserted",
        "A second wrapped key (provider 'local') inserted, length fixed, MAC not recomputed.",
        added + base.body, "AuthenticationError", "mac")

    # -- required context ---------------------------------------------------------------------------
    add("required-context-absent", "The decryptor requires tenant=acme; the file has no 'tenant' key.",
        ct, "ContextMismatchError", "context", required_context={"tenant": "acme"})
    add("required-context-different-value", "The decryptor requires env=dev; the file says env=prod.",
        ct, "ContextMismatchError", "context", required_context={"env": "dev"})
    add("required-context-file-has-none", "The decryptor requires app=billing; the file has no context.",
        plain.ciphertext, "ContextMismatchError", "context", source=plain, required_context={"app": "billing"})

    # -- the payload --------------------------------------------------------------------------------
    hs = base.header_size
    c0, c1, c2 = base.chunks()
    add("chunk-tag-flipped", "A bit of chunk 0's tag flipped.", flip(ct, hs + C + TAG_SIZE - 1),
        "AuthenticationError", "chunks")
    add("chunk-body-flipped", "A bit of chunk 1's ciphertext flipped.", flip(ct, hs + C + TAG_SIZE + 5),
        "AuthenticationError", "chunks")
    add("last-chunk-tag-flipped", "A bit of the final chunk's tag flipped.", flip(ct, len(ct) - 1),
        "AuthenticationError", "chunks")
    add("chunks-swapped", "Chunks 0 and 1 swapped.", h + c1 + c0 + c2, "AuthenticationError", "chunks")
    add("chunk-duplicated", "Chunk 0 repeated: 0, 0, 1, 2.", h + c0 + c0 + c1 + c2, "AuthenticationError", "chunks")
    add("chunk-removed", "Chunk 1 removed: 0, 2.", h + c0 + c2, "AuthenticationError", "chunks")
    add("truncated-at-chunk-boundary", "The final chunk removed: the file ends after chunk 1, not flagged last.",
        h + c0 + c1, "AuthenticationError", "chunks")
    add("truncated-mid-chunk", "The final chunk cut to 20 of its 23 bytes.", ct[:-3],
        "AuthenticationError", "chunks")
    add("truncated-shorter-than-tag", "The final chunk cut to 7 bytes, shorter than a tag.",
        ct[: len(ct) - len(c2) + 7], "AuthenticationError", "chunks")
    add("truncated-to-header", "Only the header: no chunk at all, not even an empty final one.", h,
        "AuthenticationError", "chunks")
    add("trailing-byte", "One byte appended after the final chunk.", ct + b"\x00", "AuthenticationError", "chunks")
    add("trailing-tag-sized", "16 bytes appended after the final chunk (the size of an empty chunk).",
        ct + bytes(TAG_SIZE), "AuthenticationError", "chunks")
    other = made["chunk-plus-one"]
    add("chunks-from-other-file",
        "The header of one file with the chunks of another file under the same data key: the file id "
        "makes the payload keys differ.",
        made["two-full-chunks"].header_bytes + other.body[: C + TAG_SIZE] + made["two-full-chunks"].chunks()[1],
        "AuthenticationError", "chunks", source=made["two-full-chunks"])

    # Correctly sealed forgeries: the rule under test is all that rejects them.
    full = made["one-full-chunk"]
    add("empty-final-chunk-after-full-chunk",
        "chunk_size bytes sealed as a full chunk 0 without the last flag, then an empty chunk 1 with it, "
        "both correctly sealed.  An encryptor never writes this (it flags chunk 0 last); a decryptor must "
        "refuse an empty final chunk anywhere but chunk 0.",
        full.header_bytes + seal_chunks(DATA_KEY, full.file_id, [(full.plaintext, False), (b"", True)]),
        "AuthenticationError", "chunks", source=full)
    add("empty-final-chunk-after-final-chunk",
        "The valid one-full-chunk file with a correctly sealed empty chunk 1 (last flag) appended.",
        full.ciphertext + seal_chunks(DATA_KEY, full.file_id, [(b"", False), (b"", True)])[TAG_SIZE:],
        "AuthenticationError", "chunks", source=full)
    p = base.plaintext
    add("last-chunk-not-flagged",
        "All three chunks correctly sealed, none with the last flag.",
        h + seal_chunks(DATA_KEY, fid, [(p[:C], False), (p[C : 2 * C], False), (p[2 * C :], False)]),
        "AuthenticationError", "chunks")
    add("non-last-chunk-flagged",
        "All three chunks correctly sealed, chunk 0 with the last flag as well as chunk 2.",
        h + seal_chunks(DATA_KEY, fid, [(p[:C], True), (p[C : 2 * C], False), (p[2 * C :], True)]),
        "AuthenticationError", "chunks")
    empty = made["empty"]
    add("empty-chunk-not-flagged", "The empty file's chunk 0 correctly sealed without the last flag.",
        empty.header_bytes + seal_chunks(DATA_KEY, empty.file_id, [(b"", False)]),
        "AuthenticationError", "chunks", source=empty)
    return vectors


def build() -> dict[str, Any]:
    pos, made = positives()
    return {"format": "envelope-v1", "generated_by": GENERATED_BY, "vectors": pos + negatives(made)}


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=True) + "\n"


def main(argv: Sequence[str] = ()) -> int:
    text = render()
    if "--check" in argv:
        same = OUTPUT.exists() and OUTPUT.read_text(encoding="utf-8") == text
        print(f"{OUTPUT.relative_to(ROOT)} is {'up to date' if same else 'STALE: rerun without --check'}")
        return 0 if same else 1
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUTPUT, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    doc = json.loads(text)
    kinds = [v["kind"] for v in doc["vectors"]]
    print(f"wrote {OUTPUT.relative_to(ROOT)}: {kinds.count('positive')} positive, "
          f"{kinds.count('negative')} negative, {len(text)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""An attacker's files, each refused with the error the spec names, and no output released.

test_format.py proves the parser's limits on headers with meaningless MACs, and
test_stream.py damages files the attacker cannot re-authenticate.  Here the
attacker is stronger: a holder of a data key (a recipient, or a writer with
bad intent) who builds files byte by byte (tests/adversary.py) with a valid
commitment, MAC and chunk tags, so that only the reader's own rules stand in
the way; or someone who moves authentic pieces between authentic files.  Each
attack goes through the Python API on both engines and through the CLI, which
must exit with the documented code, say one line, and leave no file behind.
"""

from __future__ import annotations

import io
import os
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import adversary as adv
import envelope
from envelope.cli.main import EXIT_AUTH, EXIT_FORMAT, EXIT_KEY, EXIT_USAGE, main
from envelope.exceptions import AuthenticationError, FormatError, KeyringError
from envelope.format import MAX_CHUNK_SIZE, MAX_WRAPPED_KEYS, MIN_CHUNK_SIZE
from envelope.keyrings.base import DEFAULT_MAX_WRAPPED_KEYS, MultiKeyring
from envelope.keyrings.raw_aes import RawAesKeyring
from envelope.stream import decrypt_stream, unwrap_header
from keyfiles import write_key_file

C = MIN_CHUNK_SIZE


# -- fixtures and checks --------------------------------------------------------------------------------------


@pytest.fixture
def kek(tmp_path: Path) -> bytes:
    key = os.urandom(32)
    write_key_file(tmp_path / "kek", key)
    return key


@pytest.fixture
def cli_engine(engine, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The engine fixture, also chosen for CLI runs in this process."""
    monkeypatch.setenv("ENVELOPE_ENGINE", engine.name)
    return engine


def keyring(*keks: bytes, max_wrapped_keys: int = DEFAULT_MAX_WRAPPED_KEYS) -> MultiKeyring:
    return MultiKeyring([RawAesKeyring(k) for k in keks], max_wrapped_keys=max_wrapped_keys)


def open_blob(blob: bytes, ring: MultiKeyring, engine=None) -> bytes:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, ring, engine=engine)
    return out.getvalue()


def data_key_of(blob: bytes, ring: MultiKeyring) -> bytes:
    _, _, dek = unwrap_header(io.BytesIO(blob), ring)
    return bytes(dek)


def refused_everywhere(blob: bytes, ring: MultiKeyring, engine, error: type[Exception], tmp_path: Path,
                       match: str | None = None, reader_match: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """decrypt_stream, decrypt_file and the random-access reader all raise *error*; no file appears.

    *reader_match*, when the reader names another chunk than a sequential read does: it opens the final chunk first.
    """
    with pytest.raises(error, match=match):
        open_blob(blob, ring, engine)
    src, dst = tmp_path / "attack.envelope", tmp_path / "attack.out"
    src.write_bytes(blob)
    with pytest.raises(error, match=match):
        envelope.decrypt_file(src, dst, keys=ring, engine=engine.name)
    assert not dst.exists() and no_temp_files(tmp_path)
    with pytest.raises(error, match=reader_match or match):
        with envelope.open(src, keyring=ring, engine=engine.name) as f:
            f.read()


def no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.startswith(".envelope-tmp-")]


def cli_refuses(blob: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str], code: int, needle: str,
                *extra: str) -> str:
    """decrypt-file exits with *code*, one error line naming *needle*, and no output file or temporary."""
    src, dst = tmp_path / "attack.envelope", tmp_path / "attack.out"
    src.write_bytes(blob)
    capsys.readouterr()
    assert main(["decrypt-file", str(src), "-o", str(dst), "--key", f"raw-aes:{tmp_path / 'kek'}", *extra]) == code
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("envelope: error: ") and "Traceback" not in err, err
    assert needle in lines[0], lines[0]
    assert out == ""
    assert not dst.exists() and no_temp_files(tmp_path)
    return lines[0]


def test_the_attack_helpers_write_files_the_reader_accepts(kek, engine, tmp_path):
    # Without this, a refused attack could be refused for a bug in the helpers.
    dek = os.urandom(32)
    for size, ctx in ((0, b"\0\0"), (C, adv.context_bytes((b"app", b"x"))), (3 * C + 5, b"\0\0")):
        plaintext = os.urandom(size)
        blob = adv.build(dek, [kek], plaintext, context=ctx)
        assert open_blob(blob, keyring(kek), engine) == plaintext
        header, payload = adv.parse_header(blob)
        assert header.sealed_for(dek).encode() + payload == blob


# -- splicing authentic pieces of two files --------------------------------------------------------------------


def _two_files(kek: bytes, cache: bool) -> tuple[bytes, bytes]:
    ring = keyring(kek)
    limits = envelope.DataKeyCache(envelope.CacheLimits(max_age=60)) if cache else None
    a = envelope.encrypt(os.urandom(3 * C + 9), keys=ring, chunk_size=C, cache=limits)
    b = envelope.encrypt(os.urandom(3 * C + 9), keys=ring, chunk_size=C, cache=limits)
    assert (data_key_of(a, ring) == data_key_of(b, ring)) is cache
    return a, b


@pytest.mark.parametrize("cache", [False, True], ids=["own-data-keys", "cached-data-key"])
def test_a_header_spliced_onto_another_files_body_fails_at_chunk_0(kek, engine, tmp_path, cache):
    a, b = _two_files(kek, cache)
    head_a, _ = adv.parse_header(a)
    _, body_b = adv.parse_header(b)
    refused_everywhere(head_a.encode() + body_b, keyring(kek), engine, AuthenticationError, tmp_path, "chunk 0",
                       reader_match="chunk 3, final")


@pytest.mark.parametrize("position", [0, 1, 3], ids=["first", "middle", "final"])
def test_a_chunk_from_another_file_under_the_same_cached_data_key_is_refused(kek, engine, tmp_path, position):
    a, b = _two_files(kek, cache=True)
    head_a, body_a = adv.parse_header(a)
    _, body_b = adv.parse_header(b)
    chunks_a, chunks_b = adv.split_chunks(body_a, C), adv.split_chunks(body_b, C)
    chunks_a[position] = chunks_b[position]  # same data key, same index, same final flag: only the file id differs
    blob = head_a.encode() + b"".join(chunks_a)
    refused_everywhere(blob, keyring(kek), engine, AuthenticationError, tmp_path, f"chunk {position}")


def test_cli_refuses_chunks_moved_between_files_encrypted_with_the_cache_on(kek, cli_engine, tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(os.urandom(2 * C + 1))
    assert main(["encrypt-file", str(tmp_path / "a"), str(tmp_path / "b"), "--key", f"raw-aes:{tmp_path / 'kek'}",
                 "--chunk-size", "1K", "--cache-max-age", "60", "-q"]) == 0
    a, b = (tmp_path / "a.envelope").read_bytes(), (tmp_path / "b.envelope").read_bytes()
    assert data_key_of(a, keyring(kek)) == data_key_of(b, keyring(kek))
    head_a, body_a = adv.parse_header(a)
    head_b, body_b = adv.parse_header(b)
    chunks_a, chunks_b = adv.split_chunks(body_a, C), adv.split_chunks(body_b, C)
    cli_refuses(head_a.encode() + chunks_a[0] + chunks_b[1] + chunks_a[2], tmp_path, capsys, EXIT_AUTH, "chunk 1")
    cli_refuses(head_b.encode() + body_a, tmp_path, capsys, EXIT_AUTH, "chunk 0")
    assert main(["decrypt-file", str(tmp_path / "a.envelope"), "-o", str(tmp_path / "a.back"),
                 "--key", f"raw-aes:{tmp_path / 'kek'}"]) == 0


# -- bytes after the final chunk, and truncation at every boundary ------------------------------------------------


def _forged_tails(dek: bytes, file_id: bytes, chunks: int) -> dict[str, bytes]:
    """What a data-key holder could append after chunk *chunks*-1; tags that verify where they can."""
    key = adv.payload_key(dek, file_id)
    return {
        "one-byte": b"\0",
        "shorter-than-a-tag": os.urandom(15),
        "random-tag-sized": os.urandom(16),
        "sealed-empty-final-chunk": adv.seal_chunk(key, chunks, b"", True),
        "sealed-final-chunk": adv.seal_chunk(key, chunks, b"more", True),
        "sealed-full-final-chunk": adv.seal_chunk(key, chunks, os.urandom(C), True),
        "copy-of-the-final-chunk": b"",  # filled in by the caller
    }


@pytest.mark.parametrize("size", [2 * C, 2 * C + 7], ids=["full-final-chunk", "short-final-chunk"])
@pytest.mark.parametrize("tail", ["one-byte", "shorter-than-a-tag", "random-tag-sized", "sealed-empty-final-chunk",
                                  "sealed-final-chunk", "sealed-full-final-chunk", "copy-of-the-final-chunk"])
def test_bytes_appended_after_the_final_chunk_are_refused(kek, engine, tmp_path, size, tail):
    dek, file_id = os.urandom(32), os.urandom(32)
    blob = adv.build(dek, [kek], os.urandom(size), file_id=file_id)
    _, payload = adv.parse_header(blob)
    chunks = adv.split_chunks(payload, C)
    extra = _forged_tails(dek, file_id, len(chunks))[tail] or chunks[-1]
    refused_everywhere(blob + extra, keyring(kek), engine, AuthenticationError, tmp_path)


def test_cli_refuses_appended_bytes_and_every_truncation_at_a_chunk_boundary(kek, cli_engine, tmp_path, capsys):
    dek, file_id = os.urandom(32), os.urandom(32)
    blob = adv.build(dek, [kek], os.urandom(3 * C), file_id=file_id)
    sealed_tail = adv.seal_chunk(adv.payload_key(dek, file_id), 3, b"", True)
    cli_refuses(blob + sealed_tail, tmp_path, capsys, EXIT_AUTH, "empty final chunk")
    cli_refuses(blob + b"x", tmp_path, capsys, EXIT_AUTH, "truncated")
    # Random access sizes the file first: an impossible length is the same failure, with the same code.
    cli_refuses(blob + b"x", tmp_path, capsys, EXIT_AUTH, "truncated or extended", "--range", "0:10")
    # A forged full chunk sealed as final at index 3: the genuine final chunk 2 is then opened as
    # not final when the range reaches it.
    forged = adv.seal_chunk(adv.payload_key(dek, file_id), 3, os.urandom(C), True)
    cli_refuses(blob + forged, tmp_path, capsys, EXIT_AUTH, "chunk 2", "--range", f"{3 * C - 5}:")
    header, _ = adv.parse_header(blob)
    size = len(header.encode())
    for index in range(3):
        cli_refuses(blob[: size + index * (C + 16)], tmp_path, capsys, EXIT_AUTH, "truncated")


# -- chunk size fields at and beyond their limits -----------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [MIN_CHUNK_SIZE, MAX_CHUNK_SIZE])
def test_chunk_sizes_at_the_limits_are_accepted_end_to_end(kek, engine, chunk_size):
    plaintext = os.urandom(2 * MIN_CHUNK_SIZE + 3)
    blob = adv.build(os.urandom(32), [kek], plaintext, chunk_size=chunk_size)
    assert open_blob(blob, keyring(kek), engine) == plaintext
    ours = envelope.encrypt(plaintext, keys=keyring(kek), chunk_size=chunk_size)
    assert adv.parse_header(ours)[0].chunk_size == chunk_size


BAD_CHUNK_SIZES = [0, 1, MIN_CHUNK_SIZE // 2, MIN_CHUNK_SIZE - 1, MIN_CHUNK_SIZE + 1, 3 * MIN_CHUNK_SIZE,
                   MAX_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1, 2 * MAX_CHUNK_SIZE, 1 << 31, 0xFFFFFFFF]


@pytest.mark.parametrize("chunk_size", BAD_CHUNK_SIZES)
def test_an_authenticated_header_with_an_out_of_range_chunk_size_is_a_format_error(kek, engine, tmp_path,
                                                                                   chunk_size):
    # The writer holds the data key, so the MAC is valid: the limit itself must refuse it,
    # before any unwrap (a 4 GiB chunk would otherwise set the size of the reader's buffers).
    dek, file_id = os.urandom(32), os.urandom(32)
    header = adv.RawHeader(chunk_size, file_id, b"\0\0", (adv.raw_aes_entry(kek, dek, b"\0\0"),)).sealed_for(dek)
    blob = header.encode() + adv.seal_payload(dek, file_id, b"x" * 100, MIN_CHUNK_SIZE)
    refused_everywhere(blob, keyring(kek), engine, FormatError, tmp_path, "chunk size")


def test_cli_refuses_an_authenticated_zero_or_huge_chunk_size(kek, cli_engine, tmp_path, capsys):
    dek, file_id = os.urandom(32), os.urandom(32)
    for chunk_size in (0, 0xFFFFFFFF, MAX_CHUNK_SIZE + 1):
        header = adv.RawHeader(chunk_size, file_id, b"\0\0", (adv.raw_aes_entry(kek, dek, b"\0\0"),)).sealed_for(dek)
        cli_refuses(header.encode() + b"\0" * 32, tmp_path, capsys, EXIT_FORMAT, "chunk size")
        assert main(["inspect", str(tmp_path / "attack.envelope")]) == EXIT_FORMAT


# -- the number of wrapped keys: the format's limit and the reader's policy -------------------------------------


def _many_entries(kek: bytes, dek: bytes, count: int) -> bytes:
    """A file with *count* wrapped keys, ours last; the others wrap the same data key under strangers' keys."""
    entries = tuple(adv.raw_aes_entry(os.urandom(32), dek, b"\0\0") for _ in range(count - 1))
    entries += (adv.raw_aes_entry(kek, dek, b"\0\0"),)
    file_id = os.urandom(32)
    header = adv.RawHeader(C, file_id, b"\0\0", entries).sealed_for(dek)
    return header.encode() + adv.seal_payload(dek, file_id, b"many", C)


class CountingKeyring(RawAesKeyring):
    unwraps = 0

    def unwrap_data_key(self, wrapped, context):  # type: ignore[no-untyped-def]
        type(self).unwraps += 1
        return super().unwrap_data_key(wrapped, context)


def test_the_format_limit_of_32_wrapped_keys_is_inclusive_and_33_is_a_format_error(kek, engine, tmp_path):
    dek = os.urandom(32)
    at_limit = _many_entries(kek, dek, MAX_WRAPPED_KEYS)
    assert open_blob(at_limit, keyring(kek, max_wrapped_keys=MAX_WRAPPED_KEYS), engine) == b"many"
    over = _many_entries(kek, dek, MAX_WRAPPED_KEYS + 1)
    CountingKeyring.unwraps = 0
    ring = MultiKeyring([CountingKeyring(kek)], max_wrapped_keys=MAX_WRAPPED_KEYS)
    refused_everywhere(over, ring, engine, FormatError, tmp_path, "33 wrapped keys")
    assert CountingKeyring.unwraps == 0


def test_a_key_count_byte_claiming_one_more_entry_than_present_is_a_format_error(kek, engine, tmp_path):
    dek, file_id = os.urandom(32), os.urandom(32)
    header = adv.RawHeader(C, file_id, b"\0\0", (adv.raw_aes_entry(kek, dek, b"\0\0"),), count=2).sealed_for(dek)
    refused_everywhere(header.encode() + adv.seal_payload(dek, file_id, b"x", C), keyring(kek), engine, FormatError,
                       tmp_path)


@pytest.mark.parametrize("policy", [1, DEFAULT_MAX_WRAPPED_KEYS, MAX_WRAPPED_KEYS - 1])
def test_the_wrapped_key_policy_admits_its_limit_and_refuses_one_more_before_any_unwrap(kek, engine, tmp_path,
                                                                                        policy):
    dek = os.urandom(32)
    assert open_blob(_many_entries(kek, dek, policy), keyring(kek, max_wrapped_keys=policy), engine) == b"many"
    CountingKeyring.unwraps = 0
    ring = MultiKeyring([CountingKeyring(kek)], max_wrapped_keys=policy)
    refused_everywhere(_many_entries(kek, dek, policy + 1), ring, engine, FormatError, tmp_path,
                       f"{policy + 1} wrapped keys; at most {policy}")
    assert CountingKeyring.unwraps == 0


def test_cli_max_wrapped_keys_at_the_limit_plus_one(kek, cli_engine, tmp_path, capsys):
    dek = os.urandom(32)
    eleven = _many_entries(kek, dek, DEFAULT_MAX_WRAPPED_KEYS + 1)
    cli_refuses(eleven, tmp_path, capsys, EXIT_FORMAT, "--max-wrapped-keys")
    cli_refuses(eleven, tmp_path, capsys, EXIT_FORMAT, "11 wrapped keys; at most 5", "--max-wrapped-keys", "5")
    assert main(["decrypt-file", str(tmp_path / "attack.envelope"), "-o", str(tmp_path / "ok"), "--key",
                 f"raw-aes:{tmp_path / 'kek'}", "--max-wrapped-keys", "11"]) == 0
    assert (tmp_path / "ok").read_bytes() == b"many"
    thirty_three = _many_entries(kek, dek, MAX_WRAPPED_KEYS + 1)
    cli_refuses(thirty_three, tmp_path, capsys, EXIT_FORMAT, "33 wrapped keys", "--max-wrapped-keys", "32")
    capsys.readouterr()
    assert main(["decrypt-file", str(tmp_path / "attack.envelope"), "-o", str(tmp_path / "o33"),
                 "--max-wrapped-keys", "33"]) == EXIT_USAGE
    assert "at most 32" in capsys.readouterr().err and not (tmp_path / "o33").exists()


# -- encryption contexts a conforming writer cannot produce ---------------------------------------------------


BAD_CONTEXTS = {
    "duplicate-key-same-value": adv.context_bytes((b"app", b"x"), (b"app", b"x")),
    "duplicate-key-other-value": adv.context_bytes((b"app", b"x"), (b"app", b"y")),
    "duplicate-key-not-adjacent": adv.context_bytes((b"a", b""), (b"b", b""), (b"a", b"")),
    "unsorted": adv.context_bytes((b"b", b"1"), (b"a", b"2")),
    "key-invalid-utf8": adv.context_bytes((b"\xff", b"v")),
    "value-invalid-utf8": adv.context_bytes((b"k", b"caf\xe9")),
    "value-truncated-utf8": adv.context_bytes((b"k", b"\xc3")),
    "key-overlong-slash": adv.context_bytes((b"\xc0\xaf", b"v")),
    "value-overlong-nul": adv.context_bytes((b"k", b"\xc0\x80")),
    "value-surrogate": adv.context_bytes((b"k", b"\xed\xa0\x80")),
    "value-above-u10ffff": adv.context_bytes((b"k", b"\xf4\x90\x80\x80")),
    "empty-key": adv.context_bytes((b"", b"v")),
}


def _file_with_context(kek: bytes, context: bytes) -> bytes:
    """Everything valid around *context*: the wrapped key uses it as AAD, the MAC covers it, the chunk verifies."""
    return adv.build(os.urandom(32), [kek], b"payload", context=context)


@pytest.mark.parametrize("name", sorted(BAD_CONTEXTS))
def test_an_authenticated_context_with_duplicate_keys_or_bad_utf8_is_a_format_error(kek, engine, tmp_path, name):
    blob = _file_with_context(kek, BAD_CONTEXTS[name])
    refused_everywhere(blob, keyring(kek), engine, FormatError, tmp_path, "encryption context")
    with pytest.raises(FormatError):
        envelope.inspect_file(tmp_path / "attack.envelope")


def test_cli_refuses_duplicate_and_non_utf8_context_keys(kek, cli_engine, tmp_path, capsys):
    for name in ("duplicate-key-other-value", "value-invalid-utf8", "value-surrogate"):
        cli_refuses(_file_with_context(kek, BAD_CONTEXTS[name]), tmp_path, capsys, EXIT_FORMAT, "encryption context")
        capsys.readouterr()
        assert main(["inspect", str(tmp_path / "attack.envelope")]) == EXIT_FORMAT
        assert "encryption context" in capsys.readouterr().err


# -- key commitment: one file, two data keys ------------------------------------------------------------------


def _salamander(kek1: bytes, kek2: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes]:
    """A one-chunk file whose single chunk AES-GCM opens under the payload keys of two data keys.

    Entry 1 wraps data key 1 for kek1, entry 2 wraps data key 2 for kek2; the
    commitment and MAC are data key 1's.  Returns the file, both data keys, the
    file id and the two plaintexts the chunk decrypts to.
    """
    dek1, dek2, file_id = os.urandom(32), os.urandom(32), os.urandom(32)
    p1, p2 = adv.payload_key(dek1, file_id), adv.payload_key(dek2, file_id)
    chunk = adv.colliding_block(p1, p2, adv.nonce(0, True))
    plain1 = AESGCM(p1).decrypt(adv.nonce(0, True), chunk, None)
    plain2 = AESGCM(p2).decrypt(adv.nonce(0, True), chunk, None)
    entries = (adv.raw_aes_entry(kek1, dek1, b"\0\0"), adv.raw_aes_entry(kek2, dek2, b"\0\0"))
    header = adv.RawHeader(C, file_id, b"\0\0", entries).sealed_for(dek1)
    return header.encode() + chunk, dek1, dek2, file_id, plain1, plain2


def test_the_salamander_chunk_really_opens_under_both_payload_keys(engine):
    # The precondition of the attack: GCM alone would give two recipients two plaintexts.
    blob, dek1, dek2, file_id, plain1, plain2 = _salamander(os.urandom(32), os.urandom(32))
    assert plain1 != plain2 and len(plain1) == len(plain2) == 16
    chunk = blob[-32:]
    for dek, plain in ((dek1, plain1), (dek2, plain2)):
        out = bytearray(16)
        assert engine.open(adv.payload_key(dek, file_id), 0, chunk, out, C, True) == 16
        assert bytes(out) == plain


def test_key_commitment_refuses_the_second_data_key_of_a_two_key_file(engine, tmp_path):
    kek1, kek2 = os.urandom(32), os.urandom(32)
    blob, _, _, _, plain1, plain2 = _salamander(kek1, kek2)
    assert open_blob(blob, keyring(kek1), engine) == plain1
    refused_everywhere(blob, keyring(kek2), engine, AuthenticationError, tmp_path, "key commitment mismatch")
    # Holding both keys never yields the second plaintext either: the entry for kek1 comes first here.
    assert open_blob(blob, keyring(kek2, kek1), engine) == plain1
    for ring in (keyring(kek1), keyring(kek2), keyring(kek1, kek2)):
        try:
            assert open_blob(blob, ring, engine) != plain2
        except AuthenticationError:
            pass


def test_the_commitment_is_checked_before_the_mac(engine, tmp_path):
    # Commitment for data key 2, MAC under data key 1: each key fails a different check, in spec order.
    kek1, kek2 = os.urandom(32), os.urandom(32)
    blob, dek1, dek2, file_id, _, _ = _salamander(kek1, kek2)
    header, chunk = adv.parse_header(blob)
    mixed = replace(header, commitment=adv.commitment(dek2, file_id))
    mixed = replace(mixed, mac=adv.hmac_sha256(adv.header_key(dek1, file_id), mixed.covered()))
    forged = mixed.encode() + chunk
    refused_everywhere(forged, keyring(kek1), engine, AuthenticationError, tmp_path, "key commitment")
    refused_everywhere(forged, keyring(kek2), engine, AuthenticationError, tmp_path, "header authentication")


def test_cli_refuses_the_second_data_key(cli_engine, tmp_path, capsys):
    kek1, kek2 = os.urandom(32), os.urandom(32)
    write_key_file(tmp_path / "kek", kek2)
    blob, *_ = _salamander(kek1, kek2)
    cli_refuses(blob, tmp_path, capsys, EXIT_AUTH, "key commitment mismatch")


def test_a_wrapped_key_unwrapping_to_another_files_data_key_is_refused(kek, engine, tmp_path):
    # Entry copied from file B (same context, same master key) into file A's header, A's MAC kept:
    # the unwrap succeeds, with B's data key, and the commitment refuses it.
    a = adv.build(os.urandom(32), [kek], b"file a")
    b = adv.build(os.urandom(32), [kek], b"file b")
    head_a, body_a = adv.parse_header(a)
    head_b, _ = adv.parse_header(b)
    forged = replace(head_a, entries=head_b.entries).encode() + body_a
    refused_everywhere(forged, keyring(kek), engine, AuthenticationError, tmp_path, "key commitment mismatch")


def test_a_wrapped_key_for_another_context_does_not_unwrap(kek, engine, tmp_path):
    # The raw-aes AAD binds the context: an entry made for {"app": "x"} fails under {"app": "y"}.
    dek, file_id = os.urandom(32), os.urandom(32)
    entry = adv.raw_aes_entry(kek, dek, adv.context_bytes((b"app", b"x")))
    ctx = adv.context_bytes((b"app", b"y"))
    header = adv.RawHeader(C, file_id, ctx, (entry,)).sealed_for(dek)
    blob = header.encode() + adv.seal_payload(dek, file_id, b"x", C)
    refused_everywhere(blob, keyring(kek), engine, KeyringError, tmp_path, "wrong key or encryption context")


def test_cli_exit_codes_for_a_wrong_context_entry(kek, cli_engine, tmp_path, capsys):
    dek, file_id = os.urandom(32), os.urandom(32)
    entry = adv.raw_aes_entry(kek, dek, adv.context_bytes((b"app", b"x")))
    header = adv.RawHeader(C, file_id, adv.context_bytes((b"app", b"y")), (entry,)).sealed_for(dek)
    cli_refuses(header.encode() + adv.seal_payload(dek, file_id, b"x", C), tmp_path, capsys, EXIT_KEY,
                "wrong key or encryption context")

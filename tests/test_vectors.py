"""The envelope v1 test vectors, run through the real decoder (and encoder).

Every vector in formats/vectors/envelope-v1.json is one scenario.  A positive
vector must decrypt to its plaintext with every engine and must be reproduced
byte for byte by the encoder from the same inputs; a negative vector must make
the decoder raise exactly the exception class it names, at the stage it names.
The vectors themselves must be what formats/generate_vectors.py produces today.
"""

from __future__ import annotations

import hmac
import importlib.util
import io
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from envelope import context as _context
from envelope import exceptions, kdf
from envelope.engines import get_engine, native_available
from envelope.engines.base import Engine
from envelope.exceptions import AuthenticationError, ContextMismatchError, FormatError, KeyringError
from envelope.format import (
    SUITE_AES256_GCM_HKDF_SHA512_COMMIT,
    WrappedKey,
    chunk_count,
    chunk_offset,
    ciphertext_size,
    plaintext_size,
    read_header,
)
from envelope.keyrings.base import MultiKeyring
from envelope.keyrings.raw_aes import RawAesKeyring
from envelope.stream import decrypt_stream, open_body, seal_stream

ROOT = Path(__file__).resolve().parent.parent
VECTOR_FILE = ROOT / "formats" / "vectors" / "envelope-v1.json"
GENERATOR = ROOT / "formats" / "generate_vectors.py"
DOC = json.loads(VECTOR_FILE.read_text(encoding="utf-8"))
VECTORS: list[dict[str, Any]] = DOC["vectors"]
POSITIVE = [v for v in VECTORS if v["kind"] == "positive"]
NEGATIVE = [v for v in VECTORS if v["kind"] == "negative"]
ENGINES = ["python"] + (["native"] if native_available() else [])
STAGES = ["header", "context", "unwrap", "commitment", "mac", "chunks"]

MIN_POSITIVE = 15
MIN_NEGATIVE = 80


def plaintext_of(vector: dict[str, Any]) -> bytes:
    value = vector["plaintext"]
    if isinstance(value, str):
        return bytes.fromhex(value)
    pattern = bytes.fromhex(value["repeat"])
    return (pattern * (value["length"] // len(pattern) + 1))[: value["length"]]


def keyring_of(vector: dict[str, Any], keks: list[str] | None = None) -> MultiKeyring:
    return MultiKeyring(RawAesKeyring(bytes.fromhex(k)) for k in (keks or vector["keks"]))


def decrypt(vector: dict[str, Any], engine: Engine, keks: list[str] | None = None,
            out: io.BytesIO | None = None) -> bytes:
    """Decrypt one vector's ciphertext into *out*; return what was written.  Exceptions propagate."""
    out = io.BytesIO() if out is None else out
    decrypt_stream(io.BytesIO(bytes.fromhex(vector["ciphertext"])), out, keyring_of(vector, keks),
                   required_context=vector.get("required_context"), engine=engine)
    return out.getvalue()


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_vectors", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def names(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]


# -- the file itself ------------------------------------------------------------------------------


def test_vector_file_is_what_the_generator_produces_today():
    assert load_generator().render() == VECTOR_FILE.read_text(encoding="utf-8"), (
        "formats/vectors/envelope-v1.json is stale: run python formats/generate_vectors.py"
    )


def test_generator_output_is_byte_stable():
    generator = load_generator()
    assert generator.render() == generator.render()


def test_vector_file_has_enough_vectors_of_each_kind():
    assert DOC["format"] == "envelope-v1"
    assert DOC["generated_by"] == "formats/generate_vectors.py"
    assert len(POSITIVE) >= MIN_POSITIVE
    assert len(NEGATIVE) >= MIN_NEGATIVE
    assert len(POSITIVE) + len(NEGATIVE) == len(VECTORS)


def test_vector_names_are_unique_and_each_negative_names_a_known_class_and_stage():
    assert len(set(names(VECTORS))) == len(VECTORS)
    for vector in NEGATIVE:
        cls = getattr(exceptions, vector["expect"], None)
        assert isinstance(cls, type) and issubclass(cls, exceptions.EnvelopeError), vector["name"]
        assert vector["stage"] in STAGES, vector["name"]


def test_vectors_cover_every_stage_and_the_required_edges():
    assert {v["stage"] for v in NEGATIVE} == set(STAGES)
    sizes = {(v["chunk_size"], len(plaintext_of(v))) for v in POSITIVE}
    for n in (0, 1, 1023, 1024, 1025, 2 * 1024 + 7):
        assert (1024, n) in sizes
    assert any(len(v["keks"]) == 2 for v in POSITIVE)
    assert any(v["context"] for v in POSITIVE) and any(not v["context"] for v in POSITIVE)


# -- positive vectors -----------------------------------------------------------------------------


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("vector", POSITIVE, ids=names(POSITIVE))
def test_positive_vector_decrypts_to_its_plaintext(vector, engine_name):
    assert decrypt(vector, get_engine(engine_name, threads=2)) == plaintext_of(vector)


@pytest.mark.parametrize("vector", [v for v in POSITIVE if len(v["keks"]) > 1], ids=lambda v: v["name"])
def test_each_master_key_alone_opens_a_multi_key_vector(vector):
    for kek in vector["keks"]:
        assert decrypt(vector, get_engine("python"), keks=[kek]) == plaintext_of(vector)


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("vector", POSITIVE, ids=names(POSITIVE))
def test_encrypting_the_same_inputs_reproduces_the_ciphertext(vector, engine_name):
    context = vector["context"]
    wrapped = []
    for item in vector["wrapped_keys"]:
        blob = bytes.fromhex(item["blob"])
        if item["provider"] == "raw-aes":
            # The blob is RawAesKeyring's format with the vector's fixed nonce: check it independently.
            kek, nonce = bytes.fromhex(item["kek"]), bytes.fromhex(item["wrap_nonce"])
            ring = RawAesKeyring(kek)
            assert item["key_id"] == ring.key_id
            assert ring.unwrap_data_key(WrappedKey("raw-aes", ring.key_id, blob), context) == bytes.fromhex(
                vector["data_key"])
            assert blob[:13] == b"\x01" + nonce and len(blob) == 61
        wrapped.append(WrappedKey(item["provider"], item["key_id"], blob))
    out = io.BytesIO()
    seal_stream(io.BytesIO(plaintext_of(vector)), out, bytes.fromhex(vector["data_key"]), wrapped,
                context=context, chunk_size=vector["chunk_size"], engine=get_engine(engine_name, threads=2),
                file_id=bytes.fromhex(vector["file_id"]))
    assert out.getvalue().hex() == vector["ciphertext"]


@pytest.mark.parametrize("vector", POSITIVE, ids=names(POSITIVE))
def test_positive_vector_key_schedule_and_layout(vector):
    data_key, file_id = bytes.fromhex(vector["data_key"]), bytes.fromhex(vector["file_id"])
    keys = kdf.FileKeys.derive(data_key, file_id, SUITE_AES256_GCM_HKDF_SHA512_COMMIT)
    assert keys.payload.hex() == vector["payload_key"]
    assert keys.header.hex() == vector["header_key"]
    assert keys.commitment.hex() == vector["commitment"]
    ciphertext = bytes.fromhex(vector["ciphertext"])
    header, raw = read_header(io.BytesIO(ciphertext))
    size, chunk_size, n = vector["header_size"], vector["chunk_size"], len(plaintext_of(vector))
    assert len(raw) == header.size == size
    assert header.commitment.hex() == vector["commitment"] and header.mac.hex() == vector["header_mac"]
    assert header.mac == kdf.header_mac(keys.header, raw[:-32])
    assert header.file_id == file_id and header.chunk_size == chunk_size and header.context == vector["context"]
    assert len(ciphertext) == ciphertext_size(size, n, chunk_size)
    assert plaintext_size(size, len(ciphertext), chunk_size) == n
    last = chunk_count(n, chunk_size) - 1
    assert chunk_offset(size, chunk_size, last) + (n - last * chunk_size) + 16 == len(ciphertext)


# -- negative vectors -----------------------------------------------------------------------------


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("vector", NEGATIVE, ids=names(NEGATIVE))
def test_negative_vector_raises_exactly_its_class(vector, engine_name):
    expected = getattr(exceptions, vector["expect"])
    with pytest.raises(Exception) as info:
        decrypt(vector, get_engine(engine_name, threads=2))
    assert type(info.value) is expected, f"{vector['name']}: {type(info.value).__name__}: {info.value}"


@pytest.mark.parametrize("vector", NEGATIVE, ids=names(NEGATIVE))
def test_negative_vector_fails_at_its_stage(vector):
    assert failing_stage(vector) == vector["stage"]


@pytest.mark.parametrize("vector", [v for v in NEGATIVE if v["stage"] == "chunks"], ids=lambda v: v["name"])
def test_a_failed_stream_releases_only_authenticated_plaintext(vector):
    out = io.BytesIO()
    with pytest.raises(AuthenticationError):
        decrypt(vector, get_engine("python"), out=out)
    assert plaintext_of(vector).startswith(out.getvalue())


def failing_stage(vector: dict[str, Any]) -> str | None:
    """Walk the decoder's steps one at a time and name the first that fails."""
    src = io.BytesIO(bytes.fromhex(vector["ciphertext"]))
    try:
        header, raw = read_header(src)
    except FormatError:
        return "header"
    try:
        _context.require_subset(_context.normalize(vector.get("required_context")), header.context)
    except ContextMismatchError:
        return "context"
    try:
        data_key = keyring_of(vector).unwrap(header.wrapped_keys, header.context)
    except KeyringError:
        return "unwrap"
    keys = kdf.FileKeys.derive(data_key, header.file_id, header.suite)
    if not hmac.compare_digest(header.commitment, keys.commitment):
        return "commitment"
    try:
        kdf.authenticate_header(header, keys, raw)
    except AuthenticationError:
        return "mac"
    try:
        open_body(src, io.BytesIO(), header, keys, engine=get_engine("python"))
    except AuthenticationError:
        return "chunks"
    return None

"""The one-shot primitives (envelope.engines.primitives): the C core's OpenSSL and pyca/cryptography agree.

The key schedule and the keystore's blobs use whichever is loaded, so files and
keystores written with one must open with the other: both must be the standard
functions, byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from envelope.engines import ENGINE_ENV, native_available
from envelope.engines import primitives
from envelope.exceptions import AuthenticationError


@pytest.fixture(params=["native", "python"])
def engine(request, monkeypatch):
    if request.param == "native" and not native_available():
        pytest.skip("the native engine is not built here")
    monkeypatch.setenv(ENGINE_ENV, request.param)
    assert (primitives._native() is not None) == (request.param == "native")
    return request.param


def _rfc5869_sha512(key: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 written out over the standard library's HMAC: an independent reference."""
    prk = hmac.digest(salt or bytes(64), key, "sha512")
    out, block = b"", b""
    for counter in range(1, -(-length // 64) + 1):
        block = hmac.digest(prk, block + info + bytes([counter]), "sha512")
        out += block
    return out[:length]


def test_hkdf_sha512_is_rfc_5869(engine):
    rng = random.Random(5869)
    for length in (1, 32, 42, 64, 65, 200):
        key, salt, info = (rng.randbytes(rng.randrange(0, 80)) for _ in range(3))
        key = key or b"k"
        assert primitives.hkdf_sha512(key, salt, info, length) == _rfc5869_sha512(key, salt, info, length)


def test_hmac_sha256_is_the_standard_librarys(engine):
    rng = random.Random(2104)
    for size in (0, 1, 63, 64, 65, 1000):
        key, data = rng.randbytes(rng.randrange(1, 100)), rng.randbytes(size)
        assert primitives.hmac_sha256(bytearray(key), memoryview(data)) == hmac.digest(key, data, hashlib.sha256)


def test_gcm_seal_is_pycas_aesgcm_and_opens_back(engine):
    rng = random.Random(38)
    for size in (0, 1, 16, 32, 100):
        key, nonce, aad, plain = rng.randbytes(32), rng.randbytes(12), rng.randbytes(rng.randrange(0, 50)), \
            rng.randbytes(size)
        sealed = primitives.gcm_seal(bytearray(key), nonce, plain, aad)
        assert sealed == AESGCM(key).encrypt(nonce, plain, aad)
        out = bytearray(size)
        primitives.gcm_open_into(key, nonce, sealed, aad, out)
        assert out == plain


@pytest.mark.parametrize("damage", ["ciphertext", "tag", "aad", "short"])
def test_gcm_open_refuses_a_damaged_message_and_leaves_nothing_in_the_output(engine, damage):
    key, nonce, aad, plain = os.urandom(32), os.urandom(12), b"context", b"secret data key material!"
    sealed = bytearray(primitives.gcm_seal(key, nonce, plain, aad))
    if damage == "ciphertext":
        sealed[0] ^= 1
    elif damage == "tag":
        sealed[-1] ^= 1
    elif damage == "aad":
        aad = b"other"
    else:
        sealed = sealed[:15]
    out = bytearray(max(0, len(sealed) - 16))
    with pytest.raises(AuthenticationError):
        primitives.gcm_open_into(key, nonce, bytes(sealed), aad, out)
    assert out == bytes(len(out))


def test_equal_compares_bytes(engine):
    assert primitives.equal(b"same mac", bytearray(b"same mac"))
    assert primitives.equal(b"", b"")
    assert not primitives.equal(b"same mac", b"same maC")
    assert not primitives.equal(b"short", b"shorter")

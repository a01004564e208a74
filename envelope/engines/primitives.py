"""AES-256-GCM, HKDF-SHA-512, HMAC-SHA-256 and a constant-time compare: the C core's OpenSSL, else Python's.

Outside the chunk loops envelope needs these for a few hundred bytes per file:
the key schedule (:mod:`envelope.kdf`) and the keystore's blobs and sealed keys
(:mod:`envelope.kms.storage`).  Both implementations compute the same standard
functions (tests/test_primitives.py checks them against each other and against
published vectors), so the choice is only about start-up: the C core is loaded
anyway for the chunks, while importing pyca/cryptography costs about 10 ms of
every command.  The choice follows the engine's: ``ENVELOPE_ENGINE=python``, or
an install without the C core, uses pyca/cryptography (and :func:`hmac.compare_digest`).
"""

from __future__ import annotations

import os
from types import ModuleType

from ..exceptions import AuthenticationError
from . import ENGINE_ENV
from .base import Buffer


#: :mod:`envelope.engines.native` once looked up (None: not built); not yet looked up while False.
_NATIVE: ModuleType | None | bool = False


def _native() -> ModuleType | None:
    """:mod:`envelope.engines.native`, unless the reference engine is asked for or the C core is not built.

    The environment is read on every call (a test or a program may switch
    engines); the import is looked up once, as these run several times a file.
    """
    global _NATIVE
    if os.environ.get(ENGINE_ENV, "").lower() in ("python", "reference"):
        return None
    if _NATIVE is False:
        try:
            from . import native as found
        except ImportError:
            _NATIVE = None
        else:
            _NATIVE = found
    return _NATIVE  # type: ignore[return-value]


def gcm_seal(key: Buffer, nonce: Buffer, plaintext: Buffer, aad: Buffer) -> bytes:
    """AES-256-GCM of *plaintext* under *key*: the ciphertext, then the 16-byte tag."""
    native = _native()
    if native is not None:
        return bytes(native.gcm_seal(key, nonce, plaintext, aad))
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    return AESGCM(bytes(key)).encrypt(bytes(nonce), bytes(plaintext), bytes(aad))


def gcm_open_into(key: Buffer, nonce: Buffer, sealed: Buffer, aad: Buffer, out: bytearray) -> None:
    """Open what :func:`gcm_seal` made into *out*, which holds ``len(sealed) - 16`` bytes.

    Raises :class:`AuthenticationError` when the tag does not verify, with
    *out* zeroed: no unauthenticated byte is left in it.
    """
    native = _native()
    if native is not None:
        native.gcm_open_into(key, nonce, sealed, aad, out)
        return
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    try:
        AESGCM(bytes(key)).decrypt_into(bytes(nonce), bytes(sealed), bytes(aad), out)
    except InvalidTag:
        out[:] = bytes(len(out))
        raise AuthenticationError("GCM tag did not verify") from None


def hkdf_sha512(key: Buffer, salt: Buffer, info: Buffer, length: int) -> bytes:
    """HKDF-SHA-512 (RFC 5869): *length* bytes from *key*, *salt* and *info*."""
    native = _native()
    if native is not None:
        return bytes(native.hkdf_sha512(key, salt, info, length))
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    return HKDF(algorithm=hashes.SHA512(), length=length, salt=bytes(salt), info=bytes(info)).derive(bytes(key))


def hmac_sha256(key: Buffer, data: Buffer) -> bytes:
    """HMAC-SHA-256 (RFC 2104) of *data* under *key*."""
    native = _native()
    if native is not None:
        return bytes(native.hmac_sha256(key, data))
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.hmac import HMAC
    mac = HMAC(bytes(key), hashes.SHA256())
    mac.update(bytes(data))
    return mac.finalize()


def equal(a: Buffer, b: Buffer) -> bool:
    """Whether *a* and *b* hold the same bytes, in time that does not depend on where they differ."""
    native = _native()
    if native is not None:
        return bool(native.equal(a, b))
    import hmac
    return hmac.compare_digest(bytes(a), bytes(b))


__all__ = ["equal", "gcm_open_into", "gcm_seal", "hkdf_sha512", "hmac_sha256"]

"""``rsa-public:PATH``: wrap data keys to an RSA public key, offline, for a KMS key's holder to open.

For senders who cannot call the KMS (another company, an air-gapped host, a
device): the holder of an RSA ``ENCRYPT_DECRYPT`` key exports its public half
(``envelope keys public-key KEY > backup.pem``, or AWS KMS's GetPublicKey), and
the sender encrypts with ``--key rsa-public:backup.pem``.  The data key is
wrapped with RSA-OAEP (SHA-256, MGF1-SHA-256), exactly what the KMS's
``RSAES_OAEP_SHA_256`` decrypts, so the holder opens the file with
``--key local:KEY``: the private key never leaves the keystore.

The wrapped key names the public key by fingerprint (SHA-256 of its DER
SubjectPublicKeyInfo), which the holder's keyring computes from its own key.
A KMS's RSA decryption takes no label, so RSA alone could not bind the
encryption context; the wrap is therefore two layers, as every envelope
provider must be an authenticated encryption bound to the context:

    K    = 32 random bytes, fresh per wrap
    aad  = "envelope rsa-oaep-sha256 v1" || 0x00 || key_id || context
    blob = 0x01 || RSA-OAEP-SHA-256(public key, K) || nonce || AES-256-GCM(K, nonce, data_key, aad)

The holder's KMS decrypts the RSA part (RSAES_OAEP_SHA_256), its keyring
opens the rest locally, and a changed context fails the tag.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .. import context as _context
from ..context import EncryptionContext
from ..exceptions import KeyNotFoundError, KeyringError, UsageError
from ..format import DATA_KEY_SIZE, NONCE_SIZE, WrappedKey
from .base import Keyring

SCHEME = "rsa-public"
PROVIDER = "rsa-oaep-sha256"
ALGORITHM = "RSAES_OAEP_SHA_256"  # the KMS's name for this wrapping
MIN_BITS = 2048
_MAX_KEY_FILE = 64 * 1024
_BLOB_VERSION = b"\x01"
_AAD_LABEL = b"envelope rsa-oaep-sha256 v1\x00"
_RSA_SIZES = (256, 384, 512)  # RSA-2048, 3072 and 4096 ciphertexts
_TAIL = NONCE_SIZE + DATA_KEY_SIZE + 16


def seal(public: rsa.RSAPublicKey, key_id: str, data_key: bytes | bytearray, context: EncryptionContext) -> bytes:
    """The blob for *data_key*: RSA-OAEP of a fresh key, and AES-GCM of the data key under it."""
    inner = bytearray(os.urandom(32))
    try:
        nonce = os.urandom(NONCE_SIZE)
        sealed = AESGCM(bytes(inner)).encrypt(nonce, bytes(data_key), _aad(key_id, context))
        return _BLOB_VERSION + public.encrypt(bytes(inner), oaep()) + nonce + sealed
    finally:
        inner[:] = bytes(len(inner))


def open_blob(rsa_decrypt: Callable[[bytes], bytearray], key_id: str, blob: bytes,
              context: EncryptionContext) -> bytearray:
    """The data key from *blob*, with *rsa_decrypt* (the KMS's RSAES_OAEP_SHA_256 Decrypt) for the RSA part."""
    rsa_size = len(blob) - 1 - _TAIL
    if blob[:1] != _BLOB_VERSION or rsa_size not in _RSA_SIZES:
        raise KeyringError("malformed rsa-oaep-sha256 wrapped key")
    inner = rsa_decrypt(blob[1:1 + rsa_size])
    try:
        if len(inner) != 32:
            raise KeyringError("malformed rsa-oaep-sha256 wrapped key: the RSA part is not a 32-byte key")
        tail = blob[1 + rsa_size:]
        return bytearray(AESGCM(bytes(inner)).decrypt(tail[:NONCE_SIZE], tail[NONCE_SIZE:], _aad(key_id, context)))
    except InvalidTag:
        raise KeyringError("wrapped key failed authentication (wrong encryption context, or altered)") from None
    finally:
        inner[:] = bytes(len(inner))


def _aad(key_id: str, context: EncryptionContext) -> bytes:
    return _AAD_LABEL + key_id.encode("ascii") + _context.encode(context)


def fingerprint(public_der: bytes) -> str:
    """The key id of a wrapped key: ``sha256:`` and the hex SHA-256 of the SubjectPublicKeyInfo DER."""
    return "sha256:" + hashlib.sha256(public_der).hexdigest()


def oaep() -> padding.OAEP:
    return padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)


def load_public_key(data: bytes, where: str) -> rsa.RSAPublicKey:
    """A PEM or DER RSA public key of at least 2048 bits."""
    try:
        key = serialization.load_pem_public_key(data) if data.lstrip().startswith(b"-----") \
            else serialization.load_der_public_key(data)
    except (ValueError, TypeError):
        raise KeyringError(f"{where} is not a PEM or DER public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyringError(f"{where} is not an RSA public key")
    if key.key_size < MIN_BITS:
        raise KeyringError(f"{where} is a {key.key_size}-bit RSA key; at least {MIN_BITS} bits are required")
    return key


class RsaPublicKeyring(Keyring):
    """Encrypt-only: it holds no private key, so it wraps but never unwraps."""

    provider = PROVIDER

    def __init__(self, public_key: rsa.RSAPublicKey, path: str | None = None) -> None:
        self._public = public_key
        self._der = public_key.public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        self._path = path
        self.key_id = fingerprint(self._der)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> RsaPublicKeyring:
        try:
            with open(path, "rb") as fh:
                data = fh.read(_MAX_KEY_FILE)
        except FileNotFoundError:
            raise KeyNotFoundError(f"public key file {os.fspath(path)!r} does not exist") from None
        except OSError as exc:
            raise KeyringError(f"cannot read public key file {os.fspath(path)!r}: {exc.strerror}") from None
        except ValueError:  # a NUL byte, or a name the file system's encoding cannot hold
            raise UsageError(f"public key file name {os.fspath(path)!r} is not a valid path") from None
        return cls(load_public_key(data, f"{os.fspath(path)!r}"), os.fspath(path))

    @property
    def reference(self) -> str:
        return f"{SCHEME}:{self._path}" if self._path else f"{SCHEME}:<{self.key_id}>"

    def cache_identity(self) -> tuple[str, ...]:
        """The public key, by its fingerprint: what the file at the path holds now, not the path."""
        return (SCHEME, self.key_id)

    def wrap_data_key(self, plaintext: bytes | bytearray, context: EncryptionContext) -> WrappedKey:
        return WrappedKey(PROVIDER, self.key_id, seal(self._public, self.key_id, plaintext, context))

    def matches(self, wrapped: WrappedKey) -> bool:
        return wrapped.provider == PROVIDER and wrapped.key_id == self.key_id

    def unwrap_data_key(self, wrapped: WrappedKey, context: EncryptionContext) -> bytearray:
        raise KeyringError(f"{self.reference} is a public key: only the holder of its private key can decrypt "
                           "(e.g. --key local:KEY for a key of the local keystore)")


def from_reference(rest: str, **_options: object) -> Keyring:
    if not rest:
        raise UsageError("rsa-public: needs a public key file, as in rsa-public:/path/to/key.pem")
    return RsaPublicKeyring.from_file(Path(rest))

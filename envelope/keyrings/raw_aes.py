"""``raw-aes:PATH``: a 256-bit key kept in a file by the user.

For people who manage keys themselves (an HSM export, a secrets manager, a key
on removable media).  The data key is wrapped with AES-256-GCM under the file's
key; the AAD binds the encryption context and the key's id, so a wrapped key
cannot be moved to another context or presented as another key's.

The key id written in the file header is a fingerprint, HMAC-SHA-256 of a fixed
label under the key, truncated to 128 bits: it lets a reader pick the right key
without trying each, and reveals nothing usable about the key.
"""

from __future__ import annotations

import binascii
import os
import stat

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC

from .. import context as _context
from ..context import EncryptionContext
from ..exceptions import KeyNotFoundError, KeyringError, UsageError
from ..format import DATA_KEY_SIZE, NONCE_SIZE, WrappedKey
from ..kms.storage.paths import require_private_mode
from .base import Keyring

PROVIDER = "raw-aes"
KEY_SIZE = 32
_BLOB_VERSION = b"\x01"
_AAD_LABEL = b"envelope raw-aes v1\x00"
_ID_LABEL = b"envelope raw-aes key id"
#: More than any key file can hold (64 hex digits and whitespace); the read stops
#: here, so a path naming /dev/zero or a huge file is refused, not read to the end.
MAX_KEY_FILE_SIZE = 4096


def load_key_file(path: str | os.PathLike[str]) -> bytearray:
    """Read a key file: 32 raw bytes, or 64 hex digits (optionally newline-terminated).

    A regular file that others may read or write is refused, as a keystore
    is (a pipe, as from ``raw-aes:<(vault read ...)``, has nothing to protect).
    """
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if stat.S_ISREG(st.st_mode):
                require_private_mode(st.st_mode, path, "the key file", "a master key")
            data = fh.read(MAX_KEY_FILE_SIZE + 1)
    except FileNotFoundError:
        raise KeyNotFoundError(f"key file {os.fspath(path)!r} does not exist") from None
    except OSError as exc:
        raise KeyringError(f"cannot read key file {os.fspath(path)!r}: {exc.strerror}") from None
    except ValueError:  # a NUL byte, or a name the file system's encoding cannot hold
        raise UsageError(f"key file name {os.fspath(path)!r} is not a valid path") from None
    if len(data) == KEY_SIZE:
        return bytearray(data)
    if len(data) > MAX_KEY_FILE_SIZE:
        raise KeyringError(f"key file {os.fspath(path)!r} must hold 32 raw bytes or 64 hex digits; it is longer")
    try:
        decoded = binascii.unhexlify(data.strip())
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) == KEY_SIZE:
        return bytearray(decoded)
    raise KeyringError(f"key file {os.fspath(path)!r} must hold 32 raw bytes or 64 hex digits")


def key_fingerprint(key: bytes | bytearray) -> str:
    mac = HMAC(bytes(key), hashes.SHA256())
    mac.update(_ID_LABEL)
    return mac.finalize()[:16].hex()


class RawAesKeyring(Keyring):
    provider = PROVIDER

    def __init__(self, key: bytes | bytearray, path: str | None = None) -> None:
        if len(key) != KEY_SIZE:
            raise UsageError("a raw AES key must be 32 bytes")
        self._key = bytes(key)
        self._path = path
        self.key_id = key_fingerprint(key)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> RawAesKeyring:
        key = load_key_file(path)
        try:
            return cls(key, os.fspath(path))
        finally:
            key[:] = bytes(len(key))

    @property
    def reference(self) -> str:
        return f"{PROVIDER}:{self._path}" if self._path else f"{PROVIDER}:<key {self.key_id}>"

    def cache_identity(self) -> tuple[str, ...]:
        """The key itself, by its fingerprint (already public in every file header), wherever it was read from."""
        return (PROVIDER, self.key_id)

    def _aad(self, context: EncryptionContext) -> bytes:
        return _AAD_LABEL + self.key_id.encode("ascii") + _context.encode(context)

    def wrap_data_key(self, plaintext: bytes | bytearray, context: EncryptionContext) -> WrappedKey:
        nonce = os.urandom(NONCE_SIZE)
        sealed = AESGCM(self._key).encrypt(nonce, bytes(plaintext), self._aad(context))
        return WrappedKey(self.provider, self.key_id, _BLOB_VERSION + nonce + sealed)

    def matches(self, wrapped: WrappedKey) -> bool:
        return wrapped.provider == self.provider and wrapped.key_id == self.key_id

    def unwrap_data_key(self, wrapped: WrappedKey, context: EncryptionContext) -> bytearray:
        blob = wrapped.ciphertext
        if len(blob) != 1 + NONCE_SIZE + DATA_KEY_SIZE + 16 or blob[:1] != _BLOB_VERSION:
            raise KeyringError("malformed raw-aes wrapped key")
        nonce, sealed = blob[1 : 1 + NONCE_SIZE], blob[1 + NONCE_SIZE :]
        try:
            return bytearray(AESGCM(self._key).decrypt(nonce, sealed, self._aad(context)))
        except InvalidTag:
            raise KeyringError("wrapped key failed authentication (wrong key or encryption context)") from None


def from_reference(rest: str, **_options: object) -> Keyring:
    if not rest:
        raise UsageError("raw-aes: needs a key file path, as in raw-aes:/path/to/key")
    return RawAesKeyring.from_file(rest)

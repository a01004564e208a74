"""Master keys at rest: the keystore wrapping key, from a key file or a passphrase.

Every backing key in the database is sealed (AES-256-GCM) under one keystore
wrapping key, so a copy of ``keystore.db`` alone (a backup, a synced folder, a
stolen laptop image) does not give away a single master key.  The wrapping key
comes from one of two places, chosen when the keystore is created:

``key-file`` (the default)
    32 random bytes in a 0600 file beside the database, ``keystore.db.key``,
    protected like an SSH private key.  Back the two files up together: without
    the key file the keystore's keys are gone.
``passphrase``
    derived with scrypt from ``$ENVELOPE_KEYSTORE_PASSPHRASE`` (or a prompt on
    a terminal); the salt and cost parameters are stored in the keystore.

Either way the keystore's ``meta`` table holds a check value (a GCM tag over
nothing, under the wrapping key), so a wrong passphrase or a swapped key file
is reported as such instead of as a thousand failing decryptions.

Each backing key is sealed with the key id and version as AAD, so a row copied
onto another key, or another version, does not open; a credential's secret is
sealed the same way with its access key id as AAD.
"""

from __future__ import annotations

import binascii
import getpass
import json
import os
import sqlite3
import struct
import sys
from collections.abc import Callable

from ...engines.primitives import gcm_open_into, gcm_seal
from ...exceptions import AuthenticationError, KeyringError
from ..model.keys import key_id_bytes
from .paths import FILE_MODE, StrPath, check_private

PASSPHRASE_ENV = "ENVELOPE_KEYSTORE_PASSPHRASE"
KEY_FILE = "key-file"
PASSPHRASE = "passphrase"
WRAPPING_KEY_SIZE = 32
_NONCE_SIZE = 12

#: scrypt cost for new keystores: about 0.1 s and 32 MiB on a laptop core.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
#: What a keystore may ask for when opened: enough headroom, but a hostile file cannot demand gigabytes.
_MAX_SCRYPT_N, _MAX_SCRYPT_R, _MAX_SCRYPT_P = 2**20, 32, 16

_KEY_FILE_TAG = "envelope-keystore-wrapping-key-v1"
_MAX_KEY_FILE_SIZE = 256
_CHECK_AAD = b"envelope keystore wrapping key check v1\x00"
_MATERIAL_AAD = b"envelope keystore backing key v1\x00"
_CREDENTIAL_AAD = b"envelope keystore credential secret v1\x00"

PassphraseSource = Callable[[], "str | None"]


def key_file_path(db_path: StrPath) -> str:
    """``keystore.db`` -> ``keystore.db.key``, in the same directory."""
    return os.fspath(db_path) + ".key"


class WrappingKey:
    """The keystore wrapping key in memory.  It seals and opens backing keys; it never prints."""

    def __init__(self, key: bytes | bytearray, mode: str) -> None:
        self.mode = mode
        self._key = bytes(key)

    def __repr__(self) -> str:
        return f"<WrappingKey {self.mode}>"

    def seal(self, key_id: str, version: int, material: bytes | bytearray) -> bytes:
        return self._seal(material, _material_aad(key_id, version))

    def open(self, key_id: str, version: int, sealed: bytes) -> bytearray:
        return self._open(sealed, _material_aad(key_id, version), f"backing key {version} of key {key_id}")

    def seal_credential(self, access_key_id: str, secret: bytes | bytearray) -> bytes:
        """A credential's secret access key, sealed and bound to its access key id."""
        return self._seal(secret, _CREDENTIAL_AAD + access_key_id.encode("ascii"))

    def open_credential(self, access_key_id: str, sealed: bytes) -> bytearray:
        return self._open(sealed, _CREDENTIAL_AAD + access_key_id.encode("ascii"),
                          f"the secret of access key {access_key_id}")

    def _seal(self, clear: bytes | bytearray, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE_SIZE)
        return nonce + gcm_seal(self._key, nonce, clear, aad)

    def _open(self, sealed: bytes, aad: bytes, what: str) -> bytearray:
        out = bytearray(max(0, len(sealed) - _NONCE_SIZE - 16))
        try:
            gcm_open_into(self._key, sealed[:_NONCE_SIZE], sealed[_NONCE_SIZE:], aad, out)
        except (AuthenticationError, ValueError):
            out[:] = bytes(len(out))
            raise KeyringError(f"{what} does not open under the keystore wrapping key: "
                               "the keystore file was altered") from None
        return out

    def check_value(self) -> str:
        nonce = os.urandom(_NONCE_SIZE)
        return (nonce + gcm_seal(self._key, nonce, b"", _CHECK_AAD)).hex()

    def matches(self, check: str) -> bool:
        try:
            raw = bytes.fromhex(check)
            gcm_open_into(self._key, raw[:_NONCE_SIZE], raw[_NONCE_SIZE:], _CHECK_AAD,
                          bytearray(max(0, len(raw) - _NONCE_SIZE - 16)))
        except (AuthenticationError, ValueError):
            return False
        return True


def set_up(conn: sqlite3.Connection, db_path: StrPath, passphrase: str | None) -> WrappingKey:
    """Choose and record the protection of a new (or upgraded) keystore.  Call inside its write transaction."""
    if passphrase is not None:
        salt = os.urandom(16)
        params = {"salt": salt.hex(), "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}
        wrapping = WrappingKey(_derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P), PASSPHRASE)
        rows = [("protection", PASSPHRASE), ("scrypt", json.dumps(params, sort_keys=True))]
    else:
        wrapping = WrappingKey(_create_or_read_key_file(key_file_path(db_path)), KEY_FILE)
        rows = [("protection", KEY_FILE)]
    rows.append(("wrapping_check", wrapping.check_value()))
    conn.executemany("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", rows)
    return wrapping


def load(conn: sqlite3.Connection, db_path: StrPath, passphrase: PassphraseSource) -> WrappingKey:
    """The wrapping key of an existing keystore, checked against its check value."""
    meta = dict(conn.execute(
        "SELECT name, value FROM meta WHERE name IN ('protection', 'scrypt', 'wrapping_check')"
    ).fetchall())
    mode, check = meta.get("protection"), meta.get("wrapping_check")
    if mode == KEY_FILE and check:
        path = key_file_path(db_path)
        if not os.path.exists(path):
            raise KeyringError(
                f"the keystore wrapping key file {path} is missing: the master keys in {db_path} cannot be read "
                "without it (restore it from the backup you made with the keystore)"
            )
        wrapping = WrappingKey(_read_key_file(path), KEY_FILE)
        if not wrapping.matches(check):
            raise KeyringError(f"the key file {path} is not the wrapping key of the keystore {db_path}")
        return wrapping
    if mode == PASSPHRASE and check and meta.get("scrypt"):
        salt, n, r, p = _scrypt_params(meta["scrypt"], db_path)
        secret = passphrase()
        if secret is None:
            raise KeyringError(
                f"the keystore {db_path} is protected by a passphrase: set {PASSPHRASE_ENV} or run on a terminal"
            )
        wrapping = WrappingKey(_derive(secret, salt, n, r, p), PASSPHRASE)
        if not wrapping.matches(check):
            raise KeyringError(f"wrong passphrase for the keystore {db_path}")
        return wrapping
    raise KeyringError(f"{db_path} is not a usable envelope keystore: its protection settings are missing or unknown")


def passphrase_source(explicit: str | None, db_path: StrPath, *, confirm: bool = False) -> PassphraseSource:
    """Where a passphrase comes from: the argument, then the environment, then a terminal prompt."""

    def source() -> str | None:
        if explicit is not None:
            return explicit
        from_env = os.environ.get(PASSPHRASE_ENV)
        if from_env:
            return from_env
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            return None
        secret = getpass.getpass(f"Passphrase for the keystore {db_path}: ")
        if confirm and getpass.getpass("Repeat the passphrase: ") != secret:
            raise KeyringError("the passphrases do not match")
        return secret

    return source


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    if not passphrase:
        raise KeyringError("the keystore passphrase must not be empty")
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt  # only a passphrase keystore needs it

    return Scrypt(salt=salt, length=WRAPPING_KEY_SIZE, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _scrypt_params(text: str, db_path: StrPath) -> tuple[bytes, int, int, int]:
    try:
        params = json.loads(text)
        salt, n, r, p = bytes.fromhex(params["salt"]), int(params["n"]), int(params["r"]), int(params["p"])
    except (ValueError, KeyError, TypeError):
        raise KeyringError(f"{db_path} is not a usable envelope keystore: its scrypt parameters are unreadable") from None
    if not (len(salt) >= 16 and 2 <= n <= _MAX_SCRYPT_N and n & (n - 1) == 0
            and 1 <= r <= _MAX_SCRYPT_R and 1 <= p <= _MAX_SCRYPT_P):
        raise KeyringError(f"{db_path} is not a usable envelope keystore: its scrypt parameters are out of range")
    return salt, n, r, p


def _material_aad(key_id: str, version: int) -> bytes:
    return _MATERIAL_AAD + key_id_bytes(key_id) + struct.pack(">I", version)


def _create_or_read_key_file(path: StrPath) -> bytes:
    """A new random key file, written whole without a name and linked into place.

    The link fails if the name exists, so two processes creating one keystore
    agree on one key; a reader never sees a half-written file, and a process
    killed while writing it leaves no copy of the key behind.
    """
    if os.path.exists(path):
        return _read_key_file(path)
    from ...atomic import atomic_output
    from ...exceptions import OutputExistsError

    key = os.urandom(WRAPPING_KEY_SIZE)
    try:
        with atomic_output(os.fspath(path), mode=FILE_MODE) as out:
            out.write(f"{_KEY_FILE_TAG} {binascii.hexlify(key).decode()}\n".encode())
            os.fsync(out.fileno())
    except OutputExistsError:
        return _read_key_file(path)
    except OSError as exc:
        raise KeyringError(f"cannot create the keystore wrapping key file {path}: {exc.strerror}") from None
    return key


def _read_key_file(path: StrPath) -> bytes:
    check_private(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_KEY_FILE_SIZE + 1)
    except OSError as exc:
        raise KeyringError(f"cannot read the keystore wrapping key file {path}: {exc.strerror}") from None
    parts = raw.split()
    if len(raw) > _MAX_KEY_FILE_SIZE or len(parts) != 2 or parts[0] != _KEY_FILE_TAG.encode():
        raise KeyringError(f"{path} is not an envelope keystore wrapping key file")
    try:
        key = binascii.unhexlify(parts[1])
    except binascii.Error:
        raise KeyringError(f"{path} is not an envelope keystore wrapping key file") from None
    if len(key) != WRAPPING_KEY_SIZE:
        raise KeyringError(f"{path} is not an envelope keystore wrapping key file")
    return key

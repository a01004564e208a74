"""``local:alias/NAME``, ``local:KEY-ID``, ``local:ARN``: master keys in the embedded local keystore.

The keystore (:mod:`envelope.kms.store`) plays the part of a KMS: it generates
the data key (GenerateDataKey), wraps extra copies (Encrypt) and unwraps them
(Decrypt), always with the encryption context as AAD.  The wrapped key's
``key_id`` is the master key's UUID, never an alias, so a file keeps naming
the right key after its alias is moved; the blob itself names the key too, and
the two must agree.

A key of spec RSA_* for ENCRYPT_DECRYPT works too: the data key is wrapped
to its public half locally (as ``rsa-public:`` does offline) and unwrapped by
the keystore's RSA Decrypt, so files from senders without KMS access open here.

The keystore is opened on first use, not when the keyring is built, and only
the default keyring (:func:`default_keyring`) may create it: decrypting, or
naming a key explicitly, on a machine without a keystore reports "no local
keystore at PATH" instead of leaving an empty database behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..context import EncryptionContext
from ..exceptions import KeyringError, UsageError
from ..format import DATA_KEY_SIZE, WrappedKey
from ..kms.crypto import blob as _blob
from ..kms.policy import principal as _principal
from ..kms.model.keys import DEFAULT_ALIAS, is_key_id, parse_reference
from ..kms.storage.paths import default_keystore_file
from ..kms.store import KeyStore
from .base import Keyring

if TYPE_CHECKING:
    from . import rsa_public

PROVIDER = "local"
_UNKNOWN = object()

KeystoreOption = KeyStore | str | os.PathLike[str] | None


class LocalKeyring(Keyring):
    """One key of the local keystore, or (:meth:`discovery`) any of them, for decrypting."""

    provider = PROVIDER

    def __init__(self, key: str | None, *, keystore: KeystoreOption = None, create: bool = False) -> None:
        """*key* is a key id, an ARN or ``alias/NAME``; ``None`` makes a decrypt-only discovery keyring.

        *keystore* is an open :class:`KeyStore` (used, never closed, by this
        keyring) or a path (opened on first use; default: the per-user path).
        """
        if key is not None:
            parse_reference(key)  # a malformed reference is a usage error now, not at first use
        if keystore is not None and not isinstance(keystore, (KeyStore, str, os.PathLike)):
            raise UsageError("keystore must be a KeyStore or a path")
        self._key = key
        self._keystore = keystore
        self._store: KeyStore | None = keystore if isinstance(keystore, KeyStore) else None
        self._owns_store = False
        self._create = create
        self._key_id: str | None = None
        self._public: object = _UNKNOWN
        self._store_identity: tuple[str, ...] | None = None

    @classmethod
    def discovery(cls, keystore: KeystoreOption = None) -> LocalKeyring:
        """A keyring that tries any ``local`` wrapped key: the blob names its own key."""
        return cls(None, keystore=keystore)

    @property
    def is_discovery(self) -> bool:
        return self._key is None

    @property
    def reference(self) -> str:
        if self._key is not None:
            return f"{PROVIDER}:{self._key}"
        return f"any key of the local keystore {self._keystore_path()}"

    def cache_identity(self) -> tuple[str, ...]:
        """The keystore (its real path) and the principal calling it: what key policies and grants judge.

        Before the keystore is opened, the principal it will be opened as.
        """
        store = self._store
        if store is None:
            return (PROVIDER, os.path.realpath(self._keystore_path()), _principal.current(), "")
        if self._store_identity is None:  # fixed while this store is open: asked on every cache lookup
            self._store_identity = (PROVIDER, os.path.realpath(store.path), store.principal, store.via or "")
        return self._store_identity

    # -- the Keyring interface -------------------------------------------------------------------

    def generate_data_key(self, context: EncryptionContext) -> tuple[bytearray, WrappedKey]:
        """GenerateDataKey in the keystore: the KMS makes the data key, as AWS KMS would."""
        key = self._require_key("generate a data key")
        if self._rsa() is not None:
            return super().generate_data_key(context)
        plaintext, sealed, key_id = self.store().generate_data_key(key, context, DATA_KEY_SIZE)
        self._key_id = key_id
        return plaintext, WrappedKey(PROVIDER, key_id, sealed)

    def wrap_data_key(self, plaintext: bytes | bytearray, context: EncryptionContext) -> WrappedKey:
        """Encrypt an existing data key (made by another keyring) under this key."""
        key = self._require_key("wrap a data key")
        public = self._rsa()
        if public is not None:
            return public.wrap_data_key(plaintext, context)
        sealed = self.store().encrypt(key, plaintext, context)
        return WrappedKey(PROVIDER, _blob.parse(sealed).key_id, sealed)

    def matches(self, wrapped: WrappedKey) -> bool:
        if wrapped.provider != PROVIDER:
            return self._key is not None and _is_rsa_public(wrapped) and self._matches_rsa(wrapped)
        if self._key is None:
            return True
        try:
            return wrapped.key_id.lower() == self.key_id()
        except KeyringError:
            return True  # the key cannot be looked up: let unwrap_data_key say why

    def unwrap_data_key(self, wrapped: WrappedKey, context: EncryptionContext) -> bytearray:
        """Decrypt in the keystore, insisting that the blob is sealed under the key the header names."""
        if wrapped.provider != PROVIDER and self._key is not None and _is_rsa_public(wrapped):
            from . import rsa_public
            key = self._key
            return rsa_public.open_blob(
                lambda part: self.store().decrypt_asymmetric(key, part, rsa_public.ALGORITHM),
                wrapped.key_id, wrapped.ciphertext, context)
        if wrapped.provider != PROVIDER:
            raise KeyringError(f"{wrapped.provider}:{wrapped.key_id} is not a local key")
        if not is_key_id(wrapped.key_id):
            raise KeyringError(f"the wrapped key names {wrapped.key_id!r}, which is not a local key id")
        named = wrapped.key_id.lower()
        if self._key is not None and named != self.key_id():
            raise KeyringError(f"the wrapped key is for key {named}, not for {self.reference} ({self.key_id()})")
        plaintext, _ = self.store().decrypt(wrapped.ciphertext, context, expected_key_id=named)
        return plaintext

    def prepare(self) -> None:
        """Open the keystore and resolve the key (no audited call): a missing one fails before any file."""
        if self._key is not None:
            self.key_id()

    # -- helpers ---------------------------------------------------------------------------------

    def store(self) -> KeyStore:
        """The keystore, opened on first call (and created then only if this keyring may create it)."""
        if self._store is None:
            path = None if self._keystore is None or isinstance(self._keystore, KeyStore) else self._keystore
            self._store = KeyStore(path, create=self._create)
            self._owns_store = True
        return self._store

    def key_id(self) -> str:
        """The UUID of this keyring's key (resolved once, on first need)."""
        key = self._require_key("name a key")
        if self._key_id is None:
            self._key_id = self.store().resolve_key_id(key)
        return self._key_id

    def _matches_rsa(self, wrapped: WrappedKey) -> bool:
        try:
            public = self._rsa()
        except KeyringError:
            return False
        return public is not None and public.matches(wrapped)

    def _rsa(self) -> rsa_public.RsaPublicKeyring | None:
        """For an RSA ENCRYPT_DECRYPT key, its public half as an offline keyring (looked up once)."""
        if self._public is _UNKNOWN:
            key_id, spec, usage = self.store().key_kind(self._require_key("name a key"))
            self._public = None
            if spec.startswith("RSA_") and usage == "ENCRYPT_DECRYPT":
                from . import rsa_public
                der = self.store().get_public_key(key_id).public_key
                self._public = rsa_public.RsaPublicKeyring(rsa_public.load_public_key(der, self.reference),
                                                           self.reference)
        return self._public  # type: ignore[return-value]

    def close(self) -> None:
        if self._owns_store and self._store is not None:
            self._store.close()
            self._store = None
            self._store_identity = None
            self._owns_store = False

    def _require_key(self, what: str) -> str:
        if self._key is None:
            raise UsageError(f"cannot {what} with a discovery keyring: it can only decrypt; name a key")
        return self._key

    def _keystore_path(self) -> str:
        if isinstance(self._keystore, KeyStore):
            return os.fspath(self._keystore.path)
        if self._keystore is not None:
            return os.fspath(self._keystore)
        return default_keystore_file()


def _is_rsa_public(wrapped: WrappedKey) -> bool:
    """Whether *wrapped* is an ``rsa-public:`` key; the module (pyca/cryptography's RSA code) is loaded
    only for a key of another provider than ``local``, never on the symmetric path."""
    from . import rsa_public
    return wrapped.provider == rsa_public.PROVIDER


def from_reference(rest: str, keystore: KeystoreOption = None, **_options: object) -> LocalKeyring:
    """The registry's factory for ``local:REST``; REST is ``alias/NAME``, a key id or an ARN."""
    if not rest:
        raise UsageError("local: needs a key, as in local:alias/NAME or local:KEY-ID")
    return LocalKeyring(rest, keystore=keystore)


def default_keyring(keystore: KeystoreOption = None,
                    notify: Callable[[str], object] | None = None) -> LocalKeyring:
    """The keyring of ``alias/envelope/default``, creating the keystore and the key on first use.

    *notify* hears about a creation, so the CLI can tell the user a master key
    now exists that their files depend on.
    """
    ring = LocalKeyring(DEFAULT_ALIAS, keystore=keystore, create=True)
    store = ring.store()
    meta, created = store.ensure_default_key()
    ring._key_id = meta.key_id
    if created and notify is not None:
        notify(f"created master key {DEFAULT_ALIAS} ({meta.key_id}) in the local keystore {store.path}")
    return ring

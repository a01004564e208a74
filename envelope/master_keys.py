"""Which master keys a call works under: references, keyring objects, or the local keystore.

The Python API, the random-access reader, rewrap, the S3 client and the batch
workers all take keys the same way, so the choice is made once, here: a list
of references (``scheme:rest``, resolved by :mod:`envelope.keyrings.registry`)
and keyring objects, a keyring already assembled (reused as it is), or nothing,
which means the local keystore: its default key to encrypt (created on first
use), any of its keys to decrypt.  A data key cache, when given, wraps the
result.  This module sits below all of those callers and imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .cache import CachingKeyring, DataKeyCache
from .keyrings.base import DEFAULT_MAX_WRAPPED_KEYS, Keyring, MultiKeyring
from .keyrings.registry import resolve

KeySpec = str | Keyring
#: Master keys: references, keyring objects, or a keyring already assembled (reused across many files).
Keys = Sequence[KeySpec] | MultiKeyring
Notify = Callable[[str], object]


def _keyrings(keys: Keys, keystore: str | None, max_wrapped_keys: int, notify: Notify | None = None) -> MultiKeyring:
    if isinstance(keys, MultiKeyring):
        return keys
    options = {"keystore": keystore} if keystore else {}
    return MultiKeyring((k if isinstance(k, Keyring) else resolve(k, notify, **options) for k in keys),
                        max_wrapped_keys=max_wrapped_keys)


def _cached(keyring: MultiKeyring, cache: DataKeyCache | None) -> MultiKeyring:
    if cache is None or isinstance(keyring, CachingKeyring):
        return keyring
    return CachingKeyring(keyring, cache)


def encryption_keyring(keys: Keys | None, *, keystore: str | None = None, notify: Notify | None = None,
                       cache: DataKeyCache | None = None) -> MultiKeyring:
    """The keyring for encrypting; with no keys, the local default key, created on first use."""
    if keys:
        return _cached(_keyrings(keys, keystore, DEFAULT_MAX_WRAPPED_KEYS, notify), cache)
    from .keyrings.local import default_keyring

    return _cached(MultiKeyring([default_keyring(keystore=keystore, notify=notify)]), cache)


def decryption_keyring(keys: Keys | None, *, keystore: str | None = None, cache: DataKeyCache | None = None,
                       max_wrapped_keys: int = DEFAULT_MAX_WRAPPED_KEYS, notify: Notify | None = None) -> MultiKeyring:
    """The keyring for decrypting; with no keys, any key of the local keystore.  *notify* hears
    the notices of key references (a local key given without its scheme)."""
    if keys:
        return _cached(_keyrings(keys, keystore, max_wrapped_keys, notify), cache)
    from .keyrings.local import LocalKeyring

    return _cached(MultiKeyring([LocalKeyring.discovery(keystore=keystore)], max_wrapped_keys=max_wrapped_keys),
                   cache)

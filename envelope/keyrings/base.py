"""The keyring interface: who may wrap and unwrap a file's data key.

A keyring stands for one master key in one key manager.  Encrypting asks the
first keyring to generate a data key and every other to wrap a copy of it, so a
file can be opened by any one of its master keys.  Decrypting asks each keyring
that recognises one of the file's wrapped keys to unwrap it, in order, until one
succeeds.  The encryption context travels with every call: key managers bind it
(as AAD), so a wrapped key only unwraps under the context it was made with.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterable, Sequence
from typing import Any

from ..context import EncryptionContext
from ..exceptions import EnvelopeError, FormatError, KeyNotFoundError, KeyringError, UsageError
from ..format import DATA_KEY_SIZE, MAX_WRAPPED_KEYS, WrappedKey

#: Files with more wrapped keys than this are refused before any key manager is called.
DEFAULT_MAX_WRAPPED_KEYS = 10


class DataKey:
    """A plaintext data key and its wrapped copies.  Call :meth:`clear` when done."""

    __slots__ = ("plaintext", "wrapped")

    def __init__(self, plaintext: bytearray, wrapped: tuple[WrappedKey, ...]) -> None:
        self.plaintext = plaintext
        self.wrapped = wrapped

    def __repr__(self) -> str:
        return f"DataKey(wrapped={self.wrapped!r})"  # never the plaintext

    def clear(self) -> None:
        for i in range(len(self.plaintext)):
            self.plaintext[i] = 0

    def __enter__(self) -> DataKey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()


class Keyring(abc.ABC):
    """One master key.  Subclasses set :attr:`provider` to their scheme name."""

    provider: str = "abstract"
    _cache_token: str | None = None

    @property
    @abc.abstractmethod
    def reference(self) -> str:
        """The reference string a user would type for this key (for messages)."""

    def cache_identity(self) -> tuple[str, ...]:
        """Who this keyring acts as, and with what: the name a data-key cache partitions by.

        A reference names a key, not the caller: ``local:alias/x`` is one thing
        to alice and another to bob, or in another keystore.  Two keyrings of
        equal reference and identity may share cached data keys, so the
        identity must cover everything that decides what the keyring may
        unwrap (the principal, the credentials, the key itself) and must never
        be secret: it is hashed into a cache key, not kept safe.  A keyring
        that cannot say (this default) is its own partition, shared with no
        other object.
        """
        if self._cache_token is None:
            self._cache_token = os.urandom(16).hex()
        return ("object", self._cache_token)

    def generate_data_key(self, context: EncryptionContext) -> tuple[bytearray, WrappedKey]:
        """A fresh random data key and its copy wrapped under this master key.

        Key managers that generate keys themselves (a KMS) override this.
        """
        plaintext = bytearray(os.urandom(DATA_KEY_SIZE))
        return plaintext, self.wrap_data_key(plaintext, context)

    @abc.abstractmethod
    def wrap_data_key(self, plaintext: bytes | bytearray, context: EncryptionContext) -> WrappedKey:
        """Wrap an existing data key under this master key."""

    @abc.abstractmethod
    def matches(self, wrapped: WrappedKey) -> bool:
        """Whether this keyring should try to unwrap *wrapped* (cheap, no crypto)."""

    @abc.abstractmethod
    def unwrap_data_key(self, wrapped: WrappedKey, context: EncryptionContext) -> bytearray:
        """Return the plaintext data key, or raise :class:`KeyringError`."""

    def prepare(self) -> None:
        """Check what can be checked before the first file, without a KMS call (a missing keystore, alias...).

        A batch of files then fails once, not once per file.  The default checks nothing.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.reference}>"

    def __reduce_ex__(self, protocol: object) -> Any:
        raise refuse_pickle(f"the keyring {self.reference}")


def refuse_pickle(what: str) -> TypeError:
    """The error for pickling what holds key material or a key manager's client (a raw key would travel in clear)."""
    return TypeError(f"{what} is not picklable: it may hold key material or a key manager's client; "
                     "send key references (strings such as raw-aes:PATH or aws-kms:ARN) and build keyrings "
                     "where they are used")


class MultiKeyring:
    """An ordered list of keyrings acting as one.

    *max_wrapped_keys* bounds the work a file can ask of the reader: each
    wrapped key may cost a KMS call, so a hostile file listing many keys for
    the reader's KMS is refused before the first one.
    """

    def __init__(self, keyrings: Iterable[Keyring], *, max_wrapped_keys: int = DEFAULT_MAX_WRAPPED_KEYS) -> None:
        self.keyrings: tuple[Keyring, ...] = tuple(keyrings)
        if not self.keyrings:
            raise KeyringError("no master key given")
        if not 1 <= max_wrapped_keys <= MAX_WRAPPED_KEYS:
            raise UsageError(f"the wrapped-key limit must be from 1 to {MAX_WRAPPED_KEYS}")
        self.max_wrapped_keys = max_wrapped_keys

    def __reduce_ex__(self, protocol: object) -> Any:
        raise refuse_pickle("a keyring list (" + ", ".join(k.reference for k in self.keyrings) + ")")

    def prepare(self, encrypting: bool) -> None:
        """Every keyring's :meth:`Keyring.prepare`: all must pass to encrypt (each wraps), one to decrypt."""
        failures: list[EnvelopeError] = []
        for keyring in self.keyrings:
            try:
                keyring.prepare()
            except EnvelopeError as exc:
                if encrypting:
                    raise
                failures.append(exc)
        if failures and len(failures) == len(self.keyrings):
            raise failures[0]

    def check_wrapped_count(self, wrapped_keys: Sequence[WrappedKey]) -> None:
        if len(wrapped_keys) > self.max_wrapped_keys:
            raise FormatError(f"the file has {len(wrapped_keys)} wrapped keys; at most {self.max_wrapped_keys} "
                              "are accepted (raise it with --max-wrapped-keys)")

    def generate_data_key(self, context: EncryptionContext, plaintext_size: int | None = None) -> DataKey:
        """A fresh data key wrapped under every master key (*plaintext_size* matters only to caches)."""
        plaintext, first = self.keyrings[0].generate_data_key(context)
        if len(plaintext) != DATA_KEY_SIZE:
            raise KeyringError(f"{self.keyrings[0].reference} returned a data key of the wrong size")
        wrapped = [first]
        try:
            for keyring in self.keyrings[1:]:
                wrapped.append(keyring.wrap_data_key(plaintext, context))
        except BaseException:
            DataKey(plaintext, ()).clear()
            raise
        return DataKey(plaintext, tuple(wrapped))

    def unwrap(self, wrapped_keys: Sequence[WrappedKey], context: EncryptionContext) -> bytearray:
        """Unwrap the first wrapped key any keyring can open; report every failure otherwise."""
        self.check_wrapped_count(wrapped_keys)
        failures: list[str] = []
        for wrapped in wrapped_keys:
            for keyring in self.keyrings:
                if not keyring.matches(wrapped):
                    continue
                try:
                    plaintext = keyring.unwrap_data_key(wrapped, context)
                except EnvelopeError as exc:
                    failures.append(f"{wrapped.provider}:{wrapped.key_id}: {exc}")
                    continue
                if len(plaintext) == DATA_KEY_SIZE:
                    return plaintext
                failures.append(f"{wrapped.provider}:{wrapped.key_id}: unwrapped key has the wrong size")
        if failures:
            raise KeyringError("could not unwrap the data key: " + "; ".join(failures))
        names = ", ".join(f"{w.provider}:{w.key_id}" for w in wrapped_keys)
        given = ", ".join(k.reference for k in self.keyrings)
        raise KeyNotFoundError(f"none of the keys given ({given}) can open this file; it is wrapped for {names}")

"""The local KMS's cryptographic calls: GenerateDataKey, Encrypt, Decrypt, ReEncrypt, GenerateRandom.

A mix-in of :class:`envelope.kms.store.KeyStore`, kept apart from the
management calls because these are the ones that touch key material, and the
rules for them are few and strict:

- only an ``Enabled`` key is used, and the refusal names the key and its state;
- the encryption context is bound as AAD, and only its keys reach the audit row;
- the blob names its key and backing version, so Decrypt needs no key id, and
  an *expected* key, when given, is enforced before anything is opened;
- Encrypt takes at most 4096 bytes: larger data is for envelope encryption;
- plaintext data keys are returned in ``bytearray`` objects for the caller to
  zero; no plaintext or key ever appears in an error or an audit row.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

from ... import context as _context
from ...context import EncryptionContext
from ...exceptions import FormatError, IncorrectKeyError, InvalidCiphertextError, UsageError
from ..crypto import blob as _blob
from ..model import lifecycle
from ..storage import material
from .asymmetric_ops import require_symmetric
from ..storage.db import Call
from .part import StorePart
from ..model.keys import DATA_KEY_SPECS

#: NumberOfBytes range of GenerateDataKey and GenerateRandom, as in AWS KMS.
MAX_DATA_KEY_BYTES = 1024
MAX_RANDOM_BYTES = 1024

Bytes = bytes | bytearray | memoryview


class CryptoOperations(StorePart):
    """The cryptographic half of :class:`KeyStore`; see the module docstring for the rules."""

    def generate_data_key(self, ref: str, context: EncryptionContext | None = None,
                          number_of_bytes: int | None = None, *, key_spec: str | None = None,
                          grant_tokens: Sequence[str] = ()) -> tuple[bytearray, bytes, str]:
        """GenerateDataKey: fresh random bytes, and the same bytes sealed under *ref*'s newest backing key.

        The size is *key_spec* (``AES_256``, the default, or ``AES_128``) or
        *number_of_bytes* (1 to 1024), not both.  Returns ``(plaintext, blob,
        key_id)``; zero *plaintext* when done with it.
        """
        size = _data_key_size(number_of_bytes, key_spec)
        ctx = _context.normalize(context)
        with self._crypto_call("GenerateDataKey", ref, ctx, {"number_of_bytes": size}, grant_tokens) \
                as (call, key_id):
            plaintext = bytearray(os.urandom(size))
            try:
                sealed = material.seal(call.conn, self._db.wrapping_key(call.conn), key_id, plaintext, ctx)
            except BaseException:
                material.wipe(plaintext)
                raise
        return plaintext, sealed, key_id

    def generate_data_key_without_plaintext(self, ref: str, context: EncryptionContext | None = None,
                                            number_of_bytes: int | None = None, *, key_spec: str | None = None,
                                            grant_tokens: Sequence[str] = ()) -> tuple[bytes, str]:
        """GenerateDataKeyWithoutPlaintext: only the sealed data key, for a party that will decrypt later.

        Returns ``(blob, key_id)``.
        """
        size = _data_key_size(number_of_bytes, key_spec)
        ctx = _context.normalize(context)
        with self._crypto_call("GenerateDataKeyWithoutPlaintext", ref, ctx, {"number_of_bytes": size},
                               grant_tokens) as (call, key_id):
            plaintext = bytearray(os.urandom(size))
            try:
                sealed = material.seal(call.conn, self._db.wrapping_key(call.conn), key_id, plaintext, ctx)
            finally:
                material.wipe(plaintext)
        return sealed, key_id

    def encrypt(self, ref: str, plaintext: Bytes, context: EncryptionContext | None = None, *,
                grant_tokens: Sequence[str] = ()) -> bytes:
        """Encrypt: seal up to 4096 bytes under *ref*'s newest backing key; returns the blob."""
        size = memoryview(plaintext).nbytes
        if size > _blob.MAX_PLAINTEXT_SIZE:
            raise UsageError(
                f"Encrypt takes at most {_blob.MAX_PLAINTEXT_SIZE} bytes of plaintext, got {size}: "
                "use envelope encryption for larger data (a data key from GenerateDataKey, "
                "as envelope encrypt-file does)"
            )
        if size == 0:
            raise UsageError("Encrypt needs at least 1 byte of plaintext")
        ctx = _context.normalize(context)
        with self._crypto_call("Encrypt", ref, ctx, {}, grant_tokens) as (call, key_id):
            return material.seal(call.conn, self._db.wrapping_key(call.conn), key_id, plaintext, ctx)

    def decrypt(self, blob: Bytes, context: EncryptionContext | None = None,
                expected_key_id: str | None = None, *, grant_tokens: Sequence[str] = ()) -> tuple[bytearray, str]:
        """Decrypt: open a blob from Encrypt or GenerateDataKey; returns ``(plaintext, key_id)``.

        The blob names its key.  With *expected_key_id* (any reference), a blob
        sealed under another key is refused before any decryption is tried.
        """
        ctx = _context.normalize(context)
        with self._db_call("Decrypt", ctx, {"expected_key": expected_key_id}, grant_tokens) as call:
            parsed = self._parse_blob(call, blob, expected_key_id)
            self._usable(call, parsed.key_id)
            return material.open_blob(call.conn, self._db.wrapping_key(call.conn), parsed, ctx), parsed.key_id

    def re_encrypt(self, blob: Bytes, destination_key: str, source_context: EncryptionContext | None = None,
                   destination_context: EncryptionContext | None = None, *,
                   expected_source_key_id: str | None = None,
                   grant_tokens: Sequence[str] = ()) -> tuple[bytes, str, str]:
        """ReEncrypt: open a blob and seal its plaintext under *destination_key*, inside the keystore.

        The plaintext never reaches the caller.  Use it to move a blob to
        another key, to another context, or (same key) to the key's newest
        backing version after a rotation.  An omitted *destination_context*
        means the source's (AWS's API would drop the binding to an empty
        context instead; carrying it over is the safer default).  Returns
        ``(blob, source_key_id, destination_key_id)``.
        """
        source_ctx = _context.normalize(source_context)
        dest_ctx = source_ctx if destination_context is None else _context.normalize(destination_context)
        request = {"destination_key": destination_key, "expected_source_key": expected_source_key_id,
                   "destination_context_keys": sorted(dest_ctx)}
        with self._db_call("ReEncrypt", source_ctx, request, grant_tokens) as call:
            parsed = self._parse_blob(call, blob, expected_source_key_id)
            destination_id = self._resolve(call.conn, destination_key)
            same = {"kms:ReEncryptOnSameKey": destination_id == parsed.key_id}
            source_id = self._usable(call, parsed.key_id, action="ReEncryptFrom", facts=same)
            wrapping = self._db.wrapping_key(call.conn)
            plaintext = material.open_blob(call.conn, wrapping, parsed, source_ctx)
            try:
                dest_id = self._usable(call, destination_key, destination=True, context=dest_ctx, facts=same)
                sealed = material.seal(call.conn, wrapping, dest_id, plaintext, dest_ctx)
            finally:
                material.wipe(plaintext)
            call.key_id = source_id
        return sealed, source_id, dest_id

    def generate_random(self, number_of_bytes: int) -> bytes:
        """GenerateRandom: bytes from the OS's CSPRNG, 1 to 1024 at a time."""
        if isinstance(number_of_bytes, bool) or not isinstance(number_of_bytes, int) \
                or not 1 <= number_of_bytes <= MAX_RANDOM_BYTES:
            raise UsageError(f"GenerateRandom makes 1 to {MAX_RANDOM_BYTES} bytes")
        with self._operation("GenerateRandom", {"number_of_bytes": number_of_bytes}):
            return os.urandom(number_of_bytes)

    # -- internals -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _db_call(self, name: str, ctx: EncryptionContext, request: dict[str, Any],
                 grant_tokens: Sequence[str] = ()) -> Iterator[Call]:
        with self._operation(name, request) as call:
            call.context_keys = sorted(ctx)
            call.context = dict(ctx)
            call.grant_tokens = tuple(grant_tokens)
            yield call

    @contextlib.contextmanager
    def _crypto_call(self, name: str, ref: str, ctx: EncryptionContext, request: dict[str, Any],
                     grant_tokens: Sequence[str] = ()) -> Iterator[tuple[Call, str]]:
        with self._db_call(name, ctx, {"key": ref, **request}, grant_tokens) as call:
            yield call, self._usable(call, ref)

    def _usable(self, call: Call, ref: str, destination: bool = False, action: str | None = None,
                context: EncryptionContext | None = None, facts: dict[str, Any] | None = None) -> str:
        """Resolve *ref* for cryptography: the caller must be allowed, and the key exist and be Enabled."""
        if destination:
            key_id = self._resolve(call.conn, ref)
            call.destination_key_id = key_id
            self._authorize(call, key_id, "ReEncryptTo", context, **(facts or {}))
        else:
            key_id = self._resolve_in(call, ref, action, **(facts or {}))
        lifecycle.require(call.conn, key_id, call.operation)
        require_symmetric(call.conn, key_id, call.operation)
        return key_id

    def _parse_blob(self, call: Call, blob: Bytes, expected: str | None) -> _blob.Blob:
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise UsageError("the ciphertext blob must be bytes")
        try:
            parsed = _blob.parse(blob)
        except FormatError as exc:
            raise InvalidCiphertextError(f"cannot decrypt: {exc}") from None
        call.key_id = parsed.key_id
        if expected is not None:
            expected_id = self._resolve(call.conn, expected)
            if expected_id != parsed.key_id:
                raise IncorrectKeyError(
                    f"the ciphertext was encrypted under key {parsed.key_id}, not the expected key {expected_id}"
                )
        return parsed


def _data_key_size(number_of_bytes: int | None, key_spec: str | None) -> int:
    if number_of_bytes is not None and key_spec is not None:
        raise UsageError("give a key spec or a number of bytes for the data key, not both")
    if key_spec is not None:
        if key_spec not in DATA_KEY_SPECS:
            raise UsageError(f"unknown data key spec {key_spec!r} (known: {', '.join(DATA_KEY_SPECS)})")
        return DATA_KEY_SPECS[key_spec]
    if number_of_bytes is None:
        return DATA_KEY_SPECS["AES_256"]
    if isinstance(number_of_bytes, bool) or not isinstance(number_of_bytes, int) \
            or not 1 <= number_of_bytes <= MAX_DATA_KEY_BYTES:
        raise UsageError(f"number_of_bytes must be from 1 to {MAX_DATA_KEY_BYTES}")
    return number_of_bytes

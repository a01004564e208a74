"""Access keys: what turns "who is calling" from a claim into a proof, for calls that come over the wire.

A credential is an AWS-style access key pair issued to one of the keystore's
principals: an access key id (public, 20 characters, ``EKIA...``) and a secret
access key (40 characters, shown once, when it is created).  A client signs
each request with the secret (AWS Signature Version 4,
:mod:`envelope.server.sigv4`); the server looks the secret up by the key id,
recomputes the signature, and runs the call as the credential's principal.

The secret is stored sealed under the keystore wrapping key, bound to its
access key id, exactly as backing keys are (:mod:`envelope.kms.storage.protection`):
a copy of the database alone gives no one a working credential.  It never
appears in an audit row, an error, a repr or a log.

Only the keystore's owner (``local:root``) issues, lists, disables, enables
and deletes credentials, as only an account's administrators manage IAM
access keys; each of those calls is audited like any other
(``CreateAccessKey``, ``ListAccessKeys``, ``UpdateAccessKey``,
``DeleteAccessKey``).  As in IAM, a principal holds at most
:data:`MAX_CREDENTIALS_PER_PRINCIPAL` access keys, so a key can be rotated
(create the new one, move clients, delete the old) but not multiplied.
"""

from __future__ import annotations

import base64
import os
import re
from typing import Any, NamedTuple

from ...exceptions import AccessDeniedError, KeyNotFoundError, KeyStateError, UsageError
from ..policy import principal as _principal
from ..storage.db import Call
from .part import StorePart

ENABLED, DISABLED = "Enabled", "Disabled"
ACCESS_KEY_PREFIX = "EKIA"
ACCESS_KEY_ID_SIZE = 20
SECRET_SIZE = 40  # characters: base64 of 30 random bytes, as long as AWS's
MAX_CREDENTIALS_PER_PRINCIPAL = 2  # IAM's AccessKeysPerUser quota
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_ACCESS_KEY_ID = re.compile(rf"{ACCESS_KEY_PREFIX}[{_ID_ALPHABET}]{{{ACCESS_KEY_ID_SIZE - len(ACCESS_KEY_PREFIX)}}}")


class Credential(NamedTuple):
    """An access key's public facts.  Holds no secret, so it prints, pickles and serialises safely."""

    access_key_id: str
    principal: str
    state: str  # Enabled or Disabled
    creation_date: str

    @property
    def enabled(self) -> bool:
        return self.state == ENABLED

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


def is_access_key_id(text: str) -> bool:
    return isinstance(text, str) and _ACCESS_KEY_ID.fullmatch(text) is not None


class CredentialOperations(StorePart):
    """CreateAccessKey, ListAccessKeys, UpdateAccessKey, DeleteAccessKey; the server's secret lookup."""

    def create_credential(self, principal: str) -> tuple[Credential, str]:
        """A new Enabled access key for *principal*; returns it and its secret, which is never shown again."""
        who = _principal.normalize(principal)
        with self._operation("CreateAccessKey", {"principal": who}) as call:
            self._require_owner(call)
            (held,) = call.conn.execute("SELECT count(*) FROM credentials WHERE principal = ?", (who,)).fetchone()
            if held >= MAX_CREDENTIALS_PER_PRINCIPAL:
                raise UsageError(f"{who} already has {held} access keys, the most a principal may hold: "
                                 "delete one first (envelope keys credentials delete ID)")
            access_key_id = _new_access_key_id()
            call.request["access_key_id"] = access_key_id
            secret = bytearray(base64.b64encode(os.urandom(SECRET_SIZE * 3 // 4)))
            try:
                sealed = self._db.wrapping_key(call.conn).seal_credential(access_key_id, secret)
                text = secret.decode("ascii")
            finally:
                secret[:] = bytes(len(secret))
            now = self._db.timestamp()
            call.conn.execute("INSERT INTO credentials (access_key_id, principal, state, sealed_secret, created_at)"
                              " VALUES (?, ?, ?, ?, ?)", (access_key_id, who, ENABLED, sealed, now))
            return Credential(access_key_id, who, ENABLED, now), text

    def list_credentials(self) -> list[Credential]:
        """Every access key, oldest first (public facts only)."""
        with self._operation("ListAccessKeys", {}) as call:
            self._require_owner(call)
            rows = call.conn.execute("SELECT access_key_id, principal, state, created_at FROM credentials"
                                     " ORDER BY created_at, access_key_id").fetchall()
        return [Credential(*row) for row in rows]

    def set_credential_state(self, access_key_id: str, state: str) -> Credential:
        """UpdateAccessKey: a Disabled key is refused by the server until enabled again."""
        if state not in (ENABLED, DISABLED):
            raise UsageError(f"an access key is {ENABLED} or {DISABLED}, not {state!r}")
        with self._operation("UpdateAccessKey", {"access_key_id": access_key_id, "state": state}) as call:
            self._require_owner(call)
            self._credential_row(call, access_key_id)
            call.conn.execute("UPDATE credentials SET state = ? WHERE access_key_id = ?", (state, access_key_id))
            return self._credential_row(call, access_key_id)

    def delete_credential(self, access_key_id: str) -> None:
        """DeleteAccessKey: the secret is destroyed (SQLite's secure_delete overwrites its row)."""
        with self._operation("DeleteAccessKey", {"access_key_id": access_key_id}) as call:
            self._require_owner(call)
            self._credential_row(call, access_key_id)
            call.conn.execute("DELETE FROM credentials WHERE access_key_id = ?", (access_key_id,))

    def credential_secret(self, access_key_id: str) -> tuple[str, bytes]:
        """(principal, secret) of an Enabled access key, for checking a signature; not audited.

        Raises :class:`KeyNotFoundError` for an unknown id and
        :class:`KeyStateError` for a disabled key; neither message holds a secret.
        """
        if not is_access_key_id(access_key_id):
            raise KeyNotFoundError("no such access key")
        with self._db.reading() as conn:
            row = conn.execute("SELECT principal, state, sealed_secret FROM credentials WHERE access_key_id = ?",
                               (access_key_id,)).fetchone()
            if row is None:
                raise KeyNotFoundError(f"no access key {access_key_id}")
            if row[1] != ENABLED:
                raise KeyStateError(f"access key {access_key_id} is {row[1]}")
            secret = self._db.wrapping_key(conn).open_credential(access_key_id, row[2])
        try:
            return str(row[0]), bytes(secret)
        finally:
            secret[:] = bytes(len(secret))

    def _require_owner(self, call: Call) -> None:
        caller = self._db.principal
        if caller not in (_principal.ROOT, self._db.owner):
            raise AccessDeniedError(f"{caller} may not {call.operation}: only the keystore's owner "
                                    f"({self._db.owner}) manages access keys")

    def _credential_row(self, call: Call, access_key_id: str) -> Credential:
        row = None
        if is_access_key_id(access_key_id):
            row = call.conn.execute("SELECT access_key_id, principal, state, created_at FROM credentials"
                                    " WHERE access_key_id = ?", (access_key_id,)).fetchone()
        if row is None:
            raise KeyNotFoundError(f"no access key {access_key_id!r} in the keystore {self.path}")
        return Credential(*row)


def _new_access_key_id() -> str:
    import secrets  # with random and hashlib: only making an access key needs them

    size = ACCESS_KEY_ID_SIZE - len(ACCESS_KEY_PREFIX)
    return ACCESS_KEY_PREFIX + "".join(secrets.choice(_ID_ALPHABET) for _ in range(size))


# -- the functions the server and the command line call --------------------------------------------


def create_credential(store: CredentialOperations, principal: str) -> tuple[Credential, str]:
    """A new access key for *principal*: the credential and its secret (returned this once)."""
    return store.create_credential(principal)


def list_credentials(store: CredentialOperations) -> list[Credential]:
    return store.list_credentials()


def disable_credential(store: CredentialOperations, access_key_id: str) -> Credential:
    return store.set_credential_state(access_key_id, DISABLED)


def enable_credential(store: CredentialOperations, access_key_id: str) -> Credential:
    return store.set_credential_state(access_key_id, ENABLED)


def delete_credential(store: CredentialOperations, access_key_id: str) -> None:
    store.delete_credential(access_key_id)


def secret_for(store: CredentialOperations, access_key_id: str) -> tuple[str, bytes]:
    """(principal, secret) of an Enabled access key; KeyNotFoundError if unknown, KeyStateError if disabled."""
    return store.credential_secret(access_key_id)

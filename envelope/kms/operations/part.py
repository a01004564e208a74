"""What every mix-in of :class:`~envelope.kms.store.KeyStore` may rely on.

The keystore is one class assembled from mix-ins, one per family of KMS calls
(keys, naming, cryptography, policies, rotation, grants, imports, asymmetric
keys, regions, credentials).  This base declares, once, the state and the hooks
they share, so that no mix-in imports the keystore; the keystore itself,
:class:`~envelope.kms.operations.key_policies.PolicyOperations` (authorization,
a new key's policy) or :class:`~envelope.kms.operations.keys.KeyOperations` (a
new key's row, a key's metadata) supplies them.  It is last in the method
order, so a real definition anywhere wins over these stubs.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..model.keys import KeyMetadata
from ..policy.grants import Delegation
from ..storage import schema
from ..storage.db import Call, Database

if TYPE_CHECKING:
    from pathlib import Path


class StorePart:
    _db: Database
    _file: str  # the keystore file, for os calls and SQLite
    keystore_id: str
    region: str
    via: str | None

    @property
    def path(self) -> Path:
        """The keystore file.  Made on demand: opening a keystore does not need pathlib (nor its import time)."""
        from pathlib import Path
        return Path(self._file)

    def _operation(self, name: str, request: dict[str, Any]) -> contextlib.AbstractContextManager[Call]:
        """One audited call: a transaction and its audit row."""
        raise NotImplementedError

    def _resolve_in(self, call: Call, ref: str, action: str | None = None, *,
                    delegation: Delegation | None = None, **facts: Any) -> str:
        """*ref*'s key id, once the caller is allowed *action* (default: the call's operation) on it."""
        raise NotImplementedError

    def _resolve_any(self, call: Call, ref: str) -> str:
        """*ref*'s key id, recorded in the call, with no authorization (the caller decides who may)."""
        raise NotImplementedError

    def _resolve(self, conn: sqlite3.Connection, ref: str) -> str:
        """*ref*'s key id: a lookup only."""
        raise NotImplementedError

    def _authorize(self, call: Call, key_id: str, action: str, context: Mapping[str, str] | None, *,
                   delegation: Delegation | None = None, **facts: Any) -> None:
        """Return if the caller may perform *action* on *key_id*; raise AccessDeniedError otherwise."""
        raise NotImplementedError

    def _insert_key(self, conn: sqlite3.Connection, description: str, policy: dict[str, Any] | None = None,
                    origin: str = "ENVELOPE", key_spec: str = schema.KEY_SPEC,
                    key_usage: str = schema.KEY_USAGE,
                    multi_region_role: str | None = None, key_id: str | None = None,
                    primary_region: str | None = None) -> str:
        """A new key's row (and its first backing key, unless it is a replica or awaits import); its id."""
        raise NotImplementedError

    def _metadata(self, conn: sqlite3.Connection, key_id: str) -> KeyMetadata:
        """DescribeKey's answer for *key_id*, read inside the caller's transaction."""
        raise NotImplementedError

    def _new_key_policy(self, policy: str | Mapping[str, Any] | None, admins: Sequence[str],
                        users: Sequence[str], bypass: bool) -> dict[str, Any]:
        """The policy document of a key being created (checked against locking its author out)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

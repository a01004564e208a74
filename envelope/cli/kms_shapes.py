"""``envelope keys --json``: AWS KMS's response shapes, built by the KMS server's own operations.

The server (:mod:`envelope.server.operations`) already turns the keystore's
answers into the members of AWS's responses for the SDKs.  ``--json`` prints
those same members as the AWS CLI prints them -- blobs in base64, timestamps
in ISO 8601, absent members left out, listings whole -- so a ``jq`` script
written against ``aws kms`` reads ``envelope keys`` unchanged.  Keys are named
by the keystore's own ARNs (``arn:envelope:kms:...``), which every KEY
argument accepts back.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from ..exceptions import UsageError
from ..kms.model.clock import parse_iso
from ..kms.model.keys import alias_arn, key_arn
from ..server.errors import AwsError
from ..server.operations import OPERATIONS
from ..server.operations_keys import metadata
from ..server.wire import Wire

if TYPE_CHECKING:
    from ..kms.model.keys import KeyMetadata
    from ..kms.store import KeyStore

#: A listing's page size: all of it, as the AWS CLI pages through every page before printing.
_WHOLE_LISTING = 2**31 - 1


class LocalWire(Wire):
    """The server's naming with the keystore's ARNs: the account is the keystore's id."""

    def key_arn(self, key_id: str, region: str | None = None) -> str:
        return key_arn(self.account, key_id, region or self.region)

    def alias_arn(self, alias: str) -> str:
        return alias_arn(self.account, alias, self.region)

    def ref(self, text: str) -> str:
        return text  # the keystore reads its own ids, ARNs and aliases, and names what it refuses


def wire_of(store: KeyStore) -> LocalWire:
    return LocalWire(store.region, store.keystore_id)


def call(store: KeyStore, operation: str, **request: Any) -> dict[str, Any]:
    """*operation* (AWS's name) run as the KMS server runs it; members given as None are absent."""
    req = {name: value for name, value in request.items() if value is not None}
    if operation.startswith("List"):
        req.setdefault("Limit", _WHOLE_LISTING)
    try:
        return OPERATIONS[operation](store, req, wire_of(store))
    except AwsError as exc:  # the server's own refusals (an unsupported member): one line, as any usage error
        raise UsageError(f"{exc.code}: {exc.message}" if exc.message else exc.code) from None


def key_metadata(store: KeyStore, meta: KeyMetadata, member: str = "KeyMetadata") -> dict[str, Any]:
    return {member: metadata(meta, wire_of(store))}


def show(result: dict[str, Any]) -> int:
    """Print an AWS response as ``aws kms`` does: nothing when it has no members."""
    if result:
        print(json.dumps(rendered(result), indent=2))  # as every other --json here
    return 0


def is_timestamp(member: str) -> bool:
    """KMS's timestamp members all end so (CreationDate, DeletionDate, ..., ParametersValidTo)."""
    return member.endswith(("Date", "ValidTo"))


def rendered(value: Any, member: str = "") -> Any:
    """JSON values as the AWS CLI prints them: bytes in base64, timestamps ISO 8601, None left out."""
    if isinstance(value, dict):
        return {name: rendered(item, name) for name, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [rendered(item, member) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, str) and is_timestamp(member):
        return parse_iso(value).isoformat()
    return value

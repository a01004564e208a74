"""What the local KMS says about its keys, and how keys are named.

Everything here is public information: metadata records returned by the
keystore, and the syntax of the three ways to name a key (key id, ARN, alias),
checked before any database lookup so a typo is a usage error, not a miss.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from ...exceptions import UsageError

ALIAS_PREFIX = "alias/"
#: Like AWS's ``alias/aws/``: names under it belong to the tool, not the user.
RESERVED_ALIAS_PREFIX = "alias/aws/"
DEFAULT_ALIAS = "alias/envelope/default"
MAX_ALIAS_SIZE = 256
ARN_PREFIX = "arn:envelope:kms:local:"

_ALIAS_RE = re.compile(r"alias/[A-Za-z0-9/_-]+\Z")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_MRK_RE = re.compile(r"mrk-[0-9a-fA-F]{32}\Z")
_ARN_RE = re.compile(r"arn:envelope:kms:[a-z0-9-]{1,32}:([0-9a-f]+):(key/.*|alias/.*)\Z", re.DOTALL)
#: A keystore's region when none was chosen.
DEFAULT_REGION = "local"
_REGION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}\Z")


class KeyMetadata(NamedTuple):
    """DescribeKey's answer.  Holds no key material."""

    key_id: str
    arn: str
    description: str
    created_at: str
    state: str
    origin: str
    key_spec: str
    key_usage: str
    key_manager: str
    aliases: tuple[str, ...]
    backing_versions: int
    rotation_enabled: bool
    deletion_date: str | None
    rotation_period_days: int | None = None
    next_rotation_date: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    multi_region: bool = False
    multi_region_role: str | None = None  # PRIMARY or REPLICA
    primary_region: str | None = None

    @property
    def enabled(self) -> bool:
        return self.state == "Enabled"

    @property
    def tag_dict(self) -> dict[str, str]:
        return dict(self.tags)

    def to_dict(self) -> dict[str, Any]:
        data = self._asdict()
        data["aliases"] = list(self.aliases)
        data["tags"] = dict(self.tags)
        return data


class KeyRotation(NamedTuple):
    """One backing key of a key: version 1 is the original, each later one a rotation."""

    version: int
    created_at: str
    rotation_type: str | None  # "AUTOMATIC", "ON_DEMAND", or None for the original material

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


class RotationStatus(NamedTuple):
    """GetKeyRotationStatus plus ListKeyRotations: the schedule and the history."""

    key_id: str
    rotation_enabled: bool
    rotation_period_days: int | None
    next_rotation_date: str | None
    rotations: tuple[KeyRotation, ...]

    def to_dict(self) -> dict[str, Any]:
        data = self._asdict()
        data["rotations"] = [r.to_dict() for r in self.rotations]
        return data


class DeletionSchedule(NamedTuple):
    """ScheduleKeyDeletion's answer."""

    key_id: str
    state: str
    deletion_date: str
    pending_window_days: int

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


class MaintenanceReport(NamedTuple):
    """What a maintenance pass did: keys rotated on schedule, keys whose material was destroyed."""

    rotated: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"rotated": list(self.rotated), "deleted": list(self.deleted)}


class AliasEntry(NamedTuple):
    alias_name: str
    key_id: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


class AuditEvent(NamedTuple):
    """One row of the audit trail: who did what to which key, and whether it worked."""

    id: int
    ts: str
    principal: str
    operation: str
    key_id: str | None
    ok: bool
    error: str | None
    request: str | None  # JSON of the non-secret parameters
    alias: str | None = None  # the alias the caller named
    context_keys: tuple[str, ...] | None = None  # the encryption context's keys, never its values
    destination_key_id: str | None = None  # ReEncrypt's target
    source: str | None = None  # the caller's network address, for a call that came through the server
    access_key_id: str | None = None  # the access key whose signature authenticated the caller

    def to_dict(self) -> dict[str, Any]:
        data = self._asdict()
        data["request"] = json.loads(self.request) if self.request else None
        data["context_keys"] = list(self.context_keys) if self.context_keys is not None else None
        return data


class Reference(NamedTuple):
    """A parsed key reference: ``kind`` is "key" (value a UUID) or "alias" (value ``alias/NAME``).

    ``keystore_id`` is set when the reference was an ARN, which names its keystore.
    """

    kind: str
    value: str
    keystore_id: str | None = None


def key_arn(keystore_id: str, key_id: str, region: str = DEFAULT_REGION) -> str:
    return f"arn:envelope:kms:{region}:{keystore_id}:key/{key_id}"


def alias_arn(keystore_id: str, alias: str, region: str = DEFAULT_REGION) -> str:
    """An alias's ARN, as AWS spells one (``...:alias/NAME``): what :data:`_ARN_RE` reads back."""
    return f"arn:envelope:kms:{region}:{keystore_id}:{alias}"


def is_key_id(text: str) -> bool:
    """A key id: a UUID, or ``mrk-`` and 32 hex digits for a multi-Region key (as in AWS KMS)."""
    return bool(_UUID_RE.match(text) or _MRK_RE.match(text))


def is_multi_region(key_id: str) -> bool:
    return key_id.startswith("mrk-")


def key_id_bytes(key_id: str) -> bytes:
    """The 16 bytes that stand for a key id in blobs and AADs.

    A UUID's bytes are its 32 hex digits: read without :mod:`uuid`, whose
    import (it loads :mod:`platform`) cost every encrypt and decrypt a few ms.
    """
    if is_multi_region(key_id):
        return bytes.fromhex(key_id[4:])
    if not _UUID_RE.match(key_id):
        raise ValueError(f"{key_id!r} is not a key id")
    return bytes.fromhex(key_id.replace("-", ""))


def key_id_from_bytes(raw: bytes, multi_region: bool) -> str:
    if multi_region:
        return "mrk-" + raw.hex()
    if len(raw) != 16:
        raise ValueError("a key id is 16 bytes")
    digits = raw.hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def check_region(region: str) -> str:
    if not isinstance(region, str) or not _REGION_RE.match(region):
        raise UsageError(f"invalid region name {region!r}: 1-32 lowercase letters, digits and '-'")
    return region


def parse_reference(ref: str) -> Reference:
    """Classify *ref* as a key id, a key or alias ARN, or an alias name.

    Raises :class:`UsageError` for text that is none of them; whether the key
    exists is for the keystore to say.
    """
    if not isinstance(ref, str) or not ref:
        raise UsageError("a key reference is needed: a key id, an ARN or alias/NAME")
    if is_key_id(ref):
        return Reference("key", ref.lower())
    if ref.startswith(ALIAS_PREFIX):
        check_alias_syntax(ref)
        return Reference("alias", ref)
    match = _ARN_RE.match(ref)
    if match:
        keystore_id, resource = match.groups()
        inner = parse_reference(resource[len("key/") :] if resource.startswith("key/") else resource)
        if resource.startswith("key/") and inner.kind != "key":
            raise UsageError(f"{ref!r} is not a valid key ARN: the part after key/ must be a key id")
        return Reference(inner.kind, inner.value, keystore_id)
    shown = ref if len(ref) <= 80 else ref[:77] + "..."
    raise UsageError(f"{shown!r} is not a key id (UUID), a key ARN ({ARN_PREFIX}...) or an alias (alias/NAME)")


def check_alias_syntax(name: str) -> None:
    """The rules every alias name obeys (looking one up or creating one)."""
    if len(name) > MAX_ALIAS_SIZE:
        raise UsageError(f"alias names are at most {MAX_ALIAS_SIZE} characters")
    if not _ALIAS_RE.match(name):
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise UsageError(
            f"invalid alias name {shown!r}: it must be alias/ followed by letters, digits, '/', '_' or '-'"
        )


def check_new_alias(name: str) -> None:
    """The rules for creating an alias: valid syntax and not in the reserved namespace."""
    check_alias_syntax(name)
    if name.lower().startswith(RESERVED_ALIAS_PREFIX):
        raise UsageError(f"alias names beginning with {RESERVED_ALIAS_PREFIX} are reserved")


#: GenerateDataKey's KeySpec values and their sizes in bytes.
DATA_KEY_SPECS = {"AES_256": 32, "AES_128": 16}

MAX_TAGS_PER_KEY = 50
MAX_TAG_KEY_SIZE = 128
MAX_TAG_VALUE_SIZE = 256
RESERVED_TAG_PREFIX = "aws:"


def check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Tag rules as in AWS KMS: keys 1-128 characters, values up to 256, ``aws:`` reserved."""
    if not isinstance(tags, Mapping):
        raise UsageError("tags must be a mapping of tag keys to values")
    checked: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise UsageError("tag keys and values must be strings")
        if not 1 <= len(key) <= MAX_TAG_KEY_SIZE:
            raise UsageError(f"tag keys are 1 to {MAX_TAG_KEY_SIZE} characters")
        if len(value) > MAX_TAG_VALUE_SIZE:
            raise UsageError(f"tag values are at most {MAX_TAG_VALUE_SIZE} characters (tag {key!r})")
        if key.lower().startswith(RESERVED_TAG_PREFIX):
            raise UsageError(f"tag keys beginning with {RESERVED_TAG_PREFIX} are reserved")
        checked[key] = value
    return checked


def new_key_id(multi_region: bool = False) -> str:
    import uuid  # only when a key is made (see key_id_bytes)
    return "mrk-" + uuid.uuid4().hex if multi_region else str(uuid.uuid4())

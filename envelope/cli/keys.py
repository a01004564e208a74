"""``envelope keys``: the local KMS from the command line, one action per KMS call.

Thin over :class:`envelope.kms.store.KeyStore`.  KEY is a key id, a key ARN
or ``alias/NAME`` everywhere (``local:`` in front is allowed, as ``--key``
spells it), given as KEY or as ``--key-id KEY``.  Each action also answers to
the ``aws kms`` verb of its operation and to aws kms's option names, so
commands and scripts written for ``aws kms`` run here.  Every action takes
``--json``: the AWS response's shape (:mod:`.kms_shapes`), where there is
one; without it the output is for people (a key id alone where a script
wants one: ``create``).
``--keystore PATH`` (on the group or on any action) overrides
``$ENVELOPE_KEYSTORE`` and the per-user default.  Only ``init`` and ``create``
may create the keystore file; the other actions report a missing one.  The
cryptographic actions (encrypt, decrypt, ...) are in :mod:`.kms_ops`, rotation
and deletion in :mod:`.keys_lifecycle`.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ..context import parse_pairs
from ..exceptions import UsageError
from . import kms_shapes as aws_json
from .keys_common import (
    AWS_TAGS,
    KEY_HELP,
    KEYSTORE_HELP,
    Handler,
    Option,
    add_action,
    aws_file,
    aws_tags,
    either,
    emit,
    key_reference,
    keystore_path,
    open_store,
    printable,
    read_policy,
    table,
)

if TYPE_CHECKING:  # the keystore and its crypto are imported by the actions that use them
    from ..kms.model.keys import AuditEvent, KeyMetadata


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="manage master keys in the local keystore (the embedded KMS)",
                          description="The embedded local KMS: master keys, aliases, rotation, deletion, audit. "
                                      "Every action also answers to its aws kms verb (in parentheses), with aws "
                                      "kms's option names and, with --json, its response shapes.")
    keys.add_argument("--keystore", metavar="PATH", default=None, help=KEYSTORE_HELP)
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", parser_class=type(keys))
    actions.required = True

    def action(name: str, handler: Handler, help_: str, *args: Option, aws: Sequence[str] = (),
               key: bool = True) -> argparse.ArgumentParser:
        return add_action(actions, name, handler, help_, *args, aws=aws, key=KEY_HELP if key else None)

    action("init", cmd_init, "create the local keystore (master keys sealed under a key file or a passphrase)",
           (["--passphrase"], {"action": "store_true",
                               "help": "protect it with a passphrase ($ENVELOPE_KEYSTORE_PASSPHRASE or a prompt)"}),
           (["--region"], {"metavar": "NAME", "help": "the keystore's region, for multi-Region keys (default local)"}),
           key=False)
    action("create", cmd_create, "create a master key (AES-256 unless --spec says otherwise); prints its key id",
           (["--description"], {"default": "", "metavar": "TEXT", "help": "what the key is for"}),
           (["--alias"], {"metavar": "alias/NAME", "help": "also give the key this alias"}),
           (["--tag"], {"action": "append", "default": [], "metavar": "K=V", "help": "tag (repeatable)"}),
           AWS_TAGS,
           (["--policy"], {"metavar": "FILE", "type": aws_file,
                           "help": "the key policy, a JSON file (default: owner and creator have full access)"}),
           (["--admin"], {"action": "append", "default": [], "metavar": "PRINCIPAL",
                          "help": "key administrator: may manage the key, not use it (repeatable)"}),
           (["--user"], {"action": "append", "default": [], "metavar": "PRINCIPAL",
                         "help": "key user: may use the key, not manage it (repeatable)"}),
           (["--spec", "--key-spec"], {"default": "SYMMETRIC_DEFAULT", "metavar": "SPEC",
                                       "help": "SYMMETRIC_DEFAULT (AES-256, the default), RSA_2048|3072|4096, "
                                               "ECC_NIST_P256|P384 or HMAC_256|384|512"}),
           (["--usage", "--key-usage"], {"metavar": "USAGE", "help": "ENCRYPT_DECRYPT, SIGN_VERIFY or "
                                                                    "GENERATE_VERIFY_MAC (default: the first the "
                                                                    "spec allows)"}),
           (["--multi-region"], {"action": "store_true",
                                 "help": "a multi-Region primary key (id mrk-...), replicable with keys replicate"}),
           (["--origin"], {"choices": ["ENVELOPE", "AWS_KMS", "EXTERNAL"], "default": "ENVELOPE",
                           "help": "EXTERNAL: no key material until you import yours (see keys import); "
                                   "AWS_KMS is ENVELOPE"}),
           (["--bypass-policy-lockout-safety-check"], {"action": "store_true", "help": argparse.SUPPRESS}),
           aws=["create-key"], key=False)
    action("list", cmd_list, "list the keys of the local keystore", aws=["list-keys"], key=False)
    action("describe", cmd_describe, "show a key's metadata", aws=["describe-key"])
    p = action("set-description", cmd_set_description, "replace a key's description", aws=["update-key-description"])
    either(p, "description", "TEXT", ["--description"], "the new description")
    action("enable", cmd_enable, "enable a disabled key", aws=["enable-key"])
    action("disable", cmd_disable, "disable a key: it refuses all cryptography until enabled again",
           aws=["disable-key"])
    from . import keys_lifecycle  # rotation and deletion, listed here in the help

    keys_lifecycle.register(actions)
    action("tag", cmd_tag, "add or replace tags on a key", (["tags"], {"nargs": "*", "metavar": "K=V"}), AWS_TAGS,
           aws=["tag-resource"])
    action("untag", cmd_untag, "remove tags from a key", (["tag_keys"], {"nargs": "*", "metavar": "TAG-KEY"}),
           (["--tag-keys"], {"dest": "aws_tag_keys", "nargs": "+", "default": [], "metavar": "TAG-KEY",
                             "help": "the same as TAG-KEY (aws kms's spelling)"}),
           aws=["untag-resource"])
    action("tags", cmd_tags, "list a key's tags", aws=["list-resource-tags"])
    action("audit", cmd_audit, "show the audit trail (every call, successful or refused)",
           (["--key", "--key-id"], {"metavar": "KEY", "type": key_reference, "help": "only this key's events"}),
           (["--since"], {"metavar": "T", "help": "from T on: an ISO 8601 time or date, or 30m / 12h / 7d ago"}),
           (["--operation"], {"metavar": "NAME", "help": "only this operation (e.g. Decrypt)"}),
           (["--limit"], {"type": int, "metavar": "N", "help": "only the last N events"}),
           key=False)
    action("replicate", cmd_replicate, "copy a multi-Region key into another region's keystore (again after "
                                       "rotating, to carry new backing keys)",
           (["--region", "--replica-region"], {"required": True, "metavar": "NAME", "help": "the replica's region"}),
           (["--replica-keystore"], {"metavar": "PATH", "help": "that region's keystore "
                                                                 "(default: keystore-REGION.db beside this one)"}),
           (["--description"], {"metavar": "TEXT", "help": "the replica's description (default: the primary's)"}),
           aws=["replicate-key"])
    action("check", cmd_check, "check the keystore's consistency (integrity, states, every backing key)", key=False)

    from . import keys_access, keys_aliases, keys_asymmetric, keys_import, keys_serve, kms_ops

    for module in (keys_aliases, kms_ops, keys_access, keys_import, keys_asymmetric, keys_serve):
        module.register(actions)

    from . import keys_credentials  # access keys for the KMS server's signed requests

    keys_credentials.register(actions)


# -- actions ---------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from ..kms.storage.protection import passphrase_source
    from ..kms.store import KeyStore

    path = keystore_path(args)
    if path.exists():
        raise UsageError(f"a keystore already exists at {path}")
    secret = passphrase_source(None, path, confirm=True)() if args.passphrase else None
    if args.passphrase and secret is None:
        raise UsageError("--passphrase needs $ENVELOPE_KEYSTORE_PASSPHRASE or a terminal to ask on")
    with KeyStore(path, create=True, passphrase=secret, region=args.region) as store:
        info = {"keystore": str(path), "keystore_id": store.keystore_id, "protection": store.protection,
                "region": store.region}
    where = f" in region {store.region}" if args.region else ""
    return emit(args, info, f"created the local keystore {path}{where} ({info['protection']} protection)")


def cmd_create(args: argparse.Namespace) -> int:
    tags = {**parse_pairs(args.tag, "--tag"), **aws_tags(args.aws_tags)}
    with open_store(args, create=True) as store:
        meta = store.create_key(description=args.description, alias=args.alias,
                                tags=tags, policy=read_policy(args.policy),
                                admins=args.admin, users=args.user,
                                origin="ENVELOPE" if args.origin == "AWS_KMS" else args.origin,
                                key_spec=args.spec, key_usage=args.usage, multi_region=args.multi_region,
                                bypass_policy_lockout_safety_check=args.bypass_policy_lockout_safety_check)
        if args.json:
            return aws_json.show(aws_json.key_metadata(store, meta))
    return emit(args, meta.to_dict(), meta.key_id)


def cmd_replicate(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        meta = store.replicate_key(args.key, args.region, args.replica_keystore, args.description)
    if args.json:
        wire = aws_json.LocalWire(args.region, meta.arn.split(":")[4])  # the replica's keystore names it
        return aws_json.show({"ReplicaKeyMetadata": aws_json.metadata(meta, wire),
                              "ReplicaTags": [{"TagKey": k, "TagValue": v} for k, v in meta.tags]})
    return emit(args, meta.to_dict(), f"{meta.key_id} replicated to region {args.region} ({meta.arn})")


def cmd_list(args: argparse.Namespace) -> int:
    path = keystore_path(args)
    if not path.exists():  # listing nothing is an answer, not an error, and must not create the file
        if args.json:
            return aws_json.show({"Keys": [], "Truncated": False})
        return emit(args, {"keystore": str(path), "keys": []}, f"no keys: there is no local keystore at {path}")
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "ListKeys"))
        keys = store.list_keys()
    if not keys:
        return emit(args, {"keystore": str(path), "keys": []}, f"no keys in the local keystore at {path}")
    rows = [(k.key_id, k.state, k.created_at, ",".join(k.aliases) or "-", printable(k.description) or "-")
            for k in keys]
    return emit(args, {"keystore": str(path), "keys": [k.to_dict() for k in keys]},
                table(("KEY ID", "STATE", "CREATED", "ALIASES", "DESCRIPTION"), rows))


def cmd_describe(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "DescribeKey", KeyId=args.key))
        return _show_key(args, store.describe_key(args.key))


def cmd_set_description(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "UpdateKeyDescription", KeyId=args.key,
                                               Description=args.description))
        return _show_key(args, store.update_key_description(args.key, args.description))


def cmd_enable(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "EnableKey", KeyId=args.key))
        meta = store.enable_key(args.key)
    return emit(args, meta.to_dict(), f"key {meta.key_id} is {meta.state}")


def cmd_disable(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "DisableKey", KeyId=args.key))
        meta = store.disable_key(args.key)
    return emit(args, meta.to_dict(), f"key {meta.key_id} is {meta.state}")


def cmd_tag(args: argparse.Namespace) -> int:
    pairs = {**parse_pairs(args.tags, "tag"), **aws_tags(args.aws_tags)}
    if not pairs:
        raise UsageError("tag needs K=V pairs (or --tags TagKey=K,TagValue=V)")
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "TagResource", KeyId=args.key,
                                               Tags=[{"TagKey": k, "TagValue": v} for k, v in pairs.items()]))
        tags = store.tag_key(args.key, pairs)
    return emit(args, tags, [f"{k}={v}" for k, v in tags.items()])


def cmd_untag(args: argparse.Namespace) -> int:
    tag_keys = [*args.tag_keys, *args.aws_tag_keys]
    if not tag_keys:
        raise UsageError("untag needs the TAG-KEYs to remove (or --tag-keys)")
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "UntagResource", KeyId=args.key, TagKeys=tag_keys))
        tags = store.untag_key(args.key, tag_keys)
    return emit(args, tags, [f"{k}={v}" for k, v in tags.items()] or "no tags")


def cmd_tags(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "ListResourceTags", KeyId=args.key))
        tags = store.list_tags(args.key)
    return emit(args, tags, [f"{printable(k)}={printable(v)}" for k, v in tags.items()] or "no tags")


def cmd_audit(args: argparse.Namespace) -> int:
    since = parse_since(args.since) if args.since else None
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    with open_store(args) as store:
        # A limit beyond SQLite's integers means all of them (and must not overflow the query).
        limit = None if args.limit is None else min(args.limit, 2**63 - 1)
        events = store.audit_events(key=args.key, since=since, operation=args.operation, limit=limit)
    return emit(args, [e.to_dict() for e in events], [_audit_line(e) for e in events] or "no events")


def cmd_check(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        problems = store.verify()
    emit(args, {"keystore": str(store.path), "ok": not problems, "problems": problems},
         [f"problem: {p}" for p in problems] or f"the keystore {store.path} is consistent")
    return 1 if problems else 0


# -- helpers ---------------------------------------------------------------------------------------


def parse_since(text: str) -> datetime:
    """``2026-11-01``, ``2026-11-01T12:00:00Z``, or an age: ``30m``, ``12h``, ``7d``."""
    from ..kms.model.clock import parse_iso

    match = re.fullmatch(r"(\d+)\s*([smhd])", text.strip())
    try:
        if match:
            unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
            return datetime.now(timezone.utc) - timedelta(**{unit: int(match.group(1))})
        return parse_iso(text).astimezone(timezone.utc)
    except OverflowError:
        raise UsageError(f"--since {text!r} is out of range") from None
    except ValueError:
        raise UsageError(f"--since {text!r}: give an ISO 8601 date or time, or an age like 30m, 12h, 7d") from None


def _show_key(args: argparse.Namespace, meta: KeyMetadata) -> int:
    rows = [
        ("key id", meta.key_id), ("arn", meta.arn), ("state", meta.state),
        ("description", printable(meta.description) or "-"), ("aliases", ", ".join(meta.aliases) or "-"),
        ("created", meta.created_at), ("origin", meta.origin), ("key spec", meta.key_spec),
        ("key usage", meta.key_usage), ("backing keys", str(meta.backing_versions)),
        ("rotation", f"every {meta.rotation_period_days} days, next {meta.next_rotation_date}"
         if meta.rotation_enabled else "disabled"),
        ("tags", ", ".join(f"{printable(k)}={printable(v)}" for k, v in meta.tags) or "-"),
    ]
    if meta.deletion_date:
        rows.append(("deletion date", meta.deletion_date))
    if meta.multi_region:
        rows.append(("multi-region", f"{meta.multi_region_role.lower() if meta.multi_region_role else '-'} "
                                     f"(primary in region {meta.primary_region})"))
    width = max(len(name) for name, _ in rows) + 2
    return emit(args, meta.to_dict(), [f"{name + ':':<{width}}{value}" for name, value in rows])


def _audit_line(event: AuditEvent) -> str:
    parts = [event.ts, event.principal, event.operation, event.key_id or "-"]
    if event.alias:
        parts.append(f"via {event.alias}")
    if event.destination_key_id:
        parts.append(f"to {event.destination_key_id}")
    if event.context_keys:
        parts.append("context keys " + ",".join(printable(k) for k in event.context_keys))
    if event.source:
        parts.append(f"from {printable(event.source)}")
    if event.access_key_id:
        parts.append(f"access key {event.access_key_id}")
    parts.append("ok" if event.ok else f"REFUSED: {printable(event.error or '')}")
    return "  ".join(parts)

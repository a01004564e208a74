"""``envelope keys``: create, list, describe and alias master keys in the local keystore.

Thin over :class:`envelope.kms.store.KeyStore`.  Output is metadata only; no
command can print key material, because the keystore API never returns any.
``--keystore PATH`` (on the group or on any action) overrides
``$ENVELOPE_KEYSTORE`` and the per-user default.  Only ``keys create`` may
create the keystore file; the other actions report a missing one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..kms.model import KeyMetadata
from ..kms.paths import default_keystore_path
from ..kms.store import KeyStore

_KEYSTORE_HELP = "local keystore file (default: $ENVELOPE_KEYSTORE or the per-user keystore)"


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="manage master keys in the local keystore",
                          description="Create, list, describe and alias master keys in the local keystore.")
    keys.add_argument("--keystore", metavar="PATH", default=None, help=_KEYSTORE_HELP)
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", parser_class=type(keys))
    actions.required = True

    create = actions.add_parser("create", help="create a master key",
                                description="Create a symmetric master key (AES-256) in the local keystore.")
    create.add_argument("--description", default="", metavar="TEXT", help="what the key is for")
    create.add_argument("--alias", metavar="alias/NAME", help="also give the key this alias")
    _common(create)
    create.set_defaults(handler=cmd_create)

    listing = actions.add_parser("list", help="list master keys", description="List the keys of the local keystore.")
    _common(listing)
    listing.set_defaults(handler=cmd_list)

    describe = actions.add_parser("describe", help="show one key's metadata",
                                  description="Show a key's metadata; REF is a key id, an ARN or alias/NAME.")
    describe.add_argument("ref", metavar="REF", help="key id, key ARN or alias/NAME")
    _common(describe)
    describe.set_defaults(handler=cmd_describe)

    alias = actions.add_parser("alias", help="give a key a new alias",
                               description="Create ALIAS (alias/NAME, unique; alias/aws/ is reserved) for the key REF.")
    alias.add_argument("alias", metavar="ALIAS", help="the new alias, alias/NAME")
    alias.add_argument("ref", metavar="REF", help="key id or key ARN")
    _common(alias)
    alias.set_defaults(handler=cmd_alias)


def _common(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: when not given after the action, keep the value given before it (envelope keys --keystore P list).
    p.add_argument("--keystore", metavar="PATH", default=argparse.SUPPRESS, help=_KEYSTORE_HELP)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _keystore_path(args: argparse.Namespace) -> Path:
    return Path(args.keystore).expanduser() if args.keystore else default_keystore_path()


def cmd_create(args: argparse.Namespace) -> int:
    with KeyStore(_keystore_path(args), create=True) as store:
        meta = store.create_key(description=args.description, alias=args.alias)
    _show_key(meta, args.json)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    path = _keystore_path(args)
    if not path.exists():  # listing nothing is an answer, not an error, and must not create the file
        if args.json:
            print(json.dumps({"keystore": str(path), "keys": []}, indent=2))
        else:
            print(f"no keys: there is no local keystore at {path}")
        return 0
    with KeyStore(path, create=False) as store:
        keys = store.list_keys()
    if args.json:
        print(json.dumps({"keystore": str(path), "keys": [k.to_dict() for k in keys]}, indent=2))
        return 0
    if not keys:
        print(f"no keys in the local keystore at {path}")
        return 0
    header = ("KEY ID", "STATE", "CREATED", "ALIASES", "DESCRIPTION")
    rows = [(k.key_id, k.state, k.created_at, ",".join(k.aliases) or "-", _printable(k.description) or "-")
            for k in keys]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    with KeyStore(_keystore_path(args), create=False) as store:
        meta = store.describe_key(args.ref)
    _show_key(meta, args.json)
    return 0


def cmd_alias(args: argparse.Namespace) -> int:
    with KeyStore(_keystore_path(args), create=False) as store:
        entry = store.create_alias(args.alias, args.ref)
    if args.json:
        print(json.dumps(entry.to_dict(), indent=2))
    else:
        print(f"{entry.alias_name} -> {entry.key_id}")
    return 0


def _show_key(meta: KeyMetadata, as_json: bool) -> None:
    if as_json:
        print(json.dumps(meta.to_dict(), indent=2))
        return
    rows = [
        ("key id", meta.key_id),
        ("arn", meta.arn),
        ("state", meta.state),
        ("description", _printable(meta.description) or "-"),
        ("aliases", ", ".join(meta.aliases) or "-"),
        ("created", meta.created_at),
        ("origin", meta.origin),
        ("key spec", meta.key_spec),
        ("key usage", meta.key_usage),
        ("backing keys", str(meta.backing_versions)),
        ("rotation", "enabled" if meta.rotation_enabled else "disabled"),
    ]
    if meta.deletion_date:
        rows.append(("deletion date", meta.deletion_date))
    width = max(len(name) for name, _ in rows) + 2
    for name, value in rows:
        print(f"{name + ':':<{width}}{value}")


def _printable(text: str) -> str:
    """User text with control characters replaced, so a description cannot drive the terminal."""
    return "".join(c if c.isprintable() else "?" for c in text)

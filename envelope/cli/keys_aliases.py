"""``envelope keys alias create|update|delete|list``: the names of keys.

Each verb also answers as aws kms's ``create-alias``, ``update-alias``,
``delete-alias`` and ``list-aliases``, with its option names (``--alias-name``,
``--target-key-id``, ``--key-id``), and with ``--json`` in its response shapes.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from . import kms_shapes as aws_json
from .keys_common import KEY_HELP, add_action, either, emit, key_reference, open_store, table

if TYPE_CHECKING:
    from ..kms.store import KeyStore


def register(actions: Any) -> None:
    alias = actions.add_parser("alias", help="create, update, delete or list aliases (aws kms: create-alias, "
                                             "update-alias, delete-alias, list-aliases)",
                               description="Aliases name keys; update one to rotate keys on your own schedule.")
    verbs = alias.add_subparsers(dest="alias_command", metavar="VERB", parser_class=type(alias))
    verbs.required = True
    for verb, operation, text in (("create", "CreateAlias", "create ALIAS for KEY"),
                                  ("update", "UpdateAlias", "point ALIAS at KEY instead")):
        for parent, name in ((verbs, verb), (actions, f"{verb}-alias")):
            p = add_action(parent, name, cmd_alias_point, text + " (ALIAS is alias/NAME; alias/aws/ is reserved)")
            p.set_defaults(alias_operation=operation)
            _alias_name(p)
            either(p, "key", "KEY", ["--target-key-id"], KEY_HELP, type=key_reference)
    for parent, name in ((verbs, "delete"), (actions, "delete-alias")):
        _alias_name(add_action(parent, name, cmd_alias_delete, "delete ALIAS (the key is untouched)"))
    for parent, name in ((verbs, "list"), (actions, "list-aliases")):
        add_action(parent, name, cmd_alias_list, "list aliases, or only KEY's",
                   (["--key", "--key-id"], {"metavar": "KEY", "type": key_reference, "help": KEY_HELP}))


def _alias_name(p: argparse.ArgumentParser) -> None:
    either(p, "alias", "ALIAS", ["--alias-name"], "alias/NAME")


def cmd_alias_point(args: argparse.Namespace) -> int:
    """CreateAlias or UpdateAlias: ALIAS names KEY (an alias given as KEY means the key it names now)."""
    with open_store(args) as store:
        target = _key_id(store, args.key)
        if args.json:
            return aws_json.show(aws_json.call(store, args.alias_operation, AliasName=args.alias, TargetKeyId=target))
        point = store.create_alias if args.alias_operation == "CreateAlias" else store.update_alias
        entry = point(args.alias, target)
    return emit(args, entry.to_dict(), f"{entry.alias_name} -> {entry.key_id}")


def cmd_alias_delete(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "DeleteAlias", AliasName=args.alias))
        store.delete_alias(args.alias)
    return emit(args, {"deleted": args.alias}, f"deleted {args.alias}")


def cmd_alias_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "ListAliases", KeyId=args.key))
        entries = store.list_aliases(args.key)
    return emit(args, [e.to_dict() for e in entries],
                table(("ALIAS", "KEY ID", "CREATED"), [(e.alias_name, e.key_id, e.created_at) for e in entries])
                if entries else "no aliases")


def _key_id(store: KeyStore, ref: str) -> str:
    """KEY for an alias target: an alias is accepted here and resolved to the key it names now."""
    from ..kms.model.keys import parse_reference

    return store.resolve_key_id(ref) if parse_reference(ref).kind == "alias" else ref

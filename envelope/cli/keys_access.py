"""``envelope keys get-policy|put-policy|grant …|whoami``: who may do what with a key.

Key policies are JSON documents in AWS's shape (see :mod:`envelope.kms.policy.document`);
grants delegate some operations on one key to one principal.  Run any command
as another principal with ``envelope --as PRINCIPAL keys …``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..context import parse_pairs
from ..exceptions import UsageError
from .keys_common import add_action, emit, open_store, read_policy, table

_KEY = (["key"], {"metavar": "KEY", "help": "key id, key ARN or alias/NAME"})


def register(actions: Any) -> None:
    add = add_action

    add(actions, "whoami", cmd_whoami, "show the principal you call as, and the keystore's owner")
    add(actions, "get-policy", cmd_get_policy, "print a key's policy (JSON)", _KEY)
    add(actions, "put-policy", cmd_put_policy, "replace a key's policy with a JSON file, after validating it", _KEY,
        (["--file"], {"required": True, "metavar": "POLICY.json", "help": "the new key policy"}),
        (["--bypass-policy-lockout-safety-check"], {"action": "store_true",
                                                    "help": "allow a policy that locks you out of the key"}))

    grant = actions.add_parser("grant", help="create, list, retire or revoke grants",
                               description="Grants delegate operations on one key to one principal.")
    verbs = grant.add_subparsers(dest="grant_command", metavar="VERB", parser_class=type(grant))
    verbs.required = True
    add(verbs, "create", cmd_grant_create, "give PRINCIPAL some operations on KEY; prints the grant id and token",
        _KEY,
        (["--grantee"], {"required": True, "metavar": "PRINCIPAL", "help": "who receives the grant"}),
        (["--operations"], {"required": True, "metavar": "OP,OP", "help": "e.g. Decrypt,GenerateDataKey"}),
        (["--retiring-principal"], {"metavar": "PRINCIPAL", "help": "who may retire the grant"}),
        (["--constraint"], {"action": "append", "default": [], "metavar": "K=V",
                            "help": "the encryption context must contain K=V (repeatable)"}),
        (["--exact-context"], {"action": "store_true",
                               "help": "the context must be exactly the --constraint pairs, not contain them"}),
        (["--name"], {"metavar": "NAME", "help": "a name for the grant"}))
    add(verbs, "list", cmd_grant_list, "list KEY's grants", _KEY,
        (["--grantee"], {"metavar": "PRINCIPAL", "help": "only this grantee's"}))
    add(verbs, "retire", cmd_grant_retire, "retire a grant (its retiring principal or grantee)",
        (["--token"], {"metavar": "TOKEN", "help": "the grant token"}),
        (["--key"], {"metavar": "KEY", "help": "with --grant-id: the grant's key"}),
        (["--grant-id"], {"metavar": "ID", "help": "with --key: the grant id"}))
    add(verbs, "revoke", cmd_grant_revoke, "revoke a grant (key administrators)", _KEY,
        (["grant_id"], {"metavar": "GRANT-ID"}))


def cmd_whoami(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        data = {"principal": store.principal, "owner": store.owner, "keystore_id": store.keystore_id}
    return emit(args, data, [f"principal  {data['principal']}", f"owner      {data['owner']} (local:root)",
                             f"keystore   {data['keystore_id']}"])


def cmd_get_policy(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        policy = store.get_key_policy(args.key)
    print(json.dumps(policy, indent=2))
    return 0


def cmd_put_policy(args: argparse.Namespace) -> int:
    text = read_policy(args.file)
    assert text is not None
    with open_store(args) as store:
        store.put_key_policy(args.key, text, bypass_policy_lockout_safety_check=args.bypass_policy_lockout_safety_check)
    return emit(args, {"key": args.key, "updated": True}, f"policy of {args.key} replaced")


def cmd_grant_create(args: argparse.Namespace) -> int:
    operations = [op.strip() for op in args.operations.split(",") if op.strip()]
    pairs = parse_pairs(args.constraint, "--constraint")
    if args.exact_context and not pairs:
        raise UsageError("--exact-context needs --constraint pairs")
    constraints = {("EncryptionContextEquals" if args.exact_context else "EncryptionContextSubset"): pairs} \
        if pairs else None
    with open_store(args) as store:
        grant_id, token = store.create_grant(args.key, args.grantee, operations,
                                             retiring_principal=args.retiring_principal, constraints=constraints,
                                             name=args.name)
    return emit(args, {"GrantId": grant_id, "GrantToken": token}, [f"grant id     {grant_id}",
                                                                   f"grant token  {token}"])


def cmd_grant_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        grants = store.list_grants(args.key, grantee_principal=args.grantee)
    rows = [(g.grant_id[:16] + "…", g.grantee_principal, ",".join(g.operations),
             _constraint_text(g.constraints), g.retiring_principal or "-") for g in grants]
    return emit(args, {"Grants": [g.as_dict() for g in grants]},
                table(("GRANT ID", "GRANTEE", "OPERATIONS", "CONSTRAINTS", "RETIRING"), rows) if rows
                else f"no grants on {args.key}")


def cmd_grant_retire(args: argparse.Namespace) -> int:
    if args.token is None and (args.key is None or args.grant_id is None):
        raise UsageError("grant retire needs --token, or --key and --grant-id")
    with open_store(args) as store:
        store.retire_grant(args.token, key=args.key, grant_id=args.grant_id)
    return emit(args, {"retired": True}, "grant retired")


def cmd_grant_revoke(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        store.revoke_grant(args.key, args.grant_id)
    return emit(args, {"revoked": args.grant_id}, f"grant {args.grant_id} revoked")


def _constraint_text(constraints: dict[str, dict[str, str]]) -> str:
    parts = []
    for kind, pairs in constraints.items():
        sign = "equals" if kind == "EncryptionContextEquals" else "has"
        parts.append(sign + " " + ",".join(f"{k}={v}" for k, v in pairs.items()))
    return "; ".join(parts) or "-"

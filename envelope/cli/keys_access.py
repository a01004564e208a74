"""``envelope keys get-policy|put-policy|grant …|whoami``: who may do what with a key.

Key policies are JSON documents in AWS's shape (see :mod:`envelope.kms.policy.document`);
grants delegate some operations on one key to one principal.  Run any command
as another principal with ``envelope --as PRINCIPAL keys …``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..context import parse_pairs
from ..exceptions import UsageError
from . import kms_shapes as aws_json
from .keys_common import KEY_HELP, add_action, aws_file, either, emit, key_reference, open_store, read_policy, table

if TYPE_CHECKING:
    from ..kms.policy.grants import Grant


def register(actions: Any) -> None:
    add = add_action

    add(actions, "whoami", cmd_whoami, "show the principal you call as, and the keystore's owner")
    add(actions, "get-policy", cmd_get_policy, "print a key's policy (JSON)", _POLICY_NAME, aws=["get-key-policy"],
        key=KEY_HELP)
    add(actions, "put-policy", cmd_put_policy, "replace a key's policy with a JSON file, after validating it",
        (["--file", "--policy"], {"required": True, "metavar": "POLICY.json", "type": aws_file,
                                  "help": "the new key policy (a path, or file://PATH)"}), _POLICY_NAME,
        (["--bypass-policy-lockout-safety-check"], {"action": "store_true",
                                                    "help": "allow a policy that locks you out of the key"}),
        aws=["put-key-policy"], key=KEY_HELP)
    add(actions, "policies", cmd_policies, "list a key's policy names (a key has one: default)",
        aws=["list-key-policies"], key=KEY_HELP)

    grant = actions.add_parser("grant", help="create, list, retire or revoke grants",
                               description="Grants delegate operations on one key to one principal.")
    verbs = grant.add_subparsers(dest="grant_command", metavar="VERB", parser_class=type(grant))
    verbs.required = True
    # Each grant verb also answers as aws kms's create-grant, list-grants, retire-grant, revoke-grant.
    for parent, prefix in ((verbs, ""), (actions, "-grant")):
        add(parent, "create" + prefix, cmd_grant_create,
            "give PRINCIPAL some operations on KEY; prints the grant id and token",
            (["--grantee", "--grantee-principal"], {"required": True, "metavar": "PRINCIPAL",
                                                    "help": "who receives the grant"}),
            (["--operations"], {"required": True, "nargs": "+", "metavar": "OP,OP",
                                "help": "e.g. Decrypt,GenerateDataKey (or space-separated, as aws kms takes them)"}),
            (["--retiring-principal"], {"metavar": "PRINCIPAL", "help": "who may retire the grant"}),
            (["--constraint"], {"action": "append", "default": [], "metavar": "K=V",
                                "help": "the encryption context must contain K=V (repeatable)"}),
            (["--exact-context"], {"action": "store_true",
                                   "help": "the context must be exactly the --constraint pairs, not contain them"}),
            (["--name"], {"metavar": "NAME", "help": "a name for the grant"}), key=KEY_HELP)
        add(parent, "list" + (prefix and "-grants"), cmd_grant_list, "list KEY's grants",
            (["--grantee", "--grantee-principal"], {"metavar": "PRINCIPAL", "help": "only this grantee's"}),
            key=KEY_HELP)
        add(parent, "retire" + prefix, cmd_grant_retire, "retire a grant (its retiring principal or grantee)",
            (["--token", "--grant-token"], {"metavar": "TOKEN", "help": "the grant token"}),
            (["--key", "--key-id"], {"metavar": "KEY", "type": key_reference,
                                     "help": "with --grant-id: the grant's key"}),
            (["--grant-id"], {"metavar": "ID", "help": "with --key: the grant id"}))
        add(parent, "retirable" if parent is verbs else "list-retirable-grants", cmd_grant_retirable,
            "list the grants PRINCIPAL (default: you) may retire",
            (["--retiring-principal"], {"metavar": "PRINCIPAL", "help": "whose retirable grants (default: yours)"}))
        revoke = add(parent, "revoke" + prefix, cmd_grant_revoke, "revoke a grant (key administrators)",
                     key=KEY_HELP)
        either(revoke, "grant_id", "GRANT-ID", ["--grant-id"], "the grant to revoke")


_POLICY_NAME = (["--policy-name"], {"choices": ["default"], "default": "default",
                                    "help": "a key has one policy, named default (as in aws kms)"})


def cmd_whoami(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        data = {"principal": store.principal, "owner": store.owner, "keystore_id": store.keystore_id}
    return emit(args, data, [f"principal  {data['principal']}", f"owner      {data['owner']} (local:root)",
                             f"keystore   {data['keystore_id']}"])


def cmd_get_policy(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "GetKeyPolicy", KeyId=args.key))
        policy = store.get_key_policy(args.key)
    print(json.dumps(policy, indent=2))
    return 0


def cmd_put_policy(args: argparse.Namespace) -> int:
    text = read_policy(args.file)
    assert text is not None
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(
                store, "PutKeyPolicy", KeyId=args.key, Policy=text,
                BypassPolicyLockoutSafetyCheck=args.bypass_policy_lockout_safety_check))
        store.put_key_policy(args.key, text, bypass_policy_lockout_safety_check=args.bypass_policy_lockout_safety_check)
    return emit(args, {"key": args.key, "updated": True}, f"policy of {args.key} replaced")


def cmd_grant_create(args: argparse.Namespace) -> int:
    operations = [op.strip() for item in args.operations for op in item.split(",") if op.strip()]
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


def cmd_policies(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        answer = aws_json.call(store, "ListKeyPolicies", KeyId=args.key)
    return aws_json.show(answer) if args.json else emit(args, {}, answer["PolicyNames"])


def cmd_grant_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "ListGrants", KeyId=args.key, GranteePrincipal=args.grantee))
        grants = store.list_grants(args.key, grantee_principal=args.grantee)
    return emit(args, {}, _grant_table(grants) or f"no grants on {args.key}")


def cmd_grant_retirable(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        who = args.retiring_principal or store.principal
        if args.json:
            return aws_json.show(aws_json.call(store, "ListRetirableGrants", RetiringPrincipal=who))
        grants = store.list_retirable_grants(who)
    return emit(args, {}, _grant_table(grants, with_key=True) or f"no grants {who} may retire")


def _grant_table(grants: Sequence[Grant], with_key: bool = False) -> list[str]:
    rows = [(g.grant_id[:16] + "…", *([g.key_id] if with_key else []), g.grantee_principal, ",".join(g.operations),
             _constraint_text(g.constraints), g.retiring_principal or "-") for g in grants]
    header = ("GRANT ID", *(["KEY ID"] if with_key else []), "GRANTEE", "OPERATIONS", "CONSTRAINTS", "RETIRING")
    return table(header, rows) if rows else []


def cmd_grant_retire(args: argparse.Namespace) -> int:
    if args.token is None and (args.key is None or args.grant_id is None):
        raise UsageError("grant retire needs --token, or --key and --grant-id")
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "RetireGrant", GrantToken=args.token, KeyId=args.key,
                                               GrantId=args.grant_id))
        store.retire_grant(args.token, key=args.key, grant_id=args.grant_id)
    return emit(args, {"retired": True}, "grant retired")


def cmd_grant_revoke(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if args.json:
            return aws_json.show(aws_json.call(store, "RevokeGrant", KeyId=args.key, GrantId=args.grant_id))
        store.revoke_grant(args.key, args.grant_id)
    return emit(args, {"revoked": args.grant_id}, f"grant {args.grant_id} revoked")


def _constraint_text(constraints: dict[str, dict[str, str]]) -> str:
    parts = []
    for kind, pairs in constraints.items():
        sign = "equals" if kind == "EncryptionContextEquals" else "has"
        parts.append(sign + " " + ",".join(f"{k}={v}" for k, v in pairs.items()))
    return "; ".join(parts) or "-"

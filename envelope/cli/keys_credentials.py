"""``envelope keys credentials create|list|disable|enable|delete``: access keys for signed requests.

An access key lets a client of the KMS server (``envelope keys serve``) prove
who it is: AWS SDKs and the AWS CLI sign each request with it (Signature
Version 4) exactly as they would for AWS.  ``create`` prints the secret access
key once; the keystore keeps it sealed and never shows it again.  Only the
keystore's owner manages access keys (see :mod:`envelope.kms.operations.credentials`).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from .keys_common import add_action, emit, open_store, table

if TYPE_CHECKING:
    from ..kms.operations.credentials import Credential

_ID = (["access_key_id"], {"metavar": "ACCESS-KEY-ID", "help": "the access key id (EKIA...)"})


def register(actions: Any) -> None:
    group = actions.add_parser("credentials", help="create, list, disable, enable or delete access keys",
                               description="Access keys (access key id and secret) that clients of the KMS "
                                           "server sign their requests with.  Only the keystore's owner "
                                           "manages them.")
    verbs = group.add_subparsers(dest="credentials_command", metavar="VERB", parser_class=type(group))
    verbs.required = True
    add_action(verbs, "create", cmd_create, "issue an access key to PRINCIPAL; prints its secret, this once",
               (["holder"], {"metavar": "PRINCIPAL",
                             "help": "who the key is for: NAME, local:user/NAME, local:role/NAME, ..."}))
    add_action(verbs, "list", cmd_list, "list the access keys (never their secrets)")
    add_action(verbs, "disable", cmd_disable, "disable an access key: requests signed with it are refused", _ID)
    add_action(verbs, "enable", cmd_enable, "enable a disabled access key again", _ID)
    add_action(verbs, "delete", cmd_delete, "delete an access key and destroy its secret", _ID)


def cmd_create(args: argparse.Namespace) -> int:
    from ..kms.operations.credentials import create_credential

    with open_store(args) as store:
        credential, secret = create_credential(store, args.holder)
    print("the secret access key is shown this once: keep it now (it cannot be recovered, only replaced)",
          file=sys.stderr)
    return emit(args, {**credential.to_dict(), "secret_access_key": secret},
                [f"access key id      {credential.access_key_id}", f"secret access key  {secret}",
                 f"principal          {credential.principal}"])


def cmd_list(args: argparse.Namespace) -> int:
    from ..kms.operations.credentials import list_credentials

    with open_store(args) as store:
        found = list_credentials(store)
    rows = [(c.access_key_id, c.state, c.creation_date, c.principal) for c in found]
    return emit(args, [c.to_dict() for c in found],
                table(("ACCESS KEY ID", "STATE", "CREATED", "PRINCIPAL"), rows) if rows else "no access keys")


def cmd_disable(args: argparse.Namespace) -> int:
    from ..kms.operations.credentials import disable_credential

    with open_store(args) as store:
        return _show(args, disable_credential(store, args.access_key_id))


def cmd_enable(args: argparse.Namespace) -> int:
    from ..kms.operations.credentials import enable_credential

    with open_store(args) as store:
        return _show(args, enable_credential(store, args.access_key_id))


def cmd_delete(args: argparse.Namespace) -> int:
    from ..kms.operations.credentials import delete_credential

    with open_store(args) as store:
        delete_credential(store, args.access_key_id)
    return emit(args, {"deleted": args.access_key_id}, f"deleted access key {args.access_key_id}")


def _show(args: argparse.Namespace, credential: Credential) -> int:
    return emit(args, credential.to_dict(),
                f"access key {credential.access_key_id} of {credential.principal} is {credential.state}")

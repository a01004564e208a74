"""A grant that allows CreateGrant passes on no more than it holds: operations and constraints.

AWS KMS's rule for a grantee who gets CreateGrant from a grant (not from a
policy): the grants it creates allow some or all of the parent's operations,
and their encryption-context constraints are at least as strict as the
parent's.  "At least as strict" is judged on what the constraints admit: every
context the child grant admits, the parent grant must admit too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from envelope.cli.main import EXIT_KEY, EXIT_OK, main
from envelope.exceptions import AccessDeniedError
from envelope.kms.store import KeyStore

As = Callable[[str], KeyStore]
Capsys = pytest.CaptureFixture[str]

EQ, SUB = "EncryptionContextEquals", "EncryptionContextSubset"


@pytest.fixture
def as_(tmp_path: Path) -> Iterator[As]:
    path = tmp_path / "keystore.db"
    opened: list[KeyStore] = []

    def open_as(who: str) -> KeyStore:
        store = KeyStore(path, principal=who)
        opened.append(store)
        return store

    open_as("admin")
    yield open_as
    for store in opened:
        store.close()


def _parent(as_: As, constraints: dict[str, dict[str, str]] | None,
            operations: tuple[str, ...] = ("Decrypt", "CreateGrant")) -> str:
    key = as_("admin").create_key().key_id
    as_("admin").create_grant(key, "bob", list(operations), constraints=constraints)
    return key


# (parent constraints, child constraints, allowed?)
_CASES: list[tuple[dict[str, dict[str, str]] | None, dict[str, dict[str, str]] | None, bool]] = [
    (None, None, True),
    (None, {SUB: {"dept": "eng"}}, True),
    ({SUB: {"dept": "eng"}}, None, False),                                   # the reported escape
    ({SUB: {"dept": "eng"}}, {SUB: {"dept": "finance"}}, False),             # another value
    ({SUB: {"dept": "eng"}}, {SUB: {"team": "eng"}}, False),                 # another key
    ({SUB: {"dept": "eng"}}, {SUB: {"dept": "eng"}}, True),                  # the same
    ({SUB: {"dept": "eng"}}, {SUB: {"dept": "eng", "app": "x"}}, True),      # pairs added
    ({SUB: {"dept": "eng", "app": "x"}}, {SUB: {"dept": "eng"}}, False),     # a pair removed
    ({SUB: {"dept": "eng"}}, {EQ: {"dept": "eng"}}, True),                   # subset -> equals
    ({SUB: {"dept": "eng"}}, {EQ: {"dept": "eng", "app": "x"}}, True),
    ({SUB: {"dept": "eng"}}, {EQ: {"dept": "finance"}}, False),
    ({EQ: {"dept": "eng"}}, {EQ: {"dept": "eng"}}, True),
    ({EQ: {"dept": "eng"}}, {SUB: {"dept": "eng"}}, False),                  # equals -> subset: never
    ({EQ: {"dept": "eng"}}, {EQ: {"dept": "eng", "app": "x"}}, False),
    ({EQ: {"dept": "eng"}}, {EQ: {}}, False),
    ({EQ: {"dept": "eng"}}, None, False),
    ({EQ: {"dept": "eng"}, SUB: {"dept": "eng"}}, {EQ: {"dept": "eng"}}, True),
    ({SUB: {"dept": "eng"}}, {EQ: {"dept": "eng"}, SUB: {"app": "x"}}, True),  # admits nothing at all
]


@pytest.mark.parametrize(("parent", "child", "allowed"), _CASES)
def test_a_child_grant_must_be_at_least_as_strict_as_its_parent(as_: As, parent: Any, child: Any,
                                                                 allowed: bool) -> None:
    key = _parent(as_, parent)
    bob = as_("bob")
    if allowed:
        bob.create_grant(key, "carol", ["Decrypt"], constraints=child)
    else:
        with pytest.raises(AccessDeniedError, match="may not CreateGrant"):
            bob.create_grant(key, "carol", ["Decrypt"], constraints=child)
    assert len(as_("admin").list_grants(key)) == (2 if allowed else 1)


def test_a_grantee_cannot_mint_itself_an_unconstrained_grant_and_read_other_contexts(as_: As) -> None:
    admin, bob = as_("admin"), as_("bob")
    key = admin.create_key().key_id
    finance = admin.encrypt(key, b"payroll", {"dept": "finance"})
    admin.create_grant(key, "bob", ["Decrypt", "CreateGrant"], constraints={SUB: {"dept": "eng"}})
    with pytest.raises(AccessDeniedError):
        bob.decrypt(finance, {"dept": "finance"})
    with pytest.raises(AccessDeniedError, match="may not CreateGrant"):
        bob.create_grant(key, "bob", ["Decrypt"])
    with pytest.raises(AccessDeniedError, match="may not CreateGrant"):
        bob.create_grant(key, "bob", ["Decrypt"], constraints={SUB: {"dept": "finance"}})
    with pytest.raises(AccessDeniedError):
        bob.decrypt(finance, {"dept": "finance"})
    # What it holds, it may still pass on, to itself or to others.
    bob.create_grant(key, "carol", ["Decrypt"], constraints={EQ: {"dept": "eng"}})
    eng = admin.encrypt(key, b"roadmap", {"dept": "eng"})
    assert as_("carol").decrypt(eng, {"dept": "eng"})[0] == b"roadmap"


def test_a_grandchild_grant_is_held_to_its_own_parent(as_: As) -> None:
    key = _parent(as_, {SUB: {"dept": "eng"}})
    as_("bob").create_grant(key, "carol", ["Decrypt", "CreateGrant"], constraints={EQ: {"dept": "eng"}})
    with pytest.raises(AccessDeniedError, match="may not CreateGrant"):
        as_("carol").create_grant(key, "dave", ["Decrypt"], constraints={SUB: {"dept": "eng"}})
    as_("carol").create_grant(key, "dave", ["Decrypt"], constraints={EQ: {"dept": "eng"}})


def test_one_grant_must_cover_both_the_operations_and_the_constraints(as_: As) -> None:
    """Two parents cannot be combined: operations from one and looseness from the other."""
    admin = as_("admin")
    key = admin.create_key().key_id
    admin.create_grant(key, "bob", ["Encrypt", "CreateGrant"])                       # no constraint, no Decrypt
    admin.create_grant(key, "bob", ["Decrypt", "CreateGrant"], constraints={SUB: {"dept": "eng"}})
    with pytest.raises(AccessDeniedError, match="may not CreateGrant"):
        as_("bob").create_grant(key, "bob", ["Decrypt"])
    as_("bob").create_grant(key, "bob", ["Encrypt"])
    as_("bob").create_grant(key, "bob", ["Decrypt"], constraints={SUB: {"dept": "eng"}})


def test_create_grant_allowed_by_the_key_policy_is_not_limited_by_grants(as_: As) -> None:
    """AWS: the limits hold for CreateGrant from a grant; a policy's CreateGrant has only its own conditions."""
    admin = as_("admin")
    key = admin.create_key().key_id
    policy = admin.get_key_policy(key)
    policy["Statement"].append({"Sid": "bob grants", "Effect": "Allow", "Principal": {"Local": "bob"},
                                "Action": "kms:CreateGrant", "Resource": "*"})
    admin.put_key_policy(key, policy)
    admin.create_grant(key, "bob", ["Decrypt", "CreateGrant"], constraints={SUB: {"dept": "eng"}})
    as_("bob").create_grant(key, "carol", ["Decrypt", "Encrypt"])


def test_a_key_policy_can_require_constraints_on_the_grants_it_lets_be_created(as_: As) -> None:
    """kms:GrantConstraintType, AWS's condition key for this: absent when the new grant has no constraint."""
    admin = as_("admin")
    key = admin.create_key().key_id
    policy = admin.get_key_policy(key)
    policy["Statement"].append({"Sid": "bob grants exact ones", "Effect": "Allow", "Principal": {"Local": "bob"},
                                "Action": "kms:CreateGrant", "Resource": "*", "Condition": {
                                    "ForAnyValue:StringEquals": {"kms:GrantConstraintType": EQ}}})
    admin.put_key_policy(key, policy)
    as_("bob").create_grant(key, "carol", ["Decrypt"], constraints={EQ: {"dept": "eng"}})
    for loose in (None, {SUB: {"dept": "eng"}}):
        with pytest.raises(AccessDeniedError, match="may not CreateGrant"):
            as_("bob").create_grant(key, "carol", ["Decrypt"], constraints=loose)


def test_constraints_still_hold_for_reencrypt_and_data_keys_under_a_grant(as_: As) -> None:
    """The other grant-authorized calls check the context of the request against the grant."""
    admin, bob = as_("admin"), as_("bob")
    key = admin.create_key().key_id
    admin.create_grant(key, "bob", ["ReEncryptFrom", "ReEncryptTo", "GenerateDataKey",
                                    "GenerateDataKeyWithoutPlaintext", "Encrypt", "Decrypt"],
                       constraints={SUB: {"dept": "eng"}})
    eng = admin.encrypt(key, b"x", {"dept": "eng"})
    finance = admin.encrypt(key, b"x", {"dept": "finance"})
    bob.re_encrypt(eng, key, {"dept": "eng"}, {"dept": "eng", "v": "2"})
    for call in (lambda: bob.re_encrypt(eng, key, {"dept": "eng"}, {"dept": "finance"}),   # out to another
                 lambda: bob.re_encrypt(finance, key, {"dept": "finance"}, {"dept": "eng"}),  # in from another
                 lambda: bob.generate_data_key(key, {"dept": "finance"}),
                 lambda: bob.generate_data_key_without_plaintext(key, {"dept": "finance"}),
                 lambda: bob.generate_data_key(key),
                 lambda: bob.encrypt(key, b"x", {"dept": "finance"}),
                 lambda: bob.decrypt(finance, {"dept": "finance"})):
        with pytest.raises(AccessDeniedError):
            call()


# -- through the CLI ---------------------------------------------------------------------------------


def _run(capsys: Capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_a_constrained_grantee_cannot_mint_itself_an_unconstrained_grant(capsys: Capsys,
                                                                             tmp_path: Path) -> None:
    code, key, err = _run(capsys, "--as", "admin", "keys", "create", "--alias", "alias/shared")
    assert code == EXIT_OK, err
    assert _run(capsys, "--as", "admin", "keys", "grant", "create", "alias/shared", "--grantee", "bob",
                "--operations", "Decrypt,CreateGrant", "--constraint", "dept=eng")[0] == EXIT_OK
    plain = tmp_path / "ledger.csv"
    plain.write_bytes(os.urandom(5000))
    enc = tmp_path / "ledger.csv.envelope"
    assert _run(capsys, "--as", "admin", "encrypt-file", str(plain), "-o", str(enc), "--key",
                "local:alias/shared", "--context", "dept=finance", "-q")[0] == EXIT_OK
    out = tmp_path / "back.csv"
    code, _, err = _run(capsys, "--as", "bob", "decrypt-file", str(enc), "-o", str(out))
    assert code == EXIT_KEY and "may not Decrypt" in err and not out.exists()

    code, _, err = _run(capsys, "--as", "bob", "keys", "grant", "create", "alias/shared", "--grantee", "bob",
                        "--operations", "Decrypt")
    assert code == EXIT_KEY and "may not CreateGrant" in err and err.count("\n") == 1
    code, _, err = _run(capsys, "--as", "bob", "decrypt-file", str(enc), "-o", str(out))
    assert code == EXIT_KEY and not out.exists()
    code, listing, _ = _run(capsys, "--as", "admin", "keys", "grant", "list", "alias/shared", "--json")
    assert len(json.loads(listing)["Grants"]) == 1

    # A child grant as strict as the parent is still allowed.
    assert _run(capsys, "--as", "bob", "keys", "grant", "create", "alias/shared", "--grantee", "carol",
                "--operations", "Decrypt", "--constraint", "dept=eng", "--exact-context")[0] == EXIT_OK

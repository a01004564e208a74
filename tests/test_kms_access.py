"""Who may do what with a key: principals, key policies and grants, enforced by the local keystore."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from envelope.exceptions import AccessDeniedError, KeyNotFoundError, UsageError
from envelope.kms.model.clock import ManualClock
from envelope.kms.store import KeyStore

ROOT, CFO, ACCOUNTS, SYSADMIN = "admin", "cfo", "accounts", "sysadmin"

As = Callable[[str], KeyStore]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def as_(tmp_path: Path, clock: ManualClock) -> As:
    """A keystore opened as someone; the first one opened (``admin``) creates it and owns it."""
    path = tmp_path / "keystore.db"
    opened: list[KeyStore] = []

    def open_as(who: str) -> KeyStore:
        store = KeyStore(path, principal=who, clock=clock)
        opened.append(store)
        return store

    open_as(ROOT)
    yield open_as
    for store in opened:
        store.close()


def test_the_first_principal_owns_the_keystore_and_names_are_normalized(as_: As) -> None:
    store = as_(CFO)
    assert store.principal == "local:user/cfo" and store.owner == "local:user/admin"
    assert as_("local:role/backup").principal == "local:role/backup"
    with pytest.raises(UsageError, match="invalid principal"):
        as_("not a name!")


def test_the_default_policy_gives_the_owner_and_the_creator_everything_and_others_nothing(as_: As) -> None:
    key = as_(CFO).create_key(description="cfo's own").key_id
    for who in (ROOT, CFO):
        plaintext, blob, _ = as_(who).generate_data_key(key)
        assert as_(who).decrypt(blob)[0] == plaintext
    blob = as_(CFO).encrypt(key, b"x")
    for call in (lambda s: s.decrypt(blob), lambda s: s.encrypt(key, b"x"), lambda s: s.describe_key(key),
                 lambda s: s.disable_key(key)):
        with pytest.raises(AccessDeniedError, match="local:user/accounts may not .* no key policy statement"):
            call(as_(ACCOUNTS))


def test_the_cfo_scenario_end_to_end(as_: As, clock: ManualClock) -> None:
    """The seed notes' scenario: a key for the CFO only, then the CFO leaves and deletes it."""
    admin = as_(ROOT)
    key = admin.create_key(description="finance reports", alias="alias/finance", tags={"dept": "finance"},
                           admins=[CFO], users=[CFO]).key_id
    cfo, accounts, sysadmin = as_(CFO), as_(ACCOUNTS), as_(SYSADMIN)
    context = {"report": "payslips-2026"}

    # The CFO encrypts and decrypts.
    plaintext, blob, _ = cfo.generate_data_key("alias/finance", context)
    assert cfo.decrypt(blob, context)[0] == plaintext

    # The accounts team member sees that the key exists, but can neither use nor change it.
    assert key in [k.key_id for k in accounts.list_keys()]
    for call in (lambda: accounts.decrypt(blob, context), lambda: accounts.encrypt(key, b"x"),
                 lambda: accounts.disable_key(key), lambda: accounts.put_key_policy(key, admin.get_key_policy(key)),
                 lambda: accounts.schedule_key_deletion(key, 7)):
        with pytest.raises(AccessDeniedError):
            call()

    # The keystore's owner (the account root) still has full access, as in the notes...
    assert admin.decrypt(blob, context)[0] == plaintext
    # ...but a system administrator who is not the owner has none, and cannot add himself.
    with pytest.raises(AccessDeniedError):
        sysadmin.decrypt(blob, context)
    policy = admin.get_key_policy(key)
    policy["Statement"].append({"Effect": "Allow", "Principal": {"Local": "sysadmin"}, "Action": "kms:*",
                                "Resource": "*"})
    with pytest.raises(AccessDeniedError):
        sysadmin.put_key_policy(key, policy)

    # The CFO leaves and deletes the key: only disable and a scheduled deletion, 7 days at least.
    cfo.disable_key(key)
    with pytest.raises(UsageError):
        cfo.schedule_key_deletion(key, 6)
    cfo.schedule_key_deletion(key, 7)
    clock.advance(timedelta(days=7, seconds=1))
    with pytest.raises(KeyNotFoundError, match="was deleted"):
        admin.decrypt(blob, context)

    operations = {(e.principal, e.operation, e.ok) for e in admin.audit_events(key=key)}
    assert ("local:user/accounts", "Decrypt", False) in operations
    assert ("local:user/cfo", "ScheduleKeyDeletion", True) in operations


def test_an_administrator_manages_but_cannot_use_and_a_user_uses_but_cannot_manage(as_: As) -> None:
    key = as_(ROOT).create_key(admins=["adam"], users=["ursula"]).key_id
    adam, ursula = as_("adam"), as_("ursula")
    blob = ursula.encrypt(key, b"secret")
    assert ursula.decrypt(blob)[0] == b"secret"
    assert ursula.describe_key(key).key_id == key
    with pytest.raises(AccessDeniedError, match="may not Decrypt"):
        adam.decrypt(blob)
    with pytest.raises(AccessDeniedError, match="may not Encrypt"):
        adam.encrypt(key, b"x")
    with pytest.raises(AccessDeniedError, match="may not CreateGrant"):
        adam.create_grant(key, "adam", ["Decrypt"])
    adam.disable_key(key)
    adam.enable_key(key)
    adam.tag_key(key, {"owner": "ops"})
    adam.enable_key_rotation(key)
    for call in (lambda: ursula.put_key_policy(key, adam.get_key_policy(key)), lambda: ursula.disable_key(key),
                 lambda: ursula.schedule_key_deletion(key), lambda: ursula.tag_key(key, {"a": "b"}),
                 lambda: ursula.get_key_policy(key)):
        with pytest.raises(AccessDeniedError):
            call()


def test_an_explicit_deny_overrides_the_owners_allow(as_: As) -> None:
    admin = as_(ROOT)
    key = admin.create_key().key_id
    policy = admin.get_key_policy(key)
    policy["Statement"].append({"Sid": "NoFinanceDecrypt", "Effect": "Deny", "Principal": "*",
                                "Action": "kms:Decrypt", "Resource": "*",
                                "Condition": {"StringEquals": {"kms:EncryptionContext:dept": "finance"}}})
    admin.put_key_policy(key, policy)
    finance, other = admin.encrypt(key, b"f", {"dept": "finance"}), admin.encrypt(key, b"o", {"dept": "ops"})
    assert admin.decrypt(other, {"dept": "ops"})[0] == b"o"
    with pytest.raises(AccessDeniedError, match="denied by key policy statement 'NoFinanceDecrypt'"):
        admin.decrypt(finance, {"dept": "finance"})


def test_the_lockout_safety_check_refuses_a_policy_that_shuts_out_its_author(as_: As) -> None:
    admin = as_(ROOT)
    key = admin.create_key().key_id
    blob = admin.encrypt(key, b"kept")
    users_only = {"Statement": [{"Effect": "Allow", "Principal": {"Local": "ursula"}, "Action": "kms:Decrypt",
                                 "Resource": "*"}]}
    with pytest.raises(UsageError, match="lockout safety check"):
        admin.put_key_policy(key, users_only)
    with pytest.raises(UsageError, match="lockout safety check"):
        admin.create_key(policy=users_only)
    admin.put_key_policy(key, users_only, bypass_policy_lockout_safety_check=True)
    with pytest.raises(AccessDeniedError):
        admin.get_key_policy(key)
    assert as_("ursula").decrypt(blob)[0] == b"kept"  # what the policy says, and nothing more
    with pytest.raises(UsageError, match="invalid key policy"):
        as_(ROOT).create_key(policy='{"Statement": "nope"}')


def test_a_grant_allows_its_operations_only_within_its_constraints(as_: As) -> None:
    admin = as_(ROOT)
    key = admin.create_key().key_id
    svc = as_("local:role/reporting")
    grant_id, token = admin.create_grant(key, "local:role/reporting", ["Encrypt", "Decrypt"],
                                         constraints={"EncryptionContextSubset": {"dept": "finance"}})
    blob = svc.encrypt(key, b"q1", {"dept": "finance", "quarter": "q1"}, grant_tokens=[token])
    assert svc.decrypt(blob, {"dept": "finance", "quarter": "q1"})[0] == b"q1"
    with pytest.raises(AccessDeniedError):
        svc.encrypt(key, b"x", {"dept": "sales"})
    with pytest.raises(AccessDeniedError):
        svc.generate_data_key(key, {"dept": "finance"})       # not one of the grant's operations
    with pytest.raises(AccessDeniedError):
        svc.describe_key(key)
    [grant] = admin.list_grants(key)
    assert (grant.grant_id, grant.grantee_principal, grant.operations) == \
        (grant_id, "local:role/reporting", ("Encrypt", "Decrypt"))
    assert grant.issuing_principal == "local:user/admin"


def test_an_exact_context_grant_refuses_extra_pairs(as_: As) -> None:
    admin = as_(ROOT)
    key = admin.create_key().key_id
    admin.create_grant(key, "bob", ["Encrypt"], constraints={"EncryptionContextEquals": {"app": "pay"}})
    as_("bob").encrypt(key, b"x", {"app": "pay"})
    with pytest.raises(AccessDeniedError):
        as_("bob").encrypt(key, b"x", {"app": "pay", "extra": "1"})


def test_retire_and_revoke_end_a_grant_at_once(as_: As) -> None:
    admin = as_(ROOT)
    key = admin.create_key().key_id
    bob, carol = as_("bob"), as_("carol")
    _, token = admin.create_grant(key, "bob", ["Encrypt"], retiring_principal="carol")
    bob.encrypt(key, b"x")
    with pytest.raises(AccessDeniedError, match="may not RetireGrant"):
        bob.retire_grant(token)               # a grantee without RetireGrant cannot
    assert [g.grantee_principal for g in carol.list_retirable_grants()] == ["local:user/bob"]
    carol.retire_grant(token)
    with pytest.raises(AccessDeniedError):
        bob.encrypt(key, b"x")
    with pytest.raises(UsageError, match="invalid grant token"):
        bob.encrypt(key, b"x", grant_tokens=[token])

    grant_id, _ = admin.create_grant(key, "bob", ["Encrypt", "RetireGrant"])
    bob.encrypt(key, b"x")
    admin.revoke_grant(key, grant_id)
    with pytest.raises(AccessDeniedError):
        bob.encrypt(key, b"x")
    with pytest.raises(KeyNotFoundError, match="does not exist"):
        admin.revoke_grant(key, grant_id)

    _, token = admin.create_grant(key, "bob", ["Encrypt", "RetireGrant"])
    bob.retire_grant(token)                   # a grantee with RetireGrant can
    assert admin.list_grants(key) == []


def test_a_grant_with_create_grant_can_only_pass_on_what_it_holds(as_: As) -> None:
    admin = as_(ROOT)
    key = admin.create_key().key_id
    admin.create_grant(key, "bob", ["Decrypt", "CreateGrant"])
    as_("bob").create_grant(key, "carol", ["Decrypt"])
    with pytest.raises(AccessDeniedError):
        as_("bob").create_grant(key, "carol", ["Encrypt"])


def test_grant_arguments_are_checked(as_: As) -> None:
    admin = as_(ROOT)
    key = admin.create_key().key_id
    with pytest.raises(UsageError, match="unknown grant operation 'Delete'"):
        admin.create_grant(key, "bob", ["Delete"])
    with pytest.raises(UsageError, match="at least one operation"):
        admin.create_grant(key, "bob", [])
    with pytest.raises(UsageError, match="unknown grant constraint"):
        admin.create_grant(key, "bob", ["Decrypt"], constraints={"Context": {"a": "b"}})
    other = admin.create_key().key_id
    _, token = admin.create_grant(other, "bob", ["Encrypt"])
    with pytest.raises(UsageError, match="for another key"):
        admin.encrypt(key, b"x", grant_tokens=[token])


def test_reencrypt_needs_from_on_the_source_and_to_on_the_destination(as_: As) -> None:
    admin = as_(ROOT)
    source, dest = admin.create_key().key_id, admin.create_key().key_id
    blob = admin.encrypt(source, b"moving")
    admin.create_grant(source, "mover", ["ReEncryptFrom"])
    with pytest.raises(AccessDeniedError, match="may not ReEncryptTo"):
        as_("mover").re_encrypt(blob, dest)
    admin.create_grant(dest, "mover", ["ReEncryptTo"])
    moved, _, _ = as_("mover").re_encrypt(blob, dest)
    assert admin.decrypt(moved)[0] == b"moving"


def test_a_policy_can_require_the_envelope_component_calling(as_: As, tmp_path: Path) -> None:
    admin = as_(ROOT)
    key = admin.create_key().key_id
    policy = admin.get_key_policy(key)
    policy["Statement"].append({"Effect": "Allow", "Principal": {"Local": "bob"}, "Action": "kms:GenerateDataKey",
                                "Resource": "*", "Condition": {"StringEquals": {"kms:ViaService": "envelope.files"}}})
    admin.put_key_policy(key, policy)
    with pytest.raises(AccessDeniedError):
        as_("bob").generate_data_key(key)
    with KeyStore(tmp_path / "keystore.db", principal="bob", via="envelope.files") as via_files:
        assert len(via_files.generate_data_key(key)[0]) == 32


def test_audit_rows_name_the_principal(as_: As) -> None:
    key = as_(ROOT).create_key().key_id
    with pytest.raises(AccessDeniedError):
        as_("mallory").encrypt(key, b"x")
    [event] = [e for e in as_(ROOT).audit_events(key=key, operation="Encrypt")]
    assert (event.principal, event.ok) == ("local:user/mallory", False)
    assert "no key policy statement or grant allows it" in (event.error or "")

"""Access keys in the keystore, and calls made as an authenticated caller (calling_as)."""

from __future__ import annotations

import json
import pickle
import sqlite3
import threading
from pathlib import Path

import pytest

from envelope.cli.main import main
from envelope.exceptions import AccessDeniedError, KeyNotFoundError, KeyringError, KeyStateError, UsageError
from envelope.kms.operations import credentials
from envelope.kms.storage import schema
from envelope.kms.policy.principal import ROOT, calling, calling_as, from_arn, to_arn
from envelope.kms.store import KeyStore


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "keystore.db"


@pytest.fixture
def store(path: Path) -> KeyStore:
    with KeyStore(path, principal="owner") as opened:
        yield opened


# -- credentials ------------------------------------------------------------------------------------


def test_a_credential_has_an_aws_shaped_id_and_secret_and_goes_through_its_lifecycle(store: KeyStore) -> None:
    credential, secret = credentials.create_credential(store, "alice")
    assert credentials.is_access_key_id(credential.access_key_id) and credential.access_key_id.startswith("EKIA")
    assert len(credential.access_key_id) == 20 and len(secret) == 40
    assert (credential.principal, credential.state) == ("local:user/alice", "Enabled")
    assert credentials.list_credentials(store) == [credential]
    assert credentials.secret_for(store, credential.access_key_id) == ("local:user/alice", secret.encode())

    disabled = credentials.disable_credential(store, credential.access_key_id)
    assert disabled.state == "Disabled" and credentials.list_credentials(store) == [disabled]
    with pytest.raises(KeyStateError, match="Disabled"):
        credentials.secret_for(store, credential.access_key_id)
    assert credentials.enable_credential(store, credential.access_key_id).state == "Enabled"
    assert credentials.secret_for(store, credential.access_key_id)[1] == secret.encode()

    credentials.delete_credential(store, credential.access_key_id)
    assert credentials.list_credentials(store) == []
    with pytest.raises(KeyNotFoundError):
        credentials.secret_for(store, credential.access_key_id)
    with pytest.raises(KeyNotFoundError, match="no access key"):
        credentials.delete_credential(store, credential.access_key_id)


def test_each_credential_gets_its_own_id_and_secret(store: KeyStore) -> None:
    (a, secret_a), (b, secret_b) = (credentials.create_credential(store, name) for name in ("alice", "bob"))
    assert a.access_key_id != b.access_key_id and secret_a != secret_b


def test_an_unknown_or_malformed_access_key_id_is_not_found(store: KeyStore) -> None:
    for bad in ("EKIAAAAAAAAAAAAAAAAA", "AKIA", "x" * 10_000, "' OR 1=1 --"):
        with pytest.raises(KeyNotFoundError):
            credentials.secret_for(store, bad)


def test_a_principal_holds_at_most_two_access_keys_as_in_iam(store: KeyStore) -> None:
    first, _ = credentials.create_credential(store, "alice")
    credentials.create_credential(store, "local:user/alice")
    with pytest.raises(UsageError, match="already has 2 access keys"):
        credentials.create_credential(store, "alice")
    credentials.delete_credential(store, first.access_key_id)
    credentials.create_credential(store, "alice")  # rotation: delete the old, create the new


def test_only_the_keystore_owner_or_root_manages_credentials(store: KeyStore) -> None:
    credential, _ = credentials.create_credential(store, "alice")
    with calling_as("alice"):
        for attempt in (lambda: credentials.create_credential(store, "alice"),
                        lambda: credentials.list_credentials(store),
                        lambda: credentials.disable_credential(store, credential.access_key_id),
                        lambda: credentials.delete_credential(store, credential.access_key_id)):
            with pytest.raises(AccessDeniedError, match="only the keystore's owner"):
                attempt()
    with calling_as(ROOT):
        assert credentials.list_credentials(store) == [credential]


def test_the_secret_is_sealed_under_the_wrapping_key_and_bound_to_its_access_key_id(store: KeyStore,
                                                                                     path: Path) -> None:
    a, secret = credentials.create_credential(store, "alice")
    b, _ = credentials.create_credential(store, "bob")
    assert secret.encode() not in path.read_bytes()
    with sqlite3.connect(path) as conn:  # graft alice's sealed secret onto bob's access key
        (sealed,) = conn.execute("SELECT sealed_secret FROM credentials WHERE access_key_id = ?",
                                 (a.access_key_id,)).fetchone()
        conn.execute("UPDATE credentials SET sealed_secret = ? WHERE access_key_id = ?", (sealed, b.access_key_id))
    with pytest.raises(KeyringError, match="does not open under the keystore wrapping key"):
        credentials.secret_for(store, b.access_key_id)


def test_the_secret_is_in_no_repr_pickle_audit_row_or_error(store: KeyStore, path: Path) -> None:
    credential, secret = credentials.create_credential(store, "alice")
    credentials.disable_credential(store, credential.access_key_id)
    with pytest.raises(KeyStateError) as refused:
        credentials.secret_for(store, credential.access_key_id)
    for text in (repr(credential), str(credential.to_dict()), str(refused.value),
                 pickle.dumps(credential).decode("latin-1"),
                 json.dumps([e.to_dict() for e in store.audit_events()])):
        assert secret not in text
    operations = [(e.operation, e.ok) for e in store.audit_events()]
    assert ("CreateAccessKey", True) in operations and ("UpdateAccessKey", True) in operations


def test_a_version_4_keystore_is_upgraded_with_a_credentials_table_and_audit_columns(path: Path) -> None:
    with KeyStore(path) as store:
        key = store.create_key()
    with sqlite3.connect(path) as conn:  # back to version 4's layout
        conn.execute("DROP TABLE credentials")
        conn.execute("ALTER TABLE audit DROP COLUMN source")
        conn.execute("ALTER TABLE audit DROP COLUMN access_key_id")
        conn.execute("UPDATE meta SET value = '4' WHERE name = 'schema_version'")
    with KeyStore(path) as store:
        assert store.describe_key(key.key_id).key_id == key.key_id
        credential, _ = credentials.create_credential(store, "alice")
        assert credentials.list_credentials(store) == [credential]
        old = store.audit_events()[0]
        assert old.operation == "CreateKey" and old.source is None and old.access_key_id is None
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0] == str(
            schema.SCHEMA_VERSION)


# -- calling as an authenticated principal ----------------------------------------------------------


def test_calls_inside_calling_as_run_as_that_principal_and_audit_its_source_and_access_key(store: KeyStore) -> None:
    key = store.create_key(users=["alice"], admins=["owner"])
    with calling_as("alice", source="192.0.2.7:40000", access_key_id="EKIAABCDEFGHIJKLMNOP") as caller:
        assert store.principal == "local:user/alice" and calling() == caller
        blob = store.encrypt(key.key_id, b"secret data", {"app": "x"})
        with pytest.raises(AccessDeniedError, match="local:user/alice may not ScheduleKeyDeletion"):
            store.schedule_key_deletion(key.key_id, 7)
    assert store.principal == "local:user/owner" and calling() is None
    assert store.decrypt(blob, {"app": "x"})[0] == b"secret data"
    events = store.audit_events(key=key.key_id)
    rows = [(e.operation, e.ok, e.principal, e.source, e.access_key_id) for e in events]
    assert rows == [
        ("CreateKey", True, "local:user/owner", None, None),
        ("Encrypt", True, "local:user/alice", "192.0.2.7:40000", "EKIAABCDEFGHIJKLMNOP"),
        ("ScheduleKeyDeletion", False, "local:user/alice", "192.0.2.7:40000", "EKIAABCDEFGHIJKLMNOP"),
        ("Decrypt", True, "local:user/owner", None, None),
    ]


def test_policy_conditions_on_the_principal_arn_and_caller_account_see_the_calling_principal(
        store: KeyStore) -> None:
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "owner", "Effect": "Allow", "Principal": {"Local": "local:root"}, "Action": "kms:*",
         "Resource": "*"},
        {"Sid": "use", "Effect": "Allow", "Principal": {"Local": "*"}, "Action": "kms:Encrypt", "Resource": "*",
         "Condition": {"StringEquals": {"aws:PrincipalArn": "local:role/app",
                                        "kms:CallerAccount": store.keystore_id}}},
    ]}
    key = store.create_key(policy=policy)
    with calling_as("local:role/app"):
        store.encrypt(key.key_id, b"x")
    with calling_as("local:role/other"), pytest.raises(AccessDeniedError):
        store.encrypt(key.key_id, b"x")


def test_a_grant_applies_to_the_calling_principal(store: KeyStore) -> None:
    key = store.create_key()
    with calling_as("bob"), pytest.raises(AccessDeniedError):
        store.generate_data_key(key.key_id)
    store.create_grant(key.key_id, "bob", ["GenerateDataKey"])
    with calling_as("bob"):
        assert len(store.generate_data_key(key.key_id)[0]) == 32


def test_concurrent_callers_on_one_keystore_object_each_act_as_themselves(store: KeyStore) -> None:
    key = store.create_key(users=["u0", "u1", "u2", "u3"], admins=["owner"])
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(n: int) -> None:
        try:
            with calling_as(f"u{n}", source=f"10.0.0.{n}:1", access_key_id=f"EKIA{n:016d}"):
                barrier.wait()
                for _ in range(10):
                    store.encrypt(key.key_id, b"x")
                    assert store.principal == f"local:user/u{n}"
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    encrypts = [e for e in store.audit_events(operation="Encrypt")]
    assert len(encrypts) == 40
    for event in encrypts:
        n = event.principal[-1]
        assert (event.source, event.access_key_id) == (f"10.0.0.{n}:1", f"EKIA{int(n):016d}")


def test_calling_as_refuses_an_invalid_principal() -> None:
    with pytest.raises(UsageError, match="invalid principal"):
        with calling_as("not a principal"):
            pass  # pragma: no cover


def test_iam_arns_map_to_local_principals_and_back() -> None:
    account = "111122223333"
    for arn, local in ((f"arn:aws:iam::{account}:user/alice", "local:user/alice"),
                       (f"arn:aws:iam::{account}:role/app", "local:role/app"),
                       (f"arn:aws:iam::{account}:root", ROOT)):
        assert from_arn(arn) == local and to_arn(local, account) == arn
    assert from_arn(f"arn:aws:iam::{account}:role/team/app") == "local:role/app"
    assert from_arn("s3.amazonaws.com") == "local:service/s3" and to_arn("local:service/s3", account) == \
        "s3.amazonaws.com"
    assert from_arn("alice") == "local:user/alice"


# -- the command line -------------------------------------------------------------------------------


def test_cli_credentials_create_prints_the_secret_once_and_list_never(path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "--keystore", str(path), "init"]) == 0
    capsys.readouterr()
    assert main(["keys", "--keystore", str(path), "credentials", "create", "alice", "--json"]) == 0
    out = capsys.readouterr()
    created = json.loads(out.out)
    secret, access_key_id = created["secret_access_key"], created["access_key_id"]
    assert created["principal"] == "local:user/alice" and "shown this once" in out.err
    assert main(["keys", "--keystore", str(path), "credentials", "create", "bob"]) == 0
    text = capsys.readouterr().out
    assert "secret access key" in text and "local:user/bob" in text
    for argv in (["credentials", "list"], ["credentials", "list", "--json"], ["audit"], ["audit", "--json"],
                 ["credentials", "disable", access_key_id], ["credentials", "enable", access_key_id, "--json"]):
        assert main(["keys", "--keystore", str(path), *argv]) == 0
        shown = capsys.readouterr().out
        assert secret not in shown
    assert main(["keys", "--keystore", str(path), "credentials", "delete", access_key_id]) == 0
    assert f"deleted access key {access_key_id}" in capsys.readouterr().out


def test_cli_credentials_refusals_are_one_line_errors(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "--keystore", str(path), "init"]) == 0
    assert main(["keys", "--keystore", str(path), "credentials", "disable", "EKIAAAAAAAAAAAAAAAAA"]) != 0
    assert main(["--as", "mallory", "keys", "--keystore", str(path), "credentials", "list"]) != 0
    err = capsys.readouterr().err
    assert "no access key" in err and "only the keystore's owner" in err and "Traceback" not in err


def test_cli_audit_shows_source_and_access_key(store: KeyStore, path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    key = store.create_key(users=["alice"], admins=["owner"])
    with calling_as("alice", source="192.0.2.7:40000", access_key_id="EKIAABCDEFGHIJKLMNOP"):
        store.encrypt(key.key_id, b"x")
    assert main(["keys", "--keystore", str(path), "audit", "--operation", "Encrypt"]) == 0
    line = capsys.readouterr().out.strip()
    assert "local:user/alice" in line and "from 192.0.2.7:40000" in line and "access key EKIAABCDEFGHIJKLMNOP" in line

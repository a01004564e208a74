"""``envelope --as``, ``keys get-policy/put-policy``, ``keys grant …`` and files under keys with policies."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from envelope.cli.main import EXIT_KEY, EXIT_OK, EXIT_USAGE, main

Capsys = pytest.CaptureFixture[str]


def run(capsys: Capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def finance_key(capsys: Capsys) -> str:
    code, out, _ = run(capsys, "--as", "admin", "keys", "create", "--alias", "alias/finance",
                       "--admin", "cfo", "--user", "cfo")
    assert code == EXIT_OK
    return out.strip()


@pytest.fixture
def report(tmp_path: Path) -> Path:
    path = tmp_path / "payslips.csv"
    path.write_bytes(os.urandom(70_000))
    return path


def test_whoami_reports_the_principal_and_the_owner(capsys: Capsys, finance_key: str) -> None:
    code, out, _ = run(capsys, "--as", "cfo", "keys", "whoami", "--json")
    assert code == EXIT_OK
    assert json.loads(out)["principal"] == "local:user/cfo" and json.loads(out)["owner"] == "local:user/admin"
    assert "ENVELOPE_PRINCIPAL" not in os.environ  # --as lasts for one command


def test_files_under_a_cfo_only_key(capsys: Capsys, finance_key: str, report: Path, tmp_path: Path) -> None:
    enc, out = tmp_path / "payslips.csv.envelope", tmp_path / "back.csv"
    code, _, err = run(capsys, "--as", "cfo", "encrypt-file", str(report), "-o", str(enc), "--key",
                       "local:alias/finance", "-q")
    assert code == EXIT_OK, err
    code, _, err = run(capsys, "--as", "accounts", "decrypt-file", str(enc), "-o", str(out), "--key",
                       "local:alias/finance")
    assert code == EXIT_KEY and err.count("\n") == 1
    assert "local:user/accounts may not Decrypt" in err and not out.exists()
    code, _, err = run(capsys, "--as", "accounts", "encrypt-file", str(report), "-o", str(tmp_path / "x"),
                       "--key", "local:alias/finance")
    assert code == EXIT_KEY and "may not GenerateDataKey" in err
    assert run(capsys, "--as", "cfo", "decrypt-file", str(enc), "-o", str(out), "-q")[0] == EXIT_OK
    assert out.read_bytes() == report.read_bytes()


def test_get_and_put_policy(capsys: Capsys, finance_key: str, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "--as", "cfo", "keys", "get-policy", "alias/finance")
    policy = json.loads(out)
    assert code == EXIT_OK and [s["Sid"] for s in policy["Statement"]][1:] == [
        "Allow administration of the key", "Allow use of the key"]
    policy["Statement"][2]["Principal"]["Local"].append("local:user/accounts")
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    assert run(capsys, "--as", "accounts", "keys", "put-policy", "alias/finance", "--file", str(path))[0] == EXIT_KEY
    assert run(capsys, "--as", "cfo", "keys", "put-policy", "alias/finance", "--file", str(path))[0] == EXIT_OK
    small = tmp_path / "small"
    small.write_bytes(b"now a key user")
    code, out, err = run(capsys, "--as", "accounts", "keys", "encrypt", "alias/finance", "--json", "--in", str(small))
    assert code == EXIT_OK, err


def test_put_policy_refuses_bad_documents_and_lockouts(capsys: Capsys, finance_key: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}]}')
    code, _, err = run(capsys, "--as", "cfo", "keys", "put-policy", "alias/finance", "--file", str(bad))
    assert code == EXIT_USAGE and "not a kms: action" in err
    lockout = tmp_path / "lockout.json"
    lockout.write_text('{"Statement": [{"Effect": "Allow", "Principal": {"Local": "cfo"}, "Action": "kms:Decrypt",'
                       ' "Resource": "*"}]}')
    code, _, err = run(capsys, "--as", "cfo", "keys", "put-policy", "alias/finance", "--file", str(lockout))
    assert code == EXIT_USAGE and "lockout safety check" in err


def test_grant_create_list_use_and_revoke(capsys: Capsys, finance_key: str, report: Path, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "--as", "admin", "keys", "grant", "create", "alias/finance", "--grantee",
                       "local:role/auditor", "--operations", "Decrypt", "--constraint", "dept=finance", "--json")
    grant = json.loads(out)
    assert code == EXIT_OK and set(grant) == {"GrantId", "GrantToken"}
    enc = tmp_path / "r.envelope"
    assert run(capsys, "--as", "cfo", "encrypt-file", str(report), "-o", str(enc), "--key", "local:alias/finance",
               "--context", "dept=finance", "-q")[0] == EXIT_OK
    enc_sales = tmp_path / "s.envelope"
    assert run(capsys, "--as", "cfo", "encrypt-file", str(report), "-o", str(enc_sales), "--key",
               "local:alias/finance", "--context", "dept=sales", "-q")[0] == EXIT_OK
    assert run(capsys, "--as", "local:role/auditor", "decrypt-file", str(enc), "-o", str(tmp_path / "ok"),
               "-q")[0] == EXIT_OK
    code, _, err = run(capsys, "--as", "local:role/auditor", "decrypt-file", str(enc_sales), "-o",
                       str(tmp_path / "no"))
    assert code == EXIT_KEY and "may not Decrypt" in err and not (tmp_path / "no").exists()

    code, out, _ = run(capsys, "--as", "admin", "keys", "grant", "list", "alias/finance", "--json")
    [listed] = json.loads(out)["Grants"]
    assert listed["GrantId"] == grant["GrantId"] and listed["Constraints"] == {
        "EncryptionContextSubset": {"dept": "finance"}}
    assert run(capsys, "--as", "accounts", "keys", "grant", "revoke", "alias/finance",
               grant["GrantId"])[0] == EXIT_KEY
    assert run(capsys, "--as", "cfo", "keys", "grant", "revoke", "alias/finance", grant["GrantId"])[0] == EXIT_OK
    assert run(capsys, "--as", "local:role/auditor", "decrypt-file", str(enc), "-o", str(tmp_path / "again"),
               "--force")[0] == EXIT_KEY


def test_grant_retire_by_token(capsys: Capsys, finance_key: str) -> None:
    code, out, _ = run(capsys, "--as", "admin", "keys", "grant", "create", "alias/finance", "--grantee", "bob",
                       "--operations", "Encrypt,RetireGrant", "--json")
    token = json.loads(out)["GrantToken"]
    assert run(capsys, "--as", "bob", "keys", "grant", "retire", "--token", token)[0] == EXIT_OK
    code, out, _ = run(capsys, "--as", "admin", "keys", "grant", "list", "alias/finance")
    assert "no grants" in out


@pytest.mark.parametrize(("argv", "needle"), [
    (["--as", "bad name!", "keys", "list"], "invalid principal"),
    (["keys", "grant", "create", "alias/finance", "--grantee", "bob", "--operations", "Fly"], "unknown grant operation"),
    (["keys", "grant", "retire"], "needs --token"),
    (["keys", "create", "--admin", "x", "--policy", "/dev/null"], "not both"),
])
def test_bad_access_arguments_are_usage_errors(capsys: Capsys, finance_key: str, argv: list[str],
                                               needle: str) -> None:
    code, _, err = run(capsys, *argv)
    assert code == EXIT_USAGE and needle in err and err.count("\n") == 1

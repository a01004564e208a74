"""``envelope keys ...``: exit codes, output, and errors as one line without a traceback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from envelope.cli.main import EXIT_KEY, EXIT_OK, EXIT_USAGE, main


@pytest.fixture
def ks_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keystore.db"
    monkeypatch.setenv("ENVELOPE_KEYSTORE", str(path))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert err.startswith("envelope: error: ") and err.count("\n") == 1
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def create(capsys: pytest.CaptureFixture[str], *extra: str) -> dict:  # type: ignore[type-arg]
    code, out, _ = run(capsys, "keys", "create", "--json", *extra)
    assert code == EXIT_OK
    return json.loads(out)["KeyMetadata"]  # type: ignore[no-any-return]


def test_create_prints_just_the_key_id_for_scripts(capsys: pytest.CaptureFixture[str], ks_path: Path) -> None:
    code, out, err = run(capsys, "keys", "create", "--description", "backups", "--alias", "alias/prod")
    assert code == EXIT_OK and err == ""
    with sqlite3.connect(ks_path) as conn:
        (key_id,) = conn.execute("SELECT key_id FROM keys").fetchone()
    assert out == key_id + "\n"
    code, out, _ = run(capsys, "keys", "describe", key_id)
    assert f"key id:       {key_id}" in out and "alias/prod" in out and "backups" in out and "Enabled" in out


def test_create_json_is_machine_readable(capsys: pytest.CaptureFixture[str], ks_path: Path) -> None:
    meta = create(capsys, "--alias", "alias/app")
    assert meta["KeyState"] == "Enabled" and meta["Enabled"] is True
    assert meta["Arn"].endswith(f":key/{meta['KeyId']}")
    code, out, _ = run(capsys, "keys", "list-aliases", "--key-id", meta["KeyId"], "--json")
    assert [a["AliasName"] for a in json.loads(out)["Aliases"]] == ["alias/app"]


def test_list_shows_every_key_as_table_and_json(capsys: pytest.CaptureFixture[str], ks_path: Path) -> None:
    a = create(capsys, "--alias", "alias/one", "--description", "first")
    b = create(capsys)
    code, out, _ = run(capsys, "keys", "list")
    lines = out.splitlines()
    assert code == EXIT_OK and lines[0].split()[:3] == ["KEY", "ID", "STATE"]
    assert a["KeyId"] in lines[1] and "alias/one" in lines[1] and "first" in lines[1]
    assert b["KeyId"] in lines[2]
    code, out, _ = run(capsys, "keys", "list", "--json")
    listing = json.loads(out)
    assert listing == {"Keys": [{"KeyId": a["KeyId"], "KeyArn": a["Arn"]}, {"KeyId": b["KeyId"], "KeyArn": b["Arn"]}],
                       "Truncated": False}


def test_list_without_a_keystore_says_so_and_creates_nothing(capsys: pytest.CaptureFixture[str],
                                                            ks_path: Path) -> None:
    code, out, _ = run(capsys, "keys", "list")
    assert code == EXIT_OK and "no local keystore" in out
    code, out, _ = run(capsys, "keys", "list", "--json")
    assert code == EXIT_OK and json.loads(out) == {"Keys": [], "Truncated": False}
    assert not ks_path.exists()


@pytest.mark.parametrize("form", ["KeyId", "Arn", "alias"])
def test_describe_accepts_id_arn_or_alias(capsys: pytest.CaptureFixture[str], ks_path: Path, form: str) -> None:
    meta = create(capsys, "--alias", "alias/d")
    ref = "alias/d" if form == "alias" else meta[form]
    code, out, _ = run(capsys, "keys", "describe", ref, "--json")
    assert code == EXIT_OK and json.loads(out) == {"KeyMetadata": meta}
    code, out, _ = run(capsys, "keys", "describe", ref)
    assert code == EXIT_OK and meta["Arn"] in out


def test_describe_unknown_alias_exits_5_with_one_line(capsys: pytest.CaptureFixture[str], ks_path: Path) -> None:
    create(capsys)
    code, out, err = run(capsys, "keys", "describe", "alias/missing")
    assert code == EXIT_KEY and out == ""
    assert_one_line_error(err, "alias/missing does not exist")


def test_describe_without_a_keystore_exits_5_and_creates_nothing(capsys: pytest.CaptureFixture[str],
                                                                 ks_path: Path) -> None:
    code, _, err = run(capsys, "keys", "describe", "alias/x")
    assert code == EXIT_KEY
    assert_one_line_error(err, f"no local keystore at {ks_path}")
    assert not ks_path.exists()


def test_describe_malformed_reference_is_a_usage_error(capsys: pytest.CaptureFixture[str], ks_path: Path) -> None:
    create(capsys)
    code, _, err = run(capsys, "keys", "describe", "not-a-key")
    assert code == EXIT_USAGE
    assert_one_line_error(err, "not a key id")


def test_alias_creates_a_name_the_key_answers_to(capsys: pytest.CaptureFixture[str], ks_path: Path) -> None:
    meta = create(capsys)
    code, out, _ = run(capsys, "keys", "alias", "create", "alias/new", meta["KeyId"])
    assert code == EXIT_OK and out.strip() == f"alias/new -> {meta['KeyId']}"
    code, out, _ = run(capsys, "keys", "describe", "alias/new", "--json")
    assert json.loads(out)["KeyMetadata"]["KeyId"] == meta["KeyId"]


@pytest.mark.parametrize(("alias", "message"), [
    ("alias/aws/s3", "reserved"),
    ("alias/taken", "already exists"),
    ("alias/sp ace", "invalid alias name"),
    ("noprefix", "invalid alias name"),
])
def test_alias_rule_violations_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], ks_path: Path,
                                                    alias: str, message: str) -> None:
    meta = create(capsys, "--alias", "alias/taken")
    code, out, err = run(capsys, "keys", "alias", "create", alias, meta["KeyId"])
    assert code == EXIT_USAGE and out == ""
    assert_one_line_error(err, message)


def test_create_with_a_reserved_alias_exits_2_and_creates_no_key(capsys: pytest.CaptureFixture[str],
                                                                ks_path: Path) -> None:
    code, _, err = run(capsys, "keys", "create", "--alias", "alias/aws/mine")
    assert code == EXIT_USAGE
    assert_one_line_error(err, "reserved")
    code, out, _ = run(capsys, "keys", "list", "--json")
    assert json.loads(out)["Keys"] == []


@pytest.mark.parametrize("position", ["before", "after"])
def test_keystore_option_overrides_the_environment(capsys: pytest.CaptureFixture[str], ks_path: Path,
                                                   tmp_path: Path, position: str) -> None:
    other = tmp_path / "elsewhere" / "other.db"
    argv = ["keys", "--keystore", str(other), "create", "--json"] if position == "before" else \
        ["keys", "create", "--json", "--keystore", str(other)]
    code, out, _ = run(capsys, *argv)
    assert code == EXIT_OK and other.exists() and not ks_path.exists()
    code, out2, _ = run(capsys, "keys", "list", "--json", "--keystore", str(other))
    assert json.loads(out2)["Keys"][0]["KeyId"] == json.loads(out)["KeyMetadata"]["KeyId"]


def test_keystore_open_to_others_exits_5_with_chmod_advice(capsys: pytest.CaptureFixture[str],
                                                           ks_path: Path) -> None:
    create(capsys)
    ks_path.chmod(0o640)
    code, _, err = run(capsys, "keys", "list")
    assert code == EXIT_KEY
    assert_one_line_error(err, "chmod 600")


def test_keys_without_an_action_is_a_usage_error(capsys: pytest.CaptureFixture[str], ks_path: Path) -> None:
    assert main(["keys"]) == EXIT_USAGE
    assert "Traceback" not in capsys.readouterr().err

"""``envelope keys ...`` end to end through ``main([...])``: every action, text and --json, exit codes.

Time-dependent behaviour (scheduled deletion, automatic rotation) is set up with
the Python API under a :class:`ManualClock` in the past, then carried out by
``envelope keys maintain`` on the real clock.
"""

from __future__ import annotations

import base64
import io
import json
import stat
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from envelope.cli.main import EXIT_KEY, EXIT_OK, EXIT_USAGE, main
from envelope.kms.crypto import blob as kms_blob
from envelope.kms.model.clock import ManualClock, parse_iso
from envelope.kms.store import KeyStore

Capsys = pytest.CaptureFixture[str]

PASSPHRASE_ENV = "ENVELOPE_KEYSTORE_PASSPHRASE"


@pytest.fixture
def ks_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keystore.db"
    monkeypatch.setenv("ENVELOPE_KEYSTORE", str(path))
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)  # else every new keystore would be a passphrase one
    return path


# -- helpers ---------------------------------------------------------------------------------------


def run(capsys: Capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert err.startswith("envelope: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def ok(capsys: Capsys, *argv: str) -> str:
    """Run a command that must succeed silently on stderr; its stdout."""
    code, out, err = run(capsys, *argv)
    assert code == EXIT_OK, err
    assert err == ""
    return out


def ok_json(capsys: Capsys, *argv: str) -> Any:
    return json.loads(ok(capsys, *argv, "--json"))


def refused(capsys: Capsys, expected_code: int, *argv: str, fragments: tuple[str, ...] = ()) -> str:
    """Run a command that must fail with *expected_code*, nothing on stdout and one error line; the line."""
    code, out, err = run(capsys, *argv)
    assert code == expected_code, (code, err)
    assert out == ""
    assert_one_line_error(err, *fragments)
    return err


def create_key(capsys: Capsys, *extra: str) -> str:
    return str(ok_json(capsys, "keys", "create", *extra)["KeyMetadata"]["KeyId"])


def describe(capsys: Capsys, ref: str) -> Any:
    """``keys describe REF --json``: AWS's KeyMetadata."""
    return ok_json(capsys, "keys", "describe", ref)["KeyMetadata"]


def tags_of(capsys: Capsys, ref: str) -> dict[str, str]:
    return {t["TagKey"]: t["TagValue"] for t in ok_json(capsys, "keys", "tags", ref)["Tags"]}


def aliases_of(capsys: Capsys, key: str) -> list[str]:
    return [a["AliasName"] for a in ok_json(capsys, "keys", "alias", "list", "--key", key)["Aliases"]]


def rotation_types(capsys: Capsys, key: str) -> list[str]:
    return [r["RotationType"] for r in ok_json(capsys, "keys", "list-key-rotations", key)["Rotations"]]


def key_of(arn: str) -> str:
    """The key id at the end of a key ARN (AWS's responses name keys by ARN)."""
    return arn.rsplit("/", 1)[-1]


def silent_json(capsys: Capsys, *argv: str) -> None:
    """An action whose AWS response has no members prints nothing with --json, as aws kms does."""
    assert ok(capsys, *argv, "--json") == ""


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def encrypt_to(capsys: Capsys, tmp_path: Path, key: str, data: bytes, *context: str, name: str = "blob") -> Path:
    """``keys encrypt KEY --in FILE -o OUT [--context ...]``; the path of the blob."""
    src = write(tmp_path / f"{name}.in", data)
    out = tmp_path / f"{name}.kms"
    args = [a for pair in context for a in ("--context", pair)]
    assert ok(capsys, "keys", "encrypt", key, "--in", str(src), "-o", str(out), *args) == ""
    return out


def decrypt_bytes(capsys: Capsys, tmp_path: Path, blob: Path, *extra: str) -> bytes:
    out = tmp_path / "decrypted.out"  # reused from call to call: --force replaces it
    assert ok(capsys, "keys", "decrypt", "--in", str(blob), "-o", str(out), "--force", *extra) == ""
    return out.read_bytes()


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def key_file(ks_path: Path) -> Path:
    return ks_path.with_name(ks_path.name + ".key")


def close_to(stamp: str, expected: datetime, slack: timedelta = timedelta(minutes=5)) -> bool:
    return abs(parse_iso(stamp) - expected) <= slack


# -- init and protection ---------------------------------------------------------------------------


def test_init_creates_the_keystore_and_its_key_file_both_private(capsys: Capsys, ks_path: Path) -> None:
    out = ok(capsys, "keys", "init")
    assert out.strip() == f"created the local keystore {ks_path} (key-file protection)"
    assert ks_path.is_file() and key_file(ks_path).is_file()
    assert mode_of(ks_path) == 0o600
    assert mode_of(key_file(ks_path)) == 0o600


def test_init_json_reports_key_file_protection(capsys: Capsys, ks_path: Path) -> None:
    info = ok_json(capsys, "keys", "init")
    assert info["protection"] == "key-file" and info["keystore"] == str(ks_path)
    assert isinstance(info["keystore_id"], str) and info["keystore_id"]
    key = create_key(capsys)
    assert describe(capsys, key)["Arn"].startswith(f"arn:envelope:kms:local:{info['keystore_id']}:")


def test_init_again_refuses_with_exit_2_and_keeps_the_keystore(capsys: Capsys, ks_path: Path) -> None:
    ok(capsys, "keys", "init")
    key = create_key(capsys)
    refused(capsys, EXIT_USAGE, "keys", "init", fragments=("already exists", str(ks_path)))
    refused(capsys, EXIT_USAGE, "keys", "init", "--passphrase", fragments=("already exists",))
    assert describe(capsys, key)["KeyState"] == "Enabled"


def test_init_passphrase_without_a_passphrase_source_exits_2_and_creates_nothing(capsys: Capsys,
                                                                                 ks_path: Path) -> None:
    refused(capsys, EXIT_USAGE, "keys", "init", "--passphrase", fragments=("--passphrase needs", PASSPHRASE_ENV))
    assert not ks_path.exists() and not key_file(ks_path).exists()


def test_passphrase_keystore_needs_the_passphrase_for_crypto_but_not_for_listing(
        capsys: Capsys, ks_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple")
    info = ok_json(capsys, "keys", "init", "--passphrase")
    assert info["protection"] == "passphrase"
    assert mode_of(ks_path) == 0o600 and not key_file(ks_path).exists()
    key = create_key(capsys, "--alias", "alias/pp")
    blob = encrypt_to(capsys, tmp_path, key, b"under a passphrase")

    monkeypatch.delenv(PASSPHRASE_ENV)
    refused(capsys, EXIT_KEY, "keys", "encrypt", key, "--in", str(tmp_path / "blob.in"), "-o",
            str(tmp_path / "x"), fragments=("passphrase", PASSPHRASE_ENV))
    refused(capsys, EXIT_KEY, "keys", "decrypt", "--in", str(blob), "-o", str(tmp_path / "x"),
            fragments=("passphrase",))
    refused(capsys, EXIT_KEY, "keys", "generate-data-key", key, "--json", fragments=("passphrase",))
    # Metadata needs no wrapping key.
    listing = ok_json(capsys, "keys", "list")
    assert [k["KeyId"] for k in listing["Keys"]] == [key]
    assert key in ok(capsys, "keys", "list")
    assert describe(capsys, "alias/pp")["KeyId"] == key

    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    refused(capsys, EXIT_KEY, "keys", "decrypt", "--in", str(blob), "-o", str(tmp_path / "x"),
            fragments=("wrong passphrase",))
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple")
    assert decrypt_bytes(capsys, tmp_path, blob) == b"under a passphrase"


# -- create, describe, set-description -------------------------------------------------------------


def test_create_with_alias_description_and_tags_prints_only_the_key_id(capsys: Capsys, ks_path: Path) -> None:
    out = ok(capsys, "keys", "create", "--alias", "alias/app", "--description", "app data",
             "--tag", "owner=ops", "--tag", "env=prod")
    assert out.count("\n") == 1
    key = out.strip()
    meta = describe(capsys, key)
    assert meta["KeyId"] == key
    assert aliases_of(capsys, key) == ["alias/app"] and meta["Description"] == "app data"
    assert tags_of(capsys, key) == {"owner": "ops", "env": "prod"}
    assert meta["KeyState"] == "Enabled" and rotation_types(capsys, key) == []


@pytest.mark.parametrize("form", ["id", "alias", "arn"])
def test_describe_by_id_alias_or_arn_shows_state_and_tags(capsys: Capsys, ks_path: Path, form: str) -> None:
    key = create_key(capsys, "--alias", "alias/described", "--tag", "owner=ops", "--tag", "env=prod")
    arn = describe(capsys, key)["Arn"]
    ref = {"id": key, "alias": "alias/described", "arn": arn}[form]
    meta = describe(capsys, ref)
    assert meta["KeyId"] == key and meta["KeyState"] == "Enabled"
    assert tags_of(capsys, ref) == {"env": "prod", "owner": "ops"}
    text = ok(capsys, "keys", "describe", ref)
    lines = dict(line.split(":", 1) for line in text.splitlines())
    assert lines["key id"].strip() == key
    assert lines["state"].strip() == "Enabled"
    assert lines["tags"].strip() == "env=prod, owner=ops"
    assert lines["aliases"].strip() == "alias/described"
    assert lines["rotation"].strip() == "disabled"


def test_describe_unknown_key_id_exits_5(capsys: Capsys, ks_path: Path) -> None:
    create_key(capsys)
    missing = "00000000-0000-4000-8000-000000000000"
    refused(capsys, EXIT_KEY, "keys", "describe", missing, fragments=(missing, "does not exist"))


def test_set_description_replaces_it(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys, "--description", "old")
    text = ok(capsys, "keys", "set-description", key, "new words")
    assert "new words" in text and "old" not in text
    silent_json(capsys, "keys", "set-description", key, "newer")
    assert describe(capsys, key)["Description"] == "newer"


# -- enable and disable ----------------------------------------------------------------------------


def test_disabled_key_refuses_encrypt_with_exit_5_and_works_again_after_enable(
        capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key = create_key(capsys)
    blob = encrypt_to(capsys, tmp_path, key, b"before")
    assert ok(capsys, "keys", "disable", key).strip() == f"key {key} is Disabled"
    silent_json(capsys, "keys", "disable", key)  # repeating is not an error
    assert describe(capsys, key)["KeyState"] == "Disabled" and describe(capsys, key)["Enabled"] is False
    src = write(tmp_path / "p", b"data")
    refused(capsys, EXIT_KEY, "keys", "encrypt", key, "--in", str(src), "-o", str(tmp_path / "o"),
            fragments=(key, "Disabled", f"envelope keys enable {key}"))
    refused(capsys, EXIT_KEY, "keys", "decrypt", "--in", str(blob), "-o", str(tmp_path / "o"),
            fragments=(key, "Disabled"))
    refused(capsys, EXIT_KEY, "keys", "generate-data-key", key, "--json", fragments=(key, "Disabled"))
    assert not (tmp_path / "o").exists()

    silent_json(capsys, "keys", "enable", key)
    assert describe(capsys, key)["KeyState"] == "Enabled"
    assert ok(capsys, "keys", "enable", key).strip() == f"key {key} is Enabled"
    assert decrypt_bytes(capsys, tmp_path, encrypt_to(capsys, tmp_path, key, b"after", name="b2")) == b"after"
    assert decrypt_bytes(capsys, tmp_path, blob) == b"before"


# -- rotation --------------------------------------------------------------------------------------


@pytest.mark.parametrize("days", ["89", "2561", "0", "-90"])
def test_enable_rotation_period_outside_90_to_2560_exits_2(capsys: Capsys, ks_path: Path, days: str) -> None:
    key = create_key(capsys)
    refused(capsys, EXIT_USAGE, "keys", "enable-rotation", key, "--period-days", days,
            fragments=("90 to 2560",))
    assert ok_json(capsys, "keys", "rotation-status", key)["KeyRotationEnabled"] is False


@pytest.mark.parametrize("days", [90, 2560])
def test_enable_rotation_accepts_the_bounds_of_the_period(capsys: Capsys, ks_path: Path, days: int) -> None:
    key = create_key(capsys)
    silent_json(capsys, "keys", "enable-rotation", key, "--period-days", str(days))
    status = ok_json(capsys, "keys", "rotation-status", key)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == days
    assert close_to(status["NextRotationDate"], datetime.now(timezone.utc) + timedelta(days=days))


def test_rotation_status_text_and_json_follow_enable_and_disable(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys)
    status = ok_json(capsys, "keys", "rotation-status", key)
    assert key_of(status["KeyId"]) == key and status["KeyRotationEnabled"] is False
    assert "RotationPeriodInDays" not in status and "NextRotationDate" not in status
    assert rotation_types(capsys, key) == []  # AWS lists rotations, not the original backing key
    lines = ok(capsys, "keys", "rotation-status", key).splitlines()
    assert lines[0] == f"key {key}: automatic rotation disabled"
    assert lines[1].startswith("  backing key 1: ") and lines[1].endswith("(original)")

    text = ok(capsys, "keys", "enable-rotation", key, "--period-days", "180")
    assert text.startswith(f"key {key}: automatic rotation enabled, every 180 days, next on ")
    status = ok_json(capsys, "keys", "rotation-status", key)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 180
    assert close_to(status["NextRotationDate"], datetime.now(timezone.utc) + timedelta(days=180))

    silent_json(capsys, "keys", "disable-rotation", key)
    disabled = ok_json(capsys, "keys", "rotation-status", key)
    assert disabled["KeyRotationEnabled"] is False and "NextRotationDate" not in disabled
    assert "automatic rotation disabled" in ok(capsys, "keys", "rotation-status", key)


def test_enable_rotation_defaults_to_365_days(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys)
    silent_json(capsys, "keys", "enable-rotation", key)
    assert ok_json(capsys, "keys", "rotation-status", key)["RotationPeriodInDays"] == 365


def test_rotate_adds_backing_keys_and_old_blobs_still_decrypt(capsys: Capsys, ks_path: Path,
                                                              tmp_path: Path) -> None:
    key = create_key(capsys, "--alias", "alias/rot")
    old = encrypt_to(capsys, tmp_path, key, b"sealed by version 1", "a=1", name="old")
    assert kms_blob.parse(old.read_bytes()).backing_version == 1

    assert ok_json(capsys, "keys", "rotate", key) == {"KeyId": key}
    assert rotation_types(capsys, key) == ["ON_DEMAND"]
    text = ok(capsys, "keys", "rotate", "alias/rot")
    assert text.strip() == (f"key {key} rotated: backing key 3 now encrypts; older ones still decrypt")

    assert rotation_types(capsys, key) == ["ON_DEMAND", "ON_DEMAND"]
    lines = ok(capsys, "keys", "rotation-status", key).splitlines()
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["backing key 1", "backing key 2", "backing key 3"]
    # on-demand rotation does not switch the schedule on
    assert ok_json(capsys, "keys", "rotation-status", key)["KeyRotationEnabled"] is False

    new = encrypt_to(capsys, tmp_path, key, b"sealed by version 3", "a=1", name="new")
    assert kms_blob.parse(new.read_bytes()).backing_version == 3
    assert decrypt_bytes(capsys, tmp_path, old, "--context", "a=1") == b"sealed by version 1"
    assert decrypt_bytes(capsys, tmp_path, new, "--context", "a=1") == b"sealed by version 3"
    # Re-encrypting under the same key moves the old blob to the newest backing key.
    moved = ok_json(capsys, "keys", "re-encrypt", "--in", str(old), "--to", key, "--context", "a=1")
    assert kms_blob.parse(b64(moved["CiphertextBlob"])).backing_version == 3


def test_rotate_a_disabled_key_exits_5(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys)
    ok(capsys, "keys", "disable", key)
    refused(capsys, EXIT_KEY, "keys", "rotate", key, fragments=(key, "Disabled"))


def test_maintain_performs_a_due_automatic_rotation(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key = create_key(capsys)
    old = encrypt_to(capsys, tmp_path, key, b"before the rotation")
    with KeyStore(ks_path, create=False,
                  clock=ManualClock(start=datetime.now(timezone.utc) - timedelta(days=100))) as store:
        status = store.enable_key_rotation(key, 90)
    assert status.next_rotation_date is not None
    assert parse_iso(status.next_rotation_date) < datetime.now(timezone.utc)

    assert ok_json(capsys, "keys", "maintain") == {"rotated": [key], "deleted": []}
    status_json = ok_json(capsys, "keys", "rotation-status", key)
    assert rotation_types(capsys, key) == ["AUTOMATIC"]
    assert status_json["KeyRotationEnabled"] is True and status_json["RotationPeriodInDays"] == 90
    assert close_to(status_json["NextRotationDate"], datetime.now(timezone.utc) + timedelta(days=90))
    assert "(automatic)" in ok(capsys, "keys", "rotation-status", key)

    assert decrypt_bytes(capsys, tmp_path, old) == b"before the rotation"
    new = encrypt_to(capsys, tmp_path, key, b"after", name="new")
    assert kms_blob.parse(new.read_bytes()).backing_version == 2
    assert ok(capsys, "keys", "maintain").strip() == "nothing due"
    rotations = ok_json(capsys, "keys", "audit", "--key", key, "--operation", "RotateKey")
    assert len(rotations) == 1 and rotations[0]["ok"] is True


def test_maintain_text_names_the_rotated_key(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys)
    with KeyStore(ks_path, create=False,
                  clock=ManualClock(start=datetime.now(timezone.utc) - timedelta(days=100))) as store:
        store.enable_key_rotation(key, 90)
    assert ok(capsys, "keys", "maintain") == f"rotated {key}\n"


# -- scheduled deletion ----------------------------------------------------------------------------


@pytest.mark.parametrize("days", ["6", "31", "0"])
def test_schedule_deletion_window_outside_7_to_30_exits_2(capsys: Capsys, ks_path: Path, days: str) -> None:
    key = create_key(capsys)
    refused(capsys, EXIT_USAGE, "keys", "schedule-deletion", key, "--days", days, fragments=("7 to 30",))
    assert describe(capsys, key)["KeyState"] == "Enabled"


def test_schedule_deletion_defaults_to_30_days(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys)
    plan = ok_json(capsys, "keys", "schedule-deletion", key)
    assert key_of(plan["KeyId"]) == key and plan["KeyState"] == "PendingDeletion" and plan["PendingWindowInDays"] == 30
    assert close_to(plan["DeletionDate"], datetime.now(timezone.utc) + timedelta(days=30))
    meta = describe(capsys, key)
    assert meta["KeyState"] == "PendingDeletion" and meta["DeletionDate"] == plan["DeletionDate"]
    assert "deletion date:" in ok(capsys, "keys", "describe", key)


def test_schedule_deletion_text_names_the_date_and_the_way_back(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys)
    text = ok(capsys, "keys", "schedule-deletion", key, "--days", "7")
    assert text.startswith(f"key {key} is PendingDeletion: its material will be destroyed on ")
    assert f"envelope keys cancel-deletion {key}" in text
    deletion_date = describe(capsys, key)["DeletionDate"]
    assert deletion_date.replace("+00:00", "Z") in text
    assert close_to(deletion_date, datetime.now(timezone.utc) + timedelta(days=7))


def test_pending_deletion_key_refuses_crypto_and_cancel_returns_it_disabled(
        capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key = create_key(capsys)
    blob = encrypt_to(capsys, tmp_path, key, b"kept")
    ok(capsys, "keys", "schedule-deletion", key, "--days", "7")
    src = write(tmp_path / "p", b"x")
    refused(capsys, EXIT_KEY, "keys", "encrypt", key, "--in", str(src), "-o", str(tmp_path / "o"),
            fragments=(key, "PendingDeletion", "cancel-deletion"))
    refused(capsys, EXIT_KEY, "keys", "decrypt", "--in", str(blob), "-o", str(tmp_path / "o"),
            fragments=(key, "PendingDeletion"))
    refused(capsys, EXIT_KEY, "keys", "generate-data-key", key, "--json", fragments=("PendingDeletion",))
    refused(capsys, EXIT_KEY, "keys", "enable", key, fragments=("PendingDeletion",))
    refused(capsys, EXIT_KEY, "keys", "schedule-deletion", key, fragments=("PendingDeletion",))

    text = ok(capsys, "keys", "cancel-deletion", key)
    assert text.strip() == (f"deletion cancelled: key {key} is Disabled "
                            f"(enable it with: envelope keys enable {key})")
    meta = describe(capsys, key)
    assert meta["KeyState"] == "Disabled" and "DeletionDate" not in meta
    refused(capsys, EXIT_KEY, "keys", "cancel-deletion", key, fragments=("Disabled",))
    ok(capsys, "keys", "enable", key)
    assert decrypt_bytes(capsys, tmp_path, blob) == b"kept"


def test_cancel_deletion_json_shows_the_key_disabled(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys)
    ok(capsys, "keys", "schedule-deletion", key)
    assert key_of(ok_json(capsys, "keys", "cancel-deletion", key)["KeyId"]) == key
    meta = describe(capsys, key)
    assert meta["KeyState"] == "Disabled" and "DeletionDate" not in meta


def test_maintain_with_nothing_due_says_so(capsys: Capsys, ks_path: Path) -> None:
    create_key(capsys)
    assert ok(capsys, "keys", "maintain") == "nothing due\n"
    assert ok_json(capsys, "keys", "maintain") == {"rotated": [], "deleted": []}


@pytest.mark.parametrize("as_json", [False, True])
def test_maintain_destroys_a_key_whose_deletion_date_has_passed(capsys: Capsys, ks_path: Path,
                                                                tmp_path: Path, as_json: bool) -> None:
    key = create_key(capsys, "--alias", "alias/doomed", "--tag", "t=v")
    keep = create_key(capsys)
    blob = encrypt_to(capsys, tmp_path, key, b"soon unreadable")
    with KeyStore(ks_path, create=False,
                  clock=ManualClock(start=datetime.now(timezone.utc) - timedelta(days=40))) as store:
        plan = store.schedule_key_deletion(key, 7)
    assert parse_iso(plan.deletion_date) < datetime.now(timezone.utc)

    if as_json:
        assert ok_json(capsys, "keys", "maintain") == {"rotated": [], "deleted": [key]}
    else:
        assert ok(capsys, "keys", "maintain") == f"deleted {key}\n"

    refused(capsys, EXIT_KEY, "keys", "describe", key, fragments=(key, "was deleted on"))
    refused(capsys, EXIT_KEY, "keys", "decrypt", "--in", str(blob), "-o", str(tmp_path / "o"),
            fragments=(key, "was deleted on"))
    refused(capsys, EXIT_KEY, "keys", "describe", "alias/doomed", fragments=("does not exist",))
    assert [k["KeyId"] for k in ok_json(capsys, "keys", "list")["Keys"]] == [keep]
    assert ok_json(capsys, "keys", "check") == {"keystore": str(ks_path), "ok": True, "problems": []}
    deletions = ok_json(capsys, "keys", "audit", "--key", key, "--operation", "DeleteKey")
    assert [(e["key_id"], e["ok"]) for e in deletions] == [(key, True)]
    assert ok(capsys, "keys", "maintain") == "nothing due\n"


# -- aliases ---------------------------------------------------------------------------------------


def test_alias_create_with_an_alias_as_key_resolves_it(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys, "--alias", "alias/first")
    silent_json(capsys, "keys", "alias", "create", "alias/second", "alias/first")
    assert describe(capsys, "alias/second")["KeyId"] == key
    assert aliases_of(capsys, key) == ["alias/first", "alias/second"]


def test_alias_create_with_an_unknown_alias_as_key_exits_5(capsys: Capsys, ks_path: Path) -> None:
    create_key(capsys)
    refused(capsys, EXIT_KEY, "keys", "alias", "create", "alias/new", "alias/missing",
            fragments=("alias/missing", "does not exist"))


def test_alias_update_moves_it_and_encrypt_via_the_alias_uses_the_new_key(
        capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key1 = create_key(capsys, "--alias", "alias/app")
    key2 = create_key(capsys)
    src = write(tmp_path / "p", b"payload")
    before = ok_json(capsys, "keys", "encrypt", "alias/app", "--in", str(src))
    assert key_of(before["KeyId"]) == key1

    text = ok(capsys, "keys", "alias", "update", "alias/app", key2)
    assert text.strip() == f"alias/app -> {key2}"
    after = ok_json(capsys, "keys", "encrypt", "alias/app", "--in", str(src))
    assert key_of(after["KeyId"]) == key2
    assert kms_blob.parse(b64(after["CiphertextBlob"])).key_id == key2
    # Data sealed before the move is still the old key's, and still opens.
    old = write(tmp_path / "old.kms", b64(before["CiphertextBlob"]))
    assert key_of(ok_json(capsys, "keys", "decrypt", "--in", str(old))["KeyId"]) == key1
    assert aliases_of(capsys, key1) == []

    silent_json(capsys, "keys", "alias", "update", "alias/app", key1)
    assert aliases_of(capsys, key1) == ["alias/app"]


def test_alias_update_of_an_unknown_alias_exits_5(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys)
    refused(capsys, EXIT_KEY, "keys", "alias", "update", "alias/nope", key, fragments=("alias/nope", "does not exist"))
    assert ok_json(capsys, "keys", "alias", "list") == {"Aliases": [], "Truncated": False}


def test_alias_delete_leaves_the_key(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key = create_key(capsys, "--alias", "alias/gone")
    ok(capsys, "keys", "alias", "create", "alias/gone2", key)
    blob = encrypt_to(capsys, tmp_path, key, b"still mine")
    assert ok(capsys, "keys", "alias", "delete", "alias/gone") == "deleted alias/gone\n"
    refused(capsys, EXIT_KEY, "keys", "describe", "alias/gone", fragments=("alias/gone", "does not exist"))
    assert describe(capsys, key)["KeyState"] == "Enabled" and aliases_of(capsys, key) == ["alias/gone2"]
    silent_json(capsys, "keys", "alias", "delete", "alias/gone2")
    assert aliases_of(capsys, key) == []
    assert decrypt_bytes(capsys, tmp_path, blob) == b"still mine"
    refused(capsys, EXIT_KEY, "keys", "alias", "delete", "alias/gone", fragments=("does not exist",))


@pytest.mark.parametrize("verb", ["create", "update", "delete"])
def test_reserved_alias_namespace_exits_2(capsys: Capsys, ks_path: Path, verb: str) -> None:
    key = create_key(capsys)
    argv = ["keys", "alias", verb, "alias/aws/mine"] + ([key] if verb != "delete" else [])
    refused(capsys, EXIT_USAGE, *argv, fragments=("alias/aws/", "reserved"))


def test_alias_list_text_json_and_key_filter(capsys: Capsys, ks_path: Path) -> None:
    key1 = create_key(capsys, "--alias", "alias/b-one")
    key2 = create_key(capsys, "--alias", "alias/a-two")
    ok(capsys, "keys", "alias", "create", "alias/c-one", key1)
    entries = ok_json(capsys, "keys", "alias", "list")["Aliases"]
    assert [(e["AliasName"], e["TargetKeyId"]) for e in entries] == \
        [("alias/a-two", key2), ("alias/b-one", key1), ("alias/c-one", key1)]
    assert all(e["CreationDate"] for e in entries)
    lines = ok(capsys, "keys", "alias", "list").splitlines()
    assert lines[0].split() == ["ALIAS", "KEY", "ID", "CREATED"]
    assert [line.split()[:2] for line in lines[1:]] == \
        [["alias/a-two", key2], ["alias/b-one", key1], ["alias/c-one", key1]]
    assert aliases_of(capsys, key1) == ["alias/b-one", "alias/c-one"]
    assert aliases_of(capsys, "alias/a-two") == ["alias/a-two"]


def test_alias_list_without_aliases_says_so(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys)
    assert ok(capsys, "keys", "alias", "list") == "no aliases\n"
    assert ok(capsys, "keys", "alias", "list", "--key", key) == "no aliases\n"
    assert ok_json(capsys, "keys", "alias", "list") == {"Aliases": [], "Truncated": False}


# -- tags ------------------------------------------------------------------------------------------


def test_tag_untag_and_tags_in_text_and_json(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys, "--tag", "owner=ops")
    assert ok(capsys, "keys", "tag", key, "env=prod", "owner=sec").splitlines() == ["env=prod", "owner=sec"]
    silent_json(capsys, "keys", "tag", key, "cost=42")
    assert ok_json(capsys, "keys", "tags", key)["Tags"] == [
        {"TagKey": "cost", "TagValue": "42"}, {"TagKey": "env", "TagValue": "prod"},
        {"TagKey": "owner", "TagValue": "sec"}]
    assert ok(capsys, "keys", "tags", key).splitlines() == ["cost=42", "env=prod", "owner=sec"]
    assert ok(capsys, "keys", "untag", key, "cost", "absent").splitlines() == ["env=prod", "owner=sec"]
    silent_json(capsys, "keys", "untag", key, "env")
    assert tags_of(capsys, key) == {"owner": "sec"}
    assert ok(capsys, "keys", "untag", key, "owner") == "no tags\n"
    assert ok(capsys, "keys", "tags", key) == "no tags\n"
    assert ok_json(capsys, "keys", "tags", key) == {"Tags": [], "Truncated": False}


def test_tags_by_alias(capsys: Capsys, ks_path: Path) -> None:
    create_key(capsys, "--alias", "alias/tagged", "--tag", "a=1")
    assert tags_of(capsys, "alias/tagged") == {"a": "1"}


@pytest.mark.parametrize("tag", ["aws:owner=x", "AWS:owner=x"])
def test_reserved_aws_tag_prefix_exits_2(capsys: Capsys, ks_path: Path, tag: str) -> None:
    key = create_key(capsys, "--tag", "keep=1")
    refused(capsys, EXIT_USAGE, "keys", "tag", key, tag, fragments=("aws:", "reserved"))
    refused(capsys, EXIT_USAGE, "keys", "create", "--tag", tag, fragments=("aws:", "reserved"))
    assert tags_of(capsys, key) == {"keep": "1"}
    assert len(ok_json(capsys, "keys", "list")["Keys"]) == 1


def test_tags_on_a_key_pending_deletion_are_refused(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys)
    ok(capsys, "keys", "schedule-deletion", key)
    refused(capsys, EXIT_KEY, "keys", "tag", key, "a=1", fragments=("PendingDeletion",))


# -- audit -----------------------------------------------------------------------------------------

_AUDIT_FIELDS = {"ts", "principal", "operation", "key_id", "ok", "error", "alias", "context_keys"}


def test_audit_json_has_every_field_and_records_refusals(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key = create_key(capsys, "--alias", "alias/aud")
    src = write(tmp_path / "p", b"x")
    ok(capsys, "keys", "encrypt", "alias/aud", "--in", str(src), "-o", str(tmp_path / "blob"), "--context", "a=1")
    ok(capsys, "keys", "disable", key)
    refused(capsys, EXIT_KEY, "keys", "encrypt", key, "--in", str(src), "-o", str(tmp_path / "o"))

    events = ok_json(capsys, "keys", "audit")
    for event in events:
        assert _AUDIT_FIELDS <= set(event), event
    assert [e["operation"] for e in events] == ["CreateKey", "CreateAlias", "Encrypt", "DisableKey", "Encrypt"]
    good, bad = events[2], events[4]
    assert good["ok"] is True and good["error"] is None and good["key_id"] == key
    assert good["alias"] == "alias/aud" and good["context_keys"] == ["a"]
    assert bad["ok"] is False and bad["key_id"] == key and bad["context_keys"] == []
    assert "KeyStateError" in bad["error"] and "Disabled" in bad["error"]

    lines = ok(capsys, "keys", "audit").splitlines()
    assert len(lines) == 5
    assert "via alias/aud" in lines[2] and "context keys a" in lines[2] and lines[2].endswith("ok")
    assert "Encrypt" in lines[4] and "REFUSED: KeyStateError" in lines[4] and "Disabled" in lines[4]


def test_audit_filters_by_key_operation_and_limit(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key1 = create_key(capsys, "--alias", "alias/one")
    key2 = create_key(capsys)
    src = write(tmp_path / "p", b"x")
    for key in (key1, key2, key1):
        ok(capsys, "keys", "encrypt", key, "--in", str(src), "-o", str(tmp_path / "o"), "--force")
    ok(capsys, "keys", "describe", key2)

    everything = ok_json(capsys, "keys", "audit")
    by_key = ok_json(capsys, "keys", "audit", "--key", key1)
    assert by_key and all(e["key_id"] == key1 for e in by_key)
    assert [e["operation"] for e in by_key] == ["CreateKey", "CreateAlias", "Encrypt", "Encrypt"]
    assert ok_json(capsys, "keys", "audit", "--key", "alias/one") == by_key

    encrypts = ok_json(capsys, "keys", "audit", "--operation", "Encrypt")
    assert [e["key_id"] for e in encrypts] == [key1, key2, key1]
    both = ok_json(capsys, "keys", "audit", "--operation", "Encrypt", "--key", key2)
    assert [(e["operation"], e["key_id"]) for e in both] == [("Encrypt", key2)]

    last_two = ok_json(capsys, "keys", "audit", "--limit", "2")
    assert last_two == everything[-2:]
    assert [e["operation"] for e in last_two] == ["Encrypt", "DescribeKey"]
    assert len(ok(capsys, "keys", "audit", "--limit", "1").splitlines()) == 1
    refused(capsys, EXIT_USAGE, "keys", "audit", "--limit", "0", fragments=("--limit",))
    assert ok(capsys, "keys", "audit", "--operation", "NoSuchOperation") == "no events\n"
    assert ok_json(capsys, "keys", "audit", "--operation", "NoSuchOperation") == []


def test_audit_since_takes_an_iso_time_or_an_age(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key = create_key(capsys)
    src = write(tmp_path / "p", b"x")
    for _ in range(3):
        ok(capsys, "keys", "encrypt", key, "--in", str(src), "-o", str(tmp_path / "o"), "--force")
    everything = ok_json(capsys, "keys", "audit")
    assert len(everything) == 4

    assert ok_json(capsys, "keys", "audit", "--since", everything[2]["ts"]) == everything[2:]
    assert ok_json(capsys, "keys", "audit", "--since", "1h") == everything
    assert ok_json(capsys, "keys", "audit", "--since", "30m") == everything
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
    assert ok_json(capsys, "keys", "audit", "--since", yesterday) == everything
    assert ok_json(capsys, "keys", "audit", "--since", "2999-01-01T00:00:00Z") == []
    assert ok(capsys, "keys", "audit", "--since", "2999-01-01") == "no events\n"
    assert ok_json(capsys, "keys", "audit", "--since", "1h", "--limit", "1") == everything[-1:]
    refused(capsys, EXIT_USAGE, "keys", "audit", "--since", "last tuesday", fragments=("--since",))


@pytest.mark.parametrize("since", ["999999999d", "99999999999999d", "0001-01-01T00:00:00+01:00",
                                   "9999-12-31T23:59:59-01:00"])
def test_audit_since_out_of_range_exits_2_without_a_traceback(capsys: Capsys, ks_path: Path, since: str) -> None:
    create_key(capsys)
    refused(capsys, EXIT_USAGE, "keys", "audit", "--since", since, fragments=("--since", "out of range"))


def test_audit_limit_larger_than_any_integer_means_every_event(capsys: Capsys, ks_path: Path) -> None:
    create_key(capsys)
    everything = ok_json(capsys, "keys", "audit")
    assert ok_json(capsys, "keys", "audit", "--limit", str(2**64)) == everything


def test_audit_never_shows_context_values_only_keys(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key1 = create_key(capsys)
    key2 = create_key(capsys)
    secrets = ["VALUE-AAA-1111", "VALUE-BBB-2222", "VALUE-CCC-3333", "VALUE-DDD-4444"]
    blob = encrypt_to(capsys, tmp_path, key1, b"p", f"tenant={secrets[0]}")
    decrypt_bytes(capsys, tmp_path, blob, "--context", f"tenant={secrets[0]}")
    refused(capsys, EXIT_KEY, "keys", "decrypt", "--in", str(blob), "-o", str(tmp_path / "o"),
            "--context", f"tenant={secrets[1]}")
    ok(capsys, "keys", "re-encrypt", "--in", str(blob), "--to", key2, "--context", f"tenant={secrets[0]}",
       "--destination-context", f"dest={secrets[2]}", "--json")
    ok(capsys, "keys", "generate-data-key", key1, "--context", f"purpose={secrets[3]}", "--json")

    text = ok(capsys, "keys", "audit")
    raw_json = ok(capsys, "keys", "audit", "--json")
    for secret in secrets:
        assert secret not in text and secret not in raw_json
    events = json.loads(raw_json)
    assert [e["context_keys"] for e in events if e["operation"] == "Decrypt"] == [["tenant"], ["tenant"]]
    reencrypt = next(e for e in events if e["operation"] == "ReEncrypt")
    assert reencrypt["context_keys"] == ["tenant"] and reencrypt["destination_key_id"] == key2
    assert reencrypt["request"]["destination_context_keys"] == ["dest"]
    assert next(e for e in events if e["operation"] == "GenerateDataKey")["context_keys"] == ["purpose"]
    refusal = [e for e in events if e["operation"] == "Decrypt" and not e["ok"]]
    assert len(refusal) == 1 and "wrong encryption context" in refusal[0]["error"]
    assert "context keys tenant" in text


# -- check -----------------------------------------------------------------------------------------


def test_check_reports_a_consistent_keystore(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys)
    ok(capsys, "keys", "rotate", key)
    assert ok(capsys, "keys", "check") == f"the keystore {ks_path} is consistent\n"
    report = ok_json(capsys, "keys", "check")
    assert report["ok"] is True and report["problems"] == []


# -- encrypt and decrypt ---------------------------------------------------------------------------


def test_encrypt_then_decrypt_to_stdout_with_the_context(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key = create_key(capsys)
    src = write(tmp_path / "msg.txt", b"hello, kms")
    out = tmp_path / "msg.kms"
    assert ok(capsys, "keys", "encrypt", key, "--in", str(src), "-o", str(out), "--context", "a=1") == ""
    assert mode_of(out) == 0o600
    assert kms_blob.parse(out.read_bytes()).key_id == key
    assert ok(capsys, "keys", "decrypt", "--in", str(out), "--context", "a=1") == "hello, kms"


def test_encrypt_json_and_decrypt_json_carry_base64(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key = create_key(capsys)
    src = write(tmp_path / "p", b"json me")
    sealed = ok_json(capsys, "keys", "encrypt", key, "--in", str(src), "--context", "a=1")
    assert set(sealed) == {"KeyId", "CiphertextBlob", "EncryptionAlgorithm"} and key_of(sealed["KeyId"]) == key
    blob = write(tmp_path / "b", b64(sealed["CiphertextBlob"]))
    opened = ok_json(capsys, "keys", "decrypt", "--in", str(blob), "--context", "a=1")
    assert opened == {"KeyId": sealed["KeyId"], "Plaintext": base64.b64encode(b"json me").decode(),
                      "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}


def test_binary_plaintext_round_trips_through_files(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key = create_key(capsys)
    data = bytes(range(256)) * 16  # 4096 bytes, every byte value, not UTF-8
    blob = encrypt_to(capsys, tmp_path, key, data, "a=1", "b=2")
    assert decrypt_bytes(capsys, tmp_path, blob, "--context", "b=2", "--context", "a=1") == data


def test_encrypt_reads_stdin_by_default(capsys: Capsys, ks_path: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    key = create_key(capsys)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from stdin")))
    out = tmp_path / "o"
    ok(capsys, "keys", "encrypt", key, "-o", str(out))
    assert decrypt_bytes(capsys, tmp_path, out) == b"from stdin"


@pytest.mark.parametrize("context", [[], ["--context", "a=2"], ["--context", "a=1", "--context", "b=2"],
                                     ["--context", "b=1"]])
def test_decrypt_with_a_wrong_context_exits_5(capsys: Capsys, ks_path: Path, tmp_path: Path,
                                              context: list[str]) -> None:
    key = create_key(capsys)
    blob = encrypt_to(capsys, tmp_path, key, b"bound", "a=1")
    out = tmp_path / "o"
    refused(capsys, EXIT_KEY, "keys", "decrypt", "--in", str(blob), "-o", str(out), *context,
            fragments=(key, "wrong encryption context"))
    assert not out.exists()


def test_decrypt_with_another_expected_key_exits_5(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key1 = create_key(capsys)
    key2 = create_key(capsys, "--alias", "alias/other")
    blob = encrypt_to(capsys, tmp_path, key1, b"mine")
    for expected in (key2, "alias/other"):
        refused(capsys, EXIT_KEY, "keys", "decrypt", "--in", str(blob), "-o", str(tmp_path / "o"), "--key",
                expected, fragments=(key1, key2, "not the expected key"))
    assert decrypt_bytes(capsys, tmp_path, blob, "--key", key1) == b"mine"


def test_decrypt_of_garbage_exits_5(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    create_key(capsys)
    junk = write(tmp_path / "junk", b"not a blob")
    refused(capsys, EXIT_KEY, "keys", "decrypt", "--in", str(junk), "-o", str(tmp_path / "o"),
            fragments=("cannot decrypt",))


def test_encrypt_takes_4096_bytes_and_refuses_4097_pointing_at_encrypt_file(
        capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key = create_key(capsys)
    assert decrypt_bytes(capsys, tmp_path, encrypt_to(capsys, tmp_path, key, b"x" * 4096)) == b"x" * 4096
    big = write(tmp_path / "big", b"x" * 4097)
    out = tmp_path / "big.kms"
    refused(capsys, EXIT_USAGE, "keys", "encrypt", key, "--in", str(big), "-o", str(out),
            fragments=("4096", "envelope encrypt-file"))
    assert not out.exists()


def test_encrypt_of_an_empty_input_exits_2(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key = create_key(capsys)
    empty = write(tmp_path / "empty", b"")
    refused(capsys, EXIT_USAGE, "keys", "encrypt", key, "--in", str(empty), "-o", str(tmp_path / "o"),
            fragments=("at least 1 byte",))


def test_encrypt_with_a_missing_input_file_exits_7(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key = create_key(capsys)
    refused(capsys, 7, "keys", "encrypt", key, "--in", str(tmp_path / "absent"), "-o", str(tmp_path / "o"),
            fragments=("absent",))


# -- re-encrypt ------------------------------------------------------------------------------------


def test_re_encrypt_to_another_key_keeps_the_plaintext(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key1 = create_key(capsys)
    key2 = create_key(capsys)
    blob = encrypt_to(capsys, tmp_path, key1, b"moving house", "a=1")
    moved = ok_json(capsys, "keys", "re-encrypt", "--in", str(blob), "--to", key2, "--context", "a=1")
    assert key_of(moved["KeyId"]) == key2 and key_of(moved["SourceKeyId"]) == key1
    new_blob = write(tmp_path / "moved.kms", b64(moved["CiphertextBlob"]))
    assert decrypt_bytes(capsys, tmp_path, new_blob, "--context", "a=1", "--key", key2) == b"moving house"

    out = tmp_path / "moved2.kms"
    assert ok(capsys, "keys", "re-encrypt", "--in", str(blob), "--to", key2, "--context", "a=1",
              "-o", str(out)) == ""
    assert kms_blob.parse(out.read_bytes()).key_id == key2
    assert decrypt_bytes(capsys, tmp_path, out, "--context", "a=1") == b"moving house"


def test_re_encrypt_with_a_destination_context_requires_it_afterwards(capsys: Capsys, ks_path: Path,
                                                                     tmp_path: Path) -> None:
    key1 = create_key(capsys)
    key2 = create_key(capsys)
    blob = encrypt_to(capsys, tmp_path, key1, b"recontext", "a=1")
    out = tmp_path / "re.kms"
    ok(capsys, "keys", "re-encrypt", "--in", str(blob), "--to", key2, "--context", "a=1",
       "--destination-context", "b=2", "-o", str(out))
    refused(capsys, EXIT_KEY, "keys", "decrypt", "--in", str(out), "-o", str(tmp_path / "x"), "--context", "a=1",
            fragments=("wrong encryption context",))
    refused(capsys, EXIT_KEY, "keys", "decrypt", "--in", str(out), "-o", str(tmp_path / "x"))
    assert decrypt_bytes(capsys, tmp_path, out, "--context", "b=2") == b"recontext"


def test_re_encrypt_with_the_wrong_source_context_or_source_key_exits_5(capsys: Capsys, ks_path: Path,
                                                                        tmp_path: Path) -> None:
    key1 = create_key(capsys)
    key2 = create_key(capsys)
    blob = encrypt_to(capsys, tmp_path, key1, b"p", "a=1")
    refused(capsys, EXIT_KEY, "keys", "re-encrypt", "--in", str(blob), "--to", key2, "--context", "a=2",
            "--json", fragments=("wrong encryption context",))
    refused(capsys, EXIT_KEY, "keys", "re-encrypt", "--in", str(blob), "--to", key2, "--context", "a=1",
            "--source-key", key2, "--json", fragments=("not the expected key",))
    ok(capsys, "keys", "disable", key2)
    refused(capsys, EXIT_KEY, "keys", "re-encrypt", "--in", str(blob), "--to", key2, "--context", "a=1",
            "--json", fragments=(key2, "Disabled"))


def test_re_encrypt_needs_a_destination(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    key = create_key(capsys)
    blob = encrypt_to(capsys, tmp_path, key, b"p")
    code, out, err = run(capsys, "keys", "re-encrypt", "--in", str(blob))
    assert code == EXIT_USAGE and out == "" and "--to" in err and "Traceback" not in err


# -- generate-data-key and generate-random ---------------------------------------------------------


@pytest.mark.parametrize(("extra", "size"), [((), 32), (("--key-spec", "AES_256"), 32),
                                             (("--key-spec", "AES_128"), 16), (("--bytes", "64"), 64),
                                             (("--bytes", "1"), 1), (("--bytes", "1024"), 1024)])
def test_generate_data_key_sizes_and_its_blob_decrypts_to_the_same_key(
        capsys: Capsys, ks_path: Path, tmp_path: Path, extra: tuple[str, ...], size: int) -> None:
    key = create_key(capsys)
    made = ok_json(capsys, "keys", "generate-data-key", key, "--context", "a=1", *extra)
    assert set(made) == {"KeyId", "Plaintext", "CiphertextBlob"} and key_of(made["KeyId"]) == key
    plaintext = b64(made["Plaintext"])
    assert len(plaintext) == size
    blob = write(tmp_path / "dk.kms", b64(made["CiphertextBlob"]))
    opened = ok_json(capsys, "keys", "decrypt", "--in", str(blob), "--context", "a=1")
    assert key_of(opened["KeyId"]) == key and b64(opened["Plaintext"]) == plaintext
    with KeyStore(ks_path, create=False) as store:
        assert bytes(store.decrypt(blob.read_bytes(), {"a": "1"})[0]) == plaintext


def test_generate_data_key_text_output(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys)
    lines = ok(capsys, "keys", "generate-data-key", key).splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["key_id", "plaintext", "ciphertext_blob"]
    assert lines[0] == f"key_id {key}"
    assert len(b64(lines[1].split(" ", 1)[1])) == 32


def test_generate_data_key_without_plaintext_has_no_plaintext(capsys: Capsys, ks_path: Path,
                                                              tmp_path: Path) -> None:
    key = create_key(capsys)
    made = ok_json(capsys, "keys", "generate-data-key", key, "--without-plaintext", "--key-spec", "AES_128")
    assert set(made) == {"KeyId", "CiphertextBlob"} and key_of(made["KeyId"]) == key
    blob = write(tmp_path / "dk.kms", b64(made["CiphertextBlob"]))
    assert len(b64(ok_json(capsys, "keys", "decrypt", "--in", str(blob))["Plaintext"])) == 16
    text = ok(capsys, "keys", "generate-data-key", key, "--without-plaintext")
    assert "plaintext" not in text and text.startswith(f"key_id {key}\nciphertext_blob ")


@pytest.mark.parametrize("extra", [("--key-spec", "AES_128", "--bytes", "16"), ("--bytes", "0"),
                                   ("--bytes", "1025")])
def test_generate_data_key_bad_size_exits_2(capsys: Capsys, ks_path: Path, extra: tuple[str, ...]) -> None:
    key = create_key(capsys)
    refused(capsys, EXIT_USAGE, "keys", "generate-data-key", key, "--json", *extra)


def test_generate_data_key_unknown_key_spec_is_a_usage_error(capsys: Capsys, ks_path: Path) -> None:
    key = create_key(capsys)
    code, out, err = run(capsys, "keys", "generate-data-key", key, "--key-spec", "AES_512")
    assert code == EXIT_USAGE and out == "" and "AES_512" in err and "Traceback" not in err


def test_generate_random_gives_the_number_of_bytes_asked(capsys: Capsys, ks_path: Path, tmp_path: Path) -> None:
    create_key(capsys)
    made = ok_json(capsys, "keys", "generate-random", "16")
    assert set(made) == {"Plaintext"} and len(b64(made["Plaintext"])) == 16
    assert len(b64(ok_json(capsys, "keys", "generate-random", "1024")["Plaintext"])) == 1024
    out = tmp_path / "rnd"
    assert ok(capsys, "keys", "generate-random", "16", "-o", str(out)) == ""
    assert len(out.read_bytes()) == 16 and mode_of(out) == 0o600


@pytest.mark.parametrize("count", ["0", "1025", "-1"])
def test_generate_random_out_of_range_exits_2(capsys: Capsys, ks_path: Path, count: str) -> None:
    create_key(capsys)
    refused(capsys, EXIT_USAGE, "keys", "generate-random", count, "--json", fragments=("1 to 1024",))

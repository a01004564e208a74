"""``aws-kms:`` keys against a real KMS HTTP server: moto's, on 127.0.0.1, reached through boto3.

Nothing here leaves the machine: the endpoint, the credentials and the region
all come from the environment this module sets, and the shared AWS config
files and the instance metadata service are switched off.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

import envelope  # noqa: E402
from envelope.cli.main import EXIT_KEY, EXIT_OK, main  # noqa: E402
from envelope.exceptions import KeyringError, KeyStateError, UsageError  # noqa: E402
from envelope.format import read_header  # noqa: E402
from envelope.keyrings.aws_kms import AwsKmsKeyring  # noqa: E402
from envelope.kms.store import KeyStore  # noqa: E402

REGION = "eu-west-1"


@pytest.fixture
def kms_endpoint(kms_server: Any) -> str:
    return str(kms_server[1])


@pytest.fixture
def kms(aws_env: Any, kms_endpoint: str) -> Any:
    """A boto3 KMS client on the local server, with the environment envelope's own clients will read."""
    return boto3.client("kms", region_name=REGION, endpoint_url=kms_endpoint)


def new_key(kms: Any, alias: str | None = None) -> str:
    arn = kms.create_key(Description="envelope test")["KeyMetadata"]["Arn"]
    if alias:
        kms.create_alias(AliasName=alias, TargetKeyId=arn)
    return str(arn)


@pytest.fixture
def plain(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(150_000)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path, data


def wrapped_keys(path: Path) -> list[tuple[str, str]]:
    with open(path, "rb") as fh:
        return [(w.provider, w.key_id) for w in read_header(fh)[0].wrapped_keys]


def test_a_file_round_trips_under_an_aws_kms_key_arn(kms: Any, plain: tuple[Path, bytes], tmp_path: Path) -> None:
    src, data = plain
    arn = new_key(kms)
    envelope.encrypt_file(src, tmp_path / "f.env", keys=[f"aws-kms:{arn}"], context={"app": "test"})
    assert wrapped_keys(tmp_path / "f.env") == [("aws-kms", arn)]
    envelope.decrypt_file(tmp_path / "f.env", tmp_path / "out", keys=[f"aws-kms:{arn}"])
    assert (tmp_path / "out").read_bytes() == data


def test_an_alias_reference_encrypts_under_its_key_and_decrypts(kms: Any, plain: tuple[Path, bytes],
                                                                tmp_path: Path) -> None:
    src, data = plain
    arn = new_key(kms, "alias/backups")
    envelope.encrypt_file(src, tmp_path / "f.env", keys=["aws-kms:alias/backups"])
    assert wrapped_keys(tmp_path / "f.env") == [("aws-kms", arn)]  # the file records the key ARN, not the alias
    envelope.decrypt_file(tmp_path / "f.env", tmp_path / "out", keys=["aws-kms:alias/backups"])
    assert (tmp_path / "out").read_bytes() == data


def test_decryption_is_strict_another_key_is_never_asked(kms: Any, plain: tuple[Path, bytes],
                                                         tmp_path: Path) -> None:
    src, _ = plain
    arn, other = new_key(kms), new_key(kms)
    envelope.encrypt_file(src, tmp_path / "f.env", keys=[f"aws-kms:{arn}"])
    ring = AwsKmsKeyring(other)
    calls: list[str] = []
    ring.client().meta.events.register("before-call.kms.*", lambda model, **_: calls.append(model.name))
    with pytest.raises(KeyringError, match="no keyring|could not unwrap|none of"):
        envelope.decrypt_file(tmp_path / "f.env", tmp_path / "out", keys=[ring])
    assert "Decrypt" not in calls and not (tmp_path / "out").exists()


def test_two_master_keys_local_and_aws_either_opens_the_file(kms: Any, plain: tuple[Path, bytes],
                                                             tmp_path: Path) -> None:
    src, data = plain
    arn = new_key(kms)
    with KeyStore() as store:
        store.create_key(alias="alias/mine")
    envelope.encrypt_file(src, tmp_path / "f.env", keys=["local:alias/mine", f"aws-kms:{arn}"])
    assert [p for p, _ in wrapped_keys(tmp_path / "f.env")] == ["local", "aws-kms"]
    envelope.decrypt_file(tmp_path / "f.env", tmp_path / "a", keys=[f"aws-kms:{arn}"])
    envelope.decrypt_file(tmp_path / "f.env", tmp_path / "b", keys=["local:alias/mine"])
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes() == data


def test_the_encryption_context_is_bound_by_kms(kms: Any) -> None:
    ring = AwsKmsKeyring(new_key(kms))
    plaintext, wrapped = ring.generate_data_key({"purpose": "a"})
    assert ring.unwrap_data_key(wrapped, {"purpose": "a"}) == plaintext
    with pytest.raises(KeyringError, match="wrong encryption context"):
        ring.unwrap_data_key(wrapped, {"purpose": "b"})


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self._data


def refuse_with(ring: AwsKmsKeyring, operation: str, code: str, message: str) -> None:
    """Make *operation* answer as AWS KMS does for a key in the wrong state.

    The HTTP response AWS KMS sends is injected below botocore, which parses it
    as it would AWS's: this checks the error mapping alone, for both codes.  The
    same refusals after a real DisableKey or ScheduleKeyDeletion, made by the
    gate in front of moto (which does not enforce states itself), are in
    ``test_cli_aws_kms.py``.
    """
    from botocore.awsrequest import AWSResponse

    body = json.dumps({"__type": code, "message": message}).encode()

    def answer(request: Any, **_: object) -> AWSResponse:
        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, _Body(body))

    ring.client().meta.events.register(f"before-send.kms.{operation}", answer)


@pytest.mark.parametrize(("code", "words"), [("DisabledException", "is disabled"),
                                             ("KMSInvalidStateException", "pending deletion")])
def test_a_key_that_kms_will_not_use_fails_in_one_line_naming_it(
        kms: Any, plain: tuple[Path, bytes], tmp_path: Path, code: str, words: str) -> None:
    src, _ = plain
    arn = new_key(kms)
    envelope.encrypt_file(src, tmp_path / "f.env", keys=[f"aws-kms:{arn}"])
    ring = AwsKmsKeyring(arn)
    refuse_with(ring, "Decrypt", code, f"{arn} is not usable")
    with pytest.raises(KeyStateError) as info:
        ring.unwrap_data_key(read_header(open(tmp_path / "f.env", "rb"))[0].wrapped_keys[0], {})
    assert arn in str(info.value) and words in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(KeyringError, match=words):
        envelope.decrypt_file(tmp_path / "f.env", tmp_path / "out", keys=[ring])
    assert not (tmp_path / "out").exists()


def test_throttling_is_retried_with_backoff_and_then_succeeds(kms: Any) -> None:
    ring = AwsKmsKeyring(new_key(kms))
    from botocore.awsrequest import AWSResponse

    refusals = {"left": 2}
    body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()

    def throttle(request: Any, **_: object) -> AWSResponse | None:
        if refusals["left"]:
            refusals["left"] -= 1
            return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, _Body(body))
        return None

    ring.client().meta.events.register("before-send.kms.GenerateDataKey", throttle)
    plaintext, _ = ring.generate_data_key({})
    assert len(plaintext) == 32 and refusals["left"] == 0


def test_throttling_that_never_ends_becomes_one_clear_error(kms: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("envelope.keyrings.aws_client.MAX_ATTEMPTS", 2)
    ring = AwsKmsKeyring(new_key(kms))
    refuse_with(ring, "GenerateDataKey", "ThrottlingException", "Rate exceeded")
    with pytest.raises(KeyringError, match="throttling requests; gave up after 2 attempts"):
        ring.generate_data_key({})


def test_exit_code_of_a_refused_aws_key_is_5(kms: Any, plain: tuple[Path, bytes], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["encrypt-file", str(plain[0]), "-o", str(tmp_path / "f.env"), "--key", "aws-kms:alias/none"])
    err = capsys.readouterr().err
    assert code == EXIT_KEY and err.count("\n") == 1 and "alias/none" in err
    assert main(["encrypt-file", str(plain[0]), "-o", str(tmp_path / "g.env"), "-q",
                 "--key", f"aws-kms:{new_key(kms)}"]) == EXIT_OK


def test_an_unknown_alias_is_reported_as_not_found(kms: Any, plain: tuple[Path, bytes], tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="alias/missing.*NotFoundException"):
        envelope.encrypt_file(plain[0], tmp_path / "f.env", keys=["aws-kms:alias/missing"])
    assert not (tmp_path / "f.env").exists()


@pytest.mark.parametrize("ref", ["aws-kms:", "aws-kms:not-a-key", "aws-kms:arn:aws:s3:::bucket"])
def test_malformed_aws_references_are_usage_errors(ref: str) -> None:
    with pytest.raises(UsageError):
        envelope.encrypt(b"x", keys=[ref])


def test_region_flag_finds_an_alias_in_another_region(kms_endpoint: str, kms: Any, plain: tuple[Path, bytes],
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = boto3.client("kms", region_name="us-west-2", endpoint_url=kms_endpoint)
    arn = other.create_key()["KeyMetadata"]["Arn"]
    other.create_alias(AliasName="alias/west", TargetKeyId=arn)
    out = tmp_path / "f.env"
    argv = ["encrypt-file", str(plain[0]), "-o", str(out), "--key", "aws-kms:alias/west", "-q"]
    assert main(argv) == EXIT_KEY  # not in the default region (eu-west-1)
    assert main([*argv, "--region", "us-west-2"]) == EXIT_OK
    assert wrapped_keys(out) == [("aws-kms", arn)]
    assert main(["decrypt-file", str(out), "-o", str(tmp_path / "out"), "--key", f"aws-kms:{arn}"]) == EXIT_OK
    assert (tmp_path / "out").read_bytes() == plain[1]

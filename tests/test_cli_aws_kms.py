"""The command line against a KMS server, as a user runs it: a new ``envelope`` process per command.

The server is moto's, on 127.0.0.1, behind the gate of ``tests/kms_gate.py``,
which counts the calls each process makes, refuses disabled keys and keys
pending deletion as AWS does, and injects throttling.  The processes find it
through the standard AWS environment variables alone (``AWS_ENDPOINT_URL``…),
as any boto3 program would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")

from envelope.cli.main import EXIT_CONTEXT, EXIT_KEY, EXIT_OK  # noqa: E402

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account


def envelope_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "envelope", *argv], capture_output=True, text=True,
                          env=env if env is not None else dict(os.environ), timeout=120)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The whole of stderr, which must be a single ``envelope: error:`` line."""
    assert result.stderr.startswith("envelope: error:") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.fixture
def kms(aws_env: Any, kms_server: Any) -> Any:
    return boto3.client("kms", region_name=REGION, endpoint_url=kms_server[1])


@pytest.fixture
def gate(aws_env: Any) -> Any:
    return aws_env


@pytest.fixture
def key(kms: Any, gate: Any) -> str:
    arn = str(kms.create_key()["KeyMetadata"]["Arn"])
    gate.reset()  # count only what envelope asks
    return arn


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "dump.sql"
    path.write_bytes(os.urandom(300_000))
    return path


def encrypted(src: Path, *keys: str, extra: tuple[str, ...] = ()) -> Path:
    dst = src.with_name(src.name + ".envelope")
    args = [a for k in keys for a in ("--key", k)]
    result = envelope_cli("encrypt-file", str(src), "-o", str(dst), "--force", "-q", *args, *extra)
    assert result.returncode == EXIT_OK, result.stderr
    return dst


def test_strict_round_trip_asks_kms_for_one_data_key_and_one_decrypt(gate: Any, key: str, src: Path,
                                                                      tmp_path: Path) -> None:
    enc = encrypted(src, f"aws-kms:{key}")
    assert [r.operation for r in gate.operations()] == ["GenerateDataKey"]
    out = envelope_cli("decrypt-file", str(enc), "-o", str(tmp_path / "out"), "--key", f"aws-kms:{key}")
    assert out.returncode == EXIT_OK, out.stderr
    assert (tmp_path / "out").read_bytes() == src.read_bytes()
    decrypts = gate.operations("Decrypt")
    assert [(r.key_id, r.region) for r in decrypts] == [(key, REGION)]  # KeyId always passed


def test_strict_decrypt_never_asks_a_key_it_was_not_given(gate: Any, kms: Any, key: str, src: Path,
                                                          tmp_path: Path) -> None:
    enc = encrypted(src, f"aws-kms:{key}")
    other = kms.create_key()["KeyMetadata"]["Arn"]
    gate.reset()
    result = envelope_cli("decrypt-file", str(enc), "-o", str(tmp_path / "out"), "--key", f"aws-kms:{other}")
    assert result.returncode == EXIT_KEY
    assert key in one_error_line(result)  # names the key the file needs
    assert gate.operations("Decrypt") == [] and not (tmp_path / "out").exists()


def test_discovery_opens_the_file_and_an_account_filter_can_refuse_it(gate: Any, key: str, src: Path,
                                                                     tmp_path: Path) -> None:
    enc = encrypted(src, f"aws-kms:{key}")
    ok = envelope_cli("decrypt-file", str(enc), "-o", str(tmp_path / "a"), "--key", f"aws-kms-discovery:aws:{ACCOUNT}")
    assert ok.returncode == EXIT_OK, ok.stderr
    assert (tmp_path / "a").read_bytes() == src.read_bytes()
    gate.reset()
    refused = envelope_cli("decrypt-file", str(enc), "-o", str(tmp_path / "b"),
                           "--key", "aws-kms-discovery:aws:111122223333")
    assert refused.returncode == EXIT_KEY and "111122223333" in one_error_line(refused)
    assert gate.operations("Decrypt") == [] and not (tmp_path / "b").exists()


def test_discovery_refuses_to_encrypt(gate: Any, src: Path, tmp_path: Path) -> None:
    result = envelope_cli("encrypt-file", str(src), "-o", str(tmp_path / "x"), "--key", "aws-kms-discovery:")
    assert result.returncode != EXIT_OK and "discovery" in one_error_line(result)
    assert not (tmp_path / "x").exists() and gate.operations() == []


# moto's DisableKey and ScheduleKeyDeletion take the bare key id, not the ARN.
@pytest.mark.parametrize(("make_unusable", "words"), [
    (lambda kms, arn: kms.disable_key(KeyId=arn.rpartition("/")[2]), "is disabled"),
    (lambda kms, arn: kms.schedule_key_deletion(KeyId=arn.rpartition("/")[2], PendingWindowInDays=7),
     "pending deletion"),
])
def test_a_key_kms_will_not_use_fails_in_one_line_naming_it(kms: Any, key: str, src: Path, tmp_path: Path,
                                                            make_unusable: Any, words: str) -> None:
    enc = encrypted(src, f"aws-kms:{key}")
    make_unusable(kms, key)
    for verb, path in (("decrypt-file", enc), ("encrypt-file", src)):
        result = envelope_cli(verb, str(path), "-o", str(tmp_path / "out"), "--key", f"aws-kms:{key}")
        line = one_error_line(result)
        assert result.returncode == EXIT_KEY and key in line and words in line, line
        assert not (tmp_path / "out").exists()


def test_a_header_whose_context_was_altered_is_refused_by_kms(gate: Any, key: str, src: Path,
                                                              tmp_path: Path) -> None:
    enc = encrypted(src, f"aws-kms:{key}", extra=("--context", "team=blue"))
    blob = bytearray(enc.read_bytes())
    at = blob.index(b"blue")
    blob[at:at + 4] = b"bleu"  # same length: the header still parses, KMS's binding must catch it
    tampered = tmp_path / "tampered.envelope"
    tampered.write_bytes(blob)
    result = envelope_cli("decrypt-file", str(tampered), "-o", str(tmp_path / "out"), "--key", f"aws-kms:{key}")
    # KMS cannot tell a changed context from a foreign ciphertext, so neither can envelope: a key error.
    assert result.returncode == EXIT_KEY and "wrong encryption context" in one_error_line(result)
    assert len(gate.operations("Decrypt")) == 1 and not (tmp_path / "out").exists()


def test_an_expected_context_the_file_lacks_is_refused_before_any_kms_call(gate: Any, key: str, src: Path,
                                                                          tmp_path: Path) -> None:
    enc = encrypted(src, f"aws-kms:{key}", extra=("--context", "team=blue"))
    gate.reset()
    result = envelope_cli("decrypt-file", str(enc), "-o", str(tmp_path / "out"), "--key", f"aws-kms:{key}",
                          "--context", "team=red")
    assert result.returncode == EXIT_CONTEXT and "team" in one_error_line(result)
    assert gate.operations() == []


def test_a_file_under_a_local_and_an_aws_key_opens_with_either_alone(gate: Any, key: str, src: Path,
                                                                     tmp_path: Path) -> None:
    assert envelope_cli("keys", "create", "--alias", "alias/offline").returncode == EXIT_OK
    enc = encrypted(src, "local:alias/offline", f"aws-kms:{key}")
    assert [r.operation for r in gate.operations()] == ["Encrypt"]  # the local key made the data key
    gate.reset()
    local_only = envelope_cli("decrypt-file", str(enc), "-o", str(tmp_path / "l"), "--key", "local:alias/offline")
    assert local_only.returncode == EXIT_OK and gate.operations() == []  # no network at all
    aws_only = envelope_cli("decrypt-file", str(enc), "-o", str(tmp_path / "a"), "--key", f"aws-kms:{key}")
    assert aws_only.returncode == EXIT_OK and len(gate.operations("Decrypt")) == 1
    assert (tmp_path / "l").read_bytes() == (tmp_path / "a").read_bytes() == src.read_bytes()


def test_the_cache_turns_one_call_per_file_into_one_call_per_bound(gate: Any, key: str, tmp_path: Path) -> None:
    inputs = []
    for i in range(6):
        inputs.append(tmp_path / f"log{i}.txt")
        inputs[-1].write_bytes(os.urandom(10_000))

    def encrypt_all(out: str, *cache: str) -> int:
        gate.reset()
        (tmp_path / out).mkdir()
        result = envelope_cli("encrypt-file", *map(str, inputs), "--output-dir", str(tmp_path / out), "-q",
                              "--key", f"aws-kms:{key}", *cache)
        assert result.returncode == EXIT_OK, result.stderr
        return len(gate.operations("GenerateDataKey"))

    assert encrypt_all("plain") == 6
    assert encrypt_all("cached", "--cache-max-age", "60") == 1
    assert encrypt_all("by-messages", "--cache-max-age", "60", "--cache-max-messages", "2") == 3
    assert encrypt_all("by-bytes", "--cache-max-age", "60", "--cache-max-bytes", "25000") == 3
    gate.reset()
    (tmp_path / "back").mkdir()
    enc = sorted(str(p) for p in (tmp_path / "cached").iterdir())
    result = envelope_cli("decrypt-file", *enc, "--output-dir", str(tmp_path / "back"), "-q",
                          "--key", f"aws-kms:{key}", "--cache-max-age", "60")
    assert result.returncode == EXIT_OK and len(gate.operations("Decrypt")) == 1
    assert all((tmp_path / "back" / p.name).read_bytes() == p.read_bytes() for p in inputs)


def test_throttling_is_retried_and_the_file_still_encrypts(gate: Any, key: str, src: Path, tmp_path: Path) -> None:
    gate.inject("GenerateDataKey", "ThrottlingException", "ThrottlingException")
    result = envelope_cli("encrypt-file", str(src), "-o", str(tmp_path / "out"), "--key", f"aws-kms:{key}")
    assert result.returncode == EXIT_OK, result.stderr
    assert len(gate.operations("GenerateDataKey")) == 3


def test_throttling_that_outlasts_the_retries_is_one_clear_line(gate: Any, key: str, src: Path,
                                                                tmp_path: Path) -> None:
    env = dict(os.environ, AWS_MAX_ATTEMPTS="2")  # botocore's own knob; keeps the test quick
    gate.inject("GenerateDataKey", *["ThrottlingException"] * 10)
    result = envelope_cli("encrypt-file", str(src), "-o", str(tmp_path / "out"), "--key", f"aws-kms:{key}", env=env)
    line = one_error_line(result)
    assert result.returncode == EXIT_KEY and key in line, line
    attempts = len(gate.operations("GenerateDataKey"))
    assert f"throttling requests; gave up after {attempts} attempts" in line and attempts == 2
    assert not (tmp_path / "out").exists()

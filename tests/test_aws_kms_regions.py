"""Discovery keyrings, multi-Region keys and the bound on concurrent KMS calls, against moto's server on loopback."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")

import envelope  # noqa: E402
from envelope.exceptions import KeyNotFoundError, KeyringError, UsageError  # noqa: E402
from envelope.format import read_header  # noqa: E402
from envelope.keyrings import aws_client  # noqa: E402
from envelope.keyrings.aws_kms import AwsKmsKeyring  # noqa: E402
from envelope.keyrings.aws_kms_discovery import AwsKmsDiscoveryKeyring  # noqa: E402
from envelope.keyrings.base import MultiKeyring  # noqa: E402
from envelope.keyrings.kms_arn import same_key_for_decrypt  # noqa: E402

ACCOUNT = "123456789012"  # moto's default account
HOME, AWAY = "eu-west-1", "us-east-1"


def client(kms_server: Any, region: str) -> Any:
    return boto3.client("kms", region_name=region, endpoint_url=kms_server[1])


@pytest.fixture
def data() -> bytes:
    return os.urandom(70_000)


def encrypted_under(arn: str, data: bytes, **kw: Any) -> bytes:
    return envelope.encrypt(data, keys=[f"aws-kms:{arn}"], **kw)


def wrapped(blob: bytes) -> Any:
    import io

    return read_header(io.BytesIO(blob))[0].wrapped_keys


# -- discovery -------------------------------------------------------------------------------------------


def test_discovery_opens_a_file_under_a_key_it_was_never_told_about(aws_env: Any, kms_server: Any,
                                                                    data: bytes) -> None:
    arn = client(kms_server, HOME).create_key()["KeyMetadata"]["Arn"]
    blob = encrypted_under(arn, data, context={"job": "restore"})
    aws_env.reset()
    assert envelope.decrypt(blob, keys=["aws-kms-discovery:"]) == data
    decrypts = aws_env.operations("Decrypt")
    assert [(r.region, r.key_id) for r in decrypts] == [(HOME, arn)]  # KeyId is always sent


def test_discovery_with_an_account_filter_accepts_listed_accounts_only(aws_env: Any, kms_server: Any,
                                                                      data: bytes) -> None:
    arn = client(kms_server, HOME).create_key()["KeyMetadata"]["Arn"]
    blob = encrypted_under(arn, data)
    assert envelope.decrypt(blob, keys=[f"aws-kms-discovery:aws:111122223333,{ACCOUNT}"]) == data
    aws_env.reset()
    for ref in ("aws-kms-discovery:aws:111122223333", f"aws-kms-discovery:aws-cn:{ACCOUNT}"):
        with pytest.raises(KeyNotFoundError, match="none of the keys given"):
            envelope.decrypt(blob, keys=[ref])
    assert aws_env.operations("Decrypt") == []  # filtered out before any call


def test_discovery_cannot_encrypt(aws_env: Any) -> None:
    with pytest.raises(UsageError, match="can only decrypt"):
        envelope.encrypt(b"x", keys=["aws-kms-discovery:"])


@pytest.mark.parametrize("ref", ["aws-kms-discovery:aws", "aws-kms-discovery:aws:", "aws-kms-discovery:aws:12",
                                 "aws-kms-discovery:gcp:123456789012", "aws-kms-discovery::123456789012"])
def test_malformed_discovery_filters_are_usage_errors(ref: str) -> None:
    with pytest.raises(UsageError):
        envelope.decrypt(b"x" * 200, keys=[ref])


def test_discovery_reports_a_disabled_key_by_its_arn(aws_env: Any, kms_server: Any, data: bytes) -> None:
    kms = client(kms_server, HOME)
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    blob = encrypted_under(arn, data)
    kms.disable_key(KeyId=arn.rpartition("/")[2])
    with pytest.raises(KeyringError, match=f"{arn}.*is disabled"):
        envelope.decrypt(blob, keys=["aws-kms-discovery:"])


def test_a_single_region_key_is_called_in_its_own_region(aws_env: Any, kms_server: Any, data: bytes) -> None:
    arn = client(kms_server, AWAY).create_key()["KeyMetadata"]["Arn"]
    blob = encrypted_under(arn, data)
    aws_env.reset()
    assert envelope.decrypt(blob, keys=["aws-kms-discovery:"]) == data
    assert [r.region for r in aws_env.operations("Decrypt")] == [AWAY]


# -- multi-Region keys -----------------------------------------------------------------------------------


@pytest.fixture
def mrk(aws_env: Any, kms_server: Any) -> tuple[str, str]:
    """A multi-Region key made in AWAY, replicated to HOME: (primary ARN, replica ARN)."""
    primary = client(kms_server, AWAY).create_key(MultiRegion=True)["KeyMetadata"]
    replica = client(kms_server, AWAY).replicate_key(KeyId=primary["KeyId"], ReplicaRegion=HOME)
    return primary["Arn"], replica["ReplicaKeyMetadata"]["Arn"]


def test_a_file_from_another_region_opens_with_the_local_replica_without_calling_there(
        aws_env: Any, mrk: tuple[str, str], data: bytes) -> None:
    primary, replica = mrk
    assert ":key/mrk-" in primary and primary != replica
    blob = encrypted_under(primary, data)
    assert [w.key_id for w in wrapped(blob)] == [primary]
    aws_env.reset()
    assert envelope.decrypt(blob, keys=[f"aws-kms:{replica}"]) == data
    assert [(r.region, r.key_id) for r in aws_env.operations()] == [(HOME, replica)]


def test_discovery_uses_the_replica_in_the_configured_region(aws_env: Any, mrk: tuple[str, str],
                                                             data: bytes) -> None:
    primary, replica = mrk
    blob = encrypted_under(primary, data)
    aws_env.reset()
    assert envelope.decrypt(blob, keys=[f"aws-kms-discovery:aws:{ACCOUNT}"]) == data
    assert [(r.region, r.key_id) for r in aws_env.operations()] == [(HOME, replica)]


def test_an_alias_naming_the_replica_matches_files_from_the_primary(aws_env: Any, kms_server: Any,
                                                                    mrk: tuple[str, str], data: bytes) -> None:
    primary, replica = mrk
    client(kms_server, HOME).create_alias(AliasName="alias/shared", TargetKeyId=replica)
    blob = encrypted_under(primary, data)
    assert envelope.decrypt(blob, keys=["aws-kms:alias/shared"]) == data


def test_single_region_keys_with_equal_ids_in_two_regions_do_not_match() -> None:
    a = f"arn:aws:kms:{HOME}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    b = a.replace(HOME, AWAY)
    assert not same_key_for_decrypt(a, b)
    assert same_key_for_decrypt(a, a)
    m = f"arn:aws:kms:{HOME}:{ACCOUNT}:key/mrk-1234abcd12ab34cd56ef1234567890ab"
    assert same_key_for_decrypt(m, m.replace(HOME, AWAY))
    assert not same_key_for_decrypt(m, m.replace(ACCOUNT, "210987654321").replace(HOME, AWAY))
    assert not same_key_for_decrypt(m, m.replace("arn:aws:", "arn:aws-cn:"))


def test_a_strict_keyring_for_another_multi_region_key_is_not_asked(aws_env: Any, kms_server: Any,
                                                                   mrk: tuple[str, str], data: bytes) -> None:
    other = client(kms_server, HOME).create_key(MultiRegion=True)["KeyMetadata"]["Arn"]
    blob = encrypted_under(mrk[0], data)
    aws_env.reset()
    with pytest.raises(KeyNotFoundError):
        envelope.decrypt(blob, keys=[f"aws-kms:{other}"])
    assert aws_env.operations("Decrypt") == []


# -- concurrency -----------------------------------------------------------------------------------------


def test_concurrent_kms_calls_are_bounded_process_wide(aws_env: Any, kms_server: Any, data: bytes,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    arn = client(kms_server, HOME).create_key()["KeyMetadata"]["Arn"]
    blobs = [encrypted_under(arn, data[:1000]) for _ in range(12)]
    monkeypatch.setattr(aws_client, "_slots", threading.BoundedSemaphore(3))
    aws_env.reset()
    aws_env.delay = 0.05  # each request takes a while, so unbounded callers would pile up
    ring = MultiKeyring([AwsKmsKeyring(arn)])
    errors: list[BaseException] = []

    def open_one(blob: bytes) -> None:
        try:
            assert envelope.decrypt(blob, keys=ring) == data[:1000]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(b,)) for b in blobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(aws_env.operations("Decrypt")) == 12
    assert aws_env.max_in_flight == 3


def test_the_bound_can_be_changed_and_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws_client, "_slots", aws_client._slots)
    monkeypatch.setattr(aws_client, "MAX_CONCURRENT_CALLS", aws_client.MAX_CONCURRENT_CALLS)
    aws_client.set_max_concurrent_calls(4)
    assert aws_client.MAX_CONCURRENT_CALLS == 4
    with pytest.raises(UsageError):
        aws_client.set_max_concurrent_calls(0)


def test_adaptive_retry_mode_is_taken_from_the_environment(aws_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    kms = aws_client.make_client(HOME, None)
    assert kms.meta.config.retries["mode"] == "adaptive"
    monkeypatch.setenv("AWS_RETRY_MODE", "legacy")  # legacy has no jitter: standard instead
    assert aws_client.make_client(HOME, None).meta.config.retries["mode"] == "standard"


def test_throttling_injected_at_the_server_is_retried(aws_env: Any, kms_server: Any, data: bytes) -> None:
    arn = client(kms_server, HOME).create_key()["KeyMetadata"]["Arn"]
    aws_env.inject("GenerateDataKey", "ThrottlingException", "ThrottlingException")
    blob = encrypted_under(arn, data)
    assert len(aws_env.operations("GenerateDataKey")) == 3
    assert envelope.decrypt(blob, keys=[f"aws-kms:{arn}"]) == data


def test_discovery_keyring_reference_names_its_filter() -> None:
    assert AwsKmsDiscoveryKeyring().reference == "aws-kms-discovery:"
    ring = AwsKmsDiscoveryKeyring(partition="aws", accounts=("111122223333", "444455556666"))
    assert ring.reference == "aws-kms-discovery:aws:111122223333,444455556666"


def test_gate_enforces_states_like_kms(aws_env: Any, kms_server: Any, tmp_path: Path) -> None:
    """The harness itself: a key pending deletion is refused as AWS KMS refuses it."""
    kms = client(kms_server, HOME)
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    kms.schedule_key_deletion(KeyId=arn.rpartition("/")[2], PendingWindowInDays=7)
    with pytest.raises(KeyringError, match="not usable in its current state"):
        envelope.encrypt(b"x", keys=[f"aws-kms:{arn}"])

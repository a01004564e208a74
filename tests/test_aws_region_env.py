"""``AWS_REGION`` alone is enough, as for the AWS CLI v2 and the other SDKs (botocore reads only AWS_DEFAULT_REGION).

The order: an explicit region (``--region``, ``region=``; a key ARN names its
own) > ``AWS_REGION`` > ``AWS_DEFAULT_REGION`` > the profile's ``region``.
Against moto's KMS server on loopback, through the gate that records each
request's signing region.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")

import envelope  # noqa: E402
from envelope.cli.main import EXIT_OK, main  # noqa: E402

HOME, AWAY, THIRD = "eu-west-1", "us-east-1", "ap-southeast-2"
ACCOUNT = "123456789012"  # moto's default account


def kms(kms_server: Any, region: str) -> Any:
    return boto3.client("kms", region_name=region, endpoint_url=kms_server[1])


def alias_in(kms_server: Any, region: str) -> str:
    alias = "alias/region-" + os.urandom(4).hex()
    arn = kms(kms_server, region).create_key()["KeyMetadata"]["Arn"]
    kms(kms_server, region).create_alias(AliasName=alias, TargetKeyId=arn)
    return alias


@pytest.fixture
def only_aws_region(aws_env: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_REGION", HOME)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    return aws_env


def regions(gate: Any) -> set[str]:
    return {r.region for r in gate.operations()}


def test_aws_region_alone_is_honoured_by_the_api(only_aws_region: Any, kms_server: Any) -> None:
    alias = alias_in(kms_server, HOME)
    only_aws_region.reset()
    blob = envelope.encrypt(b"x", keys=[f"aws-kms:{alias}"], context={"a": "b"})
    assert envelope.decrypt(blob, keys=[f"aws-kms:{alias}"]) == b"x"
    assert regions(only_aws_region) == {HOME}


def test_aws_region_alone_is_honoured_by_the_cli(only_aws_region: Any, kms_server: Any, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    alias = alias_in(kms_server, HOME)
    src, enc, back = tmp_path / "p", tmp_path / "p.envelope", tmp_path / "back"
    src.write_bytes(os.urandom(5000))
    assert main(["encrypt-file", str(src), "-o", str(enc), "--key", f"aws-kms:{alias}", "-q"]) == EXIT_OK, \
        capsys.readouterr().err
    assert main(["decrypt-file", str(enc), "-o", str(back), "--key", f"aws-kms:{alias}", "-q"]) == EXIT_OK
    assert back.read_bytes() == src.read_bytes()
    assert regions(only_aws_region) == {HOME}


def test_aws_region_alone_names_the_replica_region_for_discovery(only_aws_region: Any, kms_server: Any) -> None:
    primary = kms(kms_server, AWAY).create_key(MultiRegion=True)["KeyMetadata"]
    replica = kms(kms_server, AWAY).replicate_key(KeyId=primary["KeyId"], ReplicaRegion=HOME)
    blob = envelope.encrypt(b"x", keys=[f"aws-kms:{primary['Arn']}"])
    only_aws_region.reset()
    assert envelope.decrypt(blob, keys=[f"aws-kms-discovery:aws:{ACCOUNT}"]) == b"x"
    assert [(r.region, r.key_id) for r in only_aws_region.operations()] == \
        [(HOME, replica["ReplicaKeyMetadata"]["Arn"])]


def test_aws_region_wins_over_aws_default_region_and_the_profile(aws_env: Any, kms_server: Any, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.write_text(f"[default]\nregion = {THIRD}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    aliases = {region: alias_in(kms_server, region) for region in (HOME, AWAY, THIRD)}
    cases = [({"AWS_REGION": HOME, "AWS_DEFAULT_REGION": AWAY}, HOME),
             ({"AWS_DEFAULT_REGION": AWAY}, AWAY),
             ({}, THIRD)]
    for env, expected in cases:
        for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        aws_env.reset()
        envelope.encrypt(b"x", keys=[f"aws-kms:{aliases[expected]}"])
        assert regions(aws_env) == {expected}, env


def test_an_explicit_region_wins_over_aws_region(aws_env: Any, kms_server: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", HOME)
    monkeypatch.setenv("AWS_DEFAULT_REGION", HOME)
    alias = alias_in(kms_server, AWAY)
    aws_env.reset()
    from envelope.keyrings.registry import resolve

    envelope.encrypt(b"x", keys=[resolve(f"aws-kms:{alias}", region=AWAY)])
    assert regions(aws_env) == {AWAY}
    src = tmp_path / "p"
    src.write_bytes(b"y")
    aws_env.reset()
    assert main(["encrypt-file", str(src), "-o", str(tmp_path / "e"), "--key", f"aws-kms:{alias}",
                 "--region", AWAY, "-q"]) == EXIT_OK
    assert regions(aws_env) == {AWAY}


def test_the_s3_client_takes_its_region_from_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    from envelope.cli.s3 import _boto_client

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                        "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_REGION": THIRD}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    args = argparse.Namespace(endpoint_url=None, region=None, profile=None)
    assert _boto_client(args).meta.region_name == THIRD
    monkeypatch.setenv("AWS_DEFAULT_REGION", AWAY)
    assert _boto_client(args).meta.region_name == THIRD

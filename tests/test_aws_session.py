"""One boto3 Session per process (per profile, region and AWS environment), not one per client.

Each Session loads botocore's data again (tens of milliseconds, megabytes), so a
command that opens an S3 client and KMS clients, or threads that each make
one, share a Session; it is made, and clients are made from it, under a lock
(a Session is not thread-safe; its clients are).  A forked child never uses
its parent's Session.  No request is made: clients are only built.
"""

from __future__ import annotations

import argparse
import os
import threading
from collections import OrderedDict
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")

from envelope.cli.s3 import _boto_client  # noqa: E402
from envelope.keyrings import aws_client  # noqa: E402
from envelope.keyrings.aws_kms import AwsKmsKeyring  # noqa: E402

ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every boto3 Session made from here on (boto3's default one too), with no Session kept from before."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_REGION": "eu-west-1", "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    made: list[Any] = []

    class Counted(boto3.session.Session):  # type: ignore[misc,name-defined]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(boto3.session, "Session", Counted)
    monkeypatch.setattr(boto3, "Session", Counted)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    monkeypatch.setattr(aws_client, "_SESSIONS", OrderedDict())
    return made


def test_an_s3_client_and_kms_clients_of_one_process_share_one_session(sessions: list[Any]) -> None:
    s3 = _boto_client(argparse.Namespace(endpoint_url=None))
    kms = [aws_client.make_client("eu-west-1", None), aws_client.make_client("us-east-1", None),
           AwsKmsKeyring(ARN).client(), AwsKmsKeyring(ARN).client()]
    assert len(sessions) == 1
    assert s3.meta.region_name == "eu-west-1"
    assert [c.meta.region_name for c in kms] == ["eu-west-1", "us-east-1", "eu-west-1", "eu-west-1"]


def test_threads_making_clients_at_once_share_one_session(sessions: list[Any]) -> None:
    start, errors = threading.Barrier(6), []

    def make() -> None:
        start.wait()
        try:
            aws_client.make_client("eu-west-1", None)
        except Exception as exc:  # noqa: BLE001 - any failure of a concurrent creation is the finding
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(sessions) == 1


def test_another_profile_or_credentials_get_another_session(sessions: list[Any],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    aws_client.make_client("eu-west-1", None)
    aws_client.make_client("eu-west-1", None)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDOTHERUSER")  # what boto3 reads changed: not the old Session
    aws_client.make_client("eu-west-1", None)
    assert len(sessions) == 2


def test_sessions_of_an_environment_that_changed_are_not_kept_forever(sessions: list[Any],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(aws_client.SESSIONS_KEPT + 2):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", f"AKID{n}")
        aws_client.make_session(None)
    assert len(sessions) == aws_client.SESSIONS_KEPT + 2 and len(aws_client._SESSIONS) == aws_client.SESSIONS_KEPT


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_makes_its_own_session(sessions: list[Any]) -> None:
    parent = aws_client.make_session(None)
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if it did not reuse the parent's Session
        try:
            os._exit(0 if aws_client.make_session(None) is not parent else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_credentials_rewritten_in_their_file_get_another_session(sessions: list[Any], tmp_path: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[default]\naws_access_key_id = ONE\naws_secret_access_key = one\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert aws_client.make_session(None).get_credentials().access_key == "ONE"
    credentials.write_text("[default]\naws_access_key_id = TWOTWO\naws_secret_access_key = two\n")
    assert aws_client.make_session(None).get_credentials().access_key == "TWOTWO"

"""``envelope s3 cp --recursive`` writes only inside its destination, whatever the bucket's keys say.

Object keys come from whoever can write to the bucket.  A key is a path only
after each of its ``/``-separated parts has been checked: no ``..``, ``.`` or
empty part, no NUL, nothing that reaches outside the destination through a
symbolic link already there.  A refused key is named on one line of stderr,
the other objects are still copied, and the exit status says something was
refused.  Against moto's S3 server, in new processes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")

from test_cli_s3 import bucket, cli, env  # noqa: E402,F401 - the fixtures and runner of the s3 cp tests

from envelope.cli.main import EXIT_OK, EXIT_USAGE  # noqa: E402

PREFIX = "backup/"
GOOD = b"a file that belongs in the destination"


def _client(env: dict[str, str]) -> Any:
    import boto3

    from envelope.s3 import EncryptedS3Client

    raw = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    return EncryptedS3Client(raw, keys=[env["KEK"]])


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


HOSTILE = {
    "parents": "../../escaped.txt",
    "parents after a name": "sub/../../../escaped.txt",
    "a bare parent": "..",
    "a parent at the end": "sub/..",
    "a dot": "./dot.txt",
    "an empty part": "sub//empty.txt",
    "a leading slash": "/escaped.txt",
    "a directory marker": "sub/",
    "a NUL byte": "nul\x00.txt",
}


@pytest.mark.parametrize("force", [False, True], ids=["no-force", "force"])
@pytest.mark.parametrize("rest", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_key_is_refused_and_reported_and_the_others_are_copied(env: dict[str, str], bucket: str,
                                                                        tmp_path: Path, rest: str,
                                                                        force: bool) -> None:
    s3 = _client(env)
    s3.put_object(Bucket=bucket, Key=PREFIX + rest, Body=b"planted by whoever can write to the bucket")
    s3.put_object(Bucket=bucket, Key=PREFIX + "good/ok.txt", Body=GOOD)
    dst = tmp_path / "a" / "b" / "dst"
    dst.mkdir(parents=True)
    victim = tmp_path / "a" / "escaped.txt"
    victim.write_bytes(b"the victim's own file")
    before = _files(tmp_path) - _files(dst)

    done = cli(env, "s3", "cp", f"s3://{bucket}/{PREFIX}", str(dst), "--recursive", "--key", env["KEK"],
               *(["--force"] if force else []))

    assert done.returncode == EXIT_USAGE, done.stderr
    assert (dst / "good" / "ok.txt").read_bytes() == GOOD
    assert _files(tmp_path) - _files(dst) == before and victim.read_bytes() == b"the victim's own file"
    assert _files(dst) == {dst / "good" / "ok.txt"}
    refused = [line for line in done.stderr.splitlines() if repr(PREFIX + rest) in line]
    assert len(refused) == 1 and refused[0].startswith("envelope: error: "), done.stderr
    assert "Traceback" not in done.stderr


def test_a_symlinked_directory_inside_the_destination_is_not_followed_out(env: dict[str, str], bucket: str,
                                                                          tmp_path: Path) -> None:
    s3 = _client(env)
    s3.put_object(Bucket=bucket, Key=PREFIX + "link/planted.txt", Body=b"x")
    s3.put_object(Bucket=bucket, Key=PREFIX + "file-link", Body=b"x")
    s3.put_object(Bucket=bucket, Key=PREFIX + "ok.txt", Body=GOOD)
    outside, dst = tmp_path / "outside", tmp_path / "dst"
    outside.mkdir()
    dst.mkdir()
    (outside / "victim").write_bytes(b"v")
    (dst / "link").symlink_to(outside)
    (dst / "file-link").symlink_to(outside / "victim")

    done = cli(env, "s3", "cp", f"s3://{bucket}/{PREFIX}", str(dst), "--recursive", "--key", env["KEK"], "--force")

    assert done.returncode == EXIT_USAGE, done.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["victim"] and (outside / "victim").read_bytes() == b"v"
    assert (dst / "ok.txt").read_bytes() == GOOD
    assert sum("refus" in line for line in done.stderr.splitlines()) >= 2, done.stderr


def test_backslashes_and_dots_inside_a_name_are_just_characters(env: dict[str, str], bucket: str,
                                                               tmp_path: Path) -> None:
    s3 = _client(env)
    names = ["a\\..\\..\\b.txt", "..hidden", "x..y/...", "sp ace/ü.txt"]
    for name in names:
        s3.put_object(Bucket=bucket, Key=PREFIX + name, Body=name.encode())
    dst = tmp_path / "dst"
    done = cli(env, "s3", "cp", f"s3://{bucket}/{PREFIX}", str(dst), "--recursive", "--key", env["KEK"])
    assert done.returncode == EXIT_OK, done.stderr
    for name in names:
        assert dst.joinpath(*name.split("/")).read_bytes() == name.encode()
    assert _files(dst) == {dst.joinpath(*n.split("/")) for n in names}


def test_one_object_into_a_directory_takes_a_safe_last_part_only(env: dict[str, str], bucket: str,
                                                                 tmp_path: Path) -> None:
    s3 = _client(env)
    s3.put_object(Bucket=bucket, Key="dir/..", Body=b"x")
    dst = tmp_path / "a" / "dst"
    dst.mkdir(parents=True)
    done = cli(env, "s3", "cp", f"s3://{bucket}/dir/..", str(dst) + "/", "--key", env["KEK"], "--force")
    assert done.returncode == EXIT_USAGE and "'dir/..'" in done.stderr, done.stderr
    assert _files(tmp_path / "a") == set()


def test_an_empty_folder_marker_is_skipped_not_refused(env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    """The S3 console's "Create folder" leaves a 0-byte key ending in '/': no file, nothing to refuse."""
    s3 = _client(env)
    s3.wrapped_client.put_object(Bucket=bucket, Key=PREFIX + "sub/", Body=b"")
    s3.put_object(Bucket=bucket, Key=PREFIX + "sub/ok.txt", Body=GOOD)
    dst = tmp_path / "dst"
    done = cli(env, "s3", "cp", f"s3://{bucket}/{PREFIX}", str(dst), "--recursive", "--key", env["KEK"])
    assert done.returncode == EXIT_OK, done.stderr
    assert _files(dst) == {dst / "sub" / "ok.txt"} and (dst / "sub" / "ok.txt").read_bytes() == GOOD


def test_the_library_plans_a_directory_to_a_prefix_and_refuses_a_key_with_no_safe_name(tmp_path: Path) -> None:
    """envelope.s3.copies.plan takes plain parameters (no argument objects): each file goes under the prefix."""
    from envelope.exceptions import UsageError
    from envelope.s3.copies import plan

    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a.txt").write_bytes(b"12345")
    (tmp_path / "src" / "sub" / "b.txt").write_bytes(b"")
    jobs, refused = plan(None, str(tmp_path / "src"), "s3://bucket/pre", recursive=True)
    assert refused == [] and jobs == [(str(tmp_path / "src" / "a.txt"), "s3://bucket/pre/a.txt", 5),
                                      (str(tmp_path / "src" / "sub" / "b.txt"), "s3://bucket/pre/sub/b.txt", 0)]
    with pytest.raises(UsageError, match="refusing to copy key 'sub/..'"):
        plan(None, "s3://bucket/sub/..", str(tmp_path) + "/")

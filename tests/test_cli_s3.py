"""``envelope s3 cp`` and ``s3 inspect`` against moto's S3 server, in new processes, configured by the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")

from envelope.cli.main import EXIT_IO, EXIT_KEY, EXIT_OK, EXIT_USAGE  # noqa: E402
from keyfiles import write_key_file  # noqa: E402


@pytest.fixture
def env(s3_endpoint: str, tmp_path: Path) -> dict[str, str]:
    key = tmp_path / "kek"
    write_key_file(key, os.urandom(32))
    return dict(os.environ, AWS_ENDPOINT_URL_S3=s3_endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull,
                AWS_SHARED_CREDENTIALS_FILE=os.devnull, KEK=f"raw-aes:{key}")


@pytest.fixture
def bucket(s3_endpoint: str, env: dict[str, str]) -> str:
    name = "cli" + os.urandom(5).hex()
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=name)
    return name


def cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "envelope", *argv], env=env, capture_output=True, text=True,
                          timeout=120)


def test_cp_up_down_and_across(env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "report.csv"
    src.write_bytes(os.urandom(300_000))
    kek = env["KEK"]
    assert cli(env, "s3", "cp", str(src), f"s3://{bucket}/in/report.csv", "--key", kek).returncode == EXIT_OK
    assert cli(env, "s3", "cp", f"s3://{bucket}/in/report.csv", f"s3://{bucket}/copy/report.csv").returncode == 0
    out = tmp_path / "back.csv"
    done = cli(env, "s3", "cp", f"s3://{bucket}/copy/report.csv", str(out), "--key", kek)
    assert done.returncode == EXIT_OK, done.stderr
    assert out.read_bytes() == src.read_bytes()
    part = tmp_path / "part"
    assert cli(env, "s3", "cp", f"s3://{bucket}/in/report.csv", str(part), "--key", kek, "--range",
               "1000:5096").returncode == EXIT_OK
    assert part.read_bytes() == src.read_bytes()[1000:5096]
    again = cli(env, "s3", "cp", f"s3://{bucket}/in/report.csv", str(out), "--key", kek)
    assert again.returncode == EXIT_USAGE and "--force" in again.stderr


def test_cp_recursive_both_ways(env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    tree = tmp_path / "logs"
    (tree / "2026" / "12").mkdir(parents=True)
    files = {tree / "a.log": os.urandom(1000), tree / "2026" / "12" / "b.log": os.urandom(70_000),
             tree / "2026" / "c.log": b""}
    for path, data in files.items():
        path.write_bytes(data)
    kek = env["KEK"]
    assert cli(env, "s3", "cp", str(tree), f"s3://{bucket}/logs", "--recursive", "--key", kek).returncode == 0
    back = tmp_path / "back"
    done = cli(env, "s3", "cp", f"s3://{bucket}/logs", str(back), "--recursive", "--key", kek)
    assert done.returncode == EXIT_OK, done.stderr
    for path, data in files.items():
        assert (back / path.relative_to(tree)).read_bytes() == data


def test_inspect_shows_the_header_without_a_key(env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "x"
    src.write_bytes(b"x" * 1000)
    assert cli(env, "s3", "cp", str(src), f"s3://{bucket}/x", "--key", env["KEK"], "--context",
               "team=ops").returncode == 0
    shown = cli(env, "s3", "inspect", f"s3://{bucket}/x", "--json")
    info = json.loads(shown.stdout)
    assert info["encryption_context"] == {"team": "ops"} and info["plaintext_size"] == 1000
    assert info["wrapped_keys"][0]["provider"] == "raw-aes"


@pytest.mark.parametrize(("argv", "code", "needle"), [
    (["s3", "cp", "a", "b"], EXIT_USAGE, "must be an s3:// URL"),
    (["s3", "cp", "s3://{bucket}/missing", "OUT", "--key", "{kek}"], EXIT_IO, "/missing: S3 HeadObject failed: not found"),
    (["s3", "cp", "s3://no-such-bucket-here/x", "OUT", "--key", "{kek}"], EXIT_IO, "not found"),
    (["s3", "cp", "SRC", "s3://{bucket}/x", "--range", "0:10"], EXIT_USAGE, "--range is for downloading"),
])
def test_failures_are_one_line(env: dict[str, str], bucket: str, tmp_path: Path, argv: list[str], code: int,
                               needle: str) -> None:
    (tmp_path / "SRC").write_bytes(b"x")
    args = [a.format(bucket=bucket, kek=env["KEK"]).replace("OUT", str(tmp_path / "out"))
            .replace("SRC", str(tmp_path / "SRC")) for a in argv]
    done = cli(env, *args)
    assert done.returncode == code and needle in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "out").exists()


def test_the_wrong_key_cannot_download(env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "x"
    src.write_bytes(b"secret")
    assert cli(env, "s3", "cp", str(src), f"s3://{bucket}/x", "--key", env["KEK"]).returncode == 0
    other = tmp_path / "other"
    write_key_file(other, os.urandom(32))
    done = cli(env, "s3", "cp", f"s3://{bucket}/x", str(tmp_path / "out"), "--key", f"raw-aes:{other}")
    assert done.returncode == EXIT_KEY and not (tmp_path / "out").exists()


def test_s3_rewrap_moves_objects_to_a_new_key(env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "x"
    src.write_bytes(os.urandom(5000))
    old = env["KEK"]
    assert cli(env, "s3", "cp", str(src), f"s3://{bucket}/x", "--key", old).returncode == 0
    new = tmp_path / "new"
    write_key_file(new, os.urandom(32))
    done = cli(env, "s3", "rewrap", f"s3://{bucket}/x", "--key", f"raw-aes:{new}", "--from-key", old)
    assert done.returncode == EXIT_OK and "rewrapped for raw-aes:" in done.stdout, done.stderr
    assert cli(env, "s3", "cp", f"s3://{bucket}/x", str(tmp_path / "a"), "--key", f"raw-aes:{new}").returncode == 0
    assert (tmp_path / "a").read_bytes() == src.read_bytes()
    assert cli(env, "s3", "cp", f"s3://{bucket}/x", str(tmp_path / "b"), "--key", old).returncode == EXIT_KEY


def test_the_progress_bar_moves_inside_one_transfer(env: dict[str, str], bucket: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal, the bar counts bytes as parts go up, not one object at a time."""
    import fcntl
    import pty
    import re
    import struct
    import termios
    import threading

    from envelope.cli import progress
    from envelope.cli.main import main

    src = tmp_path / "big"
    src.write_bytes(os.urandom(24 << 20))  # three parts of boto3's default 8 MiB
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # In-process, so the bar can be asked to appear at once: a copy this small may take less than its delay.
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.0)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal 120 wide
    shown = bytearray()

    def drain() -> None:  # a pty holds little: the bar would block without a reader
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the other end closed
                return
            if not data:
                return
            shown.extend(data)

    reader = threading.Thread(target=drain)
    reader.start()
    with os.fdopen(follower, "w", encoding="utf-8") as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        assert main(["s3", "cp", str(src), f"s3://{bucket}/big", "--key", env["KEK"]]) == EXIT_OK
        monkeypatch.undo()
    reader.join(timeout=30)
    os.close(leader)
    counts = re.findall(rb"([\d.]+)M/24\.0M", bytes(shown))
    assert any(0 < float(c) < 24 for c in counts), bytes(shown[-400:])
    # The bar is replaced by one line that stays: what was copied, how much, how fast.
    last = bytes(shown).rstrip().splitlines()[-1]
    assert last.startswith(f"envelope: copied {src}: 24.0 MiB in ".encode()), bytes(shown[-400:])

def test_a_key_without_scheme_is_the_local_key_and_said_once_by_s3_cp_and_bulk(
        env: dict[str, str], bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--key alias/NAME`` means the local keystore's key in s3 and bulk too, and they say so, as encrypt-file does."""
    from envelope.cli.main import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    keystore, alias = str(tmp_path / "ks.db"), f"alias/s3-{os.urandom(4).hex()}"  # a name no earlier test noted
    assert main(["keys", "create", "--alias", alias, "--keystore", keystore]) == EXIT_OK
    src = tmp_path / "plain"
    src.write_bytes(b"object data")
    capsys.readouterr()
    assert main(["s3", "cp", str(src), f"s3://{bucket}/x", "--key", alias, "--keystore", keystore]) == EXIT_OK
    assert main(["s3", "cp", f"s3://{bucket}/x", str(tmp_path / "back"), "--key", alias,
                 "--keystore", keystore]) == EXIT_OK
    assert (tmp_path / "back").read_bytes() == b"object data"
    err = capsys.readouterr().err
    assert err.count(f"key {alias} has no scheme: using local:{alias}") == 1, err

    other = f"alias/bulk-{os.urandom(4).hex()}"
    assert main(["keys", "create", "--alias", other, "--keystore", keystore]) == EXIT_OK
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "f").write_bytes(b"a file")
    capsys.readouterr()
    assert main(["bulk", "encrypt", str(tmp_path / "tree"), str(tmp_path / "out"), "--key", other, "-q",
                 "--keystore", keystore, "--dry-run"]) == EXIT_OK
    assert "no scheme" not in capsys.readouterr().err  # -q: nothing to say
    assert main(["bulk", "encrypt", str(tmp_path / "tree"), str(tmp_path / "out"), "--key", other,
                 "--keystore", keystore, "--dry-run"]) == EXIT_OK
    assert f"key {other} has no scheme: using local:{other}" in capsys.readouterr().err


def test_rewrap_says_once_which_local_key_a_scheme_less_key_means(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from envelope.cli.main import main

    keystore, old, new = str(tmp_path / "ks.db"), f"alias/old-{os.urandom(4).hex()}", f"alias/new-{os.urandom(4).hex()}"
    for alias in (old, new):
        assert main(["keys", "create", "--alias", alias, "--keystore", keystore]) == EXIT_OK
    src = tmp_path / "f"
    src.write_bytes(b"data")
    assert main(["encrypt-file", str(src), "-k", f"local:{old}", "--keystore", keystore, "-q"]) == EXIT_OK
    capsys.readouterr()
    assert main(["rewrap", f"{src}.envelope", "-k", new, "--from-key", old, "--keystore", keystore]) == EXIT_OK
    err = capsys.readouterr().err
    assert err.count(f"key {new} has no scheme") == 1 and err.count(f"key {old} has no scheme") == 1, err
    assert main(["decrypt-file", f"{src}.envelope", "-o", str(tmp_path / "back"), "-k", f"local:{new}",
                 "--keystore", keystore]) == EXIT_OK
    assert (tmp_path / "back").read_bytes() == b"data"

"""encrypt-file / decrypt-file / inspect as a user meets them: outputs, messages, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from envelope.cli.main import (
    EXIT_AUTH,
    EXIT_CONTEXT,
    EXIT_FORMAT,
    EXIT_IO,
    EXIT_KEY,
    EXIT_USAGE,
    main,
)
from keyfiles import write_key_file


def run(*argv: str) -> int:
    return main(list(argv))


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("envelope: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(300_000))
    return path


def no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.startswith(".envelope-tmp-")]


def open_outputs(pid: int, directory: Path) -> list[str]:
    """Files under *directory* that process *pid* holds open, named or not (an unnamed one shows as #INODE)."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return []
    return [link for link in links if link.startswith(f"{directory}/")
            and link[len(str(directory)) + 1:].startswith(("#", ".envelope-tmp-"))]


def test_round_trip_with_default_names(plain, kek_file):
    assert run("encrypt-file", str(plain), "--key", f"raw-aes:{kek_file}", "--chunk-size", "64K") == 0
    enc = plain.with_name(plain.name + ".envelope")
    original = plain.read_bytes()
    plain.unlink()
    assert run("decrypt-file", str(enc), "--key", f"raw-aes:{kek_file}") == 0
    assert plain.read_bytes() == original


def test_default_key_is_created_once_and_named_with_the_keystore_path(plain, tmp_path, capsys):
    assert run("encrypt-file", str(plain), "-o", str(tmp_path / "a.env")) == 0
    err = capsys.readouterr().err
    assert "alias/envelope/default" in err and os.environ["ENVELOPE_KEYSTORE"] in err
    assert len(err.strip().splitlines()) == 1
    assert run("encrypt-file", str(plain), "-o", str(tmp_path / "b.env")) == 0
    assert capsys.readouterr().err == ""
    assert run("decrypt-file", str(tmp_path / "b.env"), "-o", str(tmp_path / "b.out")) == 0
    assert (tmp_path / "b.out").read_bytes() == plain.read_bytes()


def test_existing_output_is_never_overwritten_without_force(plain, kek_file, capsys):
    out = plain.with_name("out.env")
    out.write_bytes(b"precious")
    code = run("encrypt-file", str(plain), "-o", str(out), "--key", f"raw-aes:{kek_file}")
    assert code == EXIT_USAGE
    assert "already exists" in one_error_line(capsys.readouterr().err)
    assert out.read_bytes() == b"precious"
    assert run("encrypt-file", str(plain), "-o", str(out), "--key", f"raw-aes:{kek_file}", "--force") == 0
    assert out.read_bytes() != b"precious"


def _encrypt(plain: Path, kek: Path, *extra: str) -> Path:
    out = plain.with_name(plain.name + ".envelope")
    assert run("encrypt-file", str(plain), "-o", str(out), "--key", f"raw-aes:{kek}", "--chunk-size", "4K", *extra) == 0
    return out


def test_tampered_file_fails_with_auth_code_and_leaves_no_output(plain, kek_file, tmp_path, capsys):
    enc = _encrypt(plain, kek_file)
    data = bytearray(enc.read_bytes())
    data[-100] ^= 1
    enc.write_bytes(bytes(data))
    out = tmp_path / "out.bin"
    assert run("decrypt-file", str(enc), "-o", str(out), "--key", f"raw-aes:{kek_file}") == EXIT_AUTH
    assert "failed authentication" in one_error_line(capsys.readouterr().err)
    assert not out.exists() and no_temp_files(tmp_path)


def test_truncated_file_fails_and_the_input_is_untouched(plain, kek_file, tmp_path, capsys):
    enc = _encrypt(plain, kek_file)
    cut = enc.read_bytes()[: -(4096 + 16)]
    enc.write_bytes(cut)
    out = tmp_path / "out.bin"
    assert run("decrypt-file", str(enc), "-o", str(out), "--key", f"raw-aes:{kek_file}") == EXIT_AUTH
    assert "truncated" in one_error_line(capsys.readouterr().err)
    assert enc.read_bytes() == cut
    assert not out.exists() and no_temp_files(tmp_path)


def test_wrong_key_is_a_key_error(plain, kek_file, tmp_path, capsys):
    enc = _encrypt(plain, kek_file)
    other = tmp_path / "other.key"
    write_key_file(other, os.urandom(32))
    assert run("decrypt-file", str(enc), "-o", str(tmp_path / "o"), "--key", f"raw-aes:{other}") == EXIT_KEY
    line = one_error_line(capsys.readouterr().err)
    assert "raw-aes:" in line and not (tmp_path / "o").exists()


def test_missing_context_pair_is_a_context_error(plain, kek_file, tmp_path, capsys):
    enc = _encrypt(plain, kek_file, "--context", "app=billing")
    code = run("decrypt-file", str(enc), "-o", str(tmp_path / "o"), "--key", f"raw-aes:{kek_file}",
               "--context", "app=payroll")
    assert code == EXIT_CONTEXT
    assert "'app'" in one_error_line(capsys.readouterr().err)
    assert run("decrypt-file", str(enc), "-o", str(tmp_path / "o"), "--key", f"raw-aes:{kek_file}",
               "--context", "app=billing") == 0


def test_not_an_envelope_file_is_a_format_error(plain, tmp_path, capsys):
    assert run("decrypt-file", str(plain), "-o", str(tmp_path / "o")) == EXIT_FORMAT
    assert "not an envelope file" in one_error_line(capsys.readouterr().err)


def test_unknown_version_is_named(plain, kek_file, tmp_path, capsys):
    enc = _encrypt(plain, kek_file)
    data = bytearray(enc.read_bytes())
    data[8] = 9
    enc.write_bytes(bytes(data))
    assert run("decrypt-file", str(enc), "-o", str(tmp_path / "o"), "--key", f"raw-aes:{kek_file}") == EXIT_FORMAT
    assert "unsupported format version 9" in one_error_line(capsys.readouterr().err)


def test_missing_input_is_an_io_error(tmp_path, capsys):
    assert run("encrypt-file", str(tmp_path / "nope"), "-o", str(tmp_path / "x")) == EXIT_IO
    assert "nope" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv, needle", [
    (["encrypt-file", "IN", "--chunk-size", "1000"], "power of two"),
    (["encrypt-file", "IN", "--chunk-size", "lots"], "invalid size"),
    (["encrypt-file", "IN", "--context", "novalue"], "KEY=VALUE"),
    (["encrypt-file", "IN", "--key", "nosuchscheme:x"], "unknown key scheme"),
    (["encrypt-file", "IN", "--key", "justtext"], "no scheme"),
    (["encrypt-file", "IN", "--threads", "0"], "positive integer"),
    (["decrypt-file", "IN.bin"], "does not end in .envelope"),
])
def test_bad_flags_are_usage_errors(argv, needle, plain, capsys):
    argv = [str(plain) if a == "IN" else str(plain) + ".bin" if a == "IN.bin" else a for a in argv]
    assert run(*argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_inspect_shows_the_header_and_no_secret(plain, kek_file, capsys):
    enc = _encrypt(plain, kek_file, "--context", "app=billing")
    assert run("inspect", str(enc), "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["version"] == 1 and info["chunk_size"] == 4096
    assert info["encryption_context"] == {"app": "billing"}
    assert info["plaintext_size"] == plain.stat().st_size
    assert info["wrapped_keys"][0]["provider"] == "raw-aes"
    assert kek_file.read_bytes().hex() not in json.dumps(info)
    assert run("inspect", str(enc)) == 0
    text = capsys.readouterr().out
    assert "app=billing" in text and "envelope v1" in text


def _cli(*argv: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "envelope", *argv], input=stdin, capture_output=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_stdin_to_stdout_round_trip_through_pipes(kek_file):
    data = os.urandom(200_000)
    enc = _cli("encrypt-file", "-", "-o", "-", "--key", f"raw-aes:{kek_file}", stdin=data)
    assert enc.returncode == 0, enc.stderr
    dec = _cli("decrypt-file", "-", "-o", "-", "--key", f"raw-aes:{kek_file}", stdin=enc.stdout)
    assert dec.returncode == 0 and dec.stdout == data


def test_truncated_stream_on_stdout_exits_non_zero(kek_file):
    enc = _cli("encrypt-file", "-", "-o", "-", "--key", f"raw-aes:{kek_file}", "--chunk-size", "4K",
               stdin=os.urandom(50_000))
    dec = _cli("decrypt-file", "-", "-o", "-", "--key", f"raw-aes:{kek_file}", stdin=enc.stdout[: -(4096 + 16)])
    assert dec.returncode == EXIT_AUTH
    assert b"Traceback" not in dec.stderr and b"truncated" in dec.stderr


def test_version_names_the_engine():
    done = _cli("--version")
    assert done.returncode == 0
    assert b"envelope 0.1.0 (engine: " in done.stdout


def test_sigterm_leaves_no_partial_output(tmp_path, kek_file):
    # A slow writer: feed stdin by hand, then terminate mid-stream.
    out = tmp_path / "out.env"
    proc = subprocess.Popen([sys.executable, "-m", "envelope", "encrypt-file", "-", "-o", str(out),
                             "--key", f"raw-aes:{kek_file}"], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(os.urandom(3 << 20))
    proc.stdin.flush()
    import time

    deadline = time.time() + 20
    while time.time() < deadline and not open_outputs(proc.pid, tmp_path):
        time.sleep(0.05)
    assert open_outputs(proc.pid, tmp_path), "the temporary output never appeared"
    proc.terminate()
    proc.wait(timeout=20)
    assert proc.returncode != 0
    assert not out.exists() and no_temp_files(tmp_path)

"""encrypt-file, decrypt-file and inspect as people who use aws-encryption-cli and age type them.

Short flags, directory trees (-r), JSON records, several files to inspect, errors
that name the user's output and never a temporary, and progress on a terminal.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envelope import api, atomic
from envelope.cli import progress
from envelope.cli.main import EXIT_IO, EXIT_USAGE, main


def run(*argv: str | Path) -> int:
    return main([str(a) for a in argv])


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("envelope: error: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture
def key(kek_file: Path) -> str:
    return f"raw-aes:{kek_file}"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """DIR with a nested file, an empty file, and one of 100 KB."""
    top = tmp_path / "tree"
    (top / "sub" / "deeper").mkdir(parents=True)
    (top / "a.txt").write_bytes(b"alpha\n")
    (top / "sub" / "deeper" / "b.bin").write_bytes(os.urandom(100_000))
    (top / "sub" / "empty").write_bytes(b"")
    return top


def files_under(top: Path) -> dict[str, bytes]:
    return {str(p.relative_to(top)): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


# -- short flags --


def test_k_and_c_encrypt_and_i_decrypts_as_age_spells_its_identity(tmp_path, key, capsys):
    src = tmp_path / "p"
    src.write_bytes(b"payload")
    assert run("encrypt-file", src, "-k", key, "-c", "team=db", "-o", tmp_path / "p.env", "-q") == 0
    assert run("decrypt-file", tmp_path / "p.env", "-i", key, "-c", "team=db", "-o", tmp_path / "back") == 0
    assert (tmp_path / "back").read_bytes() == b"payload"
    assert run("decrypt-file", tmp_path / "p.env", "-k", key, "-c", "team=web", "-o", tmp_path / "x") != 0


# -- directory trees --


def test_r_rebuilds_the_tree_under_an_output_dir_created_with_its_parents(tree, tmp_path, key, capsys):
    out = tmp_path / "made" / "for" / "it"
    assert run("encrypt-file", "-r", tree, "--output-dir", out, "-k", key, "-q") == 0
    assert set(files_under(out)) == {"a.txt.envelope", "sub/deeper/b.bin.envelope", "sub/empty.envelope"}
    back = tmp_path / "back"
    assert run("decrypt-file", "-r", out, "--output-dir", back, "-i", key, "-q") == 0
    assert files_under(back) == files_under(tree)


def test_an_output_dir_inside_the_tree_is_not_walked_again(tree, key, capsys):
    for _ in range(2):
        assert run("encrypt-file", "-r", tree, "--output-dir", tree / "enc", "-k", key, "-q", "--force") == 0
    assert sorted(files_under(tree / "enc")) == ["a.txt.envelope", "sub/deeper/b.bin.envelope",
                                                 "sub/empty.envelope"]


def test_suffix_names_the_outputs_and_is_what_decrypt_removes(tree, tmp_path, key, capsys):
    out, back = tmp_path / "out", tmp_path / "back"
    assert run("encrypt-file", "-r", tree, "--output-dir", out, "--suffix", ".enc", "-k", key, "-q") == 0
    assert "a.txt.enc" in files_under(out)
    assert run("decrypt-file", "-r", out, "--output-dir", back, "--suffix", ".enc", "-k", key, "-q") == 0
    assert files_under(back) == files_under(tree)


def test_decrypt_r_skips_files_without_the_suffix_with_a_notice(tree, tmp_path, key, capsys):
    out, back = tmp_path / "out", tmp_path / "back"
    assert run("encrypt-file", "-r", tree, "--output-dir", out, "-k", key, "-q") == 0
    (out / "README").write_text("not encrypted")
    capsys.readouterr()
    assert run("decrypt-file", "-r", out, "--output-dir", back, "-k", key) == 0
    assert f"skipped {out / 'README'}: it does not end in .envelope" in capsys.readouterr().err
    assert files_under(back) == files_under(tree)
    # A tree with nothing to decrypt is an error, not a silent success.
    assert run("decrypt-file", "-r", tree, "--output-dir", tmp_path / "none", "-k", key) == EXIT_USAGE
    assert "(--suffix?)" in capsys.readouterr().err


def test_r_does_not_follow_links_out_of_the_tree_nor_read_fifos(tree, tmp_path, key, capsys):
    secret = tmp_path / "elsewhere"
    secret.write_bytes(b"not part of the tree")
    os.symlink(secret, tree / "link-out")
    os.symlink("a.txt", tree / "link-in")
    os.symlink("sub", tree / "dir-link")  # inside the tree, but a directory: it could loop, or repeat
    os.mkfifo(tree / "fifo")
    out = tmp_path / "out"
    assert run("encrypt-file", "-r", tree, "--output-dir", out, "-k", key) == 0
    err = capsys.readouterr().err
    assert "link-out: a symbolic link out of the tree" in err and "dir-link: a symbolic link to a directory" in err
    assert "fifo: not a regular file" in err
    assert {"link-in.envelope", "a.txt.envelope"} <= set(files_under(out))
    assert not {"link-out.envelope", "fifo.envelope"} & set(files_under(out))


def test_r_refuses_an_output_name_that_escapes_through_a_link_and_goes_on(tree, tmp_path, key, capsys):
    out, away = tmp_path / "out", tmp_path / "away"
    out.mkdir()
    away.mkdir()
    os.symlink(away, out / "sub")  # planted: OUT/sub leads outside OUT
    assert run("encrypt-file", "-r", tree, "--output-dir", out, "-k", key, "-q") == EXIT_USAGE
    err = capsys.readouterr().err
    assert "refusing to write outside" in err and "2 of 3 files failed" in err
    assert list(away.iterdir()) == [] and (out / "a.txt.envelope").exists()


def test_a_directory_without_r_fails_in_one_line_suggesting_r_and_tar(tree, key, capsys):
    assert run("encrypt-file", tree, "-k", key) == EXIT_USAGE
    line = one_error_line(capsys.readouterr().err)
    assert f"-r {tree} --output-dir OUT" in line and f"tar c {tree} | envelope encrypt-file - -o tree.tar.envelope" in line
    assert run("encrypt-file", "-r", tree, "-k", key) == EXIT_USAGE
    assert "-r needs --output-dir" in one_error_line(capsys.readouterr().err)


# -- JSON --


def test_json_prints_one_record_per_file_with_sizes_keys_and_seconds(tree, tmp_path, key, capsys, monkeypatch):
    out = tmp_path / "out"
    assert run("encrypt-file", "-r", tree, "--output-dir", out, "-k", key, "--json", "--chunk-size", "64K") == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["input"] for r in records] == [str(tree / "a.txt"), str(tree / "sub/empty"),
                                             str(tree / "sub/deeper/b.bin")]  # each directory's files first
    for r in records:
        assert r["plaintext_size"] == os.path.getsize(r["input"])
        assert r["ciphertext_size"] == os.path.getsize(r["output"])
        assert r["key_ids"] == [f"{w.provider}:{w.key_id}" for w in api.inspect_file(r["output"]).wrapped_keys]
        assert r["seconds"] >= 0
    sealed = records[2]["output"]
    assert run("decrypt-file", sealed, "-o", tmp_path / "b", "-i", key, "--json") == 0
    (back,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (back["plaintext_size"], back["ciphertext_size"]) == (100_000, os.path.getsize(sealed))
    # Through a pipe the sizes come from what was read.
    with open(sealed, "rb") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        assert run("decrypt-file", "-", "-o", tmp_path / "c", "-i", key, "--json") == 0
    assert json.loads(capsys.readouterr().out)["plaintext_size"] == 100_000


def test_json_with_the_data_on_stdout_is_refused_in_one_line(tmp_path, key, capsys):
    src = tmp_path / "p"
    src.write_bytes(b"x")
    assert run("encrypt-file", src, "-o", "-", "-k", key, "--json") == EXIT_USAGE
    assert "--json prints to stdout" in one_error_line(capsys.readouterr().err)


def test_inspect_takes_several_files_one_json_object_per_line(tree, tmp_path, key, capsys):
    out = tmp_path / "out"
    assert run("encrypt-file", "-r", tree, "--output-dir", out, "-k", key, "-q") == 0
    capsys.readouterr()
    one, two = out / "a.txt.envelope", out / "sub" / "empty.envelope"
    assert run("inspect", one, "--json") == 0
    single = json.loads(capsys.readouterr().out)
    assert "file" not in single and single["plaintext_size"] == 6  # one file: the object it always was
    assert run("inspect", one, two, "--json") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["file"] for line in lines] == [str(one), str(two)]
    assert json.loads(lines[0]) == {"file": str(one), **single}
    assert run("inspect", one, two) == 0
    text = capsys.readouterr().out
    assert f"{one}:" in text and f"{two}:" in text


# -- errors name the output, never a temporary --


@contextlib.contextmanager
def _file_size_limit(limit: int) -> Iterator[None]:
    """Writes past *limit* bytes fail with EFBIG (SIGXFSZ ignored), as on a full disk: real I/O errors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "named-temporary"])
@pytest.mark.parametrize("piped", [False, True], ids=["file-loop", "stream"])
def test_a_failed_write_names_the_output_and_no_temporary(tmp_path, key, capsys, monkeypatch, unnamed, piped):
    if not unnamed:
        monkeypatch.setattr(atomic, "_unnamed", lambda directory: None)  # a filesystem without O_TMPFILE
    src, out = tmp_path / "big", tmp_path / "out.envelope"
    src.write_bytes(os.urandom(1 << 20))
    with open(src, "rb") as f, _file_size_limit(64 << 10):
        if piped:
            monkeypatch.setattr(sys, "stdin", f)
        code = run("encrypt-file", "-" if piped else src, "-o", out, "-k", key, "-q", "--force")
    assert code == EXIT_IO
    line = one_error_line(capsys.readouterr().err)
    assert repr(str(out)) in line and ".envelope-tmp-" not in line and "/proc/" not in line
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["big", "kek.bin"]


def _unwritable(directory: Path) -> Iterator[None]:
    if os.geteuid() != 0:
        directory.chmod(0o500)
        yield
        directory.chmod(0o700)
        return
    if subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode != 0:
        pytest.skip("no way to make a directory unwritable for root here (chattr)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "named-temporary"])
def test_an_unwritable_output_directory_names_the_output_not_a_temporary(tmp_path, key, capsys, monkeypatch,
                                                                          unnamed):
    if not unnamed:
        monkeypatch.setattr(atomic, "_unnamed", lambda directory: None)
    src, locked = tmp_path / "p", tmp_path / "locked"
    src.write_bytes(b"x" * 1000)
    locked.mkdir()
    out = locked / "p.envelope"
    with contextlib.contextmanager(_unwritable)(locked):
        assert run("encrypt-file", src, "-o", out, "-k", key, "-q") == EXIT_IO
    line = one_error_line(capsys.readouterr().err)
    assert repr(str(out)) in line and ".envelope-tmp-" not in line


# -- progress --


class _Terminal:
    """stderr on a pseudo-terminal; what was drawn there, read as it comes (a full pty would block)."""

    def __init__(self) -> None:
        self.leader, self.follower = os.openpty()
        fcntl.ioctl(self.follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 wide, as a real one
        self.stream = open(self.follower, "w", closefd=False, buffering=1)
        self.shown = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.leader, 65536)
            except OSError:
                return
            if not data:
                return
            self.shown += data

    def close(self) -> str:
        """Everything drawn: read until the terminal has been quiet a moment (a closed pty drops what is unread)."""
        self.stream.flush()
        seen, quiet = -1, 0
        for _ in range(100):
            quiet = quiet + 1 if seen == len(self.shown) else 0
            if quiet == 4:
                break
            seen = len(self.shown)
            time.sleep(0.05)
        self.stream.close()
        os.close(self.follower)
        self._reader.join(5)
        os.close(self.leader)
        return self.shown.decode(errors="replace")


@pytest.fixture
def terminal(monkeypatch) -> _Terminal:  # type: ignore[no-untyped-def]
    """Call attach() in the test itself: pytest sets sys.stderr back to its capture between fixture and test."""
    term = _Terminal()
    term.attach = lambda: monkeypatch.setattr(sys, "stderr", term.stream)  # type: ignore[attr-defined]
    return term


def test_on_a_terminal_a_long_run_ends_in_one_summary_line_naming_the_file(tmp_path, key, terminal, monkeypatch):
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.0)  # any run is "long"
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 << 20))
    terminal.attach()
    assert run("encrypt-file", src, "-k", key) == 0
    shown = terminal.close()
    last = shown.rstrip().splitlines()[-1]
    assert last.startswith(f"envelope: encrypted {src}: 3.0 MiB in ") and last.endswith(" MB/s"), shown


def test_a_batch_is_one_bar_naming_each_file_and_its_place(tree, tmp_path, key, terminal, monkeypatch):
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.0)
    encrypt_file = api.encrypt_file

    def slowly(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.15)  # longer than the bar's redraw interval: each file's name gets drawn
        return encrypt_file(*args, **kwargs)

    monkeypatch.setattr(api, "encrypt_file", slowly)
    terminal.attach()
    assert run("encrypt-file", "-r", tree, "--output-dir", tmp_path / "out", "-k", key) == 0
    shown = terminal.close()
    assert "1/3 a.txt" in shown and "2/3 sub/empty" in shown and "3/3 sub/deeper/b.bin" in shown
    assert shown.rstrip().splitlines()[-1].startswith("envelope: encrypted 3 files: 97.7 KiB in ")


def test_a_quick_run_on_a_terminal_draws_nothing(tmp_path, key, terminal):
    src = tmp_path / "small"
    src.write_bytes(b"x" * 1000)
    terminal.attach()
    assert run("encrypt-file", src, "-k", key) == 0
    assert terminal.close() == ""


@pytest.mark.parametrize("quiet", [False, True])
def test_nothing_is_drawn_when_stderr_is_not_a_terminal_or_with_quiet(tmp_path, key, capsys, monkeypatch, quiet,
                                                                      request):
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.0)
    if quiet:
        term = request.getfixturevalue("terminal")
        term.attach()
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(1 << 20))
    assert run("encrypt-file", src, "-k", key, *(["-q"] if quiet else [])) == 0
    assert (term.close() if quiet else capsys.readouterr().err) == ""

"""Every output of every command goes through one door: envelope.atomic.atomic_output.

The commands are found by walking the argparse parser, so a new command with
``-o``/``--output``/``--output-dir`` fails :func:`test_every_output_option_has_an_invocation`
until it is added to :data:`INVOCATIONS`, and from then on gets every check here:

* an existing file is refused without ``--force`` and left as it was;
* a symlink planted at the output path is never written through (its target is untouched);
* secrets (decrypted KMS plaintext, random bytes) are mode 0600;
* an existing character device or FIFO is written in place, never replaced by a regular file.

The devices are made with mknod in a temporary directory (tests run as root); the
real /dev/null is never used as an output.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from envelope import atomic
from envelope.atomic import atomic_output
from envelope.cli.main import EXIT_AUTH, EXIT_OK, EXIT_USAGE, main

from cli_world import OUTPUT_OPTIONS, World, arguments_where, cli, world  # noqa: F401 (world: the fixture)

def commands_with_outputs() -> set[tuple[str, str]]:
    """(command words, dest) of every option of the CLI that names an output file or directory."""
    return arguments_where(lambda a: bool(set(a.option_strings) & OUTPUT_OPTIONS))


@dataclass
class Invocation:
    """How to run one command so that it writes its output: argv before the output option, and
    for an --output-dir, the names it writes there.  *secret*: the output must be mode 0600."""

    argv: Callable[[World], list[str]]
    names: tuple[str, ...] = ()
    secret: bool = False


def _tree(world: World, member: Path) -> str:
    """A directory holding only a copy of *member*, for -r."""
    top = world.root / f"tree-{member.name}"
    if not top.exists():
        top.mkdir()
        (top / member.name).write_bytes(member.read_bytes())
    return str(top)


#: (command, dest of its output option) -> the ways to run it (more than one where the code paths differ).
INVOCATIONS: dict[tuple[str, str], list[Invocation]] = {
    ("encrypt-file", "output"): [Invocation(lambda w: ["encrypt-file", str(w.plain), "--key", w.kek, "-q"])],
    ("encrypt-file", "output_dir"): [
        Invocation(lambda w: ["encrypt-file", str(w.plain), "--key", w.kek, "-q"], names=("data.bin.envelope",)),
        Invocation(lambda w: ["encrypt-file", "-r", _tree(w, w.plain), "--key", w.kek, "-q"],
                   names=("data.bin.envelope",)),
    ],
    ("decrypt-file", "output"): [
        Invocation(lambda w: ["decrypt-file", str(w.sealed), "--key", w.kek, "-q"]),
        Invocation(lambda w: ["decrypt-file", str(w.sealed), "--key", w.kek, "--range", "10:5000"]),
    ],
    ("decrypt-file", "output_dir"): [
        Invocation(lambda w: ["decrypt-file", str(w.sealed), "--key", w.kek, "-q"], names=("data.bin",)),
        Invocation(lambda w: ["decrypt-file", "-r", _tree(w, w.sealed), "--key", w.kek, "-q"], names=("data.bin",)),
    ],
    ("rewrap", "output"): [Invocation(lambda w: ["rewrap", str(w.sealed), "--key", w.kek, "--unwrap-key", w.kek,
                                                 "-q", *w.ks()])],
    ("keys encrypt", "output"): [Invocation(lambda w: ["keys", "encrypt", "alias/sym", "--in", str(w.message),
                                                       *w.ks()])],
    ("keys decrypt", "output"): [Invocation(lambda w: ["keys", "decrypt", "--in", str(w.blob), *w.ks()], secret=True)],
    ("keys re-encrypt", "output"): [Invocation(lambda w: ["keys", "re-encrypt", "--to", "alias/sym",
                                                          "--in", str(w.blob), *w.ks()])],
    ("keys generate-random", "output"): [Invocation(lambda w: ["keys", "generate-random", "32", *w.ks()], secret=True)],
    ("keys public-key", "output"): [Invocation(lambda w: ["keys", "public-key", "alias/sign", *w.ks()])],
    ("keys sign", "output"): [Invocation(lambda w: ["keys", "sign", "alias/sign", "--in", str(w.message),
                                                    "--algorithm", "ECDSA_SHA_256", *w.ks()])],
    ("keys mac", "output"): [Invocation(lambda w: ["keys", "mac", "alias/hmac", "--in", str(w.message),
                                                   "--algorithm", "HMAC_SHA_256", *w.ks()])],
    ("keys import-parameters", "output_dir"): [
        Invocation(lambda w: ["keys", "import-parameters", "alias/ext", *w.ks()],
                   names=("WrappingPublicKey.bin", "ImportToken.bin")),
    ],
}

CASES = [pytest.param(key, inv, id=f"{key[0]} {key[1]} {i}") for key, invs in INVOCATIONS.items()
         for i, inv in enumerate(invs)]


def test_every_output_option_has_an_invocation() -> None:
    found = commands_with_outputs()
    assert found, "the walk found no output option at all"
    missing = found - set(INVOCATIONS)
    assert not missing, f"commands with an output option and no entry in INVOCATIONS: {sorted(missing)}"
    assert not set(INVOCATIONS) - found, "INVOCATIONS names commands the parser no longer has"


@dataclass
class Target:
    """Where one run writes: the argv with its output option, and the paths it writes."""

    argv: list[str]
    paths: list[Path]


def _target(world: World, key: tuple[str, str], inv: Invocation, where: Path, *, force: bool = False) -> Target:
    where.mkdir()
    argv = inv.argv(world) + (["--force"] if force else [])
    if key[1] == "output_dir":
        return Target([*argv, "--output-dir", str(where)], [where / name for name in inv.names])
    out = where / "out"
    return Target([*argv, "-o", str(out)], [out])


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("key", "inv"), CASES)
def test_an_existing_output_is_refused_without_force(world, key, inv, tmp_path, capsys) -> None:
    target = _target(world, key, inv, tmp_path / "o")
    for path in target.paths:
        path.write_bytes(b"precious")
    code, err = _run(target.argv, capsys)
    assert code == EXIT_USAGE, err
    assert "already exists" in err and "--force" in err and "Traceback" not in err
    assert all(path.read_bytes() == b"precious" for path in target.paths)


@pytest.mark.parametrize(("key", "inv"), CASES)
@pytest.mark.parametrize("force", [False, True], ids=["refused", "force"])
def test_a_planted_symlink_is_never_written_through(world, key, inv, force, tmp_path, capsys) -> None:
    target = _target(world, key, inv, tmp_path / "o", force=force)
    victims = []
    for i, path in enumerate(target.paths):
        victim = tmp_path / f"victim{i}"
        victim.write_bytes(b"precious")
        victim.chmod(0o666)
        path.symlink_to(victim)
        victims.append(victim)
    code, err = _run(target.argv, capsys)
    assert all(v.read_bytes() == b"precious" and v.stat().st_mode & 0o777 == 0o666 for v in victims)
    if force:  # the link itself is replaced by the new file
        assert code == EXIT_OK, err
        assert all(not p.is_symlink() and stat.S_ISREG(p.lstat().st_mode) for p in target.paths)
    else:
        assert code == EXIT_USAGE and "already exists" in err, err
        assert all(p.is_symlink() for p in target.paths)


@pytest.mark.parametrize(("key", "inv"), [c for c in CASES if c.values[1].secret])
def test_secret_outputs_are_mode_0600(world, key, inv, tmp_path, capsys) -> None:
    old = os.umask(0o022)
    try:
        target = _target(world, key, inv, tmp_path / "o")
        code, err = _run(target.argv, capsys)
    finally:
        os.umask(old)
    assert code == EXIT_OK, err
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in target.paths)


def _null_device(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))


@pytest.mark.parametrize(("key", "inv"), CASES)
@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_a_character_device_output_is_written_in_place(world, key, inv, force, tmp_path, capsys) -> None:
    target = _target(world, key, inv, tmp_path / "o", force=force)
    for path in target.paths:
        _null_device(path)
    code, err = _run(target.argv, capsys)
    assert code == EXIT_OK, err
    for path in target.paths:
        st = path.lstat()
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3), path
    assert not [p for p in target.paths[0].parent.iterdir() if p.name.startswith(atomic.TEMP_PREFIX)]


class _FifoReader:
    """Reads a FIFO to its end on a thread; never leaves the thread blocked in open()."""

    def __init__(self, path: Path) -> None:
        self.path, self.data = path, b""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with open(self.path, "rb") as f:
            self.data = f.read()

    def finish(self) -> bytes:
        self.thread.join(timeout=10)
        if self.thread.is_alive():  # nobody opened it for writing: release the reader
            os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            self.thread.join(timeout=10)
        return self.data


@pytest.mark.parametrize(("key", "inv"), CASES)
@pytest.mark.parametrize("through", ["fifo", "symlink-to-fifo"])
def test_a_fifo_output_is_written_in_place(world, key, inv, through, tmp_path, capsys) -> None:
    target = _target(world, key, inv, tmp_path / "o")
    readers = []
    for i, path in enumerate(target.paths):
        fifo = path if through == "fifo" else tmp_path / f"fifo{i}"
        os.mkfifo(fifo)
        if fifo != path:
            path.symlink_to(fifo)
        readers.append((fifo, _FifoReader(fifo)))
    code, err = _run(target.argv, capsys)
    got = [reader.finish() for _, reader in readers]
    assert code == EXIT_OK, err
    assert all(stat.S_ISFIFO(fifo.lstat().st_mode) for fifo, _ in readers)
    assert all(got), "a FIFO output received nothing"
    if key == ("decrypt-file", "output") and "--range" not in target.argv:
        assert got[0] == world.plain.read_bytes()


def test_dev_stdout_is_an_output_like_any_pipe(world) -> None:
    done = cli("decrypt-file", str(world.sealed), "--key", world.kek, "-o", "/dev/stdout", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout == world.plain.read_bytes()
    done = cli("keys", "generate-random", "16", "-o", "/dev/stdout", "--keystore", world.keystore)
    assert done.returncode == 0 and len(done.stdout) == 16, done.stderr


# -- the umask: read, never set --------------------------------------------------------------------


def _umask_now() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))


def test_the_output_mode_is_read_without_setting_the_umask(tmp_path, monkeypatch) -> None:
    expected = 0o666 & ~_umask_now()

    def refuse(mask: int) -> int:
        raise AssertionError(f"os.umask({mask:o}) called after import")

    monkeypatch.setattr(os, "umask", refuse)
    with atomic_output(str(tmp_path / "out")) as out:
        out.write(b"x")
    assert (tmp_path / "out").stat().st_mode & 0o777 == expected


def test_outputs_written_from_many_threads_keep_the_umask(tmp_path) -> None:
    old, interval = os.umask(0o022), sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can: any window is found
    try:
        stop, seen, modes, errors = threading.Event(), set(), set(), []

        def watch() -> None:
            while not stop.is_set():
                seen.add(_umask_now())

        def read_mode() -> None:
            while not stop.is_set():
                modes.add(atomic._default_mode())

        def write(n: int) -> None:
            try:
                for i in range(60):
                    with atomic_output(str(tmp_path / f"{n}-{i}")) as out:
                        out.write(b"x")
            except BaseException as exc:  # handed to the test thread
                errors.append(exc)

        watchers = [threading.Thread(target=watch), threading.Thread(target=read_mode)]
        writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for t in watchers + writers:
            t.start()
        for t in writers:
            t.join()
        stop.set()
        for t in watchers:
            t.join()
        assert not errors
        assert seen == {0o022}, f"the umask was seen as {sorted(oct(m) for m in seen)}"
        assert _umask_now() == 0o022
        assert modes == {0o644}, sorted(oct(m) for m in modes)
        written = {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
        assert written == {0o644}, sorted(oct(m) for m in written)
    finally:
        sys.setswitchinterval(interval)
        os.umask(old)


def test_a_block_device_output_needs_force(world, tmp_path, capsys) -> None:
    """A disk holds data: unlike a character device or FIFO it is overwritten only with --force (never
    exercised here: the node is made and refused, never opened)."""
    disk = tmp_path / "disk"
    os.mknod(disk, stat.S_IFBLK | 0o600, os.makedev(7, 254))
    code, err = _run(["encrypt-file", str(world.plain), "--key", world.kek, "-o", str(disk), "-q"], capsys)
    assert code == EXIT_USAGE and "already exists" in err and "--force" in err, err
    assert stat.S_ISBLK(disk.lstat().st_mode)


def test_a_truncated_stream_decrypted_into_a_fifo_fails_as_on_stdout(world, tmp_path, capsys) -> None:
    """What went into a FIFO cannot be withdrawn: as with -o -, only verified chunks went out, and the
    exit status says the stream was cut short."""
    cut = tmp_path / "cut.envelope"
    data = world.sealed.read_bytes()
    cut.write_bytes(data[: len(data) - 5000])
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = _FifoReader(fifo)
    code, err = _run(["decrypt-file", str(cut), "-o", str(fifo), "--key", world.kek, "-q"], capsys)
    got = reader.finish()
    assert code == EXIT_AUTH and "truncated" in err, err
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert world.plain.read_bytes().startswith(got) and len(got) < len(world.plain.read_bytes())

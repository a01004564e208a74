"""One set of inputs every CLI command can use, for the tests that walk all commands.

A keystore with a key of each kind, a key-encryption key, and files each
command reads: a plaintext and its envelope file, a KMS message, its blob,
signature and MAC.  Built once per test module (keys are slow to make).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from envelope.cli.main import EXIT_OK, build_parser, main
from keyfiles import write_key_file

#: The options that name where a command writes.
OUTPUT_OPTIONS = {"-o", "--output", "--output-dir"}


def arguments_where(wanted: Callable[[argparse.Action], bool]) -> set[tuple[str, str]]:
    """(command words, dest) of every argument of every CLI command that *wanted* picks: the parser
    itself is walked, so a new command is found without anyone listing it."""
    found: set[tuple[str, str]] = set()
    walked: set[int] = set()

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    if id(child) not in walked:  # an alias (keys create-key) is the parser already walked
                        walked.add(id(child))
                        walk(child, (*words, name))
            elif wanted(action):
                found.add((" ".join(words), action.dest))

    walk(build_parser(), ())
    return found


@dataclass
class World:
    root: Path
    keystore: str
    kek: str
    plain: Path
    sealed: Path
    message: Path
    blob: Path
    signature: Path
    mac: Path

    def ks(self) -> list[str]:
        return ["--keystore", self.keystore]


def make_world(root: Path) -> World:
    keystore = str(root / "keystore.db")
    ks = ["--keystore", keystore]
    for argv in (["keys", "create", "--alias", "alias/sym", *ks],
                 ["keys", "create", "--spec", "ECC_NIST_P256", "--usage", "SIGN_VERIFY", "--alias", "alias/sign", *ks],
                 ["keys", "create", "--spec", "HMAC_256", "--alias", "alias/hmac", *ks],
                 ["keys", "create", "--origin", "EXTERNAL", "--alias", "alias/ext", *ks]):
        assert main(argv) == EXIT_OK, argv
    kek_path = root / "kek"
    write_key_file(kek_path, os.urandom(32))
    kek = f"raw-aes:{kek_path}"
    plain = root / "data.bin"
    plain.write_bytes(os.urandom(100_000))
    sealed = root / "data.bin.envelope"
    assert main(["encrypt-file", str(plain), "-o", str(sealed), "--key", kek, "-q"]) == EXIT_OK
    message = root / "message"
    message.write_bytes(b"a secret of 32 bytes, more or le")
    blob, signature, mac = root / "blob", root / "signature", root / "mac"
    for argv in (["keys", "encrypt", "alias/sym", "--in", str(message), "-o", str(blob)],
                 ["keys", "sign", "alias/sign", "--in", str(message), "--algorithm", "ECDSA_SHA_256",
                  "-o", str(signature)],
                 ["keys", "mac", "alias/hmac", "--in", str(message), "--algorithm", "HMAC_SHA_256", "-o", str(mac)]):
        assert main([*argv, *ks]) == EXIT_OK, argv
    return World(root, keystore, kek, plain, sealed, message, blob, signature, mac)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("world"))


def cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """``python -m envelope ARGV`` in a child process; a hang fails (TimeoutExpired) instead of hanging."""
    return subprocess.run([sys.executable, "-m", "envelope", *argv], capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)

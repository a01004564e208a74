"""A raw-aes key file others can read is refused, as a keystore with that mode is (and ssh refuses such a key)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import envelope
from envelope.cli.main import EXIT_KEY, EXIT_OK, main
from envelope.exceptions import KeyringError
from envelope.keyrings.raw_aes import RawAesKeyring
from envelope.keyrings.registry import resolve
from envelope.kms.store import KeyStore
from keyfiles import write_key_file

OPEN_MODES = [0o644, 0o640, 0o604, 0o660, 0o606, 0o620, 0o602]


def _refusal_pattern(message: str, path: Path) -> str:
    """The refusal with its subject and path taken out: what a keystore's and a key file's must share."""
    return message.replace(str(path), "PATH").split(" PATH ", 1)[1]


@pytest.mark.parametrize("mode", OPEN_MODES)
def test_a_key_file_others_can_read_or_write_is_refused_like_a_keystore(tmp_path: Path, mode: int) -> None:
    key = write_key_file(tmp_path / "kek", os.urandom(32))
    key.chmod(mode)
    with pytest.raises(KeyringError) as refused:
        resolve(f"raw-aes:{key}")
    message = str(refused.value)
    assert f"(mode {mode:04o})" in message and f"run chmod 600 {key}" in message

    store_path = tmp_path / "keystore.db"
    KeyStore(store_path).close()
    store_path.chmod(mode)
    with pytest.raises(KeyringError) as keystore_refused:
        KeyStore(store_path)
    assert type(refused.value) is type(keystore_refused.value)
    assert _refusal_pattern(message, key).split(";")[0] == \
        _refusal_pattern(str(keystore_refused.value), store_path).split(";")[0]
    assert message.rsplit(": ", 1)[1] == f"run chmod 600 {key}"


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_private_key_file_is_accepted(tmp_path: Path, mode: int) -> None:
    key = write_key_file(tmp_path / "kek", os.urandom(32))
    key.chmod(mode)
    assert isinstance(resolve(f"raw-aes:{key}"), RawAesKeyring)


def test_the_cli_refuses_an_open_key_file_in_one_line_without_writing(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    key = write_key_file(tmp_path / "kek", os.urandom(32))
    src = tmp_path / "data"
    src.write_bytes(os.urandom(1000))
    enc = tmp_path / "data.envelope"
    assert main(["encrypt-file", str(src), "-o", str(enc), "--key", f"raw-aes:{key}", "-q"]) == EXIT_OK
    key.chmod(0o644)
    for argv in (["encrypt-file", str(src), "-o", str(tmp_path / "again"), "--key", f"raw-aes:{key}"],
                 ["decrypt-file", str(enc), "-o", str(tmp_path / "back"), "--key", f"raw-aes:{key}"]):
        capsys.readouterr()
        assert main(argv) == EXIT_KEY
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "accessible to other users" in err and "Traceback" not in err
    assert not (tmp_path / "again").exists() and not (tmp_path / "back").exists()
    with pytest.raises(KeyringError, match="accessible to other users"):
        envelope.decrypt(b"", keys=[f"raw-aes:{key}"])


def test_a_key_from_a_pipe_is_still_read(tmp_path: Path) -> None:
    """Process substitution (``raw-aes:<(vault read ...)``) hands over a pipe: not a file to protect."""
    read, write = os.pipe()
    key = os.urandom(32)
    os.write(write, key)
    os.close(write)
    try:
        ring = resolve(f"raw-aes:/proc/self/fd/{read}")
    finally:
        os.close(read)
    assert isinstance(ring, RawAesKeyring) and ring.key_id == RawAesKeyring(key).key_id

"""rewrap: new wrapped data keys, same chunks, never a decryption of the body."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

import envelope
from envelope.cli.main import EXIT_AUTH, EXIT_CONTEXT, EXIT_KEY, EXIT_USAGE, main
from envelope.engines.base import Engine
from envelope.format import read_header
from envelope.rewrap import rewrap_file
from keyfiles import write_key_file


def key_file(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    write_key_file(path, os.urandom(32))
    return f"raw-aes:{path}"


@pytest.fixture
def sealed(tmp_path: Path) -> tuple[Path, bytes, str]:
    data = os.urandom(200_000)
    src = tmp_path / "d.bin"
    src.write_bytes(data)
    old = key_file(tmp_path, "old.key")
    envelope.encrypt_file(src, keys=[old], context={"app": "x"}, chunk_size=4096)
    return tmp_path / "d.bin.envelope", data, old


def split(blob: bytes) -> tuple[bytes, bytes]:
    size = read_header(io.BytesIO(blob))[0].size
    return blob[:size], blob[size:]


def test_rewrap_moves_the_file_to_a_new_key_and_keeps_the_body(sealed, tmp_path, monkeypatch):
    enc, data, old = sealed
    new = key_file(tmp_path, "new.key")
    before = enc.read_bytes()
    # The body is never opened or sealed: any engine call is a failure.
    monkeypatch.setattr(Engine, "__init__", lambda *a, **k: pytest.fail("rewrap used a chunk engine"))
    header = rewrap_file(enc, [new], unwrap_keys=[old])
    monkeypatch.undo()
    after = enc.read_bytes()
    assert split(after)[1] == split(before)[1]
    assert header.context == {"app": "x"} and [w.provider for w in header.wrapped_keys] == ["raw-aes"]
    out = tmp_path / "back"
    envelope.decrypt_file(enc, out, keys=[new])
    assert out.read_bytes() == data
    with pytest.raises(envelope.KeyNotFoundError):
        envelope.decrypt_file(enc, tmp_path / "no", keys=[old])


def test_rewrap_to_two_keys_opens_with_either(sealed, tmp_path):
    enc, data, old = sealed
    k2 = key_file(tmp_path, "k2.key")
    rewrap_file(enc, [old, k2])
    for i, k in enumerate((old, k2)):
        envelope.decrypt_file(enc, tmp_path / f"o{i}", keys=[k])
        assert (tmp_path / f"o{i}").read_bytes() == data


def test_in_place_rewrap_rewrites_only_the_header(sealed, tmp_path):
    enc, data, old = sealed
    new = key_file(tmp_path, "new.key")
    inode, body = enc.stat().st_ino, split(enc.read_bytes())[1]
    rewrap_file(enc, [new], unwrap_keys=[old], in_place=True)
    assert enc.stat().st_ino == inode
    assert split(enc.read_bytes())[1] == body
    envelope.decrypt_file(enc, tmp_path / "o", keys=[new])
    assert (tmp_path / "o").read_bytes() == data


def test_in_place_is_refused_when_the_header_size_changes(sealed, tmp_path):
    enc, _, old = sealed
    before = enc.read_bytes()
    with pytest.raises(envelope.UsageError, match="without --in-place"):
        rewrap_file(enc, [old, key_file(tmp_path, "k2.key")], in_place=True)
    assert enc.read_bytes() == before


def test_a_tampered_header_is_refused_and_the_file_left_alone(sealed, tmp_path):
    enc, _, old = sealed
    blob = bytearray(enc.read_bytes())
    head, _ = split(bytes(blob))
    blob[len(head) - 40] ^= 1  # inside the commitment
    enc.write_bytes(bytes(blob))
    with pytest.raises(envelope.AuthenticationError, match="commitment"):
        rewrap_file(enc, [key_file(tmp_path, "n.key")], unwrap_keys=[old])
    assert enc.read_bytes() == bytes(blob)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".envelope-tmp-")]


def test_rewrap_with_a_local_key_and_no_unwrap_key_given(sealed, tmp_path):
    enc, data, old = sealed
    assert main(["keys", "create", "--alias", "alias/backup"]) == 0
    rewrap_file(enc, ["local:alias/backup"], unwrap_keys=[old])
    rewrap_file(enc, ["local:alias/backup", key_file(tmp_path, "x.key")])  # unwrapped by the local key
    envelope.decrypt_file(enc, tmp_path / "o")
    assert (tmp_path / "o").read_bytes() == data


def test_cli_rewrap_output_and_errors(sealed, tmp_path, capsys):
    enc, data, old = sealed
    new = key_file(tmp_path, "new.key")
    out = tmp_path / "re.envelope"
    assert main(["rewrap", str(enc), "--key", new, "--unwrap-key", old, "-o", str(out)]) == 0
    assert "rewrapped" in capsys.readouterr().out
    assert main(["rewrap", str(enc), "--key", new, "--unwrap-key", old, "-o", str(out)]) == EXIT_USAGE
    assert "already exists" in capsys.readouterr().err
    wrong = key_file(tmp_path, "wrong.key")
    assert main(["rewrap", str(enc), "--key", new, "--unwrap-key", wrong]) == EXIT_KEY
    assert main(["rewrap", str(enc), "--key", new, "--unwrap-key", old, "--context", "app=y"]) == EXIT_CONTEXT
    assert main(["rewrap", str(enc), "--key", new, "--unwrap-key", old, "--in-place", "-o", str(out)]) == EXIT_USAGE
    garbage = tmp_path / "g.envelope"
    garbage.write_bytes(enc.read_bytes()[:200] + bytes(100))
    assert main(["rewrap", str(garbage), "--key", new, "--unwrap-key", old]) in (EXIT_AUTH, 3)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    envelope.decrypt_file(out, tmp_path / "o", keys=[new])
    assert (tmp_path / "o").read_bytes() == data


def test_rewrap_keeps_the_file_mode(sealed, tmp_path):
    enc, _, old = sealed
    enc.chmod(0o640)
    rewrap_file(enc, [key_file(tmp_path, "n.key")], unwrap_keys=[old])
    assert enc.stat().st_mode & 0o777 == 0o640

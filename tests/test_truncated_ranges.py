"""Random access believes no length before the final chunk opened as final (formats/envelope-v1.md, "Random access").

A file's plaintext length comes from its byte length, which anyone who can
write the file can change.  Only the final chunk, opened with the last-chunk
flag, proves it.  Every random-access entry point (``envelope.open``,
``decrypt-file --range``, :func:`envelope.api.decrypt_range`, an S3 ranged GET)
is tried here on a file cut after a chunk, cut inside a chunk, and extended by
a chunk: each must fail authentication, and write nothing.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import envelope
from envelope.api import decrypt_range
from envelope.cli.main import EXIT_AUTH, main
from envelope.exceptions import AuthenticationError
from envelope.format import chunk_offset, read_header

C = 1024
DATA = os.urandom(4000)  # four chunks: three full, the last 928 bytes


def _sealed(kek: str) -> bytes:
    return envelope.encrypt(DATA, keys=[kek], chunk_size=C)


def _header_size(blob: bytes) -> int:
    return read_header(io.BytesIO(blob))[0].size


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "cut after chunk 1": lambda b: b[: chunk_offset(_header_size(b), C, 2)],
    "cut inside chunk 2": lambda b: b[: chunk_offset(_header_size(b), C, 2) + 500],
    "an extra chunk appended": lambda b: b + b[chunk_offset(_header_size(b), C, 1):
                                               chunk_offset(_header_size(b), C, 2)],  # a copy of chunk 1
}


def _open_seek_end(path: Path, kek: str, out: Path) -> None:
    with envelope.open(path, keys=[kek]) as f:
        f.seek(0, os.SEEK_END)


def _open_read_past_the_cut(path: Path, kek: str, out: Path) -> None:
    with envelope.open(path, keys=[kek]) as f:
        f.seek(3000)
        out.write_bytes(f.read())


def _api_decrypt_range(path: Path, kek: str, out: Path) -> None:
    decrypt_range(path, out, 3000, 4000, keys=[kek])


def _cli_range(path: Path, kek: str, out: Path) -> None:
    code = main(["decrypt-file", str(path), "-o", str(out), "--key", kek, "--range", "3000:4000"])
    if code == EXIT_AUTH:
        raise AuthenticationError("decrypt-file --range exited with the authentication code")
    assert code != 0, "decrypt-file --range succeeded on a damaged file"


FILE_ENTRY_POINTS = {
    "envelope.open, seek to the end": _open_seek_end,
    "envelope.open, read past the cut": _open_read_past_the_cut,
    "api.decrypt_range": _api_decrypt_range,
    "decrypt-file --range": _cli_range,
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("entry", FILE_ENTRY_POINTS)
def test_every_random_access_path_refuses_a_cut_or_extended_file(tmp_path: Path, kek: str, entry: str,
                                                                  damage: str) -> None:
    path = tmp_path / "d.envelope"
    path.write_bytes(DAMAGE[damage](_sealed(kek)))
    out = tmp_path / "part"
    with pytest.raises(AuthenticationError):
        FILE_ENTRY_POINTS[entry](path, kek, out)
    assert not out.exists()


def test_the_intact_file_still_reads_through_every_path(tmp_path: Path, kek: str) -> None:
    path = tmp_path / "d.envelope"
    path.write_bytes(_sealed(kek))
    with envelope.open(path, keys=[kek]) as f:
        assert f.seek(0, os.SEEK_END) == len(DATA)
        f.seek(3000)
        assert f.read() == DATA[3000:]
    out = tmp_path / "part"
    assert decrypt_range(path, out, 3000, 4000, keys=[kek]) == 1000 and out.read_bytes() == DATA[3000:]
    out.unlink()
    assert main(["decrypt-file", str(path), "-o", str(out), "--key", kek, "--range", "3000:4000"]) == 0
    assert out.read_bytes() == DATA[3000:]


def test_open_authenticates_the_final_chunk_once_and_keeps_it(kek: str) -> None:
    """The check costs one chunk per open; a read of the end afterwards opens nothing more."""
    from envelope.engines.reference import ReferenceEngine
    from envelope.reader import DecryptingReader
    from envelope.api import decryption_keyring

    opened: list[tuple[int, bool]] = []

    class Counting(ReferenceEngine):
        def open(self, key, first_index, src, dst, chunk_size, final):  # type: ignore[no-untyped-def]
            opened.append((first_index, final))
            return super().open(key, first_index, src, dst, chunk_size, final)

    raw = DecryptingReader(io.BytesIO(_sealed(kek)), decryption_keyring([kek]), engine=Counting())
    assert opened == [(3, True)]
    raw.seek(3500)
    assert raw.read(1000) == DATA[3500:]
    assert opened == [(3, True)]


# -- S3 ranged GETs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("cached", [False, True], ids=["new client", "header cached before the damage"])
def test_an_s3_ranged_get_of_a_cut_or_extended_object_fails_authentication(s3: Any, kek: str, damage: str,
                                                                          cached: bool) -> None:
    """Not S3's InvalidRange (which would believe the cut length), and no bytes."""
    pytest.importorskip("boto3")
    from envelope.s3 import EncryptedS3Client
    from envelope.s3.metadata import META_CHUNK, META_VERSION

    client = EncryptedS3Client(s3, keys=[kek], chunk_size=C)
    blob = _sealed(kek)
    metadata = {META_VERSION: "1", META_CHUNK: str(C)}
    if cached:
        s3.put_object(Bucket=s3.bucket, Key="obj", Body=blob, Metadata=metadata)
        assert client.get_object(Bucket=s3.bucket, Key="obj", Range="bytes=0-9")["Body"].read() == DATA[:10]
    s3.put_object(Bucket=s3.bucket, Key="obj", Body=DAMAGE[damage](blob), Metadata=metadata)
    for text in ("bytes=3000-3999", "bytes=0-9", "bytes=-10"):
        with pytest.raises(AuthenticationError):
            client.get_object(Bucket=s3.bucket, Key="obj", Range=text)

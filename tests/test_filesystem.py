"""The fsspec filesystem ``envelope`` and ``envelope.open(mode="wb")``: reads, writes, sizes, failures, costs.

Every test runs on local files and on a bucket of the moto server (``World``).
"""

from __future__ import annotations

import gc
import io
import os
from pathlib import Path
from typing import Any

import pytest

fsspec = pytest.importorskip("fsspec")
pytest.importorskip("boto3")

import envelope  # noqa: E402
from envelope.exceptions import AuthenticationError, ContextMismatchError, UsageError  # noqa: E402
from envelope.format import TAG_SIZE, read_header  # noqa: E402
from fsspec_world import World, make_world  # noqa: E402
from keyfiles import write_key_file  # noqa: E402

CHUNK = 1 << 12


@pytest.fixture(params=["local", "s3"])
def world(request: pytest.FixtureRequest, tmp_path: Path, kek: str) -> World:
    return make_world(request.param, tmp_path, kek, request)


def write(world: World, name: str, data: bytes, **options: Any) -> None:
    with fsspec.open(world.url(name), "wb", **{**world.options, "chunk_size": CHUNK, **options}) as f:
        f.write(data)


def read(world: World, name: str, **options: Any) -> bytes:
    with fsspec.open(world.url(name), "rb", **{**world.options, **options}) as f:
        return bytes(f.read())


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1, 3 * CHUNK, 1100 * CHUNK + 5])
def test_written_file_is_a_whole_stream_whose_last_chunk_carries_the_end_flag(world: World, size: int) -> None:
    data = os.urandom(size)
    write(world, "f", data)
    # The sequential decryptor checks the end flag on the last chunk and refuses a stream cut at a boundary.
    assert envelope.decrypt(world.stored("f"), keys=[world.options["keys"]]) == data
    assert read(world, "f") == data


def test_envelope_open_wb_writes_what_envelope_open_rb_reads(tmp_path: Path, kek: str) -> None:
    data = os.urandom(5 * CHUNK + 7)
    with envelope.open(tmp_path / "f", "wb", keys=[kek], chunk_size=CHUNK, context={"team": "a"}) as f:
        for i in range(0, len(data), 1000):
            f.write(data[i:i + 1000])
    with envelope.open(tmp_path / "f", keys=[kek], context={"team": "a"}) as f:
        f.seek(2 * CHUNK + 3)
        assert f.read(CHUNK) == data[2 * CHUNK + 3:3 * CHUNK + 3]
    with pytest.raises(envelope.OutputExistsError):
        envelope.open(tmp_path / "f", "xb", keys=[kek])


def test_writer_left_by_an_exception_leaves_no_file_and_the_old_one_untouched(tmp_path: Path, kek: str) -> None:
    with envelope.open(tmp_path / "old", "wb", keys=[kek]) as f:
        f.write(b"before")
    with pytest.raises(KeyError):
        with envelope.open(tmp_path / "new", "wb", keys=[kek], chunk_size=CHUNK) as f:
            f.write(os.urandom(600 * CHUNK))
            raise KeyError
    with pytest.raises(KeyError):
        with envelope.open(tmp_path / "old", "wb", keys=[kek]) as f:
            f.write(b"after")
            raise KeyError
    assert sorted(os.listdir(tmp_path)) == ["kek", "old"]
    with envelope.open(tmp_path / "old", keys=[kek]) as f:
        assert f.read() == b"before"


def test_writer_dropped_without_close_leaves_nothing(world: World) -> None:
    def fill() -> None:
        f = fsspec.open(world.url("f"), "wb", **world.options).open()
        f.write(b"first rows")
        raise KeyError("the producer failed between two writes")

    with pytest.raises(KeyError):
        fill()
    gc.collect()
    assert not world.fs.exists(world.path("f"))


def test_writer_opened_while_an_exception_is_handled_still_writes(world: World) -> None:
    try:
        raise KeyError("the primary source failed")
    except KeyError:
        write(world, "fallback", b"written from an except block")
    assert read(world, "fallback") == b"written from an except block"


@pytest.mark.parametrize("size", [100, 9 << 20], ids=["single-put", "multipart"])
def test_s3_writer_left_by_an_exception_leaves_no_object_and_no_upload(s3: Any, s3_endpoint: str, tmp_path: Path,
                                                                       kek: str, size: int) -> None:
    world = make_world("s3", tmp_path, kek, _Request(s3, s3_endpoint))
    with pytest.raises(KeyError):
        with fsspec.open(world.url("f"), "wb", **world.options) as f:
            f.write(os.urandom(size))
            raise KeyError
    assert "Contents" not in s3.list_objects_v2(Bucket=s3.bucket)
    assert not s3.list_multipart_uploads(Bucket=s3.bucket).get("Uploads")


def test_s3_object_written_in_parts_reads_back(s3: Any, s3_endpoint: str, tmp_path: Path, kek: str) -> None:
    world = make_world("s3", tmp_path, kek, _Request(s3, s3_endpoint))
    data = os.urandom((9 << 20) + 5)
    write(world, "big", data, chunk_size=1 << 16)
    assert s3.head_object(Bucket=s3.bucket, Key="big")["ETag"].endswith('-2"')  # two parts
    assert read(world, "big") == data


class _Request:
    """The two fixtures make_world asks for, already in hand."""

    def __init__(self, s3: Any, endpoint: str) -> None:
        self._values = {"s3": s3, "s3_endpoint": endpoint}

    def getfixturevalue(self, name: str) -> Any:
        return self._values[name]


def test_seek_append_and_update_are_refused_with_a_reason(world: World) -> None:
    with fsspec.open(world.url("f"), "wb", **world.options) as f:
        f.write(b"rows")
        assert f.seek(0, io.SEEK_CUR) == f.tell() == 4  # where it is: answered
        with pytest.raises(UsageError, match="sequential"):
            f.seek(0)
    for mode in ("ab", "r+b"):
        with pytest.raises((UsageError, ValueError), match="append|updat|mode"):
            with fsspec.open(world.url("f"), mode, **world.options):
                pass


def test_info_ls_and_size_report_plaintext_sizes_without_any_key(world: World, tmp_path: Path) -> None:
    write(world, "d/a", os.urandom(10 * CHUNK + 3))
    write(world, "d/b", b"")
    other = write_key_file(tmp_path / "other-kek", os.urandom(32))
    keyless = {**world.options, "keys": f"raw-aes:{other}"}  # a key that opens none of them
    fs = fsspec.core.url_to_fs(world.url("d"), **keyless)[0]
    world.store_new("d/_SUCCESS", b"")  # a marker among them, not an envelope file
    sizes = {e["name"].rsplit("/", 1)[1]: e["size"] for e in fs.ls(world.path("d"))}
    assert sizes == {"a": 10 * CHUNK + 3, "b": 0, "_SUCCESS": 0}
    assert fs.info(world.path("d/_SUCCESS"))["envelope"] is False
    assert fs.size(world.path("d/a")) == 10 * CHUNK + 3
    info = fs.info(world.path("d/a"))
    assert info["encrypted_size"] == len(world.stored("d/a")) > info["size"]


def test_keys_may_be_one_comma_separated_string(world: World, tmp_path: Path) -> None:
    other = write_key_file(tmp_path / "other-kek", os.urandom(32))
    both = f"raw-aes:{other},{world.options['keys']}"
    write(world, "f", b"data", keys=both)
    assert read(world, "f", keys=world.options["keys"]) == b"data"


def test_tampered_chunk_raises_at_the_read_that_touches_it(world: World) -> None:
    data = os.urandom(20 * CHUNK)
    write(world, "f", data)
    stored = bytearray(world.stored("f"))
    header_size = read_header(io.BytesIO(bytes(stored)))[0].size
    stored[header_size + 7 * (CHUNK + TAG_SIZE) + 10] ^= 1  # inside chunk 7
    world.store("f", bytes(stored))
    with fsspec.open(world.url("f"), "rb", **world.options) as f:
        assert f.read(2 * CHUNK) == data[:2 * CHUNK]
        f.seek(12 * CHUNK)
        assert f.read(CHUNK) == data[12 * CHUNK:13 * CHUNK]
        f.seek(7 * CHUNK + 100)
        with pytest.raises(AuthenticationError):
            f.read(10)


def test_required_context_is_checked_on_every_open(world: World) -> None:
    write(world, "f", b"rows", context={"team": "a"})
    assert read(world, "f", context="team=a") == b"rows"
    assert read(world, "f", context={"team": "a"}) == b"rows"  # the header cached: checked again
    with pytest.raises(ContextMismatchError):
        read(world, "f", context={"team": "b"})


def test_object_replaced_since_it_was_cached_is_read_afresh(world: World) -> None:
    write(world, "f", b"first version")
    assert read(world, "f") == b"first version"
    write(world, "f", b"second, longer version")
    assert read(world, "f") == b"second, longer version"


def test_any_other_fsspec_filesystem_holds_the_ciphertext_of_a_chained_url(kek: str) -> None:
    url, opts = "envelope::memory://envelope-test/d/f", {"keys": kek, "chunk_size": CHUNK}
    data = os.urandom(7 * CHUNK + 1)
    with fsspec.open(url, "wb", **opts) as f:
        f.write(data)
    memory = fsspec.filesystem("memory")
    assert envelope.decrypt(memory.cat("/envelope-test/d/f"), keys=[kek]) == data
    fs, path = fsspec.core.url_to_fs(url, **opts)
    assert fs.size(path) == len(data)
    with fs.open(path) as f:
        f.seek(3 * CHUNK - 2)
        assert f.read(4) == data[3 * CHUNK - 2:3 * CHUNK + 2]
    with pytest.raises(KeyError):
        with fsspec.open("envelope::memory://envelope-test/d/g", "wb", **opts) as f:
            f.write(data)
            raise KeyError
    assert not memory.exists("/envelope-test/d/g")
    memory.rm("/envelope-test", recursive=True)


def test_plain_s3_urls_stay_s3fs_s_without_it_only_envelope_chains_parse() -> None:
    try:
        import s3fs  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="s3fs"):
            fsspec.filesystem("s3")
    else:
        assert fsspec.get_filesystem_class("s3") is s3fs.S3FileSystem
    assert fsspec.core.url_to_fs("envelope::s3://bucket/key.parquet", keys="raw-aes:unused")[1] == "bucket/key.parquet"

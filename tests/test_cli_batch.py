"""encrypt-file / decrypt-file on many files at once: output placement, the data-key cache, partial failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envelope.cli.main import EXIT_FORMAT, EXIT_IO, EXIT_KEY, EXIT_OK, EXIT_USAGE, main
from envelope.kms.store import KeyStore
from keyfiles import write_key_file


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for i in range(12):
        path = src / f"f{i:02d}.log"
        path.write_bytes(os.urandom(1000 + i))
        paths.append(path)
    return paths


def kms_calls(operation: str) -> int:
    with KeyStore() as store:
        return len(store.audit_events(operation=operation))


def encrypt_all(files: list[Path], out: Path, *extra: str) -> int:
    out.mkdir(exist_ok=True)
    return main(["encrypt-file", *map(str, files), "--output-dir", str(out), "-q", *extra])


def test_many_files_go_to_the_output_dir_and_come_back(files: list[Path], tmp_path: Path) -> None:
    enc, dec = tmp_path / "enc", tmp_path / "dec"
    assert encrypt_all(files, enc) == EXIT_OK
    assert sorted(p.name for p in enc.iterdir()) == sorted(f.name + ".envelope" for f in files)
    dec.mkdir()
    assert main(["decrypt-file", *map(str, sorted(enc.iterdir())), "--output-dir", str(dec), "-q"]) == EXIT_OK
    for f in files:
        assert (dec / f.name).read_bytes() == f.read_bytes()


def test_without_the_cache_every_file_costs_a_kms_call(files: list[Path], tmp_path: Path) -> None:
    assert encrypt_all(files, tmp_path / "enc") == EXIT_OK
    assert kms_calls("GenerateDataKey") == len(files)


def test_with_the_cache_one_kms_call_serves_every_file(files: list[Path], tmp_path: Path) -> None:
    enc, dec = tmp_path / "enc", tmp_path / "dec"
    assert encrypt_all(files, enc, "--cache-max-age", "300") == EXIT_OK
    assert kms_calls("GenerateDataKey") == 1
    dec.mkdir()
    argv = ["decrypt-file", *map(str, sorted(enc.iterdir())), "--output-dir", str(dec), "-q"]
    assert main([*argv, "--cache-max-age", "300"]) == EXIT_OK
    assert kms_calls("Decrypt") == 1
    for f in files:
        assert (dec / f.name).read_bytes() == f.read_bytes()


def test_cache_bounds_on_messages_and_bytes(files: list[Path], tmp_path: Path) -> None:
    assert encrypt_all(files, tmp_path / "a", "--cache-max-age", "300", "--cache-max-messages", "5") == EXIT_OK
    assert kms_calls("GenerateDataKey") == 3  # 5 + 5 + 2
    # Each file is just over 1000 bytes: a 3K byte bound holds three of them per data key.
    assert encrypt_all(files, tmp_path / "b", "--cache-max-age", "300", "--cache-max-bytes", "3K") == EXIT_OK
    assert kms_calls("GenerateDataKey") == 3 + 4


def test_contexts_are_separate_cache_partitions(files: list[Path], tmp_path: Path) -> None:
    assert encrypt_all(files[:3], tmp_path / "a", "--cache-max-age", "300", "--context", "t=a") == EXIT_OK
    assert encrypt_all(files[3:6], tmp_path / "b", "--cache-max-age", "300", "--context", "t=b") == EXIT_OK
    assert kms_calls("GenerateDataKey") == 2


@pytest.mark.parametrize("extra", [["--cache-max-messages", "5"], ["--cache-max-bytes", "1M"],
                                   ["--cache-max-age", "0"], ["--cache-max-age", "soon"],
                                   ["--cache-max-age", "inf"]])
def test_bad_cache_flags_are_usage_errors(files: list[Path], tmp_path: Path, extra: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert encrypt_all(files[:2], tmp_path / "o", *extra) == EXIT_USAGE
    assert "cache" in capsys.readouterr().err


def test_one_output_name_for_several_inputs_is_refused(files: list[Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["encrypt-file", str(files[0]), str(files[1]), "-o", str(tmp_path / "x")]) == EXIT_USAGE
    assert "--output-dir" in capsys.readouterr().err
    assert main(["encrypt-file", "-", str(files[1])]) == EXIT_USAGE
    (tmp_path / "a-file").write_bytes(b"")  # a missing --output-dir is created; a file there is refused
    assert main(["encrypt-file", str(files[0]), "--output-dir", str(tmp_path / "a-file")]) == EXIT_USAGE
    assert not list(tmp_path.glob("*.envelope"))


def test_a_failing_file_does_not_stop_the_others(files: list[Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    missing = files[0].parent / "gone.log"
    code = encrypt_all([files[0], missing, files[1]], tmp_path / "enc")
    err = capsys.readouterr().err
    assert code == EXIT_IO
    assert "gone.log" in err and "1 of 3 files failed" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == [files[0].name + ".envelope",
                                                                    files[1].name + ".envelope"]


def test_the_exit_code_is_that_of_the_first_failure(files: list[Path], tmp_path: Path) -> None:
    enc = tmp_path / "enc"
    assert encrypt_all(files[:2], enc) == EXIT_OK
    bad = enc / "bad.envelope"
    bad.write_bytes(b"not an envelope file at all" * 10)
    dec = tmp_path / "dec"
    dec.mkdir()
    code = main(["decrypt-file", str(bad), *map(str, sorted(enc.glob("f*"))), "--output-dir", str(dec), "-q"])
    assert code == EXIT_FORMAT
    assert sorted(p.name for p in dec.iterdir()) == [f.name for f in files[:2]]


def test_max_wrapped_keys_refuses_a_file_with_more(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = []
    for i in range(3):
        k = tmp_path / f"k{i}"
        write_key_file(k, os.urandom(32))
        keys += ["--key", f"raw-aes:{k}"]
    src = tmp_path / "data"
    src.write_bytes(b"three keys")
    assert main(["encrypt-file", str(src), *keys, "-q"]) == EXIT_OK
    argv = ["decrypt-file", f"{src}.envelope", "-o", str(tmp_path / "out"), *keys[:2]]
    assert main([*argv, "--max-wrapped-keys", "2"]) == EXIT_FORMAT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "3 wrapped keys" in err and "--max-wrapped-keys" in err
    assert not (tmp_path / "out").exists()
    assert main([*argv, "--max-wrapped-keys", "33"]) == EXIT_USAGE
    assert main(argv) == EXIT_OK and (tmp_path / "out").read_bytes() == b"three keys"


def test_range_takes_one_file(files: list[Path], tmp_path: Path) -> None:
    enc = tmp_path / "enc"
    assert encrypt_all(files[:2], enc) == EXIT_OK
    assert main(["decrypt-file", *map(str, sorted(enc.iterdir())), "--range", "0:10"]) == EXIT_USAGE


def test_a_key_that_cannot_work_stops_the_batch_with_one_line(files: list[Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert encrypt_all(files, tmp_path / "enc") == EXIT_OK  # creates the keystore and the default key
    capsys.readouterr()
    code = encrypt_all(files, tmp_path / "none", "--key", "local:alias/typo")
    err = capsys.readouterr().err
    assert code == EXIT_KEY and err.count("\n") == 1 and "alias/typo does not exist" in err
    assert list((tmp_path / "none").iterdir()) == []
    enc = sorted(map(str, (tmp_path / "enc").iterdir()))
    (tmp_path / "dec").mkdir()
    # Decrypting, one usable key among several is enough: the bad one does not stop the batch.
    assert main(["decrypt-file", *enc, "--output-dir", str(tmp_path / "dec"), "-q", "--key", "local:alias/typo",
                 "--key", "local:alias/envelope/default"]) == EXIT_OK
    assert main(["decrypt-file", *enc, "--output-dir", str(tmp_path / "dec"), "--force", "--key",
                 "local:alias/typo"]) == EXIT_KEY
    assert capsys.readouterr().err.count("\n") == 1

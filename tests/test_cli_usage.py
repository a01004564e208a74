"""The command line's grammar: global options anywhere, one line per usage error, --range like HTTP's.

In-process (``main`` with capsys), so the file stays fast.  What is checked:

* the global options (--as, --keystore, --json, -q/--quiet, --region, --profile) mean the
  same before the command, between its words and after it, and a value given before the
  command is not replaced by the command's own default;
* every usage error is one line, ``envelope: error: ...``, naming the closest valid word
  and where --help is, exit code 2; ``envelope`` alone prints a short usage;
* rewrap's key that opens the file now is ``--from-key``, as in s3/bulk rewrap, with the
  old ``--unwrap-key`` still accepted;
* ``--range -N`` is the last N bytes, and a range past the end names the plaintext's size,
  for decrypt-file and for s3 cp.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from envelope.cli.main import COMMAND_MODULES, EXIT_OK, EXIT_USAGE, build_parser, main
from keyfiles import write_key_file


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def parse(*argv: str) -> Any:
    return build_parser(argv).parse_args(argv)


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("envelope: error: "), err
    return lines[0]


def _raw_key(path: Path) -> str:
    write_key_file(path, os.urandom(32))
    return f"raw-aes:{path}"


# -- global options ---------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["--keystore", "{ks}", "--json", "keys", "list"],
    ["keys", "--keystore", "{ks}", "--json", "list"],
    ["keys", "list", "--keystore", "{ks}", "--json"],
    ["--json", "keys", "list", "--keystore={ks}"],
    ["--keystore", "{ks}", "keys", "--json", "list"],
])
def test_keystore_and_json_are_taken_before_between_and_after_the_command_words(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    ks = tmp_path / "elsewhere.db"
    code, created, _ = run(capsys, "keys", "create", "--keystore", str(ks))
    assert code == EXIT_OK
    code, out, err = run(capsys, *(a.format(ks=ks) for a in argv))
    assert code == EXIT_OK, err
    json.loads(out)  # JSON, whichever position --json was in
    assert created.strip() in out  # the key of that keystore, not of $ENVELOPE_KEYSTORE


@pytest.mark.parametrize("argv", [
    ["--as", "alice", "keys", "whoami"],
    ["keys", "--as", "alice", "whoami"],
    ["keys", "whoami", "--as", "alice"],
    ["keys", "whoami", "--as=alice"],
])
def test_as_is_taken_anywhere_on_the_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert run(capsys, "keys", "create")[0] == EXIT_OK
    code, out, err = run(capsys, *argv)
    assert code == EXIT_OK, err
    assert "local:user/alice" in out
    assert os.environ.get("ENVELOPE_PRINCIPAL") is None  # for this command only


@pytest.mark.parametrize("argv", [
    ["--region", "eu-west-1", "--profile", "p", "-q", "--keystore", "K", "encrypt-file", "x"],
    ["encrypt-file", "x", "--region", "eu-west-1", "--profile", "p", "-q", "--keystore", "K"],
    ["--region", "eu-west-1", "encrypt-file", "--profile", "p", "x", "--quiet", "--keystore=K"],
    ["--region=eu-west-1", "--profile=p", "--quiet", "--keystore", "K", "decrypt-file", "x"],
    ["s3", "cp", "a", "s3://b/k", "--region", "eu-west-1", "--profile", "p", "-q", "--keystore", "K"],
    ["--region", "eu-west-1", "--profile", "p", "s3", "-q", "cp", "a", "s3://b/k", "--keystore", "K"],
    ["--region", "eu-west-1", "--profile", "p", "-q", "--keystore", "K", "bulk", "verify", "s3://b/"],
    ["rewrap", "f", "--key", "k", "--region", "eu-west-1", "--profile", "p", "-q", "--keystore", "K"],
    ["--region", "eu-west-1", "--profile", "p", "-q", "--keystore", "K", "bench"],
])
def test_a_global_option_means_the_same_in_any_position(argv: list[str]) -> None:
    args = parse(*argv)
    assert (args.region, args.profile, args.quiet, args.keystore) == ("eu-west-1", "p", True, "K")


@pytest.mark.parametrize("argv", [["encrypt-file", "x"], ["keys", "list"], ["s3", "inspect", "s3://b/k"]])
def test_the_global_options_default_to_nothing(argv: list[str]) -> None:
    args = parse(*argv)
    assert (args.principal, args.keystore, args.json, args.quiet, args.region, args.profile) == \
        (None, None, False, False, None, None)


def test_an_option_the_command_has_itself_keeps_its_meaning_in_either_position() -> None:
    """keys init --region is the keystore's region; before the command it is the same option."""
    assert parse("keys", "init", "--region", "eu-south-2").region == "eu-south-2"
    assert parse("--region", "eu-south-2", "keys", "init").region == "eu-south-2"


@pytest.mark.parametrize("argv, modules", [
    (["--json", "keys", "list"], {"keys"}),
    (["--keystore", "P", "--region", "r", "-q", "encrypt-file", "x"], {"encrypt-file", "decrypt-file", "inspect"}),
    (["--profile=p", "--quiet", "s3", "cp"], {"s3"}),
])
def test_global_options_before_the_command_still_build_only_its_parsers(argv: list[str], modules: set[str]) -> None:
    parser = build_parser(argv)
    registered = {name for a in parser._subparsers._group_actions for name in a.choices}  # type: ignore[union-attr]
    assert registered == modules


def test_json_on_a_command_without_json_output_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--json", "rewrap", "f", "--key", "k"], ["rewrap", "f", "--key", "k", "--json"]):
        code, out, err = run(capsys, *argv)
        assert code == EXIT_USAGE and out == ""
        assert "rewrap has no JSON output" in one_error_line(err)


def test_version_json_still_works(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version", "--json")
    assert code == EXIT_OK and "python" in json.dumps(json.loads(out)).lower()


# -- usage errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, expected", [
    (["encrypt-fil", "x"], "unknown command 'encrypt-fil'; did you mean 'encrypt-file'? (see envelope --help)"),
    (["keys", "describ", "k"], "unknown action 'describ'; did you mean 'describe'? (see envelope keys --help)"),
    (["s3", "cpp", "a", "b"], "unknown verb 'cpp'; did you mean 'cp'? (see envelope s3 --help)"),
    (["encrypt-file", "x", "--contxt", "a=b"],
     "unknown option '--contxt'; did you mean '--context'? (see envelope encrypt-file --help)"),
    (["keys", "list", "--jsn"], "unknown option '--jsn'; did you mean '--json'? (see envelope keys list --help)"),
    (["keys", "list", "--keystroe", "P"], "unknown option '--keystroe'; did you mean '--keystore'?"),
    (["s3", "cp", "a", "s3://b/k", "--format", "s3ec"],
     "invalid value 's3ec' for --format; did you mean 's3ec-v3'? (see envelope s3 cp --help)"),
    (["rewrap", "f"], "the following arguments are required: -k/--key (see envelope rewrap --help)"),
    (["keys"], "the following arguments are required: ACTION (see envelope keys --help)"),
    (["keys", "describe", "a", "b"], "unexpected argument 'b' (see envelope keys describe --help)"),
    (["decrypt-file", "x", "--range", "12"], "expected START:END or -N (the last N bytes), got '12'"),
    (["decrypt-file", "x", "--range", "-0"], "the last 0 bytes"),
])
def test_every_usage_error_is_one_line_naming_the_problem(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                          expected: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == EXIT_USAGE and out == ""
    assert expected in one_error_line(err)


def test_no_arguments_print_a_short_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == EXIT_USAGE and out == ""
    lines = err.splitlines()
    assert 2 <= len(lines) <= 5 and lines[0].startswith("usage: envelope")
    assert all(command in err for command in COMMAND_MODULES)
    assert "envelope COMMAND --help" in err


# -- one name for one idea --------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--from-key", "--unwrap-key"])
def test_rewrap_takes_from_key_as_s3_rewrap_does_and_still_its_old_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str) -> None:
    old, new = _raw_key(tmp_path / "old"), _raw_key(tmp_path / "new")
    plain = tmp_path / "p"
    plain.write_bytes(b"rewrapped")
    assert run(capsys, "encrypt-file", str(plain), "--key", old, "-q")[0] == EXIT_OK
    code, _, err = run(capsys, "rewrap", f"{plain}.envelope", "--key", new, flag, old, "-q")
    assert code == EXIT_OK, err
    back = tmp_path / "back"
    assert run(capsys, "decrypt-file", f"{plain}.envelope", "-o", str(back), "--key", new, "-q")[0] == EXIT_OK
    assert back.read_bytes() == b"rewrapped"


def test_the_help_shows_one_name_for_the_key_that_opens_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["rewrap", "--help"], ["s3", "rewrap", "--help"], ["bulk", "rewrap", "--help"]):
        code, out, _ = run(capsys, *argv)
        assert code == EXIT_OK and "--from-key" in out and "--unwrap-key" not in out, argv


def test_an_existing_output_is_refused_in_the_same_words_by_every_command(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kek = _raw_key(tmp_path / "kek")
    plain, taken = tmp_path / "p", tmp_path / "taken"
    plain.write_bytes(b"x")
    taken.write_bytes(b"keep")
    assert run(capsys, "encrypt-file", str(plain), "--key", kek, "-q")[0] == EXIT_OK
    assert run(capsys, "keys", "create")[0] == EXIT_OK  # generate-random asks the keystore first
    lines = set()
    for argv in (["encrypt-file", str(plain), "-o", str(taken), "--key", kek],
                 ["decrypt-file", f"{plain}.envelope", "-o", str(taken), "--key", kek],
                 ["decrypt-file", f"{plain}.envelope", "-o", str(taken), "--key", kek, "--range", "0:1"],
                 ["rewrap", f"{plain}.envelope", "-o", str(taken), "--key", kek],
                 ["keys", "generate-random", "16", "-o", str(taken)]):
        code, _, err = run(capsys, *argv)
        assert code == EXIT_USAGE, argv
        lines.add(one_error_line(err))
    assert lines == {f"envelope: error: {str(taken)!r} already exists (use --force to overwrite)"}
    assert taken.read_bytes() == b"keep"


# -- --range -N and past the end --------------------------------------------------------------------

SIZE = 20_000


@pytest.fixture
def sealed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, bytes, str]:
    kek = _raw_key(tmp_path / "kek")
    data = os.urandom(SIZE)
    plain = tmp_path / "d.bin"
    plain.write_bytes(data)
    assert run(capsys, "encrypt-file", str(plain), "--key", kek, "--chunk-size", "4K", "-q")[0] == EXIT_OK
    return tmp_path / "d.bin.envelope", data, kek


@pytest.mark.parametrize("spec, sl", [
    (["--range", "-1000"], slice(-1000, None)),
    (["--range", "-5K"], slice(-5 << 10, None)),
    (["--range=-1"], slice(-1, None)),
    (["--range", f"-{SIZE + 5}"], slice(0, None)),  # more than there is: all of it, as HTTP answers
    (["--range", "19000:99999"], slice(19000, None)),  # an end past the end is shortened
])
def test_decrypt_file_range_minus_n_is_the_last_n_bytes(sealed: tuple[Path, bytes, str], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str], spec: list[str],
                                                        sl: slice) -> None:
    enc, data, kek = sealed
    out = tmp_path / "part"
    code, _, err = run(capsys, "decrypt-file", str(enc), "-o", str(out), "--key", kek, *spec)
    assert code == EXIT_OK, err
    assert out.read_bytes() == data[sl]


@pytest.mark.parametrize("spec", [f"{SIZE}:", "2000000:3000000"])
def test_decrypt_file_range_past_the_end_names_the_plaintext_size(sealed: tuple[Path, bytes, str], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str],
                                                                  spec: str) -> None:
    enc, _, kek = sealed
    out = tmp_path / "part"
    code, _, err = run(capsys, "decrypt-file", str(enc), "-o", str(out), "--key", kek, "--range", spec)
    assert code == EXIT_USAGE
    assert one_error_line(err) == \
        f"envelope: error: range {spec} starts past the end of the plaintext ({SIZE} bytes)"
    assert not out.exists()


@pytest.fixture
def s3_object(s3: Any, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> tuple[str, bytes, str]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    kek = _raw_key(tmp_path / "kek")
    data = os.urandom(SIZE)
    plain = tmp_path / "o.bin"
    plain.write_bytes(data)
    url = f"s3://{s3.bucket}/o.bin"
    code, _, err = run(capsys, "s3", "cp", str(plain), url, "--key", kek, "-q")
    assert code == EXIT_OK, err
    return url, data, kek


def test_s3_cp_range_minus_n_is_the_last_n_bytes(s3_object: tuple[str, bytes, str], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    url, data, kek = s3_object
    out = tmp_path / "tail"
    code, _, err = run(capsys, "s3", "cp", url, str(out), "--key", kek, "--range", "-1K", "-q")
    assert code == EXIT_OK, err
    assert out.read_bytes() == data[-1024:]


def test_s3_cp_range_past_the_end_names_the_plaintext_size(s3_object: tuple[str, bytes, str], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    url, _, kek = s3_object
    out = tmp_path / "part"
    code, _, err = run(capsys, "s3", "cp", url, str(out), "--key", kek, "--range", "2000000:3000000")
    assert code == EXIT_USAGE
    assert one_error_line(err) == \
        f"envelope: error: range 2000000:3000000 starts past the end of the plaintext ({SIZE} bytes)"
    assert not out.exists()


@pytest.mark.parametrize("short, long", [
    (["rewrap", "f", "-k", "new", "-c", "a=b"], ["rewrap", "f", "--key", "new", "--context", "a=b"]),
    (["s3", "cp", "-r", "d", "s3://b/p/", "-k", "k", "-c", "a=b"],
     ["s3", "cp", "--recursive", "d", "s3://b/p/", "--key", "k", "--context", "a=b"]),
    (["s3", "rewrap", "s3://b/k", "-k", "k", "-c", "a=b"],
     ["s3", "rewrap", "s3://b/k", "--key", "k", "--context", "a=b"]),
    (["bulk", "verify", "s3://b/", "-k", "k", "-c", "a=b"],
     ["bulk", "verify", "s3://b/", "--key", "k", "--context", "a=b"]),
])
def test_short_flags_mean_what_the_long_ones_do_in_every_command(short: list[str], long: list[str]) -> None:
    assert vars(parse(*short)) == vars(parse(*long))


def test_the_aws_options_hold_for_the_command_only(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    run(capsys, "keys", "list", "--region", "eu-west-1", "--profile", "p")
    assert os.environ["AWS_REGION"] == "us-east-1" and "AWS_PROFILE" not in os.environ

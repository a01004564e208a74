"""``envelope bench``: a short real run, its outputs, and its refusals (the CI smoke run of the command)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from envelope.cli.main import EXIT_OK, EXIT_USAGE, main

QUICK = ["bench", "--quick", "-q", "--threads", "1,2", "--chunk-sizes", "64K,256K"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_quick_run_measures_every_part_and_recommends(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["keys", "create", "--alias", "alias/bench"]) == EXIT_OK
    capsys.readouterr()
    code, out, _ = run(capsys, *QUICK, "--json", "--dir", str(tmp_path), "--key", "local:alias/bench",
                       "--calls", "3")
    assert code == EXIT_OK
    report = json.loads(out)
    engines = {(e["engine"], e["chunk_size"], e["threads"]) for e in report["engines"]}
    assert {("python", 65536, 1), ("python", 262144, 2)} <= engines
    assert all(e["seal_mb_s"] > 0 and e["open_mb_s"] > 0 for e in report["engines"])
    [files] = report["files"]
    assert files["size"] == 8 << 20 and files["cp_s"] > 0 and files["encrypt_ratio"] > 0
    [key] = report["keys"]
    assert key["reference"] == "local:alias/bench" and key["generate_ms"] > 0 and key["unwrap_ms"] > 0
    assert report["recommended"]["chunk_size"] in (65536, 262144) and report["recommended"]["threads"] in (1, 2)
    if shutil.which("openssl"):
        assert set(report["openssl"]) == {"65536", "262144"} and min(report["openssl"].values()) > 0
    assert list(tmp_path.iterdir()) == []  # the generated files are gone


def test_markdown_and_text_tables(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *QUICK, "--no-files", "--markdown")
    assert code == EXIT_OK
    assert "## Cipher in memory" in out and "| engine | chunk | threads | seal | open |" in out
    assert "## Recommended" in out and "--chunk-size" in out
    code, out, _ = run(capsys, *QUICK, "--no-files")
    assert code == EXIT_OK and out.startswith("Cipher in memory") and "|" not in out


def test_plot_draws_a_png_or_says_what_to_install(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "bench.png"
    code, _, err = run(capsys, *QUICK, "--no-files", "--plot", str(png))
    if importlib.util.find_spec("matplotlib") is None:
        assert code == EXIT_USAGE and "pip install 'envelope[plot]'" in err and not png.exists()
    else:
        assert code == EXIT_OK and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("extra", "needle"), [(["--threads", "0"], "at least 1"), (["--threads", "x"], "list of"),
                                               (["--runs", "0"], "at least 1"), (["--size", "big"], "size")])
def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str], extra: list[str], needle: str) -> None:
    code, _, err = run(capsys, "bench", "--quick", "-q", "--no-files", *extra)
    assert code == EXIT_USAGE and needle in err

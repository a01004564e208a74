"""The benchmark scripts run end to end (a smoke run in CI; the real runs are in benchmarks/results/)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENVELOPE = str(Path(sys.executable).parent / "envelope")


def run(script: str, *argv: str) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *argv], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_peer_comparison_measures_what_is_installed_and_skips_the_rest(tmp_path: Path) -> None:
    run("peers/run_peers.py", "--size", "2M", "--runs", "1", "--envelope", ENVELOPE, "--dir", str(tmp_path),
        "--out", str(tmp_path / "results"), "--only", "cp,envelope,cryptography,tink")
    table = (tmp_path / "results" / "peers.md").read_text()
    rows = {line.split(" | ")[0].lstrip("| ") for line in table.splitlines() if line.startswith("| ")}
    assert {"cp (the floor)", "envelope (native)", "envelope (reference engine)",
            "cryptography AESGCM loop, 1 thread"} <= rows
    assert "Tink" in table  # measured, or listed as skipped with the reason
    assert "envelope-peers-" not in "".join(p.name for p in tmp_path.iterdir())  # its scratch files are gone


def test_the_scaling_curves_run(tmp_path: Path) -> None:
    out = run("scaling.py", "--sizes", "1M,2M", "--runs", "1", "--threads-size", "1M", "--envelope", ENVELOPE,
              "--dir", str(tmp_path), "--out", str(tmp_path / "results"))
    assert "| 1 MiB |" in out and "| 2 MiB |" in out and "| 1 |" in out
    assert (tmp_path / "results" / "scaling.md").read_text().startswith("# Scaling")


@pytest.mark.skipif(not os.environ.get("ENVELOPE_SLOW_TESTS"), reason="slow (a moto server, ~20 s): set ENVELOPE_SLOW_TESTS=1")
def test_the_dataframe_read_comparison_runs(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    pytest.importorskip("fsspec")
    run("dataframe_reads.py", "--rows", "20000", "--chunk", "16384", "--runs", "1", "--out", str(tmp_path / "d.md"))
    table = (tmp_path / "d.md").read_text()
    assert "| local | one column |" in table and "| moto S3 | whole file |" in table

"""``envelope --version``: the version, the engine in use and its OpenSSL; ``--json`` for bug reports (issue 22)."""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path

import pytest
from cryptography.hazmat.backends.openssl.backend import backend

import envelope
from envelope.cli.main import main
from envelope.engines import get_engine, native_available

ROOT = Path(__file__).resolve().parent.parent


def _version(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("engine", ["python", "native"])
def test_version_names_the_engine_in_use_and_the_openssl_under_it(engine, capsys, monkeypatch):
    if engine == "native" and not native_available():
        pytest.skip("native engine not built")
    monkeypatch.setenv("ENVELOPE_ENGINE", engine)
    openssl = get_engine(engine).openssl_version()
    assert re.match(r"OpenSSL \d+\.\d+\.\d+", openssl)
    threads = get_engine(engine).threads
    out = _version(capsys, "--version")
    assert out == f"envelope {envelope.__version__} (engine: {engine}, {threads} thread" \
                  f"{'s' if threads != 1 else ''}; {openssl})\n"


def test_the_reference_engine_reports_the_openssl_of_cryptography():
    assert get_engine("python").openssl_version() == backend.openssl_version_text()


@pytest.mark.parametrize("argv", [["--version", "--json"], ["--json", "--version"]])
def test_version_json_reports_python_openssl_engine_threads_and_platform(argv, capsys, monkeypatch):
    monkeypatch.delenv("ENVELOPE_ENGINE", raising=False)
    report = json.loads(_version(capsys, *argv))
    engine = get_engine()
    assert report["envelope"] == envelope.__version__
    assert report["python"]["version"] == platform.python_version()
    assert report["engine"]["name"] == engine.name and report["engine"]["native_available"] == native_available()
    assert report["openssl"] == {"engine": engine.openssl_version(), "cryptography": backend.openssl_version_text()}
    assert report["threads"]["engine"] == engine.threads
    assert report["platform"]["machine"] == platform.machine()


def test_an_engine_that_cannot_load_is_named_not_a_traceback(capsys, monkeypatch):
    monkeypatch.setenv("ENVELOPE_ENGINE", "bogus")
    out = _version(capsys, "--version")
    assert out.startswith(f"envelope {envelope.__version__} (engine: unavailable (unknown engine 'bogus'")


def test_the_version_is_written_once_and_the_changelog_starts_with_it():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "envelope.__version__"}
    first_release = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert first_release and first_release.group(1) == envelope.__version__


def test_an_install_without_the_native_core_says_so_and_why(capsys, monkeypatch):
    import sys

    from envelope.engines import NOT_BUILT
    from envelope.exceptions import UsageError

    monkeypatch.setitem(sys.modules, "envelope._native", None)  # as if setup.py had skipped it
    monkeypatch.delitem(sys.modules, "envelope.engines.native", raising=False)
    monkeypatch.delenv("ENVELOPE_ENGINE", raising=False)
    out = _version(capsys, "--version")
    assert out.startswith(f"envelope {envelope.__version__} (engine: python, 1 thread; OpenSSL ")
    assert out.endswith(f"\nnative engine unavailable: {NOT_BUILT}\n")
    with pytest.raises(UsageError, match="native engine is not available: the native core was not built"):
        get_engine("native")

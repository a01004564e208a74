"""The scheme registry: built-ins, plugins from entry points, and clear refusals."""

from __future__ import annotations

import importlib
import io
import subprocess
import os
import sys
import textwrap
from pathlib import Path

import pytest

import envelope
from envelope.exceptions import UsageError
from envelope.format import read_header
from envelope.keyrings import registry


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution that registers the scheme ``toy`` (a raw key in the reference)."""
    (tmp_path / "toy_keyring.py").write_text(textwrap.dedent('''
        from envelope.keyrings.raw_aes import RawAesKeyring

        class ToyKeyring(RawAesKeyring):
            provider = "toy"

        def from_reference(rest, **options):
            return ToyKeyring(bytes.fromhex(rest))
    '''))
    dist = tmp_path / "toy_keyring-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-keyring\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[envelope.keyrings]\ntoy = toy_keyring:from_reference\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("toy_keyring", None)


def test_a_plugin_scheme_is_found_through_its_entry_point(plugin):
    assert "toy" in registry.schemes()
    ref = "toy:" + os.urandom(32).hex()
    keyring = registry.resolve(ref)
    assert type(keyring).__name__ == "ToyKeyring"
    blob = envelope.encrypt(b"via a plugin", keys=[keyring])
    # The header names the plugin's provider, so a reader knows which plugin to ask.
    assert read_header(io.BytesIO(blob))[0].wrapped_keys[0].provider == "toy"
    assert envelope.decrypt(blob, keys=[ref]) == b"via a plugin"


def test_built_in_schemes_need_no_plugin():
    assert {"local", "raw-aes"} <= set(registry.schemes())


@pytest.mark.parametrize("ref, needle", [
    ("nope:x", "unknown key scheme 'nope'"),
    ("no-colon", "has no scheme"),
    (":x", "has no scheme"),
    ("raw-aes:", "needs a key file path"),
])
def test_bad_references_are_usage_errors_naming_the_problem(ref, needle):
    with pytest.raises(UsageError, match=needle):
        registry.resolve(ref)


def test_the_declared_entry_points_are_exactly_the_built_in_schemes():
    from importlib.metadata import entry_points

    declared = {ep.name: ep.value for ep in entry_points(group=registry.ENTRY_POINT_GROUP)
                if ep.value.startswith("envelope.")}
    assert declared == {name: f"{module}:from_reference" for name, module in registry._BUILTIN.items()}
    for value in declared.values():  # each names a real factory
        module, _, attr = value.partition(":")
        assert callable(getattr(importlib.import_module(module), attr))


def test_the_cli_uses_a_plugin_installed_beside_it_without_any_change_to_envelope(plugin, tmp_path):
    src = tmp_path / "data.bin"
    src.write_bytes(os.urandom(100_000))
    key = os.urandom(32).hex()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")]),
               ENVELOPE_KEYSTORE=str(tmp_path / "ks.db"))

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "envelope", *argv], env=env, capture_output=True, text=True)

    assert cli("encrypt-file", str(src), "-o", str(tmp_path / "data.env"), "--key", f"toy:{key}").returncode == 0
    assert cli("decrypt-file", str(tmp_path / "data.env"), "-o", str(tmp_path / "out"), "--key",
               f"toy:{key}").returncode == 0
    assert (tmp_path / "out").read_bytes() == src.read_bytes()
    wrong = cli("decrypt-file", str(tmp_path / "data.env"), "-o", str(tmp_path / "out2"), "--key",
                f"toy:{os.urandom(32).hex()}")
    assert wrong.returncode != 0
    assert wrong.stderr.startswith("envelope: error:") and wrong.stderr.count("\n") == 1, wrong.stderr
    assert not (tmp_path / "out2").exists()


def test_a_plugin_that_fails_to_import_is_a_usage_error_naming_it(plugin):
    (plugin / "toy_keyring.py").write_text("import no_such_dependency_here\n")
    with pytest.raises(UsageError, match=r"key scheme 'toy': its plugin toy_keyring:from_reference failed "
                                         r"to load \(ModuleNotFoundError"):
        registry.resolve("toy:00")


def test_a_plugin_cannot_take_over_a_built_in_scheme(plugin):
    dist = plugin / "toy_keyring-1.0.dist-info"
    (dist / "entry_points.txt").write_text("[envelope.keyrings]\nlocal = toy_keyring:from_reference\n")
    keyring = registry.resolve("local:alias/x")
    assert type(keyring).__module__ == "envelope.keyrings.local"

"""The scheme registry: built-ins, plugins from entry points, and clear refusals."""

from __future__ import annotations

import io
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

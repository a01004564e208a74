"""Shared fixtures: keys in temporary places, never the user's own keystore."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envelope.engines import get_engine, native_available
from envelope.keyrings.base import MultiKeyring
from envelope.keyrings.raw_aes import RawAesKeyring

ENGINES = ["python"] + (["native"] if native_available() else [])


@pytest.fixture(autouse=True)
def _isolated_keystore(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own keystore path, so none can touch ~/.local/share."""
    path = tmp_path_factory.mktemp("keystore") / "keystore.db"
    monkeypatch.setenv("ENVELOPE_KEYSTORE", str(path))
    return path


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return get_engine(request.param, threads=2)


@pytest.fixture
def kek_file(tmp_path: Path) -> Path:
    path = tmp_path / "kek.bin"
    path.write_bytes(os.urandom(32))
    return path


@pytest.fixture
def raw_keyring() -> MultiKeyring:
    return MultiKeyring([RawAesKeyring(os.urandom(32))])

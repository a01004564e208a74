"""Every fuzz target's seed corpus passes its own check, without atheris.

The targets in tests/fuzz/ are run for minutes by ``make fuzz``; this keeps them
honest in the ordinary suite: each seed (built from the format vectors) either
passes the target's properties or is refused with one of the exceptions the
target allows, and the seeds include inputs that parse, so the properties are
exercised rather than skipped.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

FUZZ_DIR = Path(__file__).resolve().parent / "fuzz"
TARGETS = sorted(p.stem for p in FUZZ_DIR.glob("fuzz_*.py"))


@pytest.fixture(autouse=True)
def fuzz_dir_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FUZZ_DIR))  # the targets import their harness as a sibling


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, fuzz_dir_importable: None) -> ModuleType:
    return importlib.import_module(request.param)


def test_every_parser_has_a_fuzz_target() -> None:
    assert TARGETS == ["fuzz_chunk_open", "fuzz_header", "fuzz_key_reference", "fuzz_kms_blob", "fuzz_policy"]


def test_seeds_pass_the_target_or_raise_only_documented_errors(target: ModuleType, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # key files named by relative references resolve here, not in the checkout
    accepted = 0
    for seed in target.seeds():
        try:
            target.check(seed)
            accepted += 1
        except target.ALLOWED:
            pass
    assert accepted > 0, f"no seed of {target.NAME} gets past the parser"


def test_harness_lets_undocumented_exceptions_through() -> None:
    harness = importlib.import_module("harness")
    from envelope.exceptions import FormatError

    def check(data: bytes) -> None:
        raise (FormatError if data else KeyError)("x")

    one_input = harness.guarded(check, (FormatError,))
    one_input(b"documented")
    with pytest.raises(KeyError):
        one_input(b"")

"""What every fuzz target shares: the rule for a finding, the seed corpus, and atheris' limits.

The rule: a parser given any bytes either returns or raises one of envelope's
documented exceptions (an :class:`~envelope.exceptions.EnvelopeError`
subclass; a target may narrow that to the classes its module promises).  Any
other exception, a crash, an input that runs longer than ``-timeout`` seconds
or a process that grows past ``-rss_limit_mb`` is a finding: libFuzzer stops
and writes the input to ``build/fuzz/findings/``.

Each target is a module with ``NAME``, ``ALLOWED``, ``check(data)`` and
``seeds()``; run as a script it fuzzes, and ``tests/test_fuzz_seeds.py`` runs
its seeds through the same ``check`` in the ordinary test suite, so a target
that rots fails there first.  Coverage comes from envelope's own Python code:
its functions are instrumented after import (see :func:`instrument_envelope`),
so the targets need no import hooks.
"""

from __future__ import annotations

import gc
import hashlib
import json
import types
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "formats" / "vectors" / "envelope-v1.json"
#: Working corpora, seeds and findings live here, never in the source tree.
BUILD = Path(os.environ.get("FUZZ_BUILD_DIR", ROOT / "build" / "fuzz"))

#: libFuzzer options every target gets unless the command line says otherwise.
#: 5 s per input is far beyond any legitimate parse of these sizes; 1 GiB is
#: the interpreter, cryptography and the stream's batch buffers with room over.
DEFAULT_OPTIONS = {"-timeout": "5", "-rss_limit_mb": "1024"}


def vectors() -> list[dict[str, Any]]:
    """The format vectors: the seeds' raw material."""
    return json.loads(VECTORS.read_text())["vectors"]  # type: ignore[no-any-return]


def guarded(check: Callable[[bytes], None], allowed: tuple[type[BaseException], ...]) -> Callable[[bytes], None]:
    """*check* with its documented exceptions swallowed and everything else left to propagate."""

    def one_input(data: bytes) -> None:
        try:
            check(data)
        except allowed:
            pass

    return one_input


def write_seeds(directory: Path, seeds: Iterable[bytes]) -> None:
    """Write each seed once, named by its hash (what libFuzzer does with its own finds)."""
    directory.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)


def libfuzzer_args(name: str, argv: list[str], max_len: int) -> list[str]:
    """*argv* with the defaults added: the options not given, and corpus dirs when none are."""
    given = {arg.split("=", 1)[0] for arg in argv[1:] if arg.startswith("-")}
    args = [argv[0]] + [f"{k}={v}" for k, v in DEFAULT_OPTIONS.items() if k not in given]
    if "-max_len" not in given:
        args.append(f"-max_len={max_len}")
    if "-artifact_prefix" not in given:
        findings = BUILD / "findings"
        findings.mkdir(parents=True, exist_ok=True)
        args.append(f"-artifact_prefix={findings}/{name}-")
    args += argv[1:]
    return args


def instrument_envelope() -> int:
    """Instrument every loaded function of envelope and of the fuzz targets; return how many.

    Not atheris.instrument_all(): that instruments the whole interpreter, stalls
    for minutes on one of the third-party functions loaded here, and would spend
    the fuzzer's attention on code envelope does not own.  Nested functions are
    instrumented with the function that holds them.
    """
    import atheris

    owned = ("envelope", "__main__")  # the package, and the target run as a script
    funcs = [obj for obj in gc.get_objects() if isinstance(obj, types.FunctionType)
             and (getattr(obj, "__module__", None) or "").split(".")[0] in owned]
    for func in funcs:
        atheris.instrument_func(func)
    return len(funcs)


def main(module: Any) -> None:
    """Fuzz *module* (a target): seeds into build/fuzz/seeds/NAME, new inputs into build/fuzz/corpus/NAME."""
    import atheris

    name = module.NAME
    argv = list(sys.argv)
    if not any(not arg.startswith("-") for arg in argv[1:]):
        seeds, corpus = BUILD / "seeds" / name, BUILD / "corpus" / name
        write_seeds(seeds, module.seeds())
        corpus.mkdir(parents=True, exist_ok=True)
        argv += [str(corpus), str(seeds)]
    print(f"INFO: instrumented {instrument_envelope()} functions of envelope", file=sys.stderr)
    atheris.Setup(libfuzzer_args(name, argv, module.MAX_LEN), guarded(module.check, module.ALLOWED))
    atheris.Fuzz()

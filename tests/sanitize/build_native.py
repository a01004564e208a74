"""Build envelope's native core with extra compiler flags into a tree of its own.

The sanitizer and valgrind runs need the C core compiled differently (with
AddressSanitizer and UndefinedBehaviorSanitizer, or with debug information),
and must not replace the ``envelope/_native*.so`` that ``pip install -e .``
built.  So this compiles csrc/ through the project's one FFI definition
(csrc/ffi_build.py), with the flags added through CFLAGS and LDFLAGS, which
the compiler driver appends to the project's own, and lays out ``OUT/site/envelope``:
the package's Python files and the variant extension.  A test run whose
working directory is ``OUT/site`` imports that package, and ``--check`` says
which extension a process would load.

usage: build_native.py OUT [--cflags FLAGS] [--ldflags FLAGS] | build_native.py --check OUT
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def build(out: Path, cflags: str, ldflags: str) -> Path:
    os.environ["CFLAGS"] = f"{os.environ.get('CFLAGS', '')} {cflags}".strip()
    os.environ["LDFLAGS"] = f"{os.environ.get('LDFLAGS', '')} {ldflags}".strip()
    # Not from the project root: there ffi_build.py names its sources relatively,
    # for setuptools, and FFI.compile works in another directory.
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)
    spec = importlib.util.spec_from_file_location("envelope_ffi_build", ROOT / "csrc" / "ffi_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = Path(module.ffibuilder.compile(tmpdir=str(out / "cffi"), verbose=False))
    package = out / "site" / "envelope"
    shutil.rmtree(package, ignore_errors=True)
    shutil.copytree(ROOT / "envelope", package, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copy(built, package / built.name)
    return package / built.name


def loaded_extension(out: Path) -> str:
    """The extension file a Python started in OUT/site imports as envelope._native."""
    code = "import envelope._native as n; print(n.__file__)"
    return subprocess.run([sys.executable, "-c", code], cwd=out / "site", check=True,
                          capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--cflags", default="")
    parser.add_argument("--ldflags", default="")
    parser.add_argument("--check", action="store_true", help="print the extension OUT/site loads; fail if not OUT's")
    args = parser.parse_args()
    out = args.out.resolve()
    if args.check:
        path = loaded_extension(out)
        if not Path(path).resolve().is_relative_to(out):
            sys.exit(f"a test run in {out}/site would load {path}, not the variant build")
        print(path)
        return
    print(build(out, args.cflags, args.ldflags))


if __name__ == "__main__":
    main()

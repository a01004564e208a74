"""Installs as a user gets them: fresh virtual environments, builds from a copy of the source.

A fresh environment sees the running interpreter's packages (cryptography,
cffi, setuptools, pip) through a ``.pth`` line, so that installing into it
needs neither the network (``--no-index --no-deps``) nor build isolation; the
``.pth`` files of that directory are not run, so an editable envelope there is
not seen, and envelope is imported from the fresh environment alone.  Builds
start from a copy of the tree, never from the checkout, whose build/ may hold
a native extension from an earlier build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What a build leaves in a tree, and what is not the project's.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "wheelhouse", "*.egg-info", "__pycache__",
                                    "*.so", "*.o", "*.pyc", ".pytest_cache", ".mypy_cache", ".hypothesis",
                                    "_envelope_native.c")
REQUIRE_NATIVE_ENV = "ENVELOPE_REQUIRE_NATIVE"
#: What setup.py prints when it installs without the native core (once).
FALLBACK_WARNING = "WARNING: envelope's native core was not built"


def copy_source(dst: Path) -> Path:
    shutil.copytree(ROOT, dst, ignore=NOT_SOURCE)
    return dst


def fresh_venv(path: Path) -> Path:
    """A new virtual environment at *path* (without envelope): its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    paths = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    Path(site, "_outer_packages.pth").write_text("".join(f"{p}\n" for p in paths))
    return python


def no_compiler_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment with no C compiler reachable: CC=false and a PATH of one empty directory."""
    empty = tmp / "empty-path"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in (REQUIRE_NATIVE_ENV, "CFLAGS", "CPATH", "LDFLAGS")}
    env.update(CC="false", CXX="false", PATH=str(empty), PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(extra)
    return env


def pip_install(python: Path, target: Path | str, env: dict[str, str] | None = None,
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``pip install -v`` of a source tree or wheel, offline and without build isolation (output kept)."""
    return subprocess.run([str(python), "-m", "pip", "install", "-v", "--no-cache-dir", "--no-deps", "--no-index",
                           "--no-build-isolation", str(target)], capture_output=True, text=True, env=env,
                          cwd=cwd)


def sysroot_without_openssl(tmp: Path) -> Path:
    """A gcc --sysroot that is this system's, but for OpenSSL's headers: the compiler works, the headers are gone."""
    root = tmp / "sysroot"
    include = root / "usr" / "include"
    include.mkdir(parents=True)
    for name in ("usr/lib", "usr/lib64", "usr/libexec", "lib", "lib64"):
        if Path("/", name).exists():
            (root / name).symlink_to(Path("/", name))
    for entry in Path("/usr/include").iterdir():
        if entry.name == "openssl":
            continue
        if entry.is_dir() and (entry / "openssl").is_dir():  # the multiarch directory (opensslconf.h)
            (include / entry.name).mkdir()
            for inner in entry.iterdir():
                if inner.name != "openssl":
                    (include / entry.name / inner.name).symlink_to(inner)
        else:
            (include / entry.name).symlink_to(entry)
    return root


def run_installed(python: Path, *args: str, env: dict[str, str] | None = None,
                  cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The ``envelope`` command an environment installed, run from *cwd* (outside the source tree)."""
    return subprocess.run([str(python.parent / "envelope"), *args], capture_output=True, text=True, env=env,
                          cwd=cwd)

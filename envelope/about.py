"""What this installation is: version, engine, OpenSSL, platform (``envelope --version``).

The one line names what decides speed and trust: the engine in use and the
OpenSSL under it (in a wheel, the libcrypto the wheel carries).  The JSON form
adds what a bug report needs.  Loaded only for ``--version``: it imports the
engine and :mod:`platform`, which no other command needs.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from . import __version__
from .engines import ENGINE_ENV, get_engine, native_unavailable
from .exceptions import EnvelopeError


def _engine() -> dict[str, Any]:
    why_not_native = native_unavailable()
    info: dict[str, Any] = {"name": None, "threads": None, "openssl": None, "native_available": why_not_native is None,
                            "native_unavailable": why_not_native, "forced": os.environ.get(ENGINE_ENV) or None}
    try:
        engine = get_engine()
    except EnvelopeError as exc:
        info["error"] = str(exc)
        return info
    info.update(name=engine.name, threads=engine.threads, openssl=engine.openssl_version())
    return info


def summary() -> str:
    """``envelope VERSION (engine: NAME, N threads; OpenSSL ...)``, and why not native when it is not."""
    engine = _engine()
    if engine["name"] is None:
        return f"envelope {__version__} (engine: unavailable ({engine['error']}))"
    threads = engine["threads"]
    text = f"envelope {__version__} (engine: {engine['name']}, {threads} thread{'s' if threads != 1 else ''}; " \
           f"{engine['openssl']})"
    if engine["native_unavailable"]:
        text += f"\nnative engine unavailable: {engine['native_unavailable']}"
    return text


def report() -> dict[str, Any]:
    """Everything ``envelope --version --json`` prints, for bug reports."""
    from cryptography import __version__ as cryptography_version
    from cryptography.hazmat.backends.openssl.backend import backend

    engine = _engine()
    return {
        "envelope": __version__,
        "engine": engine,
        "openssl": {"engine": engine["openssl"], "cryptography": backend.openssl_version_text()},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "threads": {"engine": engine["threads"], "cpus": os.cpu_count()},
        "platform": {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
                     "libc": " ".join(platform.libc_ver()).strip() or None, "platform": platform.platform()},
        "packages": {"cryptography": cryptography_version, "cffi": _distribution_version("cffi")},
    }


def _distribution_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None

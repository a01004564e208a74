"""Engine selection: the native core when it is built, else the reference.

``ENVELOPE_ENGINE=python|native`` forces one; forcing ``native`` where it is
not built is an error rather than a silent fallback.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..exceptions import UsageError
from .base import Engine

if TYPE_CHECKING:
    from .reference import ReferenceEngine

ENGINE_ENV = "ENVELOPE_ENGINE"


#: Why there is no native engine when its extension was never built (setup.py skips it,
#: with a warning, where no C compiler or no OpenSSL headers were found).
NOT_BUILT = ("the native core was not built when envelope was installed (no C compiler or no OpenSSL "
             "headers then); install a binary wheel, or see README.md, \"Requirements\"")


def __getattr__(name: str) -> Any:
    """``ReferenceEngine`` loads on first use: the native path never needs it (PEP 562)."""
    if name == "ReferenceEngine":
        from .reference import ReferenceEngine
        return ReferenceEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def native_unavailable() -> str | None:
    """Why the native engine cannot be loaded here, or None when it can."""
    try:
        from .native import NativeEngine  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name == "envelope._native":
            return NOT_BUILT
        return str(exc)
    except ImportError as exc:  # built, but it does not load (e.g. its libcrypto is missing)
        return str(exc)
    return None


def native_available() -> bool:
    return native_unavailable() is None


def get_engine(name: str | None = None, threads: int | None = None) -> Engine:
    """Return an engine by name (``python``, ``native`` or ``auto``)."""
    name = (name or os.environ.get(ENGINE_ENV) or "auto").lower()
    if threads is not None and threads < 1:
        raise UsageError("thread count must be at least 1")
    if name in ("python", "reference"):
        from .reference import ReferenceEngine
        return ReferenceEngine(threads)
    if name in ("native", "auto"):
        try:
            from .native import NativeEngine
        except ImportError:
            if name == "native":
                raise UsageError(f"the native engine is not available: {native_unavailable()}") from None
            from .reference import ReferenceEngine
            return ReferenceEngine(threads)
        return NativeEngine(threads)
    raise UsageError(f"unknown engine {name!r} (expected python or native)")


__all__ = ["Engine", "ReferenceEngine", "get_engine", "native_available", "native_unavailable", "ENGINE_ENV"]

"""Engine selection: the native core when it is built, else the reference.

``ENVELOPE_ENGINE=python|native`` forces one; forcing ``native`` where it is
not built is an error rather than a silent fallback.
"""

from __future__ import annotations

import os

from ..exceptions import UsageError
from .base import Engine
from .reference import ReferenceEngine

ENGINE_ENV = "ENVELOPE_ENGINE"


def native_available() -> bool:
    try:
        from . import native  # noqa: F401
    except ImportError:
        return False
    return True


def get_engine(name: str | None = None, threads: int | None = None) -> Engine:
    """Return an engine by name (``python``, ``native`` or ``auto``)."""
    name = (name or os.environ.get(ENGINE_ENV) or "auto").lower()
    if threads is not None and threads < 1:
        raise UsageError("thread count must be at least 1")
    if name in ("python", "reference"):
        return ReferenceEngine(threads)
    if name in ("native", "auto"):
        try:
            from .native import NativeEngine
        except ImportError:
            if name == "native":
                raise UsageError("the native engine is not built in this installation") from None
            return ReferenceEngine(threads)
        return NativeEngine(threads)
    raise UsageError(f"unknown engine {name!r} (expected python or native)")


__all__ = ["Engine", "ReferenceEngine", "get_engine", "native_available", "ENGINE_ENV"]

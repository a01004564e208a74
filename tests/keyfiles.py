"""Key files for tests, kept as a user must keep them: mode 0600 (raw-aes refuses one others can read)."""

from __future__ import annotations

from pathlib import Path


def write_key_file(path: Path, data: bytes) -> Path:
    """Write *data* to *path*, readable by its owner only; returns *path*."""
    path.write_bytes(data)
    path.chmod(0o600)
    return path

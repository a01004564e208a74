"""The header summary that ``inspect`` and ``s3 inspect`` print: for people, or as JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..format import Header, plaintext_size


def header_summary(header: Header, file_size: int | None) -> dict[str, Any]:
    size = header.size
    info: dict[str, Any] = {
        "format": "envelope",
        "version": header.version,
        "suite": header.suite_name,
        "suite_id": f"0x{header.suite:04x}",
        "chunk_size": header.chunk_size,
        "header_size": size,
        "file_id": header.file_id.hex(),
        "encryption_context": header.context,
        "wrapped_keys": [{"provider": w.provider, "key_id": w.key_id} for w in header.wrapped_keys],
    }
    if file_size is not None:
        try:
            info["plaintext_size"] = plaintext_size(size, file_size, header.chunk_size)
        except ValueError:
            info["plaintext_size"] = None  # impossible length: truncated or padded
    return info


def show_header(args: argparse.Namespace, info: dict[str, Any]) -> int:
    """Print a header summary for people, or as JSON with --json."""
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    rows = [
        ("format", f"envelope v{info['version']}"),
        ("suite", f"{info['suite']} ({info['suite_id']})"),
        ("chunk size", f"{info['chunk_size']} bytes"),
        ("header size", f"{info['header_size']} bytes"),
        ("file id", info["file_id"]),
    ]
    if "plaintext_size" in info:
        shown = "impossible for this chunk size (truncated?)" if info["plaintext_size"] is None else \
            f"{info['plaintext_size']} bytes"
        rows.append(("plaintext size", shown))
    pairs = [f"{k}={v}" for k, v in info["encryption_context"].items()] or ["(empty)"]
    rows += [("context", pair) if i == 0 else ("", pair) for i, pair in enumerate(pairs)]
    for i, w in enumerate(info["wrapped_keys"]):
        rows.append(("wrapped keys" if i == 0 else "", f"{w['provider']}:{w['key_id']}"))
    width = max(len(k) for k, _ in rows) + 2
    for key, value in rows:
        print(f"{key + ':' if key else '':<{width}}{value}")
    return 0

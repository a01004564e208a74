"""The header summary that ``inspect`` and ``s3 inspect`` print, and the per-file records of ``--json``."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ..format import Header, ciphertext_size, plaintext_size


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


def show_header(args: argparse.Namespace, info: dict[str, Any], indent: str = "") -> int:
    """Print a header summary for people (each line after *indent*), or as JSON with --json."""
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
        print(f"{indent}{key + ':' if key else '':<{width}}{value}")
    return 0


def file_record(src: str, dst: str, header: Header, counted: int, encrypted: bool, seconds: float, *,
                ranged: bool = False) -> dict[str, Any]:
    """What ``encrypt-file --json`` and ``decrypt-file --json`` print for one file.

    *counted* is the bytes the engine reported: the plaintext read when
    encrypting, the sealed body read when decrypting (a range: the plaintext
    written, and the ciphertext is the whole file's size).  The other size
    follows from the header, so it is right for pipes and devices too.
    """
    if encrypted:
        plain = counted
        sealed = ciphertext_size(header.size, plain, header.chunk_size)
    elif ranged:
        plain, sealed = counted, os.stat(src).st_size
    else:
        sealed = header.size + counted
        plain = plaintext_size(header.size, sealed, header.chunk_size)
    return {"input": src, "output": dst, "plaintext_size": plain, "ciphertext_size": sealed,
            "key_ids": [f"{w.provider}:{w.key_id}" for w in header.wrapped_keys], "seconds": round(seconds, 6)}


def print_records(records: list[dict[str, Any]]) -> None:
    """JSON Lines: one compact object per line, flushed, so ``jq`` sees each file as it is done."""
    for record in records:
        print(json.dumps(record), flush=True)

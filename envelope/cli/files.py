"""``encrypt-file``, ``decrypt-file`` and ``inspect``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..context import parse_pairs
from ..exceptions import UsageError
from ..format import DEFAULT_CHUNK_SIZE, Header, plaintext_size

if TYPE_CHECKING:
    from ..stream import Progress

#: Inputs below this size finish before a progress bar would be worth drawing.
PROGRESS_MIN_BYTES = 64 << 20

_SIZE_RE = re.compile(r"(\d+)\s*([kmg]?)(i?b)?\Z", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """``65536``, ``64K``, ``64KiB``, ``1M``: binary units, as chunk sizes are powers of two."""
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (examples: 65536, 64K, 1M)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_range(text: str) -> tuple[int, int | None]:
    start_s, sep, end_s = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected START:END, got {text!r}")
    start = parse_size(start_s) if start_s.strip() else 0
    end = parse_size(end_s) if end_s.strip() else None
    if end is not None and end < start:
        raise argparse.ArgumentTypeError(f"range end {end} is before its start {start}")
    return start, end


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="IN", help="input file, or - for stdin")
    p.add_argument("-o", "--output", metavar="OUT", help="output file, or - for stdout")
    p.add_argument("--key", action="append", default=[], metavar="REF",
                   help="master key: local:alias/NAME, local:KEY-ID, raw-aes:PATH, aws-kms:ARN|alias/NAME "
                        "(repeatable)")
    p.add_argument("--context", action="append", default=[], metavar="K=V", help="encryption context pair (repeatable)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or notices")
    p.add_argument("--threads", type=_positive_int, metavar="N", help="engine threads (default: all cores)")
    p.add_argument("--keystore", metavar="PATH", help="local keystore (default: $ENVELOPE_KEYSTORE or per-user)")
    aws_options(p)


def aws_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--region", metavar="REGION", help="AWS region for aws-kms keys not named by ARN ($AWS_REGION)")
    p.add_argument("--profile", metavar="NAME", help="AWS profile for aws-kms keys ($AWS_PROFILE)")


def apply_aws_options(args: argparse.Namespace) -> None:
    """--region/--profile mean exactly AWS_REGION/AWS_PROFILE: boto3 reads them, as it does everywhere else."""
    if getattr(args, "region", None):
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = args.region
    if getattr(args, "profile", None):
        os.environ["AWS_PROFILE"] = args.profile


def register(sub: Any) -> None:
    enc = sub.add_parser("encrypt-file", help="encrypt a file under one or more master keys",
                         description="Encrypt IN to OUT (default IN.envelope) with a fresh data key.")
    _common(enc)
    enc.add_argument("--chunk-size", type=parse_size, default=DEFAULT_CHUNK_SIZE, metavar="SIZE",
                     help=f"plaintext bytes per chunk, a power of two (default {DEFAULT_CHUNK_SIZE >> 10}K)")
    enc.set_defaults(handler=cmd_encrypt)

    dec = sub.add_parser("decrypt-file", help="decrypt a file",
                         description="Decrypt IN to OUT (default: IN without .envelope). "
                                     "Every --context pair must be present in the file.")
    _common(dec)
    dec.add_argument("--range", type=parse_range, metavar="START:END",
                     help="write only plaintext bytes START (inclusive) to END (exclusive); "
                          "either may be omitted; units K, M, G")
    dec.set_defaults(handler=cmd_decrypt)

    ins = sub.add_parser("inspect", help="show a file's header (no key needed, nothing secret shown)")
    ins.add_argument("file", metavar="FILE")
    ins.add_argument("--json", action="store_true", help="machine-readable output")
    ins.set_defaults(handler=cmd_inspect)


def _input_size(path: str) -> int | None:
    if path == "-":
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


@contextlib.contextmanager
def _progress_bar(args: argparse.Namespace, desc: str) -> Iterator[Progress | None]:
    size = _input_size(args.input)
    if args.quiet or not sys.stderr.isatty() or (size is not None and size < PROGRESS_MIN_BYTES):
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=size, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
              file=sys.stderr, leave=False) as bar:
        yield bar.update


def _notice(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    if args.quiet:
        return None
    return lambda message: print(f"envelope: {message}", file=sys.stderr)


def cmd_encrypt(args: argparse.Namespace) -> int:
    from .. import api

    context = parse_pairs(args.context)
    if args.output == "-" and sys.stdout.isatty():
        raise UsageError("refusing to write ciphertext to a terminal; use -o FILE or a pipe")
    with _progress_bar(args, "encrypt") as progress:
        api.encrypt_file(args.input, args.output, keys=args.key, context=context, chunk_size=args.chunk_size,
                         force=args.force, threads=args.threads, keystore=args.keystore,
                         progress=progress, notify=_notice(args))
    return 0


def cmd_decrypt(args: argparse.Namespace) -> int:
    from .. import api

    context = parse_pairs(args.context)
    if args.range is not None:
        output = args.output if args.output is not None else api.default_decrypted_name(args.input)
        api.decrypt_range(args.input, output, *args.range, keys=args.key, context=context, force=args.force,
                          threads=args.threads, keystore=args.keystore)
        return 0
    with _progress_bar(args, "decrypt") as progress:
        api.decrypt_file(args.input, args.output, keys=args.key, context=context, force=args.force,
                         threads=args.threads, keystore=args.keystore, progress=progress)
    return 0


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


def cmd_inspect(args: argparse.Namespace) -> int:
    from .. import api

    header = api.inspect_file(args.file)
    info = header_summary(header, _input_size(args.file))
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

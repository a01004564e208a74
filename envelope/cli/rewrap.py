"""``envelope rewrap``: new wrapped data keys for a file, its chunks untouched."""

from __future__ import annotations

import argparse
from typing import Any

from ..context import parse_pairs
from .common import say_implied_local


def register(sub: Any) -> None:
    p = sub.add_parser(
        "rewrap", help="re-wrap a file's data key under other master keys (chunks untouched)",
        description="Unwrap FILE's data key and wrap it under the --key master keys, replacing the "
                    "file's wrapped keys (after a rotation, or to move or add master keys). The body is "
                    "copied, never decrypted; with --in-place only the header is rewritten.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-k", "--key", action="append", default=[], metavar="REF", required=True,
                   help="master key to wrap under (repeatable): local:alias/NAME, raw-aes:PATH, ...")
    p.add_argument("--from-key", action="append", default=[], metavar="REF",
                   help="a master key that opens the file now (repeatable; default: the local keystore and the "
                        "--key keys)")
    p.add_argument("--unwrap-key", action="append", dest="from_key", help=argparse.SUPPRESS)  # its old name
    p.add_argument("-o", "--output", metavar="OUT", help="write the rewrapped file here (default: replace FILE)")
    p.add_argument("-c", "--context", action="append", default=[], metavar="K=V",
                   help="require this encryption-context pair in the file (repeatable)")
    p.add_argument("--in-place", action="store_true",
                   help="overwrite the header where it is (only when the new header has the same size)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(handler=cmd_rewrap)


def cmd_rewrap(args: argparse.Namespace) -> int:
    from ..rewrap import rewrap_file

    say_implied_local(args, args.key, args.from_key)
    header = rewrap_file(args.file, args.key, output=args.output, unwrap_keys=args.from_key or None,
                         context=parse_pairs(args.context), in_place=args.in_place, force=args.force,
                         keystore=args.keystore)
    if not args.quiet:
        names = ", ".join(f"{w.provider}:{w.key_id}" for w in header.wrapped_keys)
        print(f"rewrapped {args.output or args.file} for {names}")
    return 0

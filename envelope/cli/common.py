"""What every command module shares: exit codes, one-line errors, option types, AWS options.

Command modules import this and never each other or :mod:`.main`, so the
imports of the command line run one way: main -> command modules -> common.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable

from ..exceptions import (
    AuthenticationError,
    ContextMismatchError,
    EnvelopeError,
    FormatError,
    KeyringError,
    UsageError,
)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_FORMAT = 3
EXIT_AUTH = 4
EXIT_KEY = 5
EXIT_CONTEXT = 6
EXIT_IO = 7
EXIT_INTERRUPTED = 130

#: Most specific first: the first matching class decides the code.
_EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (UsageError, EXIT_USAGE),
    (FormatError, EXIT_FORMAT),
    (AuthenticationError, EXIT_AUTH),
    (KeyringError, EXIT_KEY),
    (ContextMismatchError, EXIT_CONTEXT),
    (EnvelopeError, EXIT_INTERNAL),
)


def exit_code(exc: BaseException) -> int:
    """The exit code for an error: EnvelopeError subclasses by kind, OSError as I/O."""
    if isinstance(exc, EnvelopeError):
        return next(code for cls, code in _EXIT_CODES if isinstance(exc, cls))
    return EXIT_IO if isinstance(exc, OSError) else EXIT_INTERNAL


def error_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, EnvelopeError):
        where = f" {exc.filename!r}" if exc.filename else ""
        return f"envelope: error: {exc.strerror or exc}{where}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"envelope: error: {text}"


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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_number(what: str) -> Callable[[str], float]:
    """An argparse type: a finite number above zero, the error naming *what* it counts."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = 0.0
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive number of {what}, got {text!r}")
        return value
    return parse


def aws_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--region", metavar="REGION", help="AWS region for aws-kms keys not named by ARN ($AWS_REGION)")
    p.add_argument("--profile", metavar="NAME", help="AWS profile for aws-kms keys ($AWS_PROFILE)")


def apply_aws_options(args: argparse.Namespace) -> None:
    """--region/--profile mean exactly AWS_REGION/AWS_PROFILE: boto3 reads them, as it does everywhere else."""
    if getattr(args, "region", None):
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = args.region
    if getattr(args, "profile", None):
        os.environ["AWS_PROFILE"] = args.profile

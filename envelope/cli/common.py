"""What every command module shares: exit codes, one-line errors, option types, AWS options.

Command modules import this and never each other or :mod:`.main`, so the
imports of the command line run one way: main -> command modules -> common.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

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


class ByteRange(NamedTuple):
    """``--range``: plaintext bytes [start, end), or with a negative start the last -start bytes.

    A tuple, so ``decrypt_range(src, dst, *rng)`` takes it as it is: a negative
    start means a suffix there too, as for ``envelope.s3.copies.get_range``.
    """

    start: int
    end: int | None


def parse_range(text: str) -> ByteRange:
    """``START:END`` (either may be left out; units K, M, G), or ``-N``: the last N bytes, as HTTP's ``bytes=-N``."""
    if text.startswith("-") and ":" not in text:
        n = parse_size(text[1:])
        if n == 0:
            raise argparse.ArgumentTypeError(f"{text!r} asks for the last 0 bytes: give -N with N at least 1")
        return ByteRange(-n, None)
    start_s, sep, end_s = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected START:END or -N (the last N bytes), got {text!r}")
    start = parse_size(start_s) if start_s.strip() else 0
    end = parse_size(end_s) if end_s.strip() else None
    if end is not None and end < start:
        raise argparse.ArgumentTypeError(f"range end {end} is before its start {start}")
    return ByteRange(start, end)


def range_option(p: argparse.ArgumentParser, what: str) -> None:
    """``--range``, the same for every command that reads part of a plaintext."""
    p.add_argument("--range", type=parse_range, metavar="START:END|-N",
                   help=f"{what} only plaintext bytes START (inclusive) to END (exclusive), either may be omitted, "
                        "or -N: the last N bytes; units K, M, G.  A range starting past the end is an error "
                        "naming the plaintext's size")


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


#: The options every command takes, before or after its name, as the aws CLI's are: (flags, argparse keywords).
#: The parser (main.py) adds them to every command; a command that has one of its own (keys init's
#: --region, the keystore's region) keeps its own help, and the option's value is the same wherever it
#: is given on the line.
GLOBAL_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--as",), {"dest": "principal", "metavar": "PRINCIPAL",
                 "help": "call the local keystore as this principal (NAME or local:user/NAME; "
                         "default $ENVELOPE_PRINCIPAL, else your OS user)"}),
    (("--keystore",), {"metavar": "PATH", "help": "local keystore file (default: $ENVELOPE_KEYSTORE or the "
                                                  "per-user keystore)"}),
    (("--json",), {"action": "store_true", "help": "machine-readable output (commands that have it)"}),
    (("-q", "--quiet"), {"action": "store_true", "help": "no progress bar or notices"}),
    (("--region",), {"metavar": "REGION", "help": "AWS region for aws-kms keys not named by ARN, and S3 "
                                                  "(sets AWS_REGION)"}),
    (("--profile",), {"metavar": "NAME", "help": "AWS profile (sets AWS_PROFILE)"}),
)


def apply_aws_options(args: argparse.Namespace) -> None:
    """--region/--profile mean exactly AWS_REGION/AWS_PROFILE: boto3 reads them, as it does everywhere else."""
    if getattr(args, "region", None):
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = args.region
    if getattr(args, "profile", None):
        os.environ["AWS_PROFILE"] = args.profile


def notice(args: argparse.Namespace) -> Callable[[str], object] | None:
    """Where a command's notices go: one line on stderr, or nowhere with --quiet."""
    if getattr(args, "quiet", False):
        return None
    return lambda message: print(f"envelope: {message}", file=sys.stderr)


def say_implied_local(args: argparse.Namespace, *references: Sequence[str] | None) -> None:
    """Say once which local key each scheme-less reference (``--key alias/db``) means, as encrypt-file does."""
    from ..keyrings.registry import implied_local

    say = notice(args)
    for group in references:
        for reference in group or ():
            implied_local(reference, say)

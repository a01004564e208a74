"""Entry point: argument parsing, and the one place errors become exit codes.

Each command group lives in its own module exposing ``register(subparsers)``;
a command's handler takes the parsed arguments and returns an exit code.  Every
envelope error is printed as one line on stderr, ``envelope: error: ...``, and
mapped to the exit code documented in README.md; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from ..exceptions import EnvelopeError
from .common import (  # the exit codes are part of the command line's interface: importable from here
    EXIT_AUTH,
    EXIT_CONTEXT,
    EXIT_FORMAT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_IO,
    EXIT_KEY,
    EXIT_OK,
    EXIT_USAGE,
    apply_aws_options,
    error_line,
    exit_code,
)

__all__ = ["EXIT_AUTH", "EXIT_CONTEXT", "EXIT_FORMAT", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_IO", "EXIT_KEY",
           "EXIT_OK", "EXIT_USAGE", "COMMAND_MODULES", "build_parser", "main", "run"]

class _VersionAction(argparse.Action):
    """--version, worked out only when asked: it loads the engine, which most commands never touch.

    With --json anywhere on the command line (argparse stops at --version, so
    the flag is looked for when the parser is built), the report for bug reports.
    """

    def __init__(self, *args: object, as_json: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.as_json = as_json

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        import json

        from .. import about

        print(json.dumps(about.report(), indent=2) if self.as_json else about.summary())
        parser.exit()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"envelope: error: {message}\n")


#: The module that registers each command, in the order of the help's command list.
#: A command named on the command line needs only its own module's parsers:
#: encrypting a file then imports neither S3 nor the keystore administration.
COMMAND_MODULES = {"encrypt-file": "files", "decrypt-file": "files", "inspect": "files", "rewrap": "rewrap",
                   "keys": "keys", "bench": "bench", "s3": "s3", "bulk": "bulk"}


def _modules_for(argv: Sequence[str] | None) -> list[str]:
    """The command modules that parsing *argv* needs: its command's, or all of them.

    All of them for no command, an unknown one, or any option before the
    command other than --as (--help, --version, an abbreviation): argparse then
    answers exactly as it would with every command registered.
    """
    everything = list(dict.fromkeys(COMMAND_MODULES.values()))
    args = list(argv or ())
    while args:
        arg = args.pop(0)
        if arg == "--as":
            args = args[1:]
        elif not arg.startswith("--as="):
            return [COMMAND_MODULES[arg]] if arg in COMMAND_MODULES else everything
    return everything


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the command line, with only the parsers its command needs."""
    parser = _Parser(prog="envelope", description="Streaming envelope encryption of files under KMS-held master keys.")
    parser.add_argument("--version", action=_VersionAction, nargs=0, as_json="--json" in (argv or ()),
                        help="show the version, the engine in use and its OpenSSL, and exit "
                             "(with --json: Python, OpenSSL, engine, threads and platform, for a bug report)")
    parser.add_argument("--as", dest="principal", metavar="PRINCIPAL",
                        help="call the local keystore as this principal (NAME or local:user/NAME; "
                             "default $ENVELOPE_PRINCIPAL, else your OS user)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _modules_for(argv):
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    from ..kms.policy.principal import PRINCIPAL_ENV, normalize

    previous = os.environ.get(PRINCIPAL_ENV)
    try:
        apply_aws_options(args)
        if args.principal:  # through the environment, so every keystore this command opens sees it
            os.environ[PRINCIPAL_ENV] = normalize(args.principal)
        return int(args.handler(args) or EXIT_OK)
    except KeyboardInterrupt:
        print("envelope: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (EnvelopeError, OSError) as exc:
        print(error_line(exc), file=sys.stderr)
        return exit_code(exc)
    finally:
        if args.principal:
            if previous is None:
                os.environ.pop(PRINCIPAL_ENV, None)
            else:
                os.environ[PRINCIPAL_ENV] = previous


def run() -> None:
    """Console-script entry point."""
    # A closed pipe downstream (envelope decrypt-file x - | head) is not an error worth a traceback.
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # SIGTERM unwinds like Ctrl-C, so temporary outputs are removed on the way out.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    sys.exit(main())


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    run()

"""Entry point: argument parsing, and the one place errors become exit codes.

Each command group lives in its own module exposing ``register(subparsers)``;
a command's handler takes the parsed arguments and returns an exit code.  Every
envelope error is printed as one line on stderr, ``envelope: error: ...``, and
mapped to the exit code documented in docs/cli.md; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

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
    GLOBAL_OPTIONS,
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
    """argparse, with every usage error on one line: the problem, the closest valid word, where --help is."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # ``--range -1M`` (the last MiB) is a value, as ``--range -1000`` already was, not an unknown option.
        self._negative_number_matcher = re.compile(r"^-\d+([kmg]i?b?)?$|^-\d*\.\d+$", re.IGNORECASE)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"envelope: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, extras = super().parse_known_args(args, namespace)
        if not hasattr(parsed, _LEAF):  # the innermost parser returns first: the command the line named
            setattr(parsed, _LEAF, self)
        return parsed, extras

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, extras = self.parse_known_args(args, namespace)
        leaf: _Parser = getattr(parsed, _LEAF, self)
        delattr(parsed, _LEAF)
        if extras:
            leaf.error(_unknown_argument(leaf, extras[0]))
        if parsed.json and not getattr(parsed, _HAS_JSON, True):
            leaf.error(f"{leaf.prog.removeprefix('envelope ')} has no JSON output")
        if hasattr(parsed, _HAS_JSON):
            delattr(parsed, _HAS_JSON)
        return parsed

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            raise argparse.ArgumentError(None, _invalid_choice(action, str(value)))


_LEAF = "_envelope_parser"
_HAS_JSON = "_envelope_has_json"


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    import difflib  # only when there is an error to explain

    close = difflib.get_close_matches(word, candidates, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _invalid_choice(action: argparse.Action, value: str) -> str:
    choices = [str(c) for c in action.choices or ()]
    if isinstance(action, argparse._SubParsersAction):  # COMMAND, ACTION, VERB
        return f"unknown {str(action.metavar or 'command').lower()} {value!r}" + _did_you_mean(value, choices)
    name = max(action.option_strings, key=len) if action.option_strings else str(action.metavar or action.dest)
    hint = _did_you_mean(value, choices) or f" (choose from {', '.join(choices)})"
    return f"invalid value {value!r} for {name}{hint}"


def _unknown_argument(parser: argparse.ArgumentParser, arg: str) -> str:
    if not arg.startswith("-") or arg == "-":
        return f"unexpected argument {arg!r}"
    option = arg.partition("=")[0] if arg.startswith("--") else arg
    known = [flag for action in parser._actions if action.help != argparse.SUPPRESS for flag in action.option_strings]
    return f"unknown option {option!r}" + _did_you_mean(option, known)


#: Global options that take a value, and those that do not (see GLOBAL_OPTIONS).
_GLOBAL_TAKES_VALUE = frozenset(f for flags, kw in GLOBAL_OPTIONS if "action" not in kw for f in flags)
_GLOBAL_FLAGS = frozenset(f for flags, kw in GLOBAL_OPTIONS if "action" in kw for f in flags)


def _take_global_options(parser: argparse.ArgumentParser) -> None:
    """Every global option on *parser* and the parsers under it, so it may follow the command.

    Their default is SUPPRESS there: a value given before the command is not
    overwritten by the command's default.  An option the command has itself
    (with the same meaning, i.e. the same dest) keeps its help and gets the
    same treatment.  A command that has no --json of its own refuses one.
    """
    group = None
    for flags, kwargs in GLOBAL_OPTIONS:
        dest = kwargs.get("dest") or flags[-1].lstrip("-").replace("-", "_")
        own = [parser._option_string_actions[f] for f in flags if f in parser._option_string_actions]
        for action in own:
            if action.dest == dest:
                action.default = argparse.SUPPRESS
        if own:
            continue
        if dest == "json":  # taken only to be refused in one line by a command, hidden from its help
            kwargs = {**kwargs, "help": argparse.SUPPRESS}
            if parser.get_default("handler") is not None:
                parser.set_defaults(**{_HAS_JSON: False})
        if group is None:
            group = parser.add_argument_group("global options (also before the command)")
        group.add_argument(*flags, **{**kwargs, "default": argparse.SUPPRESS})
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _take_global_options(child)


def _short_usage() -> str:
    """What ``envelope`` alone prints: the commands and where the rest is, without importing any of them."""
    return ("usage: envelope [--as PRINCIPAL] [--keystore PATH] [--json] [-q] [--region REGION] [--profile NAME] "
            "COMMAND ...\n"
            f"commands: {', '.join(COMMAND_MODULES)}\n"
            "envelope COMMAND --help shows a command's options; envelope --help, everything; envelope --version")


#: The module that registers each command, in the order of the help's command list.
#: A command named on the command line needs only its own module's parsers:
#: encrypting a file then imports neither S3 nor the keystore administration.
COMMAND_MODULES = {"encrypt-file": "files", "decrypt-file": "files", "inspect": "files", "rewrap": "rewrap",
                   "keys": "keys", "bench": "bench", "s3": "s3", "bulk": "bulk"}


def _modules_for(argv: Sequence[str] | None) -> list[str]:
    """The command modules that parsing *argv* needs: its command's, or all of them.

    Global options before the command are stepped over.  All of them for no
    command, an unknown one, or any other option before the command (--help,
    --version, an abbreviation): argparse then answers exactly as it would with
    every command registered.
    """
    everything = list(dict.fromkeys(COMMAND_MODULES.values()))
    args = list(argv or ())
    while args:
        arg = args.pop(0)
        if arg in _GLOBAL_TAKES_VALUE:
            args = args[1:]
        elif arg not in _GLOBAL_FLAGS and arg.partition("=")[0] not in _GLOBAL_TAKES_VALUE:
            return [COMMAND_MODULES[arg]] if arg in COMMAND_MODULES else everything
    return everything


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the command line, with only the parsers its command needs."""
    parser = _Parser(prog="envelope", description="Streaming envelope encryption of files under KMS-held master keys.",
                     epilog="The global options may be given before or after COMMAND.")
    parser.add_argument("--version", action=_VersionAction, nargs=0, as_json="--json" in (argv or ()),
                        help="show the version, the engine in use and its OpenSSL, and exit "
                             "(with --json: Python, OpenSSL, engine, threads and platform, for a bug report)")
    group = parser.add_argument_group("global options")
    for flags, kwargs in GLOBAL_OPTIONS:
        group.add_argument(*flags, **kwargs)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _modules_for(argv):
        importlib.import_module(f"{__package__}.{name}").register(sub)
    for child in dict.fromkeys(sub.choices.values()):
        _take_global_options(child)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        print(_short_usage(), file=sys.stderr)
        return EXIT_USAGE
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        with _global_environment(args):
            return int(args.handler(args) or EXIT_OK)
    except KeyboardInterrupt:
        print("envelope: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (EnvelopeError, OSError) as exc:
        print(error_line(exc), file=sys.stderr)
        return exit_code(exc)


@contextlib.contextmanager
def _global_environment(args: argparse.Namespace) -> Iterator[None]:
    """--as, --keystore, --region and --profile as their environment variables, for this command only.

    Through the environment, so every keystore and AWS client the command
    opens sees them (boto3 reads AWS_REGION and AWS_PROFILE, as everywhere else).
    """
    from ..kms.storage.paths import KEYSTORE_ENV
    from ..kms.policy.principal import PRINCIPAL_ENV, normalize

    names = (PRINCIPAL_ENV, KEYSTORE_ENV, "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")
    before = {name: os.environ.get(name) for name in names}
    try:
        if args.principal:
            os.environ[PRINCIPAL_ENV] = normalize(args.principal)
        if args.keystore:
            os.environ[KEYSTORE_ENV] = args.keystore
        apply_aws_options(args)
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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

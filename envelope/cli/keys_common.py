"""What the ``envelope keys`` action modules share: registering an action, opening the keystore, output.

The action modules import this, never :mod:`.keys` or each other; :mod:`.keys`
registers them all, so the imports run one way.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import PRIVATE_MODE, STDIO, atomic_output
from ..exceptions import UsageError
from ..format import read_exactly
from ..keyrings.registry import LOCAL_SCHEME
from ..kms.storage.paths import default_keystore_path
from ..pipeline import write_all

if TYPE_CHECKING:
    from ..kms.store import KeyStore

KEYSTORE_HELP = "local keystore file (default: $ENVELOPE_KEYSTORE or the per-user keystore)"
KEY_HELP = "key id, key ARN or alias/NAME"

Handler = Callable[[argparse.Namespace], int]
Option = tuple[Sequence[str], dict[str, Any]]


def add_action(parent: Any, name: str, handler: Handler, text: str, *options: Option,
               aws: Sequence[str] = (), key: str | None = None) -> argparse.ArgumentParser:
    """One ``envelope keys`` action (or a grant verb): its options, the common ones, its handler.

    *aws*: the ``aws kms`` verbs of the same operation, answered by this very parser.
    *key*: the help of the action's KEY (``KEY`` or ``--key-id KEY``), its first positional.
    """
    p: argparse.ArgumentParser = parent.add_parser(name, aliases=list(aws), help=text,
                                                   description=text[0].upper() + text[1:] + ".")
    if key is not None:
        add_key(p, key)
    for flags, kwargs in options:
        p.add_argument(*flags, **kwargs)
    common(p)
    p.set_defaults(handler=handler)
    return p


def key_reference(text: str) -> str:
    """KEY as the keystore reads it: ``local:`` dropped, so ``--key local:alias/db`` and ``keys describe
    alias/db`` name the key the same way (every key here is the local keystore's)."""
    scheme, sep, rest = text.partition(":")
    return rest if sep and scheme == LOCAL_SCHEME else text


def either(p: argparse.ArgumentParser, dest: str, metavar: str, flags: Sequence[str], help_: str,
           **kwargs: Any) -> None:
    """A required value given as a positional or as an ``aws kms`` option (``KEY`` or ``--key-id KEY``):
    one of them, not both (argparse says which is missing or doubled)."""
    convert = kwargs.get("type")
    if convert is not None:  # argparse converts an absent positional's default: SUPPRESS must pass as is
        kwargs["type"] = functools.wraps(convert)(lambda text: text if text is argparse.SUPPRESS else convert(text))
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument(dest, nargs="?", metavar=metavar, default=argparse.SUPPRESS, help=help_, **kwargs)
    group.add_argument(*flags, dest=dest, metavar=metavar, default=argparse.SUPPRESS,
                       help=f"the same as {metavar} (aws kms's spelling)", **kwargs)


def add_key(p: argparse.ArgumentParser, help_: str = KEY_HELP) -> None:
    either(p, "key", "KEY", ["--key-id"], help_, type=key_reference)


def aws_file(text: str) -> str:
    """A path, also in the AWS CLI's ``file://PATH`` and ``fileb://PATH`` forms."""
    for prefix in ("fileb://", "file://"):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


#: Tags in aws kms's shorthand (``--tags TagKey=K,TagValue=V ...``), beside an action's own K=V.
AWS_TAGS: Option = (["--tags"], {"dest": "aws_tags", "nargs": "+", "default": [], "metavar": "TagKey=K,TagValue=V",
                                 "help": "tags in aws kms's shorthand"})


def aws_tags(items: Sequence[str]) -> dict[str, str]:
    """``--tags TagKey=K,TagValue=V ...``, aws kms's shorthand, as a dict."""
    tags = {}
    for item in items:
        fields = dict(part.partition("=")[::2] for part in item.split(",", 1))
        if set(fields) != {"TagKey", "TagValue"}:
            raise UsageError(f"--tags {item!r}: expected TagKey=K,TagValue=V")
        tags[fields["TagKey"]] = fields["TagValue"]
    return tags


def common(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: when not given after the action, keep the value given before it (envelope keys --keystore P list).
    p.add_argument("--keystore", metavar="PATH", default=argparse.SUPPRESS, help=KEYSTORE_HELP)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def read_policy(path: str | None) -> str | None:
    """A key policy file's text, bounded (the policy parser has the 32 KiB limit and says so)."""
    if path is None:
        return None
    with open(path, "rb") as fh:
        return fh.read(64 * 1024).decode("utf-8", errors="replace")


def keystore_path(args: argparse.Namespace) -> Path:
    return Path(args.keystore).expanduser() if args.keystore else default_keystore_path()


def open_store(args: argparse.Namespace, create: bool = False) -> KeyStore:
    from ..kms.store import KeyStore

    return KeyStore(keystore_path(args), create=create)


def emit(args: argparse.Namespace, data: Any, text: str | Sequence[str]) -> int:
    """Print *data* as JSON with --json, else *text*; returns exit code 0."""
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(text if isinstance(text, str) else "\n".join(text))
    return 0


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
            for row in [header, *rows]]


def printable(text: str) -> str:
    """User text with control characters replaced, so a description cannot drive the terminal."""
    return "".join(c if c.isprintable() else "?" for c in text)


#: -o and its --force, for every action that writes raw bytes (``*OUTPUT`` in its options).
OUTPUT = ((["-o", "--output"], {"metavar": "FILE", "help": "write raw bytes to FILE (default: stdout)"}),
          (["--force"], {"action": "store_true", "help": "overwrite FILE if it exists"}))


def read_input(args: argparse.Namespace, limit: int, too_large: str) -> bytes:
    """At most *limit* bytes from --in or stdin; one more is the *too_large* error (``{limit}`` filled in),
    reported without reading the rest."""
    if args.input in (None, "-"):
        data = read_exactly(sys.stdin.buffer, limit + 1)
    else:
        with open(args.input, "rb") as fh:
            data = read_exactly(fh, limit + 1)
    if len(data) > limit:
        raise UsageError(too_large.format(limit=limit))
    return data


def write_bytes(args: argparse.Namespace, data: bytes | bytearray) -> int:
    """Raw bytes to -o FILE or stdout (never a terminal); --json is the action's own, in AWS's shape."""
    if args.output not in (None, STDIO):
        with atomic_output(args.output, force=args.force, mode=PRIVATE_MODE) as out:
            write_all(out, memoryview(data))
        return 0
    if sys.stdout.isatty():
        raise UsageError("refusing to write binary output to a terminal: use -o FILE or --json")
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


def wipe(buf: bytearray) -> None:
    from ..kms.storage.material import wipe as _wipe

    _wipe(buf)


def b64(data: bytes | bytearray) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")

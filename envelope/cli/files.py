"""``encrypt-file``, ``decrypt-file`` and ``inspect``."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import stat
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..context import parse_pairs
from ..exceptions import EnvelopeError, UsageError
from ..format import DEFAULT_CHUNK_SIZE, MAX_WRAPPED_KEYS
from ..keyrings.base import DEFAULT_MAX_WRAPPED_KEYS
from .common import (
    aws_options,
    error_line,
    exit_code,
    parse_range,
    parse_size,
    positive_int,
    positive_number,
)
from .header_view import header_summary, show_header

if TYPE_CHECKING:
    from ..cache import DataKeyCache
    from ..keyrings.base import MultiKeyring
    from ..stream import Progress

#: Inputs below this size finish before a progress bar would be worth drawing.
PROGRESS_MIN_BYTES = 64 << 20

def _wrapped_key_limit(text: str) -> int:
    value = positive_int(text)
    if value > MAX_WRAPPED_KEYS:
        raise argparse.ArgumentTypeError(f"at most {MAX_WRAPPED_KEYS} (the format's own limit), got {value}")
    return value


_seconds = positive_number("seconds")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IN", help="input file(s), or - for stdin")
    p.add_argument("-o", "--output", metavar="OUT", help="output file, or - for stdout (one input only)")
    p.add_argument("--output-dir", metavar="DIR", help="write each output into DIR under its default name")
    p.add_argument("--key", action="append", default=[], metavar="REF",
                   help="master key: local:alias/NAME, local:KEY-ID, raw-aes:PATH, aws-kms:ARN|alias/NAME "
                        "(repeatable)")
    p.add_argument("--context", action="append", default=[], metavar="K=V", help="encryption context pair (repeatable)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or notices")
    p.add_argument("--threads", type=positive_int, metavar="N", help="engine threads (default: all cores)")
    p.add_argument("--keystore", metavar="PATH", help="local keystore (default: $ENVELOPE_KEYSTORE or per-user)")
    aws_options(p)
    cache = p.add_argument_group("data-key cache (for many small files; off unless --cache-max-age is given)")
    cache.add_argument("--cache-max-age", type=_seconds, metavar="SECONDS",
                       help="reuse a data key for up to SECONDS after the key manager produced it")
    cache.add_argument("--cache-max-messages", type=positive_int, metavar="N",
                       help="encrypt at most N files under one cached data key")
    cache.add_argument("--cache-max-bytes", type=parse_size, metavar="SIZE",
                       help="encrypt at most SIZE plaintext bytes under one cached data key")


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
    dec.add_argument("--max-wrapped-keys", type=_wrapped_key_limit, default=DEFAULT_MAX_WRAPPED_KEYS, metavar="N",
                     help=f"refuse files with more than N wrapped keys (default {DEFAULT_MAX_WRAPPED_KEYS})")
    dec.set_defaults(handler=cmd_decrypt)

    ins = sub.add_parser("inspect", help="show a file's header (no key needed, nothing secret shown)")
    ins.add_argument("file", metavar="FILE")
    ins.add_argument("--json", action="store_true", help="machine-readable output")
    ins.set_defaults(handler=cmd_inspect)


def _cache(args: argparse.Namespace) -> DataKeyCache | None:
    if args.cache_max_age is None:
        if args.cache_max_messages is not None or args.cache_max_bytes is not None:
            raise UsageError("--cache-max-messages and --cache-max-bytes need --cache-max-age")
        return None
    from ..cache import CacheLimits, DataKeyCache

    return DataKeyCache(CacheLimits(args.cache_max_age, args.cache_max_messages, args.cache_max_bytes))


def _outputs(args: argparse.Namespace, default_name: Callable[[str], str]) -> list[tuple[str, str | None]]:
    """Pairs (input, output or None for the default name), after checking the options agree."""
    inputs: list[str] = args.inputs
    if "-" in inputs and len(inputs) > 1:
        raise UsageError("- (stdin) must be the only input")
    if args.output is not None and args.output_dir is not None:
        raise UsageError("give -o or --output-dir, not both")
    if args.output is not None:
        if len(inputs) > 1:
            raise UsageError("-o names one output; with several inputs use --output-dir DIR")
        return [(inputs[0], args.output)]
    if args.output_dir is not None:
        if not os.path.isdir(args.output_dir):
            raise UsageError(f"--output-dir {args.output_dir!r} is not a directory")
        if inputs == ["-"]:
            raise UsageError("stdin has no name to use in --output-dir; give -o")
        return [(src, os.path.join(args.output_dir, os.path.basename(default_name(src)))) for src in inputs]
    return [(src, None) for src in inputs]


def _each(args: argparse.Namespace, pairs: list[tuple[str, str | None]],
          work: Callable[[str, str | None], object]) -> int:
    """Run *work* on every pair; one failing file does not stop the others.  Exit code of the first failure."""
    if len(pairs) == 1:
        try:
            work(*pairs[0])
        except _SetupFailed as setup:
            raise setup.cause from None
        return 0
    first_failure, failed = 0, 0
    for src, dst in pairs:
        try:
            work(src, dst)
        except _SetupFailed as setup:
            print(error_line(setup.cause), file=sys.stderr)
            return exit_code(setup.cause)
        except (EnvelopeError, OSError) as exc:
            print(f"{error_line(exc)} ({src})", file=sys.stderr)
            failed += 1
            first_failure = first_failure or exit_code(exc)
    if failed:
        print(f"envelope: {failed} of {len(pairs)} files failed", file=sys.stderr)
    return first_failure


def _input_size(path: str) -> int | None:
    if path == "-":
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


@contextlib.contextmanager
def _progress_bar(args: argparse.Namespace, desc: str, path: str) -> Iterator[Progress | None]:
    size = _input_size(path)
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
    pairs = _outputs(args, api.default_encrypted_name)
    if pairs[0][1] == "-" and sys.stdout.isatty():
        raise UsageError("refusing to write ciphertext to a terminal; use -o FILE or a pipe")
    cache = _cache(args)
    keyring = _Once(lambda: api.encryption_keyring(args.key, keystore=args.keystore, notify=_notice(args),
                                                   cache=cache), encrypting=True)

    def encrypt(src: str, dst: str | None) -> None:
        dst = dst if dst is not None else api.default_encrypted_name(src)
        with _progress_bar(args, "encrypt", src) as progress:
            api.encrypt_file(src, dst, keys=keyring.get(src, dst, args.force), context=context, chunk_size=args.chunk_size,
                             force=args.force, threads=args.threads, progress=progress)

    try:
        return _each(args, pairs, encrypt)
    finally:
        if cache is not None:
            cache.clear()


def cmd_decrypt(args: argparse.Namespace) -> int:
    from .. import api

    context = parse_pairs(args.context)
    pairs = _outputs(args, api.default_decrypted_name)
    cache = _cache(args)
    keyring = _Once(lambda: api.decryption_keyring(args.key, keystore=args.keystore, cache=cache,
                                                   max_wrapped_keys=args.max_wrapped_keys, notify=_notice(args)),
                    encrypting=False)
    if args.range is not None:
        if len(pairs) > 1:
            raise UsageError("--range takes one input file")
        src, dst = pairs[0]
        dst = dst if dst is not None else api.default_decrypted_name(src)
        try:
            keys = keyring.get(src, dst, args.force)
        except _SetupFailed as setup:
            raise setup.cause from None
        api.decrypt_range(src, dst, *args.range, keys=keys, context=context, force=args.force, threads=args.threads)
        return 0

    def decrypt(src: str, dst: str | None) -> None:
        dst = dst if dst is not None else api.default_decrypted_name(src)
        with _progress_bar(args, "decrypt", src) as progress:
            api.decrypt_file(src, dst, keys=keyring.get(src, dst, args.force), context=context, force=args.force,
                             threads=args.threads, progress=progress)

    try:
        return _each(args, pairs, decrypt)
    finally:
        if cache is not None:
            cache.clear()


class _Once:
    """One keyring for every file (aliases resolved and clients made once), made when first needed.

    It is made only once the first input is known to exist, so a typo in a file
    name costs no KMS call and creates no default key.  The input is looked at,
    not opened: it is opened once, to be read, since a FIFO's data goes to
    whoever has it open (a second open lost what came in between, or waited for
    a writer that had already left).
    """

    def __init__(self, make: Callable[[], MultiKeyring], encrypting: bool) -> None:
        self._make = make
        self._encrypting = encrypting
        self._keyring: MultiKeyring | None = None

    def get(self, src: str, dst: str, force: bool) -> MultiKeyring:
        if self._keyring is None:
            from ..atomic import check_destination

            check_destination(dst, force)
            if src != "-" and stat.S_ISDIR(os.stat(src).st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), src)
            try:
                keyring = self._make()
                keyring.prepare(self._encrypting)
            except EnvelopeError as exc:
                raise _SetupFailed(exc) from None
            self._keyring = keyring
        return self._keyring


class _SetupFailed(Exception):
    """The keyring itself cannot work: no file of the batch can succeed, so the batch stops."""

    def __init__(self, cause: EnvelopeError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def cmd_inspect(args: argparse.Namespace) -> int:
    from .. import api

    header = api.inspect_file(args.file)
    return show_header(args, header_summary(header, _input_size(args.file)))



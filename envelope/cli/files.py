"""``encrypt-file``, ``decrypt-file`` and ``inspect``.

Short flags follow aws-encryption-cli and age, where people already have the
habit: ``-k`` (and on decrypt-file ``-i``, age's identity) for ``--key``,
``-c`` for ``--context``, ``-r`` for a directory tree.
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from ..context import parse_pairs
from ..exceptions import EnvelopeError, UsageError
from ..format import DEFAULT_CHUNK_SIZE, MAX_WRAPPED_KEYS
from ..keyrings.base import DEFAULT_MAX_WRAPPED_KEYS
from .common import (
    error_line,
    notice,
    exit_code,
    parse_size,
    positive_int,
    positive_number,
    range_option,
)
from .progress import Bar, wanted

if TYPE_CHECKING:
    from ..cache import DataKeyCache
    from ..context import EncryptionContext
    from ..format import Header
    from ..keyrings.base import MultiKeyring


def _wrapped_key_limit(text: str) -> int:
    value = positive_int(text)
    if value > MAX_WRAPPED_KEYS:
        raise argparse.ArgumentTypeError(f"at most {MAX_WRAPPED_KEYS} (the format's own limit), got {value}")
    return value


def _suffix(text: str) -> str:
    if not text or text in (".", "..") or "/" in text or os.sep in text or "\0" in text:
        raise argparse.ArgumentTypeError(f"a suffix is a non-empty name ending such as .enc, got {text!r}")
    return text


_seconds = positive_number("seconds")


def _common(p: argparse.ArgumentParser, key_flags: tuple[str, ...]) -> None:
    p.add_argument("inputs", nargs="+", metavar="IN", help="input file(s), or - for stdin; with -r, directories")
    p.add_argument("-o", "--output", metavar="OUT", help="output file, or - for stdout (one input only)")
    p.add_argument("--output-dir", metavar="DIR", help="write each output into DIR (created if missing)")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="IN may be a directory: every regular file under it goes to the same relative path "
                        "under --output-dir")
    p.add_argument("--suffix", type=_suffix, metavar="SUFFIX", help="name ending of encrypted files (default .envelope)")
    p.add_argument(*key_flags, "--key", dest="key", action="append", default=[], metavar="REF",
                   help="master key: local:alias/NAME, local:KEY-ID, raw-aes:PATH, aws-kms:ARN|alias/NAME "
                        "(repeatable)")
    p.add_argument("-c", "--context", action="append", default=[], metavar="K=V",
                   help="encryption context pair (repeatable)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per file on stdout: input, output, sizes, key ids, seconds")
    p.add_argument("--threads", type=positive_int, metavar="N", help="engine threads (default: all cores)")
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
    _common(enc, ("-k",))
    enc.add_argument("--chunk-size", type=parse_size, default=DEFAULT_CHUNK_SIZE, metavar="SIZE",
                     help=f"plaintext bytes per chunk, a power of two (default {DEFAULT_CHUNK_SIZE >> 10}K)")
    enc.set_defaults(handler=cmd_encrypt)

    dec = sub.add_parser("decrypt-file", help="decrypt a file",
                         description="Decrypt IN to OUT (default: IN without .envelope). "
                                     "Every --context pair must be present in the file. With -r, files "
                                     "not ending in the suffix are skipped with a notice.")
    _common(dec, ("-k", "-i"))
    range_option(dec, "write")
    dec.add_argument("--max-wrapped-keys", type=_wrapped_key_limit, default=DEFAULT_MAX_WRAPPED_KEYS, metavar="N",
                     help=f"refuse files with more than N wrapped keys (default {DEFAULT_MAX_WRAPPED_KEYS})")
    dec.set_defaults(handler=cmd_decrypt)

    ins = sub.add_parser("inspect", help="show files' headers (no key needed, nothing secret shown)")
    ins.add_argument("files", nargs="+", metavar="FILE")
    ins.add_argument("--json", action="store_true",
                     help="machine-readable output: one object, or with several files one object per line")
    ins.set_defaults(handler=cmd_inspect)


def _cache(args: argparse.Namespace) -> DataKeyCache | None:
    if args.cache_max_age is None:
        if args.cache_max_messages is not None or args.cache_max_bytes is not None:
            raise UsageError("--cache-max-messages and --cache-max-bytes need --cache-max-age")
        return None
    from ..cache import CacheLimits, DataKeyCache

    return DataKeyCache(CacheLimits(args.cache_max_age, args.cache_max_messages, args.cache_max_bytes))


class _Job(NamedTuple):
    """One file of a command: its input, and where its output goes."""

    src: str
    dst: str | None  # None: the default name beside the input
    tree: tuple[str, str] | None = None  # (output directory, name below it) for a file of a tree

    @property
    def shown(self) -> str:
        return self.tree[1] if self.tree else "stdin" if self.src == "-" else self.src

    def output(self, default_name: Callable[[str], str]) -> str:
        if self.tree is None:
            return self.dst if self.dst is not None else default_name(self.src)
        from ..paths import local_path

        root, rel = self.tree
        try:
            path = local_path(root, default_name(rel), through_last=False)
        except UsageError as exc:
            raise UsageError(f"refusing to write outside {root!r}: {exc}") from None
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path


def _directory_refused(src: str, encrypting: bool, suffix: str) -> UsageError:
    name = os.path.basename(os.path.normpath(src)) or "DIR"
    tar = f", or tar c {src} | envelope encrypt-file - -o {name}.tar{suffix}" if encrypting else ""
    return UsageError(f"{src!r} is a directory: use -r {src} --output-dir OUT{tar}")


def _plan(args: argparse.Namespace, default_name: Callable[[str], str], encrypting: bool,
          notify: Callable[[str], object] | None) -> list[_Job]:
    """The files to work on, after checking the options agree; trees walked, their odd entries noticed."""
    inputs: list[str] = args.inputs
    if "-" in inputs and len(inputs) > 1:
        raise UsageError("- (stdin) must be the only input")
    if args.output is not None and args.output_dir is not None:
        raise UsageError("give -o or --output-dir, not both")
    if args.recursive and args.output_dir is None:
        raise UsageError("-r needs --output-dir DIR, where the tree is rebuilt")
    for src in inputs:
        if src != "-" and not args.recursive and os.path.isdir(src):
            raise _directory_refused(src, encrypting, args.suffix)
    if args.output is not None:
        if len(inputs) > 1:
            raise UsageError("-o names one output; with several inputs use --output-dir DIR")
        return [_Job(inputs[0], args.output)]
    if args.output_dir is None:
        return [_Job(src, None) for src in inputs]
    if inputs == ["-"]:
        raise UsageError("stdin has no name to use in --output-dir; give -o")
    if os.path.lexists(args.output_dir) and not os.path.isdir(args.output_dir):
        raise UsageError(f"--output-dir {args.output_dir!r} is not a directory")
    os.makedirs(args.output_dir, exist_ok=True)
    jobs = []
    for src in inputs:
        if not (args.recursive and os.path.isdir(src)):
            jobs.append(_Job(src, os.path.join(args.output_dir, os.path.basename(default_name(src)))))
            continue
        jobs += _tree(src, args.output_dir, args.suffix, encrypting, notify)
    if not jobs:
        raise UsageError(f"nothing to do: no file under {', '.join(map(repr, inputs))}"
                         + ("" if encrypting else f" ends in {args.suffix} (--suffix?)"))
    return jobs


def _tree(top: str, out_dir: str, suffix: str, encrypting: bool,
          notify: Callable[[str], object] | None) -> Iterator[_Job]:
    from ..paths import tree_files

    for path, rel, why in tree_files(top, exclude=out_dir):
        if rel is not None and not encrypting and (not rel.endswith(suffix) or os.path.basename(rel) == suffix):
            rel, why = None, f"it does not end in {suffix}"
        if rel is None:
            if notify is not None:
                notify(f"skipped {path}: {why}")
            continue
        yield _Job(path, None, (out_dir, rel))


def _each(jobs: list[_Job], work: Callable[[_Job], object]) -> int:
    """Run *work* on every job; one failing file does not stop the others.  Exit code of the first failure."""
    if len(jobs) == 1:
        try:
            work(jobs[0])
        except _SetupFailed as setup:
            raise setup.cause from None
        return 0
    first_failure, failed = 0, 0
    for job in jobs:
        try:
            work(job)
        except _SetupFailed as setup:
            print(error_line(setup.cause), file=sys.stderr)
            return exit_code(setup.cause)
        except (EnvelopeError, OSError) as exc:
            print(f"{error_line(exc)} ({job.src})", file=sys.stderr)
            failed += 1
            first_failure = first_failure or exit_code(exc)
    if failed:
        print(f"envelope: {failed} of {len(jobs)} files failed", file=sys.stderr)
    return first_failure


def _input_size(path: str) -> int | None:
    if path == "-":
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _bar(args: argparse.Namespace, verb: str, jobs: list[_Job]) -> Bar:
    """One bar over all the files: a batch of small files takes as long as one big one."""
    sizes = [_input_size(job.src) for job in jobs]
    total = None if None in sizes else sum(s or 0 for s in sizes)
    return Bar(wanted(args.quiet), verb, total, count=len(jobs))


def _check_json(args: argparse.Namespace, jobs: list[_Job], default_name: Callable[[str], str]) -> None:
    if args.json and len(jobs) == 1 and jobs[0].tree is None and jobs[0].output(default_name) == "-":
        raise UsageError("--json prints to stdout, which carries the data with -o -; give -o FILE")


def _run(args: argparse.Namespace, verb: str, jobs: list[_Job], default_name: Callable[[str], str],
         keyring: _Once, context: EncryptionContext, call: Callable[..., Header]) -> int:
    """Each job through *call* (encrypt_file or decrypt_file) under one bar; a JSON line per file with --json."""
    with _bar(args, verb, jobs) as bar:
        def one(job: _Job) -> None:
            dst = job.output(default_name)
            keys = keyring.get(job.src, dst, args.force)
            bar.start(job.shown)
            counted = [0]

            def tick(n: int) -> None:
                counted[0] += n
                bar.advance(n)

            started = time.monotonic()
            header = call(job.src, dst, keys=keys, context=context, force=args.force,
                          threads=args.threads, progress=tick if bar.shown or args.json else None)
            bar.finished()
            if args.json:
                from .header_view import file_record, print_records

                print_records([file_record(job.src, dst, header, counted[0], verb == "encrypted",
                                           time.monotonic() - started)])
        return _each(jobs, one)


def cmd_encrypt(args: argparse.Namespace) -> int:
    from .. import api

    context = parse_pairs(args.context)
    args.suffix = args.suffix or api.SUFFIX

    def name(path: str) -> str:
        return api.default_encrypted_name(path, args.suffix)

    jobs = _plan(args, name, True, notice(args))
    _check_json(args, jobs, name)
    if jobs[0].tree is None and jobs[0].output(name) == "-" and sys.stdout.isatty():
        raise UsageError("refusing to write ciphertext to a terminal; use -o FILE or a pipe")
    cache = _cache(args)
    keyring = _Once(lambda: api.encryption_keyring(args.key, keystore=args.keystore, notify=notice(args),
                                                   cache=cache), encrypting=True)

    def encrypt(src: str, dst: str, **options: Any) -> Header:
        return api.encrypt_file(src, dst, chunk_size=args.chunk_size, **options)

    try:
        return _run(args, "encrypted", jobs, name, keyring, context, encrypt)
    finally:
        if cache is not None:
            cache.clear()


def cmd_decrypt(args: argparse.Namespace) -> int:
    from .. import api

    context = parse_pairs(args.context)
    args.suffix = args.suffix or api.SUFFIX

    def name(path: str) -> str:
        return api.default_decrypted_name(path, args.suffix)

    jobs = _plan(args, name, False, notice(args))
    _check_json(args, jobs, name)
    cache = _cache(args)
    keyring = _Once(lambda: api.decryption_keyring(args.key, keystore=args.keystore, cache=cache,
                                                   max_wrapped_keys=args.max_wrapped_keys, notify=notice(args)),
                    encrypting=False)
    if args.range is not None:
        if len(jobs) > 1:
            raise UsageError("--range takes one input file")
        src, dst = jobs[0].src, jobs[0].output(name)
        try:
            keys = keyring.get(src, dst, args.force)
        except _SetupFailed as setup:
            raise setup.cause from None
        started = time.monotonic()
        done = api.decrypt_range(src, dst, *args.range, keys=keys, context=context, force=args.force,
                                 threads=args.threads)
        if args.json:
            from .header_view import file_record, print_records

            print_records([file_record(src, dst, api.inspect_file(src), done, False, time.monotonic() - started,
                                       ranged=True)])
        return 0

    try:
        return _run(args, "decrypted", jobs, name, keyring, context, api.decrypt_file)
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
    """One file: today's object (or table).  Several: one compact JSON object per line, each naming its file."""
    from .. import api
    from .header_view import header_summary, print_records, show_header

    files: list[str] = args.files

    def one(job: _Job) -> None:
        info = header_summary(api.inspect_file(job.src), _input_size(job.src))
        if len(files) == 1:
            show_header(args, info)
        elif args.json:
            print_records([{"file": job.src, **info}])
        else:
            print(f"{job.src}:")
            show_header(args, info, indent="  ")

    return _each([_Job(path, None) for path in files], one)

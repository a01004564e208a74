"""``envelope bulk encrypt|decrypt|rewrap|verify SOURCE [DEST]``: whole prefixes and trees, on Dask.

SOURCE and DEST are ``s3://BUCKET/PREFIX/`` or local directories.  The job
runs on a local cluster of worker processes sized to this machine, or on
the cluster at ``--scheduler`` (or dask's own configured address).  One
object's failure is a row of the manifest and a line at the end, never the
end of the job; a job with failures exits 7.  ``--resume JOB`` runs again
only what is not done.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..context import parse_pairs
from ..exceptions import UsageError
from .common import error_line, positive_int, positive_number, say_implied_local

EXIT_FAILURES = 7


def register(sub: Any) -> None:
    bulk = sub.add_parser("bulk", help="encrypt, decrypt, rewrap or verify whole prefixes and trees (Dask)",
                          description=__doc__.split("\n\n")[1])
    verbs = bulk.add_subparsers(dest="bulk_command", metavar="VERB", parser_class=type(bulk))
    verbs.required = True
    helps = {"encrypt": "a tree or prefix into another (local files gain .envelope)",
             "decrypt": "a prefix or tree of envelope objects into a directory (files lose .envelope)",
             "rewrap": "new wrapped data keys under --key (objects in place; bodies copied inside S3)",
             "verify": "open every header and chunk; report the key ids each object is under"}
    for verb, text in helps.items():
        p = verbs.add_parser(verb, help=text, description=text)
        p.add_argument("src", metavar="SOURCE", nargs="?", help="s3://BUCKET/PREFIX/ or a directory "
                       "(may be left out with --resume)")
        if verb != "verify":
            p.add_argument("dst", metavar="DEST", nargs="?", help="s3://BUCKET/PREFIX/ or a directory"
                           + (" (default: in place)" if verb == "rewrap" else ""))
        p.add_argument("-k", "--key", action="append", default=[], metavar="REF",
                       help="master key reference (repeatable)" + (" to wrap under" if verb == "rewrap" else ""))
        if verb == "rewrap":
            p.add_argument("--from-key", action="append", default=[], metavar="REF",
                           help="a master key that opens the objects now (repeatable; default: the local keystore "
                                "or --key)")
        if verb == "verify":
            p.add_argument("--headers-only", action="store_true",
                           help="check each header and key commitment only, not every chunk")
        p.add_argument("-c", "--context", action="append", default=[], metavar="K=V",
                       help="encryption context pair (required when reading)")
        p.add_argument("--include", action="append", default=[], metavar="GLOB",
                       help="only names (relative to SOURCE) matching GLOB (repeatable)")
        p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip names matching GLOB")
        p.add_argument("--scheduler", metavar="ADDRESS",
                       help="a Dask scheduler (tcp://… or tls://…, with dask's TLS settings); default: a local "
                            "cluster of worker processes")
        p.add_argument("--workers", type=positive_int, metavar="N", help="worker processes of the local cluster")
        p.add_argument("--threads", type=positive_int, metavar="T", help="threads per worker of the local cluster")
        p.add_argument("--manifest", metavar="PATH|s3://…",
                       help="where the job's record goes: an SQLite file, or JSON Lines under an S3 prefix")
        p.add_argument("--resume", metavar="JOB", help="run again what job JOB did not finish")
        p.add_argument("--dry-run", action="store_true", help="list what would be done, and its size")
        p.add_argument("--cache-max-age", type=positive_number("seconds"), metavar="SECONDS",
                       help="each worker process reuses a data key for up to SECONDS")
        p.add_argument("--max-kms-rps", type=positive_number("requests per second"), metavar="R",
                       help="at most R key manager calls per second across the whole cluster")
        p.add_argument("--force", action="store_true", help="overwrite existing local files")
        p.add_argument("--json", action="store_true", help="the summary as JSON on stdout")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        p.add_argument("--endpoint-url", metavar="URL",
                       help="S3 endpoint (default: boto3's, e.g. $AWS_ENDPOINT_URL_S3)")
        p.set_defaults(handler=cmd_bulk)


def cmd_bulk(args: argparse.Namespace) -> int:
    from ..bulk.driver import Options, run

    if args.src is None and args.resume is None:
        raise UsageError(f"bulk {args.bulk_command} needs SOURCE (or --resume JOB)")
    if args.bulk_command == "rewrap" and not args.key and args.resume is None:
        raise UsageError("rewrap needs at least one --key to wrap the data keys under")
    say_implied_local(args, args.key, getattr(args, "from_key", None))  # the workers resolve them, silently
    options = Options(keys=args.key, from_keys=getattr(args, "from_key", []), context=parse_pairs(args.context),
                      include=args.include, exclude=args.exclude, cache_max_age=args.cache_max_age,
                      max_kms_rps=args.max_kms_rps, endpoint_url=args.endpoint_url, region=args.region,
                      keystore=args.keystore, headers_only=getattr(args, "headers_only", False), force=args.force)
    bar = _Progress(show=not (args.quiet or args.json) and sys.stderr.isatty())
    try:  # a job that stops (a key no object can use) ends its bar before the error line
        result = run(args.bulk_command, args.src, getattr(args, "dst", None), options=options,
                     scheduler=args.scheduler, workers=args.workers, threads=args.threads, manifest=args.manifest,
                     resume=args.resume, dry_run=args.dry_run, on_start=bar.start, on_result=bar.advance)
    finally:
        bar.close()
    if args.dry_run:
        return _show_plan(args, result)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for src, error in result.failures:
            print(error_line(UsageError(f"{src}: {error}")), file=sys.stderr)
        print(f"job {result.job}: {result.done} done, {result.skipped} skipped, {result.failed} failed, "
              f"{result.bytes} bytes, {result.kms_calls} KMS calls, {result.seconds:.1f} s "
              f"(manifest {result.manifest})")
        for key_id, count in sorted(result.key_ids.items()):
            print(f"  {count} under {key_id}")
    return 0 if result.ok else EXIT_FAILURES


def _show_plan(args: argparse.Namespace, result: Any) -> int:
    if args.json:
        print(json.dumps({"items": [{"src": i.src, "dst": i.dst, "size": i.size} for i in result.planned],
                          "refused": [{"src": s, "error": e} for s, e in result.failures]}, indent=2))
    else:
        for item in result.planned:
            print(f"{item.src} -> {item.dst or '(in place)'}  {item.size}")
        for src, error in result.failures:
            print(f"refused: {src}: {error}", file=sys.stderr)
        print(f"{len(result.planned)} objects, {sum(i.size for i in result.planned)} bytes")
    return 0


class _Progress:
    """A tqdm bar over completed objects, with the bytes done; the dashboard link first, when there is one."""

    def __init__(self, show: bool) -> None:
        self._show, self._bar, self._bytes = show, None, 0

    def start(self, result: Any, objects: int, total_bytes: int) -> None:
        if result.dashboard and self._show:
            print(f"envelope: dashboard: {result.dashboard}", file=sys.stderr)
        if self._show:
            from tqdm import tqdm

            self._bar = tqdm(total=objects, unit="obj", file=sys.stderr, leave=False, desc=f"bulk {result.operation}")
            self._total = total_bytes

    def advance(self, row: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bytes += int(row.get("bytes") or 0)
            self._bar.set_postfix_str(f"{self._bytes >> 20}/{self._total >> 20} MiB", refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

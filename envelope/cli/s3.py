"""``envelope s3 cp`` and ``envelope s3 inspect``: encrypted objects from the command line.

``cp`` copies local → S3 (encrypting), S3 → local (decrypting; ``--range``
for part of an object) and S3 → S3 (the encrypted body is copied by S3 itself,
never decrypted).  ``--recursive`` copies a directory to a prefix or a prefix
to a directory, several objects at a time.  The S3 client is boto3's, so
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, ``AWS_REGION`` and profiles
work as they do for any boto3 program; ``--endpoint-url`` overrides them.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..atomic import STDIO
from ..context import parse_pairs
from ..exceptions import EnvelopeError, UsageError
from ..s3.copies import Job, copy, plan
from ..s3.names import S3_SCHEME, split_url
from .common import error_line, exit_code, range_option, say_implied_local
from .header_view import header_summary, show_header

PARALLEL_OBJECTS = 4


def register(sub: Any) -> None:
    s3 = sub.add_parser("s3", help="client-side encrypted S3 objects: cp, rewrap, inspect",
                        description="Copy objects to and from S3, encrypted on this machine.")
    verbs = s3.add_subparsers(dest="s3_command", metavar="VERB", parser_class=type(s3))
    verbs.required = True
    cp = verbs.add_parser("cp", help="copy local <-> S3, or S3 -> S3", description=__doc__.split("\n\n")[1])
    cp.add_argument("src", metavar="SRC",
                    help="a local path, - for stdin (a pipe goes up in parts as it is read), or s3://BUCKET/KEY")
    cp.add_argument("dst", metavar="DST",
                    help="a local path, - for stdout, or s3://BUCKET/KEY.  Written to stdout, each chunk is "
                         "released once its own tag verified, as by decrypt-file -o -: an object cut short or "
                         "damaged ends with a non-zero exit status after the chunks before the damage, so check "
                         "it (a --range, and an S3 Encryption Client object, are written only once all verified)")
    cp.add_argument("-k", "--key", action="append", default=[], metavar="REF",
                    help="master key reference (repeatable; default: the local default key)")
    cp.add_argument("-c", "--context", action="append", default=[], metavar="K=V",
                    help="encryption context pair (repeatable)")
    range_option(cp, "download")
    cp.add_argument("-r", "--recursive", action="store_true",
                    help="a directory to a prefix, or a prefix to a directory (keys with an empty, '.' or '..' part, "
                         "a NUL, or a path out of the directory are refused, each on stderr; the rest is copied)")
    cp.add_argument("--force", action="store_true", help="overwrite an existing local file")
    cp.add_argument("--format", dest="object_format", choices=("envelope", "s3ec-v2", "s3ec-v3"), default="envelope",
                    help="object format for uploads: envelope's own (default), or AWS's S3 Encryption Client "
                         "V2/V3 (one aws-kms key); downloads read every format")
    cp.add_argument("--legacy-unauthenticated-range", action="store_true",
                    help="allow --range on S3 Encryption Client objects: decrypted WITHOUT authentication "
                         "(their one tag covers the whole object)")
    cp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _client_options(cp)
    cp.set_defaults(handler=cmd_cp)
    rw = verbs.add_parser("rewrap", help="new wrapped data keys for objects; bodies copied inside S3",
                          description="Wrap each object's data key under --key instead; the body is copied by S3 "
                                      "(UploadPartCopy), never downloaded or decrypted.")
    rw.add_argument("urls", nargs="+", metavar="s3://BUCKET/KEY")
    rw.add_argument("-k", "--key", action="append", required=True, metavar="REF",
                    help="the new master key (repeatable)")
    rw.add_argument("--from-key", action="append", default=[], metavar="REF",
                    help="a master key that opens the objects now (repeatable; default: any key of the local "
                         "keystore)")
    rw.add_argument("-c", "--context", action="append", default=[], metavar="K=V",
                    help="required encryption context pair (repeatable)")
    rw.add_argument("-q", "--quiet", action="store_true", help="no per-object line")
    _client_options(rw)
    rw.set_defaults(handler=cmd_rewrap)
    ins = verbs.add_parser("inspect", help="show an object's header (no key needed)")
    ins.add_argument("url", metavar="s3://BUCKET/KEY")
    ins.add_argument("--json", action="store_true", help="machine-readable output")
    _client_options(ins)
    ins.set_defaults(handler=cmd_inspect)


def _client_options(p: argparse.ArgumentParser) -> None:
    """(--region, --profile and --keystore are global options, which every command takes.)"""
    p.add_argument("--endpoint-url", metavar="URL", help="S3 endpoint (default: boto3's, e.g. $AWS_ENDPOINT_URL_S3)")


def cmd_cp(args: argparse.Namespace) -> int:
    src_s3, dst_s3 = args.src.startswith(S3_SCHEME), args.dst.startswith(S3_SCHEME)
    if not (src_s3 or dst_s3):
        raise UsageError("one of SRC and DST must be an s3:// URL (for local files use encrypt-file)")
    if args.range is not None and (dst_s3 or args.recursive):
        raise UsageError("--range is for downloading one object")
    if args.recursive and STDIO in (args.src, args.dst):
        raise UsageError("- (stdin or stdout) is one stream, not a directory: --recursive needs a path")
    with _errors(args.src if src_s3 else args.dst):
        client = _encrypted_client(args)
        jobs, refused = plan(client, args.src, args.dst, recursive=args.recursive, ranged=args.range is not None)
        for reason in refused:  # each on its own line; the other objects are still copied
            print(error_line(reason), file=sys.stderr)
        total = sum(size for _, _, size in jobs)
        with _progress(args, total) as advance:
            def one(job: Job) -> None:
                told, lock = [0], threading.Lock()

                def tick(n: int) -> None:  # bytes as they move; the rest (a copy inside S3) at the end
                    with lock:
                        told[0] += n
                    advance(n)

                copy(client, job[0], job[1], tick, force=args.force, byte_range=args.range)
                advance(max(0, job[2] - told[0]))

            if len(jobs) == 1:
                one(jobs[0])
            else:
                with ThreadPoolExecutor(max_workers=PARALLEL_OBJECTS) as pool:
                    for future in [pool.submit(one, job) for job in jobs]:
                        future.result()
    if refused:
        print(f"envelope: {len(refused)} of {len(refused) + len(jobs)} objects refused", file=sys.stderr)
        return exit_code(refused[0])
    return 0


def cmd_rewrap(args: argparse.Namespace) -> int:
    from ..s3 import EncryptedS3Client

    for url in args.urls:
        bucket, key = split_url(url)
        with _errors(url):
            say_implied_local(args, args.key, args.from_key)
            client = EncryptedS3Client(_boto_client(args), keys=args.from_key or None,
                                       context=parse_pairs(args.context), keystore=args.keystore)
            result = client.rewrap_object(Bucket=bucket, Key=key, keys=args.key)
        if not args.quiet:
            names = ", ".join(f"{w.provider}:{w.key_id}" for w in result["WrappedKeys"])
            print(f"{url}: rewrapped for {names}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..format import read_header
    from ..s3.ranged import RangedObject
    from ..s3.s3ec import summary
    from ..s3.s3ec_format import is_s3ec

    bucket, key = split_url(args.url)
    with _errors(args.url):
        client = _boto_client(args)
        head = client.head_object(Bucket=bucket, Key=key)
        if is_s3ec(head.get("Metadata")):
            return _show_s3ec(args, summary(head, bucket, key))
        source = RangedObject(client, bucket, key, int(head["ContentLength"]), head["ETag"], window=64 << 10)
        header, _ = read_header(source)  # type: ignore[arg-type]
    return show_header(args, header_summary(header, int(head["ContentLength"])))


# -- internals -------------------------------------------------------------------------------------------


def _show_s3ec(args: argparse.Namespace, info: dict[str, Any]) -> int:
    """An S3 Encryption Client object's metadata, for people or as JSON."""
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    context = info["encryption_context"]
    pairs = ["(in the instruction file)"] if context is None else \
        [f"{k}={v}" for k, v in context.items()] or ["(empty)"]
    rows = [("format", f"{info['format']} (AWS S3 Encryption Client, AES-256-GCM, KMS-wrapped data key)"),
            ("key commitment", "yes" if info["key_commitment"] else "no"),
            ("plaintext size", f"{info['plaintext_size']} bytes")]
    rows += [("context", pair) if i == 0 else ("", pair) for i, pair in enumerate(pairs)]
    width = max(len(k) for k, _ in rows) + 2
    for name, value in rows:
        print(f"{name + ':' if name else '':<{width}}{value}")
    return 0


def _encrypted_client(args: argparse.Namespace) -> Any:
    from ..s3 import EncryptedS3Client

    say_implied_local(args, args.key)
    return EncryptedS3Client(_boto_client(args), keys=args.key or None, context=parse_pairs(args.context),
                             keystore=args.keystore, object_format=args.object_format,
                             legacy_unauthenticated_ranges=args.legacy_unauthenticated_range)


def _boto_client(args: argparse.Namespace) -> Any:
    """boto3's S3 client, from the Session the process's KMS clients come from too."""
    from ..keyrings.aws_client import env_region, service_client
    from ..optional import require

    require("boto3", "s3", "envelope s3")
    return service_client("s3", region_name=env_region(), endpoint_url=args.endpoint_url or None)


_HTTP_CODES = {"404": "not found (no such bucket or key)", "403": "forbidden (access denied)",
               "412": "the object changed while it was being read"}


class _errors:
    """botocore's errors as one line: S3's code and message, exit code 7 (I/O) like other remote failures."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if exc is None or isinstance(exc, (EnvelopeError, KeyboardInterrupt)):
            return
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            text = _HTTP_CODES.get(code) or f"{code}: {error.get('Message', '')}".rstrip(": ")
            raise OSError(f"{self._what}: S3 {exc.operation_name} failed: {text}") from None
        if isinstance(exc, BotoCoreError):
            raise OSError(f"{self._what}: S3: {' '.join(str(exc).split())}") from None


class _progress:
    """The command line's one progress bar (envelope.cli.progress) over every byte of the copy, named by SRC."""

    def __init__(self, args: argparse.Namespace, total: int) -> None:
        from .progress import Bar, wanted

        self._bar = Bar(wanted(args.quiet) and total > 0, "copied", total, label=args.src)
        self._bar.start(args.src)

    def __enter__(self) -> Any:
        return self._bar.advance

    def __exit__(self, kind: object, *exc: object) -> None:
        self._bar.close(ok=kind is None)

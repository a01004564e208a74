"""``envelope bench``: measure this machine before trusting it with a petabyte.

Prints a table (or ``--json`` / ``--markdown``), draws ``--plot FILE.png`` when
matplotlib is installed (``pip install 'envelope[plot]'``), and shows a
progress bar on a terminal.  ``--quick`` is a smoke run of a few seconds.
The measurements themselves are :mod:`envelope.bench`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..exceptions import UsageError
from ..optional import require
from .common import parse_size

DEFAULT_CHUNKS = "64K,256K,1M,4M"


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure cipher, file and key-manager throughput on this machine",
                       description="Measure the cipher in memory (against openssl speed), files against cp, "
                                   "and each --key's data-key latency; recommend settings.")
    p.add_argument("--size", type=parse_size, default=256 << 20, metavar="SIZE",
                   help="size of the generated file (default 256M)")
    p.add_argument("--dir", metavar="DIR", help="where to write it: the disk to measure (default: the temp dir)")
    p.add_argument("--chunk-sizes", default=DEFAULT_CHUNKS, metavar="LIST", help=f"default {DEFAULT_CHUNKS}")
    p.add_argument("--threads", default=None, metavar="LIST", help="thread counts (default 1..cores)")
    p.add_argument("--batch", type=parse_size, default=64 << 20, metavar="SIZE",
                   help="in-memory batch per measurement (default 64M)")
    p.add_argument("--runs", type=int, default=3, metavar="N", help="runs per figure, median reported (default 3)")
    p.add_argument("-k", "--key", action="append", default=[], metavar="REF",
                   help="also time data keys from this key manager (repeatable), e.g. local:alias/prod")
    p.add_argument("--calls", type=int, default=20, metavar="N", help="data keys per --key (default 20)")
    p.add_argument("--no-files", action="store_true", help="skip the file measurement")
    p.add_argument("--quick", action="store_true", help="a few seconds: small sizes, one run")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="machine-readable output")
    out.add_argument("--markdown", action="store_true", help="markdown tables")
    p.add_argument("--plot", metavar="FILE.png", help="draw throughput against chunk size and threads")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from .. import bench

    if args.plot:
        _require_matplotlib()
    if args.runs < 1 or args.calls < 1:
        raise UsageError("--runs and --calls must be at least 1")
    cpus = os.cpu_count() or 1
    chunks = [parse_size(c) for c in args.chunk_sizes.split(",") if c]
    threads = _int_list(args.threads) if args.threads else list(range(1, cpus + 1))
    size, batch, runs = args.size, args.batch, args.runs
    if args.quick:
        chunks, threads, size, batch, runs = [c for c in chunks if c <= 1 << 20][:2] or [256 << 10], \
            threads[:2], min(size, 8 << 20), min(batch, 4 << 20), 1
    from ..engines import get_engine

    report = bench.Report(cpus=cpus, engine_name="native" if type(get_engine()).__name__ == "NativeEngine"
                          else "python")
    steps = len(chunks) * (runs + 1) + (0 if args.no_files else runs + 1) + len(args.key) * (args.calls + 1) + 1
    with _bar(args, steps) as tick:
        for chunk in chunks:
            rate = bench.openssl_speed(chunk, 1)
            if rate is not None:
                report.openssl[chunk] = rate
        tick("openssl speed")
        report.engines = bench.engine_throughput(chunks, threads, batch, runs, progress=tick)
        if not args.no_files:
            report.files.append(bench.file_roundtrip(size, args.dir, 256 << 10, None, runs, progress=tick))
        for ref in args.key:
            report.keys.append(bench.key_latency(ref, args.calls, progress=tick))
    report.recommended = bench.recommend(report)
    if args.plot:
        _plot(report, args.plot)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print("\n".join(_tables(report, markdown=args.markdown)))
    return 0


def _tables(report: Any, markdown: bool) -> list[str]:
    def table(header: list[str], rows: list[list[str]]) -> list[str]:
        if markdown:
            return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
                   ["| " + " | ".join(r) + " |" for r in rows]
        widths = [max(len(x) for x in col) for col in zip(header, *rows)]
        return ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in [header, *rows]]

    lines = [f"{'## ' if markdown else ''}Cipher in memory (MB/s, {report.cpus} cores; engine {report.engine_name})",
             ""]
    rows = []
    for r in report.engines:
        ceiling = report.openssl.get(r.chunk_size)
        rows.append([r.engine, _size(r.chunk_size), str(r.threads), f"{r.seal_mb_s:,.0f}", f"{r.open_mb_s:,.0f}",
                     f"{ceiling * min(r.threads, report.cpus):,.0f}" if ceiling else "-"])
    lines += table(["engine", "chunk", "threads", "seal", "open", "openssl × threads"], rows)
    if report.files:
        lines += ["", f"{'## ' if markdown else ''}Files, file to file (seconds, median)", ""]
        lines += table(["size", "cp", "encrypt", "decrypt", "encrypt/cp", "decrypt/cp"],
                       [[_size(f.size), f"{f.cp_s:.2f}", f"{f.encrypt_s:.2f}", f"{f.decrypt_s:.2f}",
                         f"{f.encrypt_ratio:.2f}", f"{f.decrypt_ratio:.2f}"] for f in report.files])
    if report.keys:
        lines += ["", f"{'## ' if markdown else ''}Data keys (ms, median)", ""]
        lines += table(["key", "new data key", "unwrap"],
                       [[k.reference, f"{k.generate_ms:.2f}", f"{k.unwrap_ms:.2f}"] for k in report.keys])
    lines += ["", f"{'## ' if markdown else ''}Recommended", ""]
    advice = report.recommended
    if "chunk_size" in advice:
        lines.append(f"{'- ' if markdown else ''}--chunk-size {_size(advice['chunk_size'])} --threads "
                     f"{advice['threads']} (about {advice['cipher_mb_s']:,} MB/s of cipher)")
    if "file_bound" in advice:
        lines.append(f"{'- ' if markdown else ''}files are {advice['file_bound']}-bound here")
    if "small_files" in advice:
        lines.append(f"{'- ' if markdown else ''}{advice['small_files']}")
    return lines


def _plot(report: Any, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for engine in sorted({r.engine for r in report.engines}):
        for threads in sorted({r.threads for r in report.engines}):
            points = sorted((r.chunk_size, r.seal_mb_s) for r in report.engines
                            if r.engine == engine and r.threads == threads)
            if points:
                ax.plot([p[0] >> 10 for p in points], [p[1] for p in points], marker="o",
                        label=f"{engine}, {threads} thread{'s' if threads > 1 else ''}")
    if report.openssl:
        sizes = sorted(report.openssl)
        ax.plot([s >> 10 for s in sizes], [report.openssl[s] for s in sizes], linestyle="--", color="grey",
                label="openssl speed, 1 core")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("chunk size (KiB)")
    ax.set_ylabel("seal MB/s")
    ax.set_title("envelope: AES-256-GCM seal throughput")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _require_matplotlib() -> None:
    require("matplotlib", "plot", "--plot")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x]
    except ValueError:
        raise UsageError(f"expected a comma-separated list of numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise UsageError("thread counts must be at least 1")
    return values


def _size(n: int) -> str:
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


class _bar:
    """A tqdm bar of steps on a terminal; nothing otherwise."""

    def __init__(self, args: argparse.Namespace, total: int) -> None:
        self._show = not args.quiet and not args.json and sys.stderr.isatty()
        self._total = total

    def __enter__(self) -> Any:
        if not self._show:
            return lambda _label: None
        from tqdm import tqdm

        self._tqdm = tqdm(total=self._total, desc="bench", file=sys.stderr, leave=False)

        def tick(label: str) -> None:
            self._tqdm.set_postfix_str(label, refresh=False)
            self._tqdm.update(1)
        return tick

    def __exit__(self, *exc: object) -> None:
        if self._show:
            self._tqdm.close()

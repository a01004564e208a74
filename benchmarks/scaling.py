"""Scaling curves: time per GB and peak memory against file size, and throughput against threads.

Whole processes, file to file, as a user runs them (``envelope encrypt-file``
and ``decrypt-file`` with a raw AES key, next to ``cp`` of the same file), with
``sync`` before each, every output removed (untimed) before the command that writes it.  The claims under test: time grows linearly with size (a
flat seconds-per-GB line) and memory does not grow at all (a flat peak RSS).
For many small files see ``cache_small_files.py``.

    python benchmarks/scaling.py --sizes 1M,16M,256M,1G,4G,10G --runs 3 --threads-size 1G
    python benchmarks/scaling.py --python ~/.peers-venv/bin/python ...   # any interpreter with matplotlib, for the PNG

Writes RESULTS/scaling.md, and RESULTS/scaling.png when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def label(size: int) -> str:
    return f"{size >> 30} GiB" if size >= 1 << 30 else f"{size >> 20} MiB"


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS in KiB of one process."""
    subprocess.run(["sync"], check=False)
    time.sleep(0.5)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode(errors='replace')[-300:]}")
    return elapsed, usage.ru_maxrss


def generate(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        for _ in range(size >> 20):
            fh.write(os.urandom(1 << 20))
        fh.write(os.urandom(size & ((1 << 20) - 1)))


def measure(envelope: str, src: Path, work: Path, key: Path, runs: int,
            threads: int | None = None) -> dict[str, tuple[float, int]]:
    """Median seconds and max peak RSS of cp, encrypt and decrypt, taken in turns."""
    extra = ["--threads", str(threads)] if threads else []
    commands = {
        "cp": ["cp", str(src), str(work / "copy")],
        "encrypt": [envelope, "encrypt-file", str(src), "-o", str(work / "enc"), "--key", f"raw-aes:{key}",
                    "--force", "-q", *extra],
        "decrypt": [envelope, "decrypt-file", str(work / "enc"), "-o", str(work / "dec"), "--key",
                    f"raw-aes:{key}", "--force", "-q", *extra],
    }
    outputs = {"cp": work / "copy", "encrypt": work / "enc", "decrypt": work / "dec"}
    times: dict[str, list[float]] = {name: [] for name in commands}
    rss: dict[str, int] = {name: 0 for name in commands}
    for run in range(runs + 1):
        for name, cmd in commands.items():
            # Every command writes a new file: overwriting one costs the kernel a truncation that
            # would be charged to whichever tool came second (untimed, before the sync).
            outputs[name].unlink(missing_ok=True)
            t, peak = timed(cmd)
            if run:
                times[name].append(t)
            rss[name] = max(rss[name], peak)
    return {name: (statistics.median(times[name]), rss[name]) for name in commands}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1M,16M,256M,1G")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads-size", type=parse_size, default=256 << 20, help="file size for the thread curve")
    parser.add_argument("--envelope", default=shutil.which("envelope") or "envelope")
    parser.add_argument("--dir", help="where the files go (the disk to measure)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--replot", action="store_true", help="only redraw scaling.png from the last scaling.md")
    args = parser.parse_args()
    if args.replot:
        if not draw(read_back((args.out / "scaling.md").read_text()), args.out / "scaling.png"):
            raise SystemExit("--replot needs matplotlib")
        return

    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="envelope-scaling-", dir=args.dir))
    key = work / "key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)  # raw-aes refuses a key file others can read
    by_size: list[tuple[int, dict[str, tuple[float, int]]]] = []
    by_threads: list[tuple[int, dict[str, tuple[float, int]]]] = []
    try:
        for size in sorted(parse_size(s) for s in args.sizes.split(",")):
            generate(work / "in", size)
            by_size.append((size, measure(args.envelope, work / "in", work, key, args.runs)))
            print(f"{label(size)} done", file=sys.stderr)
        generate(work / "in", args.threads_size)
        for threads in range(1, cores + 1):
            by_threads.append((threads, measure(args.envelope, work / "in", work, key, args.runs, threads)))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [f"# Scaling, {date.today().isoformat()}", "",
             f"{cores} cores; whole processes, file to file, median of {args.runs} runs; every output removed "
             "and `sync` before each run.", "",
             "| size | cp s/GB | encrypt s/GB | decrypt s/GB | encrypt × cp | decrypt × cp | envelope peak RSS |",
             "|---|---|---|---|---|---|---|"]
    for size, m in by_size:
        gb = size / 1e9
        lines.append(f"| {label(size)} | {m['cp'][0] / gb:.2f} | {m['encrypt'][0] / gb:.2f} | "
                     f"{m['decrypt'][0] / gb:.2f} | {m['encrypt'][0] / m['cp'][0]:.2f} | "
                     f"{m['decrypt'][0] / m['cp'][0]:.2f} | {max(m['encrypt'][1], m['decrypt'][1]) / 1024:.0f} MiB |")
    lines += ["", f"Threads, {label(args.threads_size)} file:", "",
              "| threads | encrypt MB/s | decrypt MB/s | encrypt × cp | decrypt × cp |", "|---|---|---|---|---|"]
    for threads, m in by_threads:
        lines.append(f"| {threads} | {args.threads_size / m['encrypt'][0] / 1e6:,.0f} | "
                     f"{args.threads_size / m['decrypt'][0] / 1e6:,.0f} | {m['encrypt'][0] / m['cp'][0]:.2f} | "
                     f"{m['decrypt'][0] / m['cp'][0]:.2f} |")
    lines += ["", f"Rerun: `python benchmarks/scaling.py --sizes {args.sizes} --runs {args.runs} "
                  f"--threads-size {label(args.threads_size).replace(' GiB', 'G').replace(' MiB', 'M')}`"]
    args.out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    (args.out / "scaling.md").write_text(text)
    print(text)
    if not draw(by_size, args.out / "scaling.png"):
        print("(no scaling.png: matplotlib is not installed for this interpreter)")


def read_back(table: str) -> list[tuple[int, dict[str, tuple[float, int]]]]:
    """The size table of a scaling.md, as measure() returned it (seconds per file, peak RSS in KiB)."""
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].endswith(("MiB", "GiB")) and cells[1][0].isdigit():
            number, unit = cells[0].split()
            size = int(number) << (30 if unit == "GiB" else 20)
            rss = int(float(cells[6].split()[0]) * 1024)
            rows.append((size, {name: (float(cells[i]) * size / 1e9, rss)
                                for i, name in ((1, "cp"), (2, "encrypt"), (3, "decrypt"))}))
    return rows


def draw(by_size: list[tuple[int, dict[str, tuple[float, int]]]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sizes = [s / (1 << 20) for s, _ in by_size]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name in ("cp", "encrypt", "decrypt"):
        left.plot(sizes, [m[name][0] / (s / 1e9) for s, m in by_size], marker="o", label=name)
    left.set_xscale("log", base=2)
    left.set_yscale("log")  # small files are all start-up; the flat tail is what matters
    left.set_xlabel("file size (MiB)")
    left.set_ylabel("seconds per GB (log; flat = linear time)")
    left.legend()
    left.grid(True, alpha=0.3)
    for name in ("encrypt", "decrypt"):
        right.plot(sizes, [m[name][1] / 1024 for _, m in by_size], marker="o", label=name)
    right.set_xscale("log", base=2)
    right.set_ylim(bottom=0)
    right.set_xlabel("file size (MiB)")
    right.set_ylabel("peak RSS (MiB; flat = constant memory)")
    right.legend()
    right.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


if __name__ == "__main__":
    main()

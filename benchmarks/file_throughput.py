"""File-to-file throughput of `envelope encrypt-file` / `decrypt-file` against `cp`.

Whole-process timings, run alternately in one session so that noise hits every
command alike; each run starts after `sync` and a short pause.  Prints medians
and the per-pair ratio to `cp`.  Usage:

    python benchmarks/file_throughput.py --size 1G --runs 5 [--engine python|native]
        [--chunk-size 64K,256K,1M,4M] [--dir /path/on/the/disk/to/test]

Peak RSS comes from /usr/bin/time -v when it is installed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def size_arg(text: str) -> int:
    m = re.fullmatch(r"(\d+)([KMG]?)", text.upper())
    if not m:
        raise argparse.ArgumentTypeError(text)
    return int(m.group(1)) * UNITS[m.group(2)]


def timed(cmd: list[str], env: dict[str, str], output: str | None = None) -> tuple[float, int | None]:
    """Time one run.  Its output file is removed first and the page cache's dirty
    pages written back, untimed, so every command writes a new file from the same
    state: freeing a previous 1 GiB output (and the filesystem's discards) would
    otherwise be charged to whichever command replaces it."""
    if output and os.path.exists(output):
        os.unlink(output)
    subprocess.run(["sync"], check=True)
    time.sleep(1.0)
    timer = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    full = [timer, "-f", "RSS %M", *cmd] if timer else cmd
    start = time.perf_counter()
    done = subprocess.run(full, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"command failed: {' '.join(cmd)}\n{done.stderr}")
    rss = re.search(r"RSS (\d+)", done.stderr or "")
    return elapsed, int(rss.group(1)) if rss else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=size_arg, default=size_arg("256M"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--engine", default=None)
    ap.add_argument("--threads", default=None)
    ap.add_argument("--chunk-size", default="1M", help="comma-separated list")
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="envelope-bench-", dir=args.dir)
    env = dict(os.environ)
    if args.engine:
        env["ENVELOPE_ENGINE"] = args.engine
    envelope = [sys.executable, "-m", "envelope"]
    try:
        src, key = os.path.join(work, "in.bin"), os.path.join(work, "kek")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        with open(src, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(args.size >> 20):
                f.write(block)
        threads = ["--threads", args.threads] if args.threads else []
        print(f"file {args.size / 1e6:.0f} MB, {args.runs} runs, engine {args.engine or 'auto'}, "
              f"{os.cpu_count()} cores")
        print(f"{'command':<28}{'median s':>10}{'MB/s':>9}{'x cp':>8}{'peak RSS MiB':>14}")
        for chunk in args.chunk_size.split(","):
            enc_out, dec_out, cp_out = (os.path.join(work, n) for n in ("out.env", "out.dec", "out.cp"))
            cmds = {
                "cp": (["cp", src, cp_out], cp_out),
                f"encrypt {chunk}": ([*envelope, "encrypt-file", src, "-o", enc_out, "--quiet",
                                      "--key", f"raw-aes:{key}", "--chunk-size", chunk, *threads], enc_out),
                f"decrypt {chunk}": ([*envelope, "decrypt-file", enc_out, "-o", dec_out, "--quiet",
                                      "--key", f"raw-aes:{key}", *threads], dec_out),
            }
            times: dict[str, list[float]] = {name: [] for name in cmds}
            rss: dict[str, int] = {}
            timed(cmds[f"encrypt {chunk}"][0], env, cmds[f"encrypt {chunk}"][1])  # warm-up, and the input of decrypt
            for _ in range(args.runs):
                for name, (cmd, output) in cmds.items():
                    t, r = timed(cmd, env, output)
                    times[name].append(t)
                    if r:
                        rss[name] = max(rss.get(name, 0), r)
            for name in cmds:
                med = statistics.median(times[name])
                ratio = statistics.median(t / c for t, c in zip(times[name], times["cp"]))
                mem = f"{rss[name] / 1024:.0f}" if name in rss else "-"
                print(f"{name:<28}{med:>10.3f}{args.size / med / 1e6:>9.0f}{ratio:>8.2f}{mem:>14}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

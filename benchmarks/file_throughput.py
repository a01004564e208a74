"""File-to-file throughput of `envelope encrypt-file` / `decrypt-file` against `cp`.

Whole-process timings, run alternately in one session so that noise hits every
command alike; each run starts after `sync` and a short pause.  Prints medians
and the per-pair ratio to `cp`.  Usage:

    python benchmarks/file_throughput.py --size 1G --runs 5 [--engine python|native]
        [--chunk-size 64K,256K,1M,4M] [--dir /path/on/the/disk/to/test]
        [--compare OTHER/bin/envelope] [--null]

`--compare` times a second build (say, the previous release) in the same rounds,
as "other ...", so a change is measured side by side, not against a figure taken
on another day.  With `age` installed, its file-to-file encrypt and decrypt are
timed too.

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
    ap.add_argument("--chunk-size", default="256K", help="comma-separated list")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--overwrite", action="store_true",
                    help="every command overwrites its previous output (--force for envelope), as cp does; "
                         "default: outputs are removed, untimed, before each run")
    ap.add_argument("--compare", metavar="ENVELOPE", help="another envelope executable, timed in the same rounds")
    ap.add_argument("--null", action="store_true",
                    help="also time encrypt/decrypt to /dev/null against cat (and age, if installed)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="envelope-bench-", dir=args.dir)
    env = dict(os.environ)
    # Time the command as an installed package runs: with its bytecode cached
    # (the warm-up run writes it), not recompiled from source on every start.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.engine:
        env["ENVELOPE_ENGINE"] = args.engine
    envelope = [sys.executable, "-m", "envelope"]
    try:
        src, key = os.path.join(work, "in.bin"), os.path.join(work, "kek")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:  # others may not read it
            f.write(os.urandom(32))
        with open(src, "wb") as f:
            for _ in range(args.size >> 20):
                f.write(os.urandom(1 << 20))
        threads = ["--threads", args.threads] if args.threads else []
        force = ["--force"] if args.overwrite else []
        age = shutil.which("age")
        print(f"file {args.size / 1e6:.0f} MB, {args.runs} runs, engine {args.engine or 'auto'}, "
              f"{os.cpu_count()} cores, outputs {'overwritten' if args.overwrite else 'new'}")
        print(f"{'command':<28}{'median s':>10}{'MB/s':>9}{'ratio':>8}{'  to':<6}{'peak RSS MiB':>14}")
        for chunk in args.chunk_size.split(","):
            enc_out, dec_out, cp_out = (os.path.join(work, n) for n in ("out.env", "out.dec", "out.cp"))
            key_args = ["--quiet", "--key", f"raw-aes:{key}", *threads]
            # name -> (argv, output file to clear, baseline name)
            cmds: dict[str, tuple[list[str], str | None, str]] = {
                "cp": (["cp", src, cp_out], cp_out, "cp"),
                f"encrypt {chunk}": ([*envelope, "encrypt-file", src, "-o", enc_out, *force, *key_args,
                                      "--chunk-size", chunk], enc_out, "cp"),
                f"decrypt {chunk}": ([*envelope, "decrypt-file", enc_out, "-o", dec_out, *force, *key_args],
                                     dec_out, "cp"),
            }
            if args.compare:
                other_enc, other_dec = (os.path.join(work, n) for n in ("other.env", "other.dec"))
                cmds[f"other encrypt {chunk}"] = ([args.compare, "encrypt-file", src, "-o", other_enc, *force,
                                                   *key_args, "--chunk-size", chunk], other_enc, "cp")
                cmds[f"other decrypt {chunk}"] = ([args.compare, "decrypt-file", enc_out, "-o", other_dec, *force,
                                                   *key_args], other_dec, "cp")
            if age:
                ident = os.path.join(work, "age.key")
                subprocess.run(["age-keygen", "-o", ident], check=True, capture_output=True)
                recipient = subprocess.run(["age-keygen", "-y", ident], check=True, capture_output=True,
                                           text=True).stdout.strip()
                age_out, age_dec = os.path.join(work, "out.age"), os.path.join(work, "out.age.dec")
                subprocess.run([age, "-r", recipient, "-o", age_out, src], check=True)
                cmds["age encrypt"] = ([age, "-r", recipient, "-o", os.path.join(work, "new.age"), src],
                                       os.path.join(work, "new.age"), "cp")
                cmds["age decrypt"] = ([age, "-d", "-i", ident, "-o", age_dec, age_out], age_dec, "cp")
            if args.null:
                cmds["cat > null"] = (["cat", src], None, "cat > null")
                cmds[f"encrypt {chunk} > null"] = ([*envelope, "encrypt-file", src, "-o", "-", *key_args,
                                                    "--chunk-size", chunk], None, "cat > null")
                cmds[f"decrypt {chunk} > null"] = ([*envelope, "decrypt-file", enc_out, "-o", "-", *key_args],
                                                   None, "cat > null")
                if args.compare:
                    cmds[f"other encrypt {chunk} > null"] = ([args.compare, "encrypt-file", src, "-o", "-",
                                                              *key_args, "--chunk-size", chunk], None, "cat > null")
                    cmds[f"other decrypt {chunk} > null"] = ([args.compare, "decrypt-file", enc_out, "-o", "-",
                                                              *key_args], None, "cat > null")
                if age:
                    cmds["age encrypt > null"] = ([age, "-r", recipient, src], None, "cat > null")
                    cmds["age decrypt > null"] = ([age, "-d", "-i", ident, age_out], None, "cat > null")
            times: dict[str, list[float]] = {name: [] for name in cmds}
            rss: dict[str, int] = {}
            enc_cmd, enc_file, _ = cmds[f"encrypt {chunk}"]
            timed(enc_cmd, env, None if args.overwrite else enc_file)  # warm-up, and the input of decrypt
            if args.compare:  # its bytecode cached too
                timed(cmds[f"other encrypt {chunk}"][0], env, None if args.overwrite else other_enc)
            for _ in range(args.runs):
                for name, (cmd, output, _) in cmds.items():
                    t, r = timed(cmd, env, None if args.overwrite else output)
                    times[name].append(t)
                    if r:
                        rss[name] = max(rss.get(name, 0), r)
            for name, (_, _, base) in cmds.items():
                med = statistics.median(times[name])
                ratio = statistics.median(t / c for t, c in zip(times[name], times[base]))
                mem = f"{rss[name] / 1024:.0f}" if name in rss else "-"
                print(f"{name:<28}{med:>10.3f}{args.size / med / 1e6:>9.0f}{ratio:>8.2f}  {base:<10}{mem:>10}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

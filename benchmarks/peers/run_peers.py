"""envelope next to the tools a user would otherwise pick: one generated file, one run, taken in turns.

Installs nothing.  Each peer is measured where it is installed and listed as
skipped otherwise.  To have them all (Debian, Python 3.11):

    apt-get install -y age
    python3 -m venv ~/.peers-venv
    ~/.peers-venv/bin/pip install aws-encryption-sdk tink pyrage cryptography matplotlib
    python benchmarks/peers/run_peers.py --python ~/.peers-venv/bin/python --envelope .venv/bin/envelope

Every command is a whole process, file to file, its output removed and
``sync`` run before it so each write starts from the same page-cache state; the peers take turns within
each run, so a noisy spell of a shared machine lands on all of them.  Figures
are medians (MB = 10^6 bytes); "× cp" is the median time over ``cp``'s;
"envelope is" is how many times faster envelope's native engine is than the
peer.  Peak RSS comes from the kernel's rusage for the process.  Writes
RESULTS/peers.md and, with matplotlib, RESULTS/peers.png.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
ADAPTERS = HERE / "adapters"


@dataclass
class Peer:
    name: str
    encrypt: list[str]
    decrypt: list[str] | None  # None: a floor that only copies
    env: dict[str, str] = field(default_factory=dict)
    why_missing: str | None = None
    enc_s: list[float] = field(default_factory=list)
    dec_s: list[float] = field(default_factory=list)
    rss_kib: int = 0


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def run_timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one process; a failure stops the benchmark."""
    subprocess.run(["sync"], check=False)
    time.sleep(0.5)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()[-500:]}")
    return elapsed, usage.ru_maxrss


def remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def same_file(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def has_module(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def peers(args: argparse.Namespace, work: Path) -> list[Peer]:
    src, key, py = work / "in.bin", work / "aes256.key", args.python
    enc, dec = str(work / "out.enc"), str(work / "out.dec")
    found = [Peer("cp (the floor)", ["cp", str(src), enc], None)]
    envelope = [args.envelope, "encrypt-file", str(src), "-o", enc, "--key", f"raw-aes:{key}", "--force", "-q"]
    envelope_dec = [args.envelope, "decrypt-file", enc, "-o", dec, "--key", f"raw-aes:{key}", "--force", "-q"]
    found.append(Peer("envelope (native)", envelope, envelope_dec, {"ENVELOPE_ENGINE": "native"}))
    found.append(Peer("envelope (reference engine)", envelope, envelope_dec, {"ENVELOPE_ENGINE": "python"}))

    def adapter(name: str, module: str, script: str, secret: Path) -> Peer:
        peer = Peer(name, [py, str(ADAPTERS / script), "enc", str(secret), str(src), enc],
                    [py, str(ADAPTERS / script), "dec", str(secret), enc, dec])
        if not has_module(py, module):
            peer.why_missing = f"python module {module} not installed for {py}"
        return peer

    found.append(adapter("AWS Encryption SDK (Python, streaming, defaults)", "aws_encryption_sdk", "esdk_stream.py",
                         key))
    identity = work / "age_key.txt"
    recipient = make_age_identity(identity, py)
    age = shutil.which("age")
    found.append(Peer("age (Debian)", [age or "age", "-r", recipient or "", "-o", enc, str(src)],
                      [age or "age", "-d", "-i", str(identity), "-o", dec, enc],
                      why_missing=None if age and recipient else "the age command is not installed"))
    found.append(adapter("pyrage", "pyrage", "pyrage_file.py", identity))
    keyset = work / "tink.json"
    tink = adapter("Tink StreamingAead AES256_GCM_HKDF_1MB", "tink", "tink_stream.py", keyset)
    if tink.why_missing is None:
        subprocess.run([py, str(ADAPTERS / "tink_stream.py"), "genkey", str(keyset)], check=True)
    found.append(tink)
    found.append(adapter("cryptography AESGCM loop, 1 thread", "cryptography", "aesgcm_loop.py", key))
    chosen = [p for p in found if not args.only or any(word in p.name.lower() for word in args.only.split(","))]
    return chosen


def make_age_identity(path: Path, python: str) -> str | None:
    if shutil.which("age-keygen"):
        subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    elif has_module(python, "pyrage"):
        code = ("from pyrage import x25519; i = x25519.Identity.generate(); "
                "print('# public key: ' + str(i.to_public())); print(str(i))")
        path.write_text(subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout)
    else:
        return None
    match = re.search(r"public key: (age1\w+)", path.read_text())
    return match.group(1) if match else None


def openssl_ceiling() -> str:
    tool = shutil.which("openssl")
    if not tool:
        return "openssl not installed"
    out = subprocess.run([tool, "speed", "-evp", "aes-256-gcm", "-bytes", "1048576", "-seconds", "3"],
                         capture_output=True, text=True).stdout
    match = re.search(r"(?im)^aes-256-gcm\s+([\d.]+)k\s*$", out)
    if not match:
        return "openssl speed gave no figure"
    one = float(match.group(1)) * 1000 / 1e6
    cores = os.cpu_count() or 1
    return f"{one:,.0f} MB/s on one core, about {one * cores:,.0f} MB/s on {cores} (1 MiB buffers)"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def report(args: argparse.Namespace, measured: list[Peer], skipped: list[Peer], size: int) -> str:
    def mb_s(times: list[float]) -> float:
        return size / statistics.median(times) / 1e6

    cp = next((p for p in measured if p.name.startswith("cp")), None)
    native = next((p for p in measured if p.name == "envelope (native)"), None)
    lines = [f"# envelope and its peers, {date.today().isoformat()}", "",
             f"{cpu_model()}, {os.cpu_count()} cores; {size >> 20} MiB of random data, file to file, "
             f"median of {args.runs} runs taken in turns, outputs removed and `sync` before each; Python {platform.python_version()}.",
             f"Cipher ceiling (`openssl speed -evp aes-256-gcm`): {openssl_ceiling()}.", "",
             "| tool | encrypt MB/s | decrypt MB/s | encrypt × cp | decrypt × cp | envelope is (enc / dec) "
             "| peak RSS |", "|---|---|---|---|---|---|---|"]
    for p in measured:
        enc = mb_s(p.enc_s)
        dec = mb_s(p.dec_s) if p.dec_s else None
        vs_cp_enc = f"{statistics.median(p.enc_s) / statistics.median(cp.enc_s):.2f}" if cp else "-"
        vs_cp_dec = f"{statistics.median(p.dec_s) / statistics.median(cp.enc_s):.2f}" if cp and p.dec_s else "-"
        if native and p.dec_s and p is not native:
            faster = f"{mb_s(native.enc_s) / enc:.1f}× / {mb_s(native.dec_s) / (dec or 1):.1f}×"
        else:
            faster = "-"
        lines.append(f"| {p.name} | {enc:,.0f} | {f'{dec:,.0f}' if dec else '-'} | {vs_cp_enc} | {vs_cp_dec} "
                     f"| {faster} | {p.rss_kib / 1024:,.0f} MiB |")
    for p in skipped:
        lines.append(f"| {p.name} | skipped: {p.why_missing} | | | | | |")
    lines += ["", "Rerun: `python benchmarks/peers/run_peers.py --size "
              f"{size >> 20}M --runs {args.runs}` (see the script's docstring for installing the peers)."]
    return "\n".join(lines) + "\n"


SHORT = {"envelope (native)": "envelope", "envelope (reference engine)": "envelope\n(reference)",
         "AWS Encryption SDK (Python, streaming, defaults)": "AWS Encryption\nSDK (Python)", "age (Debian)": "age",
         "pyrage": "pyrage", "Tink StreamingAead AES256_GCM_HKDF_1MB": "Tink\nstreaming",
         "cryptography AESGCM loop, 1 thread": "cryptography\nloop"}


def rows_of(table: str) -> tuple[list[tuple[str, float, float]], float | None]:
    """(tool, encrypt MB/s, decrypt MB/s) rows and cp's MB/s, read back from a peers.md table."""
    rows, cp = [], None
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[1].replace(",", "").isdigit():
            continue
        enc = float(cells[1].replace(",", ""))
        if cells[0].startswith("cp"):
            cp = enc
        elif cells[2].replace(",", "").isdigit():
            rows.append((cells[0], enc, float(cells[2].replace(",", ""))))
    return rows, cp


def plot(table: str, title: str, path: Path) -> bool:
    """A bar chart of the table: encrypt and decrypt MB/s per tool, cp as a line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows, cp = rows_of(table)
    fig, ax = plt.subplots(figsize=(10, 5))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r[1] for r in rows], width=0.4, label="encrypt")
    ax.bar([x + 0.2 for x in xs], [r[2] for r in rows], width=0.4, label="decrypt")
    if cp:
        ax.axhline(cp, color="grey", linestyle="--", label="cp")
    ax.set_xticks(list(xs), [SHORT.get(r[0], r[0]) for r in rows], fontsize=8)
    ax.set_ylabel("MB/s, file to file (higher is better)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=1 << 30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", help="where the files go (the disk to measure)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that has the Python peers")
    parser.add_argument("--envelope", default=shutil.which("envelope") or "envelope", help="the envelope command")
    parser.add_argument("--only", help="comma-separated words: measure only peers whose name has one")
    parser.add_argument("--out", type=Path, default=HERE.parent / "results", help="where peers.md and .png go")
    parser.add_argument("--replot", action="store_true", help="only redraw peers.png from the last peers.md")
    args = parser.parse_args()
    if args.replot:
        table = (args.out / "peers.md").read_text()
        title = re.search(r"(\d+ MiB) of random data", table)
        if not plot(table, f"{title.group(1) if title else 'one'} file, file to file, median of runs",
                    args.out / "peers.png"):
            raise SystemExit("--replot needs matplotlib")
        return

    work = Path(tempfile.mkdtemp(prefix="envelope-peers-", dir=args.dir))
    try:
        (work / "aes256.key").write_bytes(os.urandom(32))
        (work / "aes256.key").chmod(0o600)  # raw-aes refuses a key file others can read
        with open(work / "in.bin", "wb") as fh:
            for _ in range(args.size >> 20):
                fh.write(os.urandom(1 << 20))
            fh.write(os.urandom(args.size & ((1 << 20) - 1)))
        everyone = peers(args, work)
        measured = [p for p in everyone if p.why_missing is None]
        skipped = [p for p in everyone if p.why_missing is not None]
        for run in range(args.runs + 1):  # run 0 warms caches and imports
            for p in measured:
                # Every output is removed before the run that writes it: freeing the last tool's 1 GiB
                # file would otherwise be charged to whichever tool comes next, unevenly.
                remove(work / "out.enc", work / "out.dec")
                t, rss = run_timed(p.encrypt, p.env)
                if p.decrypt:
                    remove(work / "out.dec")
                    t_dec, rss_dec = run_timed(p.decrypt, p.env)
                    if run:
                        p.dec_s.append(t_dec)
                    rss = max(rss, rss_dec)
                    if not run and not same_file(work / "out.dec", work / "in.bin"):
                        raise SystemExit(f"{p.name}: the round trip changed the data")
                if run:
                    p.enc_s.append(t)
                p.rss_kib = max(p.rss_kib, rss)
            print(f"run {run} of {args.runs} done", file=sys.stderr)
        args.out.mkdir(parents=True, exist_ok=True)
        text = report(args, measured, skipped, args.size)
        (args.out / "peers.md").write_text(text)
        drew = plot(text, f"{args.size >> 20} MiB file, file to file, median of {args.runs} runs",
                    args.out / "peers.png")
        print(text + ("" if drew else "\n(no peers.png: matplotlib is not installed for this interpreter)\n"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

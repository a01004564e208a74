"""Start-up cost of ``envelope encrypt-file`` / ``decrypt-file`` on a tiny file: two installs side by side.

Protocol: one 4 KiB random file and one local keystore (a symmetric key made by
the first install) in a temporary directory; each round runs, for every
install in turn, ``encrypt-file`` then ``decrypt-file`` of that file as a whole
process (``python -m envelope``, outputs removed before each run), timing the
wall clock around the child.  Then ``-X importtime`` of encrypt-file, whose
top-level cumulative times add up to the import total.  Medians are reported,
with the load average before and after.  ``PYTHONDONTWRITEBYTECODE`` is
removed from the children's environment so compiled bytecode is used (one
warm-up run per install first writes it), and the children run in the
temporary directory: ``python -m`` puts the working directory first on
``sys.path``, so from a source tree both installs would import that tree.

    python benchmarks/startup.py OLD_PYTHON NEW_PYTHON [--rounds 21]

where each PYTHON is the interpreter of a virtualenv with that envelope
installed, e.g. ``../base/.venv/bin/python .venv/bin/python``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def _run(python: str, argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([python, "-m", "envelope", *argv], env=env, check=True, stdout=subprocess.DEVNULL,
                   cwd=env["ENVELOPE_KEYSTORE"].rpartition("/")[0])
    return time.perf_counter() - started


def _import_total_ms(python: str, argv: list[str], env: dict[str, str]) -> float:
    proc = subprocess.run([python, "-X", "importtime", "-m", "envelope", *argv], env=env, check=True,
                          capture_output=True, text=True, cwd=env["ENVELOPE_KEYSTORE"].rpartition("/")[0])
    total = 0
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|", 2)
            if cumulative.strip().isdigit() and not name.startswith("  "):  # top level: one space
                total += int(cumulative)
    return total / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pythons", nargs=2, metavar="PYTHON", help="old, then new interpreter")
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["ENVELOPE_KEYSTORE"] = str(work / "ks.db")
        subprocess.run([args.pythons[0], "-m", "envelope", "keys", "create", "--alias", "alias/startup"],
                       env=env, check=True, stdout=subprocess.DEVNULL, cwd=work)
        plain, sealed, back = work / "p", work / "p.env", work / "p.back"
        plain.write_bytes(os.urandom(4096))
        encrypt = ["encrypt-file", str(plain), "--key", "local:alias/startup", "-o", str(sealed), "-q"]
        decrypt = ["decrypt-file", str(sealed), "-o", str(back), "-q"]
        times: dict[tuple[str, str], list[float]] = {}
        imports: dict[str, list[float]] = {}
        load_before = os.getloadavg()[0]
        for python in args.pythons:  # warm-up: writes the bytecode caches
            _run(python, encrypt + ["--force"], env)
        for _ in range(args.rounds):
            for python in args.pythons:
                for what, argv in (("encrypt", encrypt), ("decrypt", decrypt)):
                    if what == "encrypt":
                        sealed.unlink(missing_ok=True)
                    back.unlink(missing_ok=True)
                    times.setdefault((python, what), []).append(_run(python, argv, env))
                imports.setdefault(python, []).append(_import_total_ms(python, encrypt + ["--force"], env))
        load_after = os.getloadavg()[0]
    old, new = args.pythons
    print(f"{args.rounds} alternating rounds; load average {load_before:.2f} before, {load_after:.2f} after\n")
    print("| median (minimum) | old | new |\n|---|---|---|")
    for what in ("encrypt", "decrypt"):
        print(f"| `{what}-file` 4 KiB, whole process | {_ms(times[old, what], 1000)} | {_ms(times[new, what], 1000)} |")
    print(f"| `-X importtime` total, encrypt-file | {_ms(imports[old], 1)} | {_ms(imports[new], 1)} |")


def _ms(values: list[float], scale: float) -> str:
    return f"{statistics.median(values) * scale:.0f} ms ({min(values) * scale:.0f})"


if __name__ == "__main__":
    main()

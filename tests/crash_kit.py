"""Running the real ``envelope`` CLI and killing it: the helpers the crash and fault tests share.

A kill lands either at a random moment of the whole run (start-up included)
or at a random moment after the process opened its output or keystore, so
both the boring and the interesting windows get hit whatever the machine's
speed.  Moments come from a seeded generator: a failure names its seed and
iteration, and rerunning with that seed replays the same moments.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ITERATIONS = int(os.environ.get("ENVELOPE_CRASH_ITERATIONS", "10"))
SEED = int(os.environ.get("ENVELOPE_CRASH_SEED", "20261202"))
TEMP_MARKERS = ("#", ".envelope-tmp-")  # an unnamed file shows in /proc as DIR/#INODE


def envelope(*args: str) -> list[str]:
    return [sys.executable, "-m", "envelope", *args]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def open_files(pid: int) -> list[str]:
    """What process *pid* holds open (empty once it is gone)."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    links = []
    for name in names:
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{name}"))
        except OSError:
            continue
    return links


def writing_under(directory: Path) -> Callable[[int], bool]:
    """True once the process holds a temporary output (named or unnamed) in *directory*."""
    prefix = f"{directory}/"

    def check(pid: int) -> bool:
        return any(link.startswith(prefix) and link[len(prefix):].startswith(TEMP_MARKERS)
                   for link in open_files(pid))

    return check


def holding(path: Path) -> Callable[[int], bool]:
    """True once the process holds *path* open (a keystore, say)."""
    return lambda pid: str(path) in open_files(pid)


@dataclass
class Outcomes:
    """How each kill landed, for the report a long run prints."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: str) -> None:
        self.counts[outcome] += 1

    def __str__(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items()))


class Killer:
    """Start a command, SIGKILL it at a seeded random moment; report where the moment fell."""

    def __init__(self, name: str, iterations: int = ITERATIONS) -> None:
        self.rng = random.Random(f"{SEED}-{name}")
        self.iterations = iterations
        self.duration = 0.0
        self.outcomes = Outcomes()

    def measure(self, cmd: Sequence[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        """One uninterrupted run: how long a run takes, and that it works at all."""
        began = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, env=env, timeout=120)
        self.duration = time.monotonic() - began
        assert done.returncode == 0, done.stderr.decode()
        return done

    def run(self, iteration: int, cmd: Sequence[str], trigger: Callable[[int], bool] | None,
            env: dict[str, str] | None = None, window: float | None = None) -> int | None:
        """Kill *cmd* once; None if the kill landed, else the exit code of a run that finished first.

        Even iterations kill at a random moment of the measured run; odd ones wait
        for *trigger* (the work has begun) and then kill at a random moment of the
        rest, or of the next *window* seconds for work that takes milliseconds.
        """
        assert self.duration > 0, "measure() first"
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        began = time.monotonic()
        try:
            if iteration % 2 == 0 or trigger is None:
                delay = self.rng.uniform(0, self.duration * 1.1)
                phase = "anytime"
            else:
                deadline = began + self.duration * 3 + 5
                while proc.poll() is None and not trigger(proc.pid) and time.monotonic() < deadline:
                    time.sleep(0.001)
                remaining = max(0.0, began + self.duration - time.monotonic()) if window is None else window
                delay = time.monotonic() - began + self.rng.uniform(0, remaining)
                phase = "at work"
            try:
                proc.wait(timeout=max(0.0, began + delay - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stderr is not None
            err = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
        if code == -signal.SIGKILL:
            self.outcomes.add(f"killed {phase}")
            return None
        assert code == 0, f"iteration {iteration} (seed {SEED}) failed without a kill: {err}"
        self.outcomes.add("finished first")
        return code


def leftovers(directory: Path, expected: set[str]) -> list[str]:
    """Names in *directory* other than *expected*: what a killed run left behind."""
    return sorted(p.name for p in directory.iterdir() if p.name not in expected)

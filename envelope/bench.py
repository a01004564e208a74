"""What this machine can do: the measurements behind ``envelope bench``.

Four questions a user asks before encrypting a petabyte, each answered by a
measurement rather than a claim:

- how fast the cipher runs in memory, per chunk size and thread count, next to
  OpenSSL's own figure for the same buffer size (the ceiling: envelope cannot
  seal faster than the AES-GCM it calls);
- how long a real file takes, file to file, next to ``cp`` of the same file (the
  floor: nothing that reads and writes every byte beats the copy);
- how long each key manager takes to make and to unwrap a data key, the fixed
  cost per file;
- which settings to use here.

Each figure is a median of several runs taken in turns (engines alternate
within a run), because the machines this runs on are shared and noisy.  The
file measurements use a raw AES key made for the occasion, so they measure
the data path and touch no keystore; they run inside this process, so unlike
``cp`` they pay no interpreter start-up (about 0.2 s a command; see
``benchmarks/scaling.py`` for whole-process figures).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .engines import get_engine
from .engines.base import sealed_size

MB = 1e6
Progress = Callable[[str], object]


@dataclass
class EngineResult:
    engine: str
    chunk_size: int
    threads: int
    seal_mb_s: float
    open_mb_s: float


@dataclass
class FileResult:
    size: int
    chunk_size: int
    threads: int
    cp_s: float
    encrypt_s: float
    decrypt_s: float

    @property
    def encrypt_ratio(self) -> float:
        return self.encrypt_s / self.cp_s

    @property
    def decrypt_ratio(self) -> float:
        return self.decrypt_s / self.cp_s


@dataclass
class KeyLatency:
    reference: str
    generate_ms: float
    unwrap_ms: float


@dataclass
class Report:
    cpus: int
    engine_name: str
    openssl: dict[int, float] = field(default_factory=dict)  # buffer size -> MB/s on one core
    engines: list[EngineResult] = field(default_factory=list)
    files: list[FileResult] = field(default_factory=list)
    keys: list[KeyLatency] = field(default_factory=list)
    recommended: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["openssl"] = {str(k): v for k, v in self.openssl.items()}
        for item, result in zip(data["files"], self.files):
            item["encrypt_ratio"] = result.encrypt_ratio
            item["decrypt_ratio"] = result.decrypt_ratio
        return data


def openssl_speed(buffer_size: int, seconds: int = 1) -> float | None:
    """``openssl speed -evp aes-256-gcm`` for one buffer size, in MB/s on one core; None without openssl."""
    tool = shutil.which("openssl")
    if tool is None:
        return None
    try:
        out = subprocess.run([tool, "speed", "-evp", "aes-256-gcm", "-bytes", str(buffer_size), "-seconds",
                              str(seconds)], capture_output=True, text=True, timeout=60 + 4 * seconds).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    # The last line: "AES-256-GCM  <rate>k" in 1000s of bytes per second.
    match = re.search(r"(?im)^aes-256-gcm\s+([\d.]+)k\s*$", out)
    return float(match.group(1)) * 1000 / MB if match else None


def engine_throughput(chunk_sizes: Sequence[int], thread_counts: Sequence[int], batch_bytes: int, runs: int,
                      engines: Sequence[str] = ("native", "python"),
                      progress: Progress | None = None) -> list[EngineResult]:
    """Median seal/open MB/s of one batch, per engine, chunk size and thread count."""
    key, data = os.urandom(32), os.urandom(batch_bytes)
    results = []
    for chunk in chunk_sizes:
        sealed = bytearray(sealed_size(len(data), chunk, True))
        opened = bytearray(len(data))
        candidates = [(name, threads, _engine(name, threads)) for name in engines for threads in thread_counts]
        candidates = [c for c in candidates if c[2] is not None]
        times: dict[tuple[str, int], tuple[list[float], list[float]]] = {(n, t): ([], []) for n, t, _ in candidates}
        for run in range(runs + 1):  # run 0 warms up (page faults, thread pools)
            for name, threads, engine in candidates:
                t_seal = _timed(lambda: engine.seal(key, 0, data, sealed, chunk, True))
                t_open = _timed(lambda: engine.open(key, 0, sealed, opened, chunk, True))
                if run:
                    times[(name, threads)][0].append(t_seal)
                    times[(name, threads)][1].append(t_open)
            if progress is not None:
                progress(f"cipher, {chunk >> 10} KiB chunks")
        if opened != data:
            raise AssertionError("a round trip changed the data")  # a broken engine must not report a speed
        for (name, threads), (seal_times, open_times) in times.items():
            results.append(EngineResult(name, chunk, threads, len(data) / statistics.median(seal_times) / MB,
                                        len(data) / statistics.median(open_times) / MB))
    return results


def file_roundtrip(size: int, directory: str | os.PathLike[str] | None, chunk_size: int, threads: int | None,
                   runs: int, progress: Progress | None = None) -> FileResult:
    """Median seconds to ``cp``, encrypt and decrypt one generated file, file to file, in turns."""
    from .api import decrypt_file, encrypt_file
    from .keyrings.base import MultiKeyring
    from .keyrings.raw_aes import RawAesKeyring

    keyring = MultiKeyring([RawAesKeyring(os.urandom(32))])
    with _scratch(directory) as work:
        src = work / "bench.bin"
        _write_random(src, size)
        cp_times, enc_times, dec_times = [], [], []
        for run in range(runs + 1):
            for path in (work / "copy.bin", work / "bench.envelope", work / "bench.out"):
                path.unlink(missing_ok=True)
            t_cp = _timed(lambda: subprocess.run(["cp", str(src), str(work / "copy.bin")], check=True))
            t_enc = _timed(lambda: encrypt_file(src, work / "bench.envelope", keys=keyring, chunk_size=chunk_size,
                                                threads=threads))
            t_dec = _timed(lambda: decrypt_file(work / "bench.envelope", work / "bench.out", keys=keyring,
                                                threads=threads))
            if run:
                cp_times.append(t_cp)
                enc_times.append(t_enc)
                dec_times.append(t_dec)
            if progress is not None:
                progress(f"files, run {run}")
        if not _same(src, work / "bench.out"):
            raise AssertionError("the decrypted file differs from the original")
    return FileResult(size, chunk_size, threads or os.cpu_count() or 1, statistics.median(cp_times),
                      statistics.median(enc_times), statistics.median(dec_times))


def key_latency(reference: str, calls: int, progress: Progress | None = None) -> KeyLatency:
    """Median milliseconds for a data key (GenerateDataKey or local wrap) and for its unwrap, through envelope."""
    from .keyrings.registry import resolve_all

    keyring = resolve_all([reference])
    context = {"purpose": "envelope bench"}
    generate, unwrap = [], []
    for i in range(calls + 1):
        start = time.perf_counter()
        data_key = keyring.generate_data_key(context)
        made = time.perf_counter() - start
        with data_key:
            start = time.perf_counter()
            plaintext = keyring.unwrap(data_key.wrapped, context)
            opened = time.perf_counter() - start
            plaintext[:] = bytes(len(plaintext))
        if i:  # the first call opens keystores and clients
            generate.append(made * 1000)
            unwrap.append(opened * 1000)
        if progress is not None:
            progress(f"key {reference}")
    return KeyLatency(reference, statistics.median(generate), statistics.median(unwrap))


def recommend(report: Report) -> dict[str, Any]:
    """Settings from the measurements: the chunk size and thread count that sealed fastest, natively if built."""
    best = max((r for r in report.engines if r.engine == report.engine_name), default=None,
               key=lambda r: r.seal_mb_s + r.open_mb_s)
    advice: dict[str, Any] = {"engine": report.engine_name}
    if best is not None:
        advice.update(chunk_size=best.chunk_size, threads=best.threads,
                      cipher_mb_s=round(min(best.seal_mb_s, best.open_mb_s)))
    if report.files:
        worst = max(max(f.encrypt_ratio, f.decrypt_ratio) for f in report.files)
        advice["file_bound"] = "disk" if worst <= 1.2 else "cpu"
    if report.keys:
        slowest = max(report.keys, key=lambda k: k.generate_ms + k.unwrap_ms)
        if slowest.generate_ms > 20:
            advice["small_files"] = (f"{slowest.reference} costs {slowest.generate_ms:.0f} ms per data key: for "
                                     "many small files, --cache-max-age (see docs/cli.md for what it trades)")
    return advice


# -- helpers -----------------------------------------------------------------------------------------


def _engine(name: str, threads: int) -> Any:
    try:
        return get_engine(name, threads)
    except Exception:  # the native engine is not built: measured without it
        return None


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class _scratch:
    """A private temporary directory in *directory* (the disk to measure), removed afterwards."""

    def __init__(self, directory: str | os.PathLike[str] | None) -> None:
        self._dir = directory

    def __enter__(self) -> Path:
        self._path = Path(tempfile.mkdtemp(prefix="envelope-bench-", dir=self._dir))
        return self._path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self._path, ignore_errors=True)


def _write_random(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)  # random, once: compressing or deduplicating disks see no pattern
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, len(block))
            fh.write(block[:n] if left == n else block)
            left -= n
            block = block[1:] + block[:1] if left else block


def _same(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for x, y in _pairs(fa, fb):
            if x != y:
                return False
    return True


def _pairs(fa: Any, fb: Any) -> Iterator[tuple[bytes, bytes]]:
    while True:
        x, y = fa.read(1 << 20), fb.read(1 << 20)
        yield x, y
        if not x and not y:
            return

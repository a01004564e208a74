"""The manifest of a bulk job: its settings and a row per object, written by the driver as results arrive.

Two forms, one content.  On the machine that drives the job, an SQLite file
(default ``$ENVELOPE_BULK_DIR``, else ``~/.local/state/envelope/bulk/JOB.sqlite``,
mode 0600), committed after every result.  For a cluster whose driver may run
anywhere, ``--manifest s3://BUCKET/PREFIX/``: ``JOB/job.json`` and JSON Lines
parts ``JOB/part-NNNNNN.jsonl``, a new part every second or so while results
arrive (the last row for an object wins).  Every item is written as
``pending`` before the first task runs, with whether it may become a
multipart upload; a driver killed before a result was written loses only
that row, and the rerun skips the object after one HEAD.

A row holds no plaintext and no key: names, sizes, the outcome, the error,
the attempts, KMS calls, and (verify, rewrap) the key ids of the object.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

from ..exceptions import UsageError
from ..s3.names import S3_SCHEME, split_url
from .plan import Item, Refused

PENDING, REFUSED = "pending", "refused"
FINISHED = ("done", "skipped")
_FLUSH_SECONDS = 1.0
_FLUSH_ROWS = 1000
_COLUMNS = ("rel", "src", "dst", "size", "stamp", "multipart", "outcome", "error", "attempts", "bytes",
            "kms_calls", "key_ids")


def new_job_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def default_directory() -> str:
    return os.environ.get("ENVELOPE_BULK_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "envelope", "bulk")


def _plan_row(item: Item) -> dict[str, Any]:
    return {"rel": item.rel, "src": item.src, "dst": item.dst, "size": item.size, "stamp": item.stamp,
            "multipart": item.multipart, "outcome": PENDING, "error": None, "attempts": 0, "bytes": 0,
            "kms_calls": 0, "key_ids": None}


def _refused_row(refused: Refused) -> dict[str, Any]:
    return {"rel": None, "src": refused.src, "dst": None, "size": 0, "stamp": None, "multipart": False,
            "outcome": REFUSED, "error": refused.reason, "attempts": 0, "bytes": 0, "kms_calls": 0, "key_ids": None}


def item_of(row: dict[str, Any]) -> Item:
    return Item(row["rel"], row["src"], row["dst"], int(row["size"]), row["stamp"],
                multipart=bool(row.get("multipart")))


class Manifest:
    """Rows by source name; :meth:`record` writes one through to storage."""

    location: str

    def __init__(self, job: str) -> None:
        self.job = job
        self.rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def start(self, meta: dict[str, Any], items: Iterable[Item], refused: Iterable[Refused]) -> None:
        rows = [_plan_row(i) for i in items] + [_refused_row(r) for r in refused]
        self.rows = {row["src"]: row for row in rows}
        self._write_meta(meta)
        self._write(rows)

    def record(self, result: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            row = self.rows[result["src"]]
            row.update({k: result.get(k) for k in ("outcome", "error", "bytes", "kms_calls", "key_ids")})
            row["attempts"] = int(row.get("attempts") or 0) + 1
            self._write([row])
            return row

    def pending(self) -> list[Item]:
        return [item_of(r) for r in self.rows.values() if r["outcome"] not in (*FINISHED, REFUSED)]

    def meta(self) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _write_meta(self, meta: dict[str, Any]) -> None:
        raise NotImplementedError

    def _write(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError


class SqliteManifest(Manifest):
    def __init__(self, path: str, job: str) -> None:
        super().__init__(job)
        self.location = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS jobs (job TEXT PRIMARY KEY, meta TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS objects (job TEXT NOT NULL, rel TEXT, src TEXT NOT NULL, "
                         "dst TEXT, size INTEGER, stamp TEXT, multipart INTEGER, outcome TEXT, error TEXT, "
                         "attempts INTEGER, bytes INTEGER, kms_calls INTEGER, key_ids TEXT, updated REAL, "
                         "PRIMARY KEY (job, src))")
        self._db.commit()
        for values in self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM objects WHERE job = ?", (job,)):
            row = dict(zip(_COLUMNS, values))
            row["key_ids"] = json.loads(row["key_ids"]) if row["key_ids"] else None
            row["multipart"] = bool(row["multipart"])
            self.rows[row["src"]] = row

    def meta(self) -> dict[str, Any]:
        found = self._db.execute("SELECT meta FROM jobs WHERE job = ?", (self.job,)).fetchone()
        if found is None:
            raise UsageError(f"no job {self.job!r} in the manifest {self.location}")
        return dict(json.loads(found[0]))

    def _write_meta(self, meta: dict[str, Any]) -> None:
        self._db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?)", (self.job, json.dumps(meta)))

    def _write(self, rows: list[dict[str, Any]]) -> None:
        now = time.time()
        self._db.executemany(
            f"INSERT OR REPLACE INTO objects (job, {', '.join(_COLUMNS)}, updated) "
            f"VALUES (?, {', '.join('?' * len(_COLUMNS))}, ?)",
            [(self.job, *[json.dumps(r[c]) if c == "key_ids" and r[c] is not None else r[c] for c in _COLUMNS], now)
             for r in rows])
        self._db.commit()

    def close(self) -> None:
        self._db.close()


class S3Manifest(Manifest):
    """``PREFIX/JOB/job.json`` and JSON Lines parts; rows are buffered for a second, then a part is put."""

    def __init__(self, url: str, job: str, s3: Any) -> None:
        super().__init__(job)
        bucket, prefix = split_url(url)
        self._s3, self._bucket = s3, bucket
        self._prefix = f"{prefix.rstrip('/')}/{job}/".lstrip("/")
        self.location = f"{S3_SCHEME}{bucket}/{self._prefix}"
        self._buffer: list[dict[str, Any]] = []
        self._flushed = time.monotonic()
        self._parts = 0
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=self._prefix + "part-"):
            keys += [o["Key"] for o in page.get("Contents", [])]
        for key in sorted(keys):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            for line in body.decode().splitlines():
                row = json.loads(line)
                self.rows[row["src"]] = row
        self._parts = len(keys)

    def meta(self) -> dict[str, Any]:
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=self._prefix + "job.json")["Body"].read()
        except Exception as exc:
            raise UsageError(f"no job {self.job!r} under {self.location}: {exc}") from None
        return dict(json.loads(body))

    def _write_meta(self, meta: dict[str, Any]) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=self._prefix + "job.json", Body=json.dumps(meta).encode())

    def _write(self, rows: list[dict[str, Any]]) -> None:
        self._buffer += [dict(r) for r in rows]
        if len(self._buffer) >= _FLUSH_ROWS or time.monotonic() - self._flushed >= _FLUSH_SECONDS:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            body = "".join(json.dumps(r) + "\n" for r in self._buffer).encode()
            self._s3.put_object(Bucket=self._bucket, Key=f"{self._prefix}part-{self._parts:06d}.jsonl", Body=body)
            self._parts += 1
            self._buffer = []
        self._flushed = time.monotonic()

    def close(self) -> None:
        with self._lock:
            self._flush()


def open_manifest(where: str | None, job: str, s3: Any = None) -> Manifest:
    """The manifest *where* says (a file, a directory, ``s3://``), or the default file for *job*."""
    if where is not None and where.startswith(S3_SCHEME):
        return S3Manifest(where, job, s3)
    if where is None or os.path.isdir(where) or where.endswith(os.sep):
        return SqliteManifest(os.path.join(where or default_directory(), f"{job}.sqlite"), job)
    return SqliteManifest(where, job)

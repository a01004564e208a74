"""The driver of a bulk job: plan, record the plan, hand items to Dask workers, record each result.

The driver lists the source and keeps the manifest; the workers read every
source and write every destination themselves, so object data never passes
through the driver or the scheduler (on a plain ``tcp://`` cluster the
scheduler sees names, sizes and outcomes, nothing else).  Items are submitted
in a window a few times the cluster's thread count, so a job of millions of
objects does not hold millions of futures.  A failure of one object is its
row; an error the driver itself cannot get past (no cluster, a manifest it
cannot write) ends the job, and ``--resume`` picks it up.  So does a key no
object can be done with (a worker cannot open it, or the key manager refuses
it): no more items are submitted, those in flight are recorded, and the job
ends with that one error, as a batch of encrypt-file does, instead of a line
per object.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import exceptions
from ..exceptions import EnvelopeError, KeyringError, UsageError
from ..optional import require
from .manifest import FINISHED, REFUSED, Manifest, new_job_id, open_manifest
from .plan import Item, Location, check_pair, parse_location, plan
from .tasks import FAILED, run_item
from .workerstate import JobConfig, forget, s3_client

#: Tasks in flight per worker thread: enough to keep every thread busy between results.
WINDOW_PER_THREAD = 4

OnResult = Callable[[dict[str, Any]], object]


@dataclass
class BulkResult:
    """What a job did.  ``failures``: (source, error) per object not done; ``key_ids``: objects per key id."""

    job: str
    operation: str
    manifest: str
    planned: list[Item] = field(default_factory=list)
    done: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    kms_calls: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    key_ids: Counter[str] = field(default_factory=Counter)
    dashboard: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def summary(self) -> dict[str, Any]:
        return {"job": self.job, "operation": self.operation, "manifest": self.manifest, "done": self.done,
                "skipped": self.skipped, "failed": self.failed, "bytes": self.bytes, "kms_calls": self.kms_calls,
                "seconds": round(self.seconds, 3), "failures": [{"src": s, "error": e} for s, e in self.failures],
                **({"key_ids": dict(self.key_ids)} if self.key_ids else {})}


@dataclass
class Options:
    """Everything about a job besides its operation and locations (stored in the manifest for --resume)."""

    keys: Sequence[str] = ()
    from_keys: Sequence[str] = ()
    context: dict[str, str] | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    cache_max_age: float | None = None
    max_kms_rps: float | None = None
    endpoint_url: str | None = None
    region: str | None = None
    keystore: str | None = None
    headers_only: bool = False
    force: bool = False


def _references(keys: Sequence[Any], what: str) -> tuple[str, ...]:
    for key in keys:
        if not isinstance(key, str):
            raise UsageError(f"bulk jobs take {what} as references (strings such as raw-aes:PATH or aws-kms:ARN): "
                             "a keyring holds key material or a client and is never sent to workers")
    return tuple(keys)


def _boto(options: Options) -> Any:
    return s3_client(options.region, options.endpoint_url)


def _dask_client(client: Any, scheduler: str | None, workers: int | None, threads: int | None) -> tuple[Any, Any]:
    """(client, what to close after): the caller's client, a scheduler's, or a LocalCluster sized to the machine."""
    if client is not None:
        return client, None
    distributed = require("distributed", "bulk", "envelope bulk")
    import dask

    address = scheduler or dask.config.get("scheduler-address", None)
    if address:  # TLS and other security settings come from dask's configuration (distributed.comm.tls.*)
        made = distributed.Client(address)
        return made, made
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                                       dashboard_address=":0")
    made = distributed.Client(cluster)
    return made, _Both(made, cluster)


class _Both:
    def __init__(self, *things: Any) -> None:
        self._things = things

    def close(self) -> None:
        for thing in self._things:
            thing.close()


def run(operation: str, src: str | None, dst: str | None = None, *, options: Options | None = None,
        client: Any = None, scheduler: str | None = None, workers: int | None = None, threads: int | None = None,
        manifest: str | None = None, resume: str | None = None, dry_run: bool = False,
        on_start: Callable[[BulkResult, int, int], object] | None = None,
        on_result: OnResult | None = None) -> BulkResult:
    """Run (or with *dry_run*, only plan) one bulk job; see :mod:`envelope.bulk`."""
    options = options or Options()
    if not dry_run and client is None:
        require("distributed", "bulk", "envelope bulk")  # before anything is listed or recorded
    s3: Any = None
    if resume is not None:
        book = _resumed(resume, manifest, options)
        meta = book.meta()
        if meta["operation"] != operation:
            raise UsageError(f"job {resume} is a {meta['operation']} job, not {operation}")
        for given, stored in ((src, meta["src"]), (dst, meta["dst"])):
            if given is not None and parse_location(given) != parse_location(stored):
                raise UsageError(f"job {resume} is from {meta['src']} to {meta['dst']}, not {src} to {dst}")
        options = Options(**meta["options"])
        job, src, dst = resume, meta["src"], meta["dst"]
        items, gone = _relisted(book, operation, src, dst, options)
    else:
        gone = []
        if src is None:
            raise UsageError(f"bulk {operation} needs SRC (or --resume JOB)")
        source, target = parse_location(src), parse_location(dst) if dst is not None else None
        check_pair(operation, source, target)
        _references(options.keys, "keys")
        _references(options.from_keys, "keys")
        if options.keystore is None and os.environ.get("ENVELOPE_KEYSTORE"):
            options.keystore = os.environ["ENVELOPE_KEYSTORE"]  # the driver's, for workers started elsewhere
        if _uses_s3(source, target) or (manifest or "").startswith("s3://"):
            s3 = _boto(options)
        items, refused = plan(operation, source, target, s3, include=options.include, exclude=options.exclude)
        job = new_job_id()
        if dry_run:
            return BulkResult(job, operation, "", planned=items,
                              failures=[(r.src, r.reason) for r in refused], failed=len(refused))
        book = open_manifest(manifest, job, s3)
        book.start({"operation": operation, "src": src, "dst": dst, "options": vars(options)}, items, refused)
    result = BulkResult(job, operation, book.location, planned=items)
    for row in gone:
        _tally(result, row)
    for row in book.rows.values():
        if row["outcome"] == REFUSED:
            result.failed += 1
            result.failures.append((row["src"], row["error"]))
    if dry_run:
        book.close()
        return result
    config = JobConfig(operation, tuple(options.keys), tuple(options.from_keys),
                       tuple(sorted((options.context or {}).items())), options.keystore, options.endpoint_url,
                       options.region, options.cache_max_age, options.max_kms_rps,
                       f"envelope-kms-{job}-{uuid.uuid4().hex[:8]}" if options.max_kms_rps else None,
                       options.headers_only, options.force)
    started = time.monotonic()
    try:
        _execute(config, items, book, result, client, scheduler, workers, threads, on_start, on_result)
    finally:
        book.close()
        result.seconds = time.monotonic() - started
    return result


def _resumed(job: str, manifest: str | None, options: Options) -> Manifest:
    s3 = _boto(options) if (manifest or "").startswith("s3://") else None
    if manifest is None and (job.endswith(".sqlite") or os.sep in job):
        return open_manifest(job, os.path.basename(job).removesuffix(".sqlite"))
    return open_manifest(manifest, job, s3)


def _relisted(book: Manifest, operation: str, src: str, dst: str | None,
              options: Options) -> tuple[list[Item], list[dict[str, Any]]]:
    """What the job did not finish, listed again: a source replaced since has a new stamp (its ETag),
    and one deleted since is recorded as failed."""
    pending = {item.src for item in book.pending()}
    source, target = parse_location(src), parse_location(dst) if dst is not None else None
    s3 = _boto(options) if _uses_s3(source, target) else None
    try:
        listed, _ = plan(operation, source, target, s3, include=options.include, exclude=options.exclude)
    except UsageError:  # nothing left under SRC
        listed = []
    items = [item for item in listed if item.src in pending]
    gone = [book.record({"src": src, "outcome": FAILED, "error": "no longer in the source", "bytes": 0,
                         "kms_calls": 0, "key_ids": None}) for src in sorted(pending - {i.src for i in items})]
    return items, gone


def _uses_s3(*locations: Location | None) -> bool:
    return any(loc is not None and loc.is_s3 for loc in locations)


def _execute(config: JobConfig, items: list[Item], book: Manifest, result: BulkResult, client: Any,
             scheduler: str | None, workers: int | None, threads: int | None,
             on_start: Callable[[BulkResult, int, int], object] | None, on_result: OnResult | None) -> None:
    if not items:
        return
    dask_client, owned = _dask_client(client, scheduler, workers, threads)
    try:
        from distributed import as_completed

        result.dashboard = getattr(dask_client, "dashboard_link", None)
        if on_start is not None:
            on_start(result, len(items), sum(i.size for i in items))
        window = WINDOW_PER_THREAD * max(1, sum(dask_client.nthreads().values()))
        queue = iter(items)
        by_key: dict[str, Item] = {}

        def submit(item: Item) -> Any:
            future = dask_client.submit(run_item, config, item, pure=False)
            by_key[future.key] = item
            return future

        running = as_completed([submit(i) for i in itertools.islice(queue, window)])
        stop: EnvelopeError | None = None
        try:
            for future in running:
                item = by_key.pop(future.key)
                try:
                    answer = future.result()
                except Exception as exc:  # the task itself was lost (a worker killed too often, a cancel)
                    answer = {"src": item.src, "outcome": FAILED, "error": f"{type(exc).__name__}: {exc}",
                              "bytes": 0, "kms_calls": 0, "key_ids": None}
                future.release()
                if stop is None and answer.get("setup"):
                    stop = _stopped(result.job, answer)  # submit nothing more; record what is in flight
                following = next(queue, None) if stop is None else None
                if following is not None:
                    running.add(submit(following))
                _tally(result, book.record(answer))
                if on_result is not None:
                    on_result(answer)
        except BaseException:
            for future in running.futures:
                future.cancel()
            raise
        if stop is not None:
            raise stop
    finally:
        with contextlib.suppress(Exception):  # best effort: a worker lost now has nothing left to forget
            dask_client.run(forget, config)
        if owned is not None:
            owned.close()


def _stopped(job: str, answer: dict[str, Any]) -> EnvelopeError:
    """The one error a job ends with when no object can succeed: the worker's, of its class (a key error
    by default), with the job to resume once the key is fixed (the items not run are still pending)."""
    kind = getattr(exceptions, str(answer["setup"]), None)
    if not (isinstance(kind, type) and issubclass(kind, EnvelopeError)):
        kind = KeyringError
    return kind(f"{answer['error']}; job {job} stopped, since no object can succeed with these keys "
                f"(--resume {job} runs the rest)")


def _tally(result: BulkResult, row: dict[str, Any]) -> None:
    outcome = row["outcome"]
    if outcome == FINISHED[0]:
        result.done += 1
    elif outcome == FINISHED[1]:
        result.skipped += 1
    else:
        result.failed += 1
        result.failures.append((row["src"], row.get("error") or outcome))
    result.bytes += int(row.get("bytes") or 0)
    result.kms_calls += int(row.get("kms_calls") or 0)
    for key_id in row.get("key_ids") or ():
        result.key_ids[key_id] += 1

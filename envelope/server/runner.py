"""The keystore thread: where every request is authenticated, checked and run.

Every keystore call, reads included, commits an audit row in an SQLite
transaction, so calls on one keystore are serialized by SQLite whatever the
server does; running them in one thread, on one connection, serializes them
without lock contention.  The event loop meanwhile reads and writes HTTP for
every other client.

Durability: a call is acknowledged only after the transaction holding it was
committed and fsynced, so what a client saw succeed survives ``kill -9`` of
the server and a power cut.  An fsync costs milliseconds to tens of
milliseconds on a virtual disk, so it is shared (group commit):

- the requests that queue up while one batch runs form the next batch, each
  in its own savepoint of one transaction
  (:meth:`~envelope.kms.storage.db.Database.batch`), committed once;
- the commit only writes SQLite's write-ahead log; a second thread fsyncs the
  log (:meth:`~envelope.kms.storage.db.Database.sync_log`) and only then answers the
  calls of every batch committed before that fsync began, while the keystore
  thread already runs the next batch.

No answer leaves before the fsync that covers its own commit (and with it
every earlier commit it could have seen); a failed commit or fsync fails
every call it would have acknowledged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..exceptions import EnvelopeError
from . import errors
from .operations import OPERATIONS
from .protocol import ServiceModel
from .wire import Wire, aws_error

#: Most calls one commit acknowledges (bounds the latency the first call of a batch waits for the last).
MAX_BATCH = 64

_log = logging.getLogger("envelope.server")

if TYPE_CHECKING:
    from ..kms.store import KeyStore
    from .app import Request
    from .quotas import RateLimiter
    from .sigv4 import Caller


class KeystoreRunner:
    """Runs requests against *store* in one worker thread, in batches; :meth:`handle` is the app's handler."""

    def __init__(self, store: KeyStore, wire: Wire, limiter: RateLimiter | None = None,
                 authenticate: Callable[[KeyStore, Request, str], Caller] | None = None) -> None:
        self.store = store
        self.wire = wire
        self.model = ServiceModel()
        self._limiter = limiter
        self._authenticate = authenticate or _verify_signature
        self._serving = contextlib.ExitStack()
        self._serving.enter_context(store.serving(deferred_sync=True))
        self._queue: queue.SimpleQueue[tuple[Request, concurrent.futures.Future[bytes]] | None] = queue.SimpleQueue()
        self._committed: queue.SimpleQueue[list[tuple[concurrent.futures.Future[bytes], bytes | BaseException]] | None]
        self._committed = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="keystore", daemon=True)
        self._syncer = threading.Thread(target=self._sync, name="keystore-fsync", daemon=True)
        self._syncer.start()
        self._thread.start()

    async def handle(self, request: Request) -> bytes:
        future: concurrent.futures.Future[bytes] = concurrent.futures.Future()
        self._queue.put((request, future))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Finish the calls already queued, then close the keystore."""
        self._queue.put(None)
        self._thread.join()
        self._committed.put(None)
        self._syncer.join()
        self._serving.close()
        self.store.close()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            while len(jobs) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                jobs.append(more)
            self._run_batch(jobs)

    def _run_batch(self, jobs: list[tuple[Request, concurrent.futures.Future[bytes]]]) -> None:
        outcomes: list[bytes | BaseException] = []
        try:
            with self.store.batch():
                for request, _ in jobs:
                    outcome: bytes | BaseException
                    try:
                        outcome = self.run(request)
                    except Exception as exc:  # noqa: BLE001 - each call's own failure, delivered to it
                        outcome = exc
                    outcomes.append(outcome)  # exactly one per job: responses must never shift to another caller
        except Exception:  # noqa: BLE001 - the commit failed: nothing in the batch is acknowledged
            _log.exception("a batch of keystore calls could not be committed")
            outcomes = [errors.KMSInternalException("the keystore could not commit the request")] * len(jobs)
        self._committed.put([(future, outcome) for (_, future), outcome in zip(jobs, outcomes)])

    def _sync(self) -> None:
        """The fsync thread: make committed batches durable, then answer their calls."""
        stopping = False
        while not stopping:
            first = self._committed.get()
            if first is None:
                return
            done = [first]
            while True:
                try:
                    more = self._committed.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                done.append(more)
            answers = [answer for batch in done for answer in batch]
            try:
                self.store.sync_log()
            except OSError:
                _log.exception("the keystore's log could not be synced")
                failure = errors.KMSInternalException("the keystore could not commit the request")
                answers = [(future, failure) for future, _ in answers]
            for future, outcome in answers:
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def run(self, request: Request) -> bytes:
        """One request, start to finish; raises an :class:`~.errors.AwsError` for any refusal."""
        from ..kms.policy.principal import calling_as

        caller = self._authenticate(self.store, request, self.wire.region)
        operation = self.model.operation(request.headers.get("x-amz-target"), OPERATIONS)
        parsed = self.model.parse_request(operation, request.body)
        if self._limiter is not None:
            self._limiter.acquire(self.wire.account, caller.principal, operation)
        result: dict[str, Any] = {}
        try:
            with calling_as(caller.principal, source=request.source, access_key_id=caller.access_key_id):
                result = OPERATIONS[operation](self.store, parsed, self.wire)
            return self.model.render_response(operation, result)
        except EnvelopeError as exc:
            raise aws_error(exc, operation, str(self.store.path)) from None
        finally:
            _wipe(result)


def _verify_signature(store: KeyStore, request: Request, region: str) -> Caller:
    from ..kms.operations import credentials
    from . import sigv4

    return sigv4.verify(request.method, request.path, request.query, request.headers, request.body,
                        region=region, secret_for=lambda key_id: credentials.secret_for(store, key_id))


def _wipe(result: dict[str, Any]) -> None:
    """Zero the plaintexts (data keys, decrypted secrets) a response carried, once it is rendered."""
    for value in result.values():
        if isinstance(value, bytearray):
            value[:] = bytes(len(value))


__all__ = ["KeystoreRunner", "errors"]

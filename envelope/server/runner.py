"""The keystore thread: where every request is authenticated, checked and run, one at a time.

Every keystore call, reads included, commits an audit row in an SQLite
``BEGIN IMMEDIATE`` transaction, so calls on one keystore are serialized by
SQLite whatever the server does; running them in one thread, on one
connection, serializes them without lock contention (no busy-waiting between
connections).  The event loop meanwhile reads and writes HTTP for every other
client.  A call is acknowledged only after its transaction committed, and
SQLite commits durably (``synchronous=FULL``, the default): what a client saw
succeed survives ``kill -9`` of the server and a power cut.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..exceptions import EnvelopeError
from . import errors
from .operations import OPERATIONS
from .protocol import ServiceModel
from .wire import Wire, aws_error

if TYPE_CHECKING:
    from ..kms.store import KeyStore
    from .app import Request
    from .quotas import RateLimiter
    from .sigv4 import Caller


class KeystoreRunner:
    """Runs requests against *store* in a single worker thread; :meth:`handle` is the app's handler."""

    def __init__(self, store: KeyStore, wire: Wire, limiter: RateLimiter | None = None,
                 authenticate: Callable[[KeyStore, Request, str], Caller] | None = None) -> None:
        self.store = store
        self.wire = wire
        self.model = ServiceModel()
        self._limiter = limiter
        self._authenticate = authenticate or _verify_signature
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="keystore")

    async def handle(self, request: Request) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.run, request)

    def run(self, request: Request) -> bytes:
        """One request, start to finish; raises an :class:`~.errors.AwsError` for any refusal."""
        from ..kms.principal import calling_as

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
            raise aws_error(exc, operation) from None
        finally:
            _wipe(result)

    def close(self) -> None:
        """Finish the calls already queued, then close the keystore."""
        self._pool.shutdown(wait=True)
        self.store.close()


def _verify_signature(store: KeyStore, request: Request, region: str) -> Caller:
    from ..kms import credentials
    from . import sigv4

    return sigv4.verify(request.method, request.path, request.query, request.headers, request.body,
                        region=region, secret_for=lambda key_id: credentials.secret_for(store, key_id))


def _wipe(result: dict[str, Any]) -> None:
    """Zero the plaintexts (data keys, decrypted secrets) a response carried, once it is rendered."""
    for value in result.values():
        if isinstance(value, bytearray):
            value[:] = bytes(len(value))


__all__ = ["KeystoreRunner", "errors"]

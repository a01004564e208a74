"""What a worker process builds once per job and keeps: S3 clients, keyrings, the data-key cache, the KMS limit.

Tasks carry a :class:`JobConfig` (key *references*, context, endpoint, limits)
and never a keyring, a client or a key: each worker process resolves the
references itself, the first time a task of the job reaches it, and keeps the
result for every later task of the job (:func:`state_for`).  So a worker needs
the key files, keystore or AWS credentials itself, as any program using them
would; nothing secret crosses the network in a task.

Key manager calls go through :class:`MeteredKeyring`, which counts them (for
the job's summary) and, with ``--max-kms-rps``, asks the cluster-wide
:class:`KmsRateLimit` first.  It also notes a refusal of the job's own key to
make or wrap a data key (unknown, disabled, access denied): every object asks
the same of the same key, so none can be done and the job stops
(:data:`KEY_REFUSALS`).  With a cache, a process generates at most one
data key per cache window: concurrent tasks that miss wait for the one call
in flight instead of each making their own.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .. import api
from ..cache import CacheLimits, CachingKeyring, DataKeyCache
from ..context import EncryptionContext
from ..exceptions import AccessDeniedError, KeyNotFoundError, KeyStateError, KeyUsageError
from ..format import WrappedKey
from ..keyrings.base import DataKey, Keyring, MultiKeyring

#: What a key manager answers when the key itself cannot make or wrap a data key, whatever the object:
#: a job's keys and context are the same for every object, so the first such answer ends the job.
KEY_REFUSALS = (KeyNotFoundError, KeyStateError, AccessDeniedError, KeyUsageError)


@dataclass(frozen=True)
class JobConfig:
    """Everything a task needs besides its item; nothing secret (it is pickled into every task)."""

    operation: str
    keys: tuple[str, ...] = ()
    from_keys: tuple[str, ...] = ()
    context: tuple[tuple[str, str], ...] = ()
    keystore: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    cache_max_age: float | None = None
    max_kms_rps: float | None = None
    limit_name: str | None = None
    headers_only: bool = False
    force: bool = False

    @property
    def context_dict(self) -> dict[str, str]:
        return dict(self.context)


class KmsRateLimit:
    """At most *rate* key manager calls per second across every worker of the cluster.

    A ``distributed.Semaphore`` (held by the scheduler) of ``ceil(rate)``
    leases; a call holds one from before it starts until ``leases / rate``
    seconds after it ended.  Every call that reaches the key manager within
    any window of that length still holds its lease at the window's end, so
    there are never more calls in it than leases, wherever the workers are,
    whatever their clocks say, however long a request takes to arrive.
    Leases are handed back by one thread per process when they fall due, so a
    task never sleeps holding a thread for it.
    """

    def __init__(self, name: str, rate: float) -> None:
        from distributed import Semaphore

        self.leases = max(1, math.ceil(rate))
        self.hold = self.leases / rate
        self._semaphore = Semaphore(max_leases=self.leases, name=name)
        self._due: list[float] = []
        self._wake = threading.Condition()
        threading.Thread(target=self._release_when_due, daemon=True, name="envelope-kms-limit").start()

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        self._semaphore.acquire()
        try:
            yield
        finally:
            with self._wake:
                heapq.heappush(self._due, time.monotonic() + self.hold)
                self._wake.notify()

    def _release_when_due(self) -> None:
        while True:
            with self._wake:
                while not self._due or self._due[0] > time.monotonic():
                    self._wake.wait(None if not self._due else self._due[0] - time.monotonic())
                heapq.heappop(self._due)
            self._semaphore.release()  # any lease of this process: they are all alike


class MeteredKeyring(Keyring):
    """One master key, its calls counted (per thread, so each task knows its own) and rate-limited."""

    _counts = threading.local()

    def __init__(self, inner: Keyring, limit: KmsRateLimit | None) -> None:
        self._inner, self._limit = inner, limit
        self.provider = inner.provider

    @classmethod
    def calls(cls) -> int:
        """Calls made so far by this thread."""
        return int(getattr(cls._counts, "n", 0))

    @classmethod
    def refused(cls) -> bool:
        """Whether this thread's calls since :meth:`forget_refusal` include a refusal of the key to make or
        wrap a data key (one of :data:`KEY_REFUSALS`)."""
        return bool(getattr(cls._counts, "refused", False))

    @classmethod
    def forget_refusal(cls) -> None:
        cls._counts.refused = False

    def _call(self) -> contextlib.AbstractContextManager[None]:
        MeteredKeyring._counts.n = self.calls() + 1
        return contextlib.nullcontext() if self._limit is None else self._limit.call()

    @contextlib.contextmanager
    def _wrapping(self) -> Iterator[None]:
        with self._call():
            try:
                yield
            except KEY_REFUSALS:
                MeteredKeyring._counts.refused = True
                raise

    @property
    def reference(self) -> str:
        return self._inner.reference

    def cache_identity(self) -> tuple[str, ...]:
        return self._inner.cache_identity()

    def prepare(self) -> None:
        self._inner.prepare()

    def matches(self, wrapped: WrappedKey) -> bool:
        return self._inner.matches(wrapped)

    def generate_data_key(self, context: EncryptionContext) -> tuple[bytearray, WrappedKey]:
        with self._wrapping():
            return self._inner.generate_data_key(context)

    def wrap_data_key(self, plaintext: bytes | bytearray, context: EncryptionContext) -> WrappedKey:
        with self._wrapping():
            return self._inner.wrap_data_key(plaintext, context)

    def unwrap_data_key(self, wrapped: WrappedKey, context: EncryptionContext) -> bytearray:
        with self._call():
            return self._inner.unwrap_data_key(wrapped, context)


class _OneMissAtATime(CachingKeyring):
    """A caching keyring whose misses to generate a key wait for each other: one KMS call per window."""

    def __init__(self, inner: MultiKeyring, cache: DataKeyCache) -> None:
        super().__init__(inner, cache)
        self._lock = threading.Lock()

    def generate_data_key(self, context: EncryptionContext, plaintext_size: int | None = None) -> DataKey:
        with self._lock:
            return super().generate_data_key(context, plaintext_size)


def _metered(keyring: MultiKeyring, limit: KmsRateLimit | None, cache: DataKeyCache | None, *,
             encrypting: bool) -> MultiKeyring:
    """*keyring*'s keys metered, cached; checked first as encrypt-file checks them (a keystore, a key file, an
    alias: no key manager call), so a key that cannot work fails the worker's setup, not each object."""
    keyring.prepare(encrypting)
    metered = MultiKeyring([MeteredKeyring(k, limit) for k in keyring.keyrings],
                           max_wrapped_keys=keyring.max_wrapped_keys)
    return metered if cache is None else _OneMissAtATime(metered, cache)


class WorkerState:
    """One job's clients and keyrings in one worker process (built on the first task, kept after)."""

    def __init__(self, config: JobConfig) -> None:
        self.config = config
        limit = None
        if config.max_kms_rps is not None and config.limit_name is not None:
            limit = KmsRateLimit(config.limit_name, config.max_kms_rps)
        self.cache = None if config.cache_max_age is None else DataKeyCache(CacheLimits(config.cache_max_age))
        keys: Sequence[str] | None = config.keys or None
        store = config.keystore
        self.encrypting = _metered(api.encryption_keyring(keys, keystore=store), limit, self.cache,
                                   encrypting=True) if config.operation in ("encrypt", "rewrap") else None
        if config.operation == "rewrap":  # opened with --from-key, else the local keystore or the new keys
            opening = api.decryption_keyring(config.from_keys or None, keystore=store)
            if not config.from_keys:
                opening = MultiKeyring([*opening.keyrings, *api.encryption_keyring(keys, keystore=store).keyrings])
        else:
            opening = api.decryption_keyring(keys, keystore=store)
        self.decrypting = _metered(opening, limit, self.cache, encrypting=False)
        self._s3: Any = None
        self._lock = threading.Lock()

    def s3(self) -> Any:
        """boto3's S3 client (thread-safe), made on first use: a local job never imports boto3."""
        with self._lock:
            if self._s3 is None:
                self._s3 = s3_client(self.config.region, self.config.endpoint_url)
            return self._s3

    def encrypted(self, keyring: MultiKeyring) -> Any:
        from ..s3 import EncryptedS3Client

        return EncryptedS3Client(self.s3(), keys=keyring, context=self.config.context_dict, header_cache=0)


def s3_client(region: str | None, endpoint_url: str | None) -> Any:
    """boto3's S3 client for a job, with botocore's standard retries (``AWS_RETRY_MODE`` may ask for adaptive).

    A request that fails on a transient error (a connection reset or closed,
    a 500 or 503, throttling) is sent again: every body a job sends can be
    sent twice (bytes, a part's buffer, a seekable spooled file) and is the
    same ciphertext again, so a retry costs no object and changes no byte.
    """
    from ..keyrings.aws_client import env_region, retry_mode, service_client
    from ..optional import require

    require("boto3", "s3", "bulk jobs on S3")
    from botocore.config import Config

    return service_client("s3", region_name=region or env_region(), endpoint_url=endpoint_url,
                          config=Config(retries={"mode": retry_mode()}))


_STATES: dict[JobConfig, WorkerState] = {}
_STATES_LOCK = threading.Lock()


def state_for(config: JobConfig) -> WorkerState:
    """This process's state for the job, built once (the first task to get here builds it; others wait)."""
    with _STATES_LOCK:
        state = _STATES.get(config)
        if state is None:
            state = _STATES[config] = WorkerState(config)
        return state


def forget(config: JobConfig) -> None:
    """Drop the job's state from this process once the job is over, zeroing its cached data keys
    (a long-lived cluster would otherwise keep them until their entries are next looked at)."""
    with _STATES_LOCK:
        state = _STATES.pop(config, None)
    if state is not None and state.cache is not None:
        state.cache.clear()

"""Request-rate quotas: ThrottlingException on purpose, so applications can test their backoff.

AWS KMS meters requests per account and region, per second, and several
operations draw on one shared quota: the symmetric cryptographic operations
(Decrypt, Encrypt, GenerateDataKey, GenerateDataKeyWithoutPlaintext,
GenerateMac, GenerateRandom, ReEncrypt, VerifyMac) share one, and the
asymmetric Sign and Verify another; every other operation (CreateKey,
DescribeKey, ...) has a quota of its own.  Over quota, AWS answers
``ThrottlingException`` ("Rate exceeded") and the SDKs back off and retry.

:class:`RateLimiter` does the same with token buckets, two layers deep: one
per account (``account_rps``) and one per principal (``principal_rps``), each
per quota group as above, every group at the configured rate.  (AWS's rates
differ by operation; one rate per layer is what a test of backoff needs.)  A
request takes a token from its account's bucket and its principal's bucket,
or from neither: a principal refused by its own quota does not use up its
account's.  A bucket holds one second's worth of tokens (at least one), so a
burst up to the rate passes, as in AWS.  ``None`` turns a layer off; both off
(the default) never throttles.  Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ThrottlingException

#: The quota AWS KMS's symmetric cryptographic operations share.
SYMMETRIC_CRYPTO = frozenset({"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
                              "GenerateMac", "GenerateRandom", "ReEncrypt", "VerifyMac"})
#: The quota Sign and Verify share (AWS splits it by RSA and ECC; the operation alone cannot tell them apart).
ASYMMETRIC_CRYPTO = frozenset({"Sign", "Verify"})
THROTTLED = "Rate exceeded"
#: Idle buckets are forgotten once there are this many, so a stream of names cannot grow memory without end.
_MAX_BUCKETS = 10_000


def quota_group(operation: str) -> str:
    """The quota *operation* draws on: a shared one for the cryptographic operations, else its own."""
    if operation in SYMMETRIC_CRYPTO:
        return "cryptographic operations (symmetric)"
    if operation in ASYMMETRIC_CRYPTO:
        return "cryptographic operations (asymmetric)"
    return operation


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per account and per principal; :meth:`acquire` takes one request's tokens or throttles."""

    def __init__(self, account_rps: float | None = None, principal_rps: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        for name, rate in (("account_rps", account_rps), ("principal_rps", principal_rps)):
            if rate is not None and not rate > 0:
                raise ValueError(f"{name} must be a positive number of requests per second, or None")
        self.account_rps = account_rps
        self.principal_rps = principal_rps
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.account_rps is not None or self.principal_rps is not None

    def acquire(self, account: str, principal: str, operation: str) -> None:
        """Count one request of *operation* by *principal* in *account*; ThrottlingException if over quota."""
        if not self.enabled:
            return
        group = quota_group(operation)
        layers = [(("account", account, group), self.account_rps), (("principal", principal, group),
                                                                      self.principal_rps)]
        with self._lock:
            now = self._clock()
            buckets = [self._bucket(name, rate, now) for name, rate in layers if rate is not None]
            if any(bucket.tokens < 1.0 for bucket in buckets):
                raise ThrottlingException(THROTTLED)
            for bucket in buckets:
                bucket.tokens -= 1.0

    def _bucket(self, name: tuple[str, str, str], rate: float, now: float) -> _Bucket:
        capacity = max(1.0, rate)
        bucket = self._buckets.get(name)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._forget_idle(now)
            bucket = self._buckets[name] = _Bucket(capacity, now)
        else:
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        return bucket

    def _forget_idle(self, now: float) -> None:
        """Drop buckets that have refilled completely: forgetting them changes no answer."""
        rates = {"account": self.account_rps, "principal": self.principal_rps}
        for name, bucket in list(self._buckets.items()):
            rate = rates[name[0]] or 1.0
            if bucket.tokens + (now - bucket.updated) * rate >= max(1.0, rate):
                del self._buckets[name]

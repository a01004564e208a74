"""Request-rate quotas: ThrottlingException when over, recovery as the bucket refills."""

from __future__ import annotations

import threading

import pytest

from envelope.server.errors import ThrottlingException
from envelope.server.quotas import RateLimiter, quota_group


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def allowed(limiter: RateLimiter, count: int, account: str = "acct", principal: str = "local:user/a",
            operation: str = "Encrypt") -> int:
    passed = 0
    for _ in range(count):
        try:
            limiter.acquire(account, principal, operation)
            passed += 1
        except ThrottlingException:
            pass
    return passed


def test_quotas_are_off_by_default() -> None:
    limiter = RateLimiter()
    assert not limiter.enabled
    assert allowed(limiter, 10_000) == 10_000


def test_a_principal_over_its_rate_is_throttled_with_aws_error_and_recovers() -> None:
    clock = Clock()
    limiter = RateLimiter(principal_rps=5, clock=clock)
    assert allowed(limiter, 8) == 5  # a burst of one second's worth
    with pytest.raises(ThrottlingException) as refused:
        limiter.acquire("acct", "local:user/a", "Encrypt")
    assert (refused.value.code, refused.value.status, refused.value.message) == (
        "ThrottlingException", 400, "Rate exceeded")
    clock.now += 0.2  # one token back
    assert allowed(limiter, 3) == 1
    clock.now += 10  # a full bucket, never more
    assert allowed(limiter, 10) == 5


def test_the_cryptographic_operations_share_one_quota_and_others_have_their_own() -> None:
    clock = Clock()
    limiter = RateLimiter(principal_rps=4, clock=clock)
    for operation in ("Encrypt", "Decrypt", "GenerateDataKey", "ReEncrypt"):
        limiter.acquire("acct", "local:user/a", operation)
    for operation in ("GenerateDataKeyWithoutPlaintext", "GenerateRandom", "GenerateMac", "VerifyMac", "Decrypt"):
        with pytest.raises(ThrottlingException):
            limiter.acquire("acct", "local:user/a", operation)
    assert allowed(limiter, 10, operation="DescribeKey") == 4
    assert allowed(limiter, 10, operation="CreateKey") == 4
    assert allowed(limiter, 10, operation="Sign") == 4
    assert quota_group("Sign") == quota_group("Verify") != quota_group("Encrypt")
    assert quota_group("ListKeys") == "ListKeys"


def test_principals_have_separate_quotas_and_the_account_quota_bounds_them_all() -> None:
    clock = Clock()
    limiter = RateLimiter(account_rps=6, principal_rps=4, clock=clock)
    assert allowed(limiter, 10, principal="local:user/a") == 4
    assert allowed(limiter, 10, principal="local:user/b") == 2  # the account's 6 are spent
    assert allowed(limiter, 10, principal="local:user/c") == 0
    assert allowed(limiter, 10, account="other", principal="local:user/c") == 4


def test_a_principal_refused_by_its_own_quota_does_not_spend_the_accounts() -> None:
    clock = Clock()
    limiter = RateLimiter(account_rps=5, principal_rps=2, clock=clock)
    assert allowed(limiter, 100, principal="local:user/greedy") == 2
    assert allowed(limiter, 10, principal="local:user/b") == 2
    assert allowed(limiter, 10, principal="local:user/c") == 1


def test_rates_must_be_positive() -> None:
    for bad in (0, -1.0):
        with pytest.raises(ValueError):
            RateLimiter(account_rps=bad)


def test_concurrent_acquires_never_pass_more_than_the_quota() -> None:
    clock = Clock()  # frozen: no refill, so exactly the bucket passes
    limiter = RateLimiter(account_rps=100, clock=clock)
    passed: list[int] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        passed.append(allowed(limiter, 50))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(passed) == 100


def test_fractional_rates_allow_one_request_then_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(principal_rps=0.5, clock=clock)
    assert allowed(limiter, 3) == 1
    clock.now += 1.0
    assert allowed(limiter, 1) == 0
    clock.now += 1.0
    assert allowed(limiter, 1) == 1


def test_idle_buckets_are_forgotten_so_many_names_do_not_grow_memory_without_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from envelope.server import quotas

    monkeypatch.setattr(quotas, "_MAX_BUCKETS", 50)
    clock = Clock()
    limiter = RateLimiter(principal_rps=10, clock=clock)
    for n in range(200):
        limiter.acquire("acct", f"local:user/u{n}", "Encrypt")
        clock.now += 1.0  # each earlier bucket has refilled
    assert len(limiter._buckets) <= 50

"""Rate limits per client and the bound on waiting voice searches."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from glimpse.config import RateLimit
from services.search_api.admission import RateLimiter, WaitingLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_its_burst_then_waits_for_tokens() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit(per_second=0.5, burst=3), "voice searches", clock=clock)

    assert [limiter.retry_after("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.retry_after("a") == pytest.approx(2.0)  # one token per 2 s
    clock.now += 2.0
    assert limiter.retry_after("a") == 0.0


def test_clients_are_counted_apart() -> None:
    limiter = RateLimiter(RateLimit(per_second=1, burst=1), "uploads", clock=Clock())
    assert limiter.retry_after("key:1") == 0.0
    assert limiter.retry_after("key:1") > 0
    assert limiter.retry_after("addr:10.0.0.9") == 0.0


def test_over_the_rate_is_a_429_that_says_when_to_come_back() -> None:
    limiter = RateLimiter(RateLimit(per_second=0.25, burst=1), "voice searches", clock=Clock())
    limiter.admit("a")
    with pytest.raises(HTTPException) as refused:
        limiter.admit("a")
    assert refused.value.status_code == 429
    assert refused.value.headers == {"Retry-After": "4"}
    assert "voice searches" in str(refused.value.detail)


def test_a_flood_of_addresses_does_not_grow_memory() -> None:
    limiter = RateLimiter(RateLimit(per_second=1, burst=1), "uploads", max_clients=100)
    for n in range(10_000):
        limiter.retry_after(f"addr:{n}")
    assert len(limiter._buckets) == 100


def test_zero_per_second_turns_the_limit_off() -> None:
    limiter = RateLimiter(RateLimit(per_second=0, burst=0), "uploads")
    assert all(limiter.retry_after("a") == 0.0 for _ in range(1000))


def test_waiting_limit_refuses_past_capacity_and_frees_slots() -> None:
    waiting = WaitingLimit(capacity=2, retry_after_s=15, what="voice searches")
    with waiting.slot(), waiting.slot():
        with pytest.raises(HTTPException) as refused, waiting.slot():
            pass
        assert refused.value.status_code == 429
        assert refused.value.headers == {"Retry-After": "15"}
    with waiting.slot():  # both freed, also the refused one took none
        assert waiting.inside == 1
    assert waiting.inside == 0

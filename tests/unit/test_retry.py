"""The retry policy: exponential, capped, jittered."""

from __future__ import annotations

import pytest

from shared.retry import INVALIDATION_LISTENER, PROVIDER_SYNC, UPSTREAM_FETCH, Backoff


def test_backoff_doubles_up_to_the_cap_within_the_jitter() -> None:
    b = Backoff(first=0.5, cap=4.0, jitter=0.2)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (30, 4.0)]:
        delays = [b.delay(attempt) for _ in range(200)]
        assert all(base * 0.8 <= d <= base * 1.2 for d in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > base * 0.1  # jittered, not constant


def test_backoff_without_jitter_and_in_milliseconds() -> None:
    b = Backoff(first=0.25, cap=8.0, jitter=0.0)
    assert [b.delay(n) for n in (1, 2, 3, 6, 7)] == [0.25, 0.5, 1.0, 8.0, 8.0]
    assert b.delay_ms(3) == 1000


@pytest.mark.parametrize(
    ("policy", "first", "cap"),
    [(UPSTREAM_FETCH, 0.25, 8.0), (PROVIDER_SYNC, 1.0, 60.0), (INVALIDATION_LISTENER, 0.2, 5.0)],
)
def test_named_policies(policy: Backoff, first: float, cap: float) -> None:
    assert (policy.first, policy.cap) == (first, cap)
    assert policy.delay(1) <= first * 1.2
    assert policy.delay(100) <= cap * 1.2

"""When to try a failed delivery again: the Standard Webhooks schedule, jittered, after Retry-After."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: A receiver cannot push a retry further out than this.
MAX_RETRY_AFTER = 86400.0
#: Each scheduled delay is spread by up to this fraction either way.
JITTER = 0.1


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), MAX_RETRY_AFTER)


def next_delay(
    schedule: Sequence[float],
    attempts: int,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the attempt after `attempts` failed ones, or None when the schedule is spent.

    schedule[0] is the first attempt's delay (immediately), schedule[k] the delay before attempt
    k + 1. A Retry-After longer than the scheduled delay wins.
    """
    if attempts >= len(schedule):
        return None
    base = schedule[attempts]
    delay = base * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return max(delay, retry_after or 0.0)

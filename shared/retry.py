"""The retry policy of modelmeta: how long to wait before trying again, named once per use.

Every wait after a failure is exponential backoff with jitter: attempt n (1, 2, ...) waits about
`first * 2**(n - 1)` seconds, never more than `cap`, spread by +/- `jitter` so that many clients
failing together do not come back together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter, in seconds."""

    first: float
    cap: float
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1, 2, ...)."""
        base = min(self.cap, self.first * 2.0 ** max(0, attempt - 1))
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)

    def delay_ms(self, attempt: int) -> int:
        """The same, in whole milliseconds (what dramatiq.Retry takes)."""
        return int(self.delay(attempt) * 1000)


#: An upstream GET that failed (network error, timeout, 5xx), between the fetcher's attempts.
UPSTREAM_FETCH = Backoff(first=0.25, cap=8.0)
#: A provider sync that raised, before its message is retried (attempts are counted in PostgreSQL).
PROVIDER_SYNC = Backoff(first=1.0, cap=60.0)
#: Any other actor failure: dramatiq's Retries middleware applies these bounds (with its own jitter).
ACTOR_MESSAGE = Backoff(first=1.0, cap=60.0)
#: A web process's cache-invalidation listener, reconnecting to Redis.
INVALIDATION_LISTENER = Backoff(first=0.2, cap=5.0)

"""The refresh schedule: slots of REFRESH_INTERVAL, each claimed once in Redis, whoever leads."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Slot:
    """One scheduling period: it starts at `start`, its refresh is due at `due` (start + jitter)."""

    index: int
    start: float
    due: float


def slot_at(now: float, interval: float) -> Slot:
    """The slot containing `now`; its jitter is derived from its index, so every scheduler agrees."""
    index = int(now // interval)
    start = index * interval
    spread = min(60.0, interval * 0.1)
    jitter = int.from_bytes(hashlib.sha256(str(index).encode()).digest()[:4], "big") / 2**32 * spread
    return Slot(index, start, start + jitter)


class ScheduleState(msgspec.Struct):
    """What the scheduler publishes for GET /api/v1/refresh/status."""

    interval: float
    #: None when no refresh is scheduled (AUTO_REFRESH off).
    next_run_at: float | None
    leader: str | None = None
    updated_at: float = 0.0


def state_key(prefix: str) -> str:
    return f"{prefix}:scheduler:state"


async def read_state(redis: Redis, prefix: str) -> ScheduleState | None:
    """The schedule last published by a leading scheduler, if any."""
    data = await redis.get(state_key(prefix))
    return msgspec.json.decode(data, type=ScheduleState) if data else None


async def write_state(redis: Redis, prefix: str, state: ScheduleState) -> None:
    """Publish the leader's schedule (it expires if no leader renews it)."""
    state.updated_at = time.time()
    await redis.set(state_key(prefix), msgspec.json.encode(state), ex=max(60, int(state.interval * 2)))


async def claim_slot(redis: Redis, prefix: str, slot: Slot, interval: float) -> bool:
    """True for exactly one caller per slot, across schedulers and failovers."""
    key = f"{prefix}:scheduler:slot:{slot.index}"
    return bool(await redis.set(key, str(time.time()), nx=True, ex=max(60, int(interval * 3))))

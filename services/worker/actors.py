"""The refresh actors: thin async wrappers around shared.refresh.

Import this module only through make_broker (services/worker/broker.py): its actors bind to the
global broker when they are declared.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

import dramatiq
import structlog
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import CurrentMessage

from services.worker.middleware import current_context
from shared import refresh
from shared.errors import RateLimited
from shared.resources import RefreshContext
from shared.retry import PROVIDER_SYNC
from shared.sender import PLAN_REFRESH, RUN_GAVE_UP, SYNC_PROVIDER, ActorRef

log = structlog.get_logger(__name__)
P = ParamSpec("P")

#: Give up on a message after this many unexpected failures (a Retry we raise ourselves is not one).
MAX_UNEXPECTED_FAILURES = 10


def _retry_when(retries: int, exc: BaseException) -> bool:
    # Rate-limit waits and our own attempt-counted retries do not use up the retry budget.
    return isinstance(exc, dramatiq.Retry) or retries < MAX_UNEXPECTED_FAILURES


def async_actor(ref: ActorRef, **options: Any) -> Callable[[Callable[P, Awaitable[None]]], Any]:
    """dramatiq.actor for an async function, named and queued as `ref` says, with actor_name and
    message_id bound to its logs.

    dramatiq runs async actors on its event-loop thread, where the worker thread's current
    message is not visible; this reads it on the worker thread and binds it inside the coroutine.
    """

    def decorate(fn: Callable[P, Awaitable[None]]) -> Any:
        async def bound(message_id: str | None, *args: P.args, **kwargs: P.kwargs) -> None:
            structlog.contextvars.bind_contextvars(actor_name=ref.actor_name, message_id=message_id)
            await fn(*args, **kwargs)

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            message = CurrentMessage.get_current_message()
            loop_thread = get_event_loop_thread()
            assert loop_thread is not None, "the AsyncIO middleware is missing"
            loop_thread.run_coroutine(bound(message.message_id if message else None, *args, **kwargs))

        run.__wrapped_async__ = fn  # type: ignore[attr-defined]
        return dramatiq.actor(actor_name=ref.actor_name, queue_name=ref.queue_name, **options)(run)

    return decorate


def _retry_later(e: RateLimited) -> dramatiq.Retry:
    return dramatiq.Retry(str(e), delay=int(e.delay * 1000) + random.randint(10, 250))


# notify_shutdown: on SIGTERM an actor still running is interrupted (its transaction rolls back)
# and its message is retried, so a restart picks it up instead of the process being killed.
@async_actor(
    PLAN_REFRESH,
    retry_when=_retry_when,
    on_retry_exhausted=RUN_GAVE_UP.actor_name,
    time_limit=600_000,
    notify_shutdown=True,
)
async def plan_refresh(run_id: int) -> None:
    """Fetch the source, record the per-provider work and fan it out."""
    structlog.contextvars.bind_contextvars(run_id=run_id)
    ctx = current_context()
    try:
        providers = await refresh.plan_refresh(ctx, run_id)
    except RateLimited as e:
        raise _retry_later(e) from None
    if providers:
        await asyncio.to_thread(_send_syncs, run_id, providers)
        log.info("fanned_out", providers=len(providers))


def _send_syncs(run_id: int, providers: list[str]) -> None:
    """One message per batch of providers (refresh.sync_batches): a batch of one names its provider."""
    for batch in refresh.sync_batches(providers):
        sync_provider.send(run_id, batch[0] if len(batch) == 1 else batch)


def _send_each(run_id: int, providers: list[str]) -> None:
    for pid in providers:
        sync_provider.send(run_id, pid)


@async_actor(SYNC_PROVIDER, retry_when=_retry_when, time_limit=300_000, notify_shutdown=True)
async def sync_provider(run_id: int, provider_id: str | list[str]) -> None:
    """Sync one provider of a run (or a batch of them: a list); failures are counted in PostgreSQL
    and retried with backoff."""
    structlog.contextvars.bind_contextvars(run_id=run_id, provider_id=provider_id)
    ctx = current_context()
    if isinstance(provider_id, list):
        await _sync_batch(ctx, run_id, provider_id)
        return
    try:
        await refresh.sync_provider(ctx, run_id, provider_id)
    except RateLimited as e:
        raise _retry_later(e) from None
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
        attempts = await refresh.record_failure(ctx, run_id, provider_id, error)
        if attempts is None:
            return
        delay_ms = PROVIDER_SYNC.delay_ms(attempts)
        log.warning("sync_retry", attempts=attempts, delay_ms=delay_ms, error=error)
        raise dramatiq.Retry(error, delay=delay_ms) from e


async def _sync_batch(ctx: RefreshContext, run_id: int, provider_ids: list[str]) -> None:
    """Sync a batch in one transaction; when it fails, each of its providers goes again in a message
    of its own, with its attempts counted (one provider's fault does not hold up the others). A run
    from another modelmeta fetches each provider's models on its own (rate-limited, retried with
    its delay): its providers go in messages of their own from the start."""
    if not await refresh.syncs_in_batches(ctx, run_id):
        await asyncio.to_thread(_send_each, run_id, provider_ids)
        return
    try:
        await refresh.sync_providers(ctx, run_id, provider_ids)
    except Exception as e:
        log.warning("sync_batch_split", providers=len(provider_ids), error=f"{type(e).__name__}: {e}")
        await asyncio.to_thread(_send_each, run_id, provider_ids)


@async_actor(RUN_GAVE_UP, max_retries=3)
async def run_gave_up(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
    """A plan_refresh message failed for good: close its run as failed."""
    run_id = int(message["args"][0])
    error = message.get("options", {}).get("traceback", "").strip().splitlines()[-1:] or ["unknown error"]
    await refresh.fail_run(current_context().pool, run_id, f"planning failed: {error[0]}")
    log.error("run_gave_up", run_id=run_id, retries=retry_info.get("retries"))

"""The refresh pipeline's logic: request a run, plan it, sync one provider, close the run.

The dramatiq actors in services/worker are thin wrappers around these functions; everything here
takes its resources explicitly and is safe to run twice for the same message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import aiohttp
import asyncpg
import msgspec
import structlog
from redis.asyncio import Redis

from shared import events
from shared.catalog import (
    ModelRecord,
    ProviderRecord,
    decode_provider_slice,
    field_changes,
    model_row,
    parse_document,
    sha256_hex,
)
from shared.config import Settings
from shared.db import Conn
from shared.db import catalog as db
from shared.db import history as history_db
from shared.db import runs as runs_db
from shared.db.pool import create_pool
from shared.errors import IntegrityGuardTripped, MalformedDocument, UpstreamError, UpstreamUnavailable
from shared.metrics import INVALIDATIONS, PROVIDER_FAILURES, PROVIDER_SYNCS, REFRESH_DURATION
from shared.ratelimit import RateLimiter
from shared.sources import Fetched, HttpFetcher, ModelmetaSource, parse_provider_listing

log = structlog.get_logger(__name__)

SAMPLE_URL = "bundled:sample"


def sample_document() -> bytes:
    """The small catalog shipped with modelmeta, served when nothing else can be."""
    return (resources.files("shared.sample") / "catalog.json").read_bytes()


@dataclass(frozen=True, slots=True)
class RefreshContext:
    """What the pipeline needs: settings and open connections."""

    settings: Settings
    pool: asyncpg.Pool
    redis: Redis
    fetcher: HttpFetcher


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What one sync_provider call did."""

    status: str  # succeeded, failed, skipped
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    catalog_version: int | None = None
    run_closed: str | None = None


async def open_context(settings: Settings, *, client_name: str = "worker") -> RefreshContext:
    """Open the pool, Redis client and HTTP session that the pipeline uses."""
    pool = await create_pool(settings.database_url, min_size=1, max_size=8)
    redis = Redis.from_url(settings.redis_url, client_name=f"{settings.redis_prefix}:{client_name}")
    session = aiohttp.ClientSession(headers={"User-Agent": "modelmeta/0.1"})
    limiter = RateLimiter(redis, settings.redis_prefix, settings.upstream_rate_limit)
    fetcher = HttpFetcher(
        session,
        limiter,
        timeout=settings.upstream_timeout,
        max_bytes=settings.upstream_max_bytes,
        attempts=settings.upstream_attempts,
        token=settings.upstream_token,
    )
    return RefreshContext(settings=settings, pool=pool, redis=redis, fetcher=fetcher)


async def close_context(ctx: RefreshContext) -> None:
    """Close what open_context opened."""
    await ctx.fetcher.session.close()
    await ctx.redis.aclose()
    await ctx.pool.close()


async def request_refresh(
    pool: asyncpg.Pool,
    *,
    trigger: str,
    providers: Sequence[str] | None = None,
    force: bool = False,
    idempotency_key: str | None = None,
) -> tuple[asyncpg.Record, bool]:
    """Create a queued run, or join the open run of the same scope; True when created."""
    async with pool.acquire() as conn:
        return await runs_db.create_or_join_run(
            conn, trigger=trigger, providers=providers, force=force, idempotency_key=idempotency_key
        )


async def fail_run(pool: asyncpg.Pool, run_id: int, error: str) -> None:
    """Close a run that could not go on, with the reason."""
    async with pool.acquire() as conn:
        await runs_db.finish_run(conn, run_id, "failed", error=error)


async def plan_refresh(ctx: RefreshContext, run_id: int, *, document: Fetched | None = None) -> list[str]:
    """Fetch and validate the source, then record one provider-run per provider to sync.

    Returns the providers whose sync_provider messages must be sent (again, on redelivery).
    Errors of the source close the run as failed and change nothing; RateLimited propagates so
    that the actor retries later. `document`: a models.dev document to load instead of fetching
    the source (import-history).
    """
    log_ = log.bind(run_id=run_id)
    kind = ctx.settings.resolved_source_kind
    url = ctx.settings.modelsdev_url
    if kind == "modelmeta":
        url = ModelmetaSource(ctx.fetcher, url).providers_url
    if document is not None:  # history (issue 13): a dated document handed in
        kind, url = "document", document.url
    async with ctx.pool.acquire() as conn:
        run = await runs_db.start_run(conn, run_id)
        if run is None:
            log_.info("plan_skipped", reason="run already finished")
            return []
        if await runs_db.has_provider_runs(conn, run_id):
            return await runs_db.pending_providers(conn, run_id)
        scope: list[str] | None = run["scope"]
        force: bool = run["force"]
        # A handed-in document is always compared provider by provider (history: issue 13).
        etag, good_sha256 = (None, None) if force or document else await runs_db.last_good_source(conn, url)
        catalog_empty = await db.catalog_is_empty(conn)

    fallback_reason = None
    try:
        fetched = document or await ctx.fetcher.get(url, etag=etag)
    except UpstreamUnavailable as e:
        if not catalog_empty:
            log_.warning("plan_failed", error=str(e))
            await fail_run(ctx.pool, run_id, str(e))
            return []
        log_.warning("upstream_unreachable_loading_sample", error=str(e))
        fallback_reason = f"upstream unreachable and the catalog is empty: {e}"
        fetched, kind = Fetched(SAMPLE_URL, sample_document(), None), "document"
    except UpstreamError as e:
        log_.warning("plan_failed", error=str(e))
        await fail_run(ctx.pool, run_id, str(e))
        return []

    if fetched.body is None:
        async with ctx.pool.acquire() as conn:
            await runs_db.finish_run(conn, run_id, "unchanged", source_url=url, etag=fetched.etag, sha256=good_sha256)
        log_.info("run_unchanged", reason="304 Not Modified")
        return []

    body = fetched.body
    digest = sha256_hex(body)
    if digest == good_sha256:
        # The very document the last good run loaded (a file, or an upstream without ETags).
        async with ctx.pool.acquire() as conn:
            await runs_db.finish_run(
                conn, run_id, "unchanged", source_url=fetched.url, etag=fetched.etag, sha256=digest
            )
        log_.info("run_unchanged", reason="same document as the last good run", sha256=digest)
        return []
    try:
        # Per provider: its slice of the document, or (another modelmeta) its own object, whose
        # models sync_provider fetches; and the hash that says whether it changed.
        if kind == "document":
            doc = parse_document(body)
            items, hashes, model_count = doc.slices, doc.slice_hashes, doc.model_count
        else:
            listing = parse_provider_listing(body)
            items, hashes, model_count = listing.providers, listing.hashes, listing.model_count
    except MalformedDocument as e:
        log_.warning("plan_failed", error=str(e), sha256=digest)
        async with ctx.pool.acquire() as conn:
            await runs_db.finish_run(conn, run_id, "failed", error=str(e), source_url=fetched.url, sha256=digest)
        return []

    async with ctx.pool.acquire() as conn, conn.transaction():
        if scope is None and not force:
            listed = await db.listed_model_count(conn)
            if model_count * 2 < listed:
                err = IntegrityGuardTripped(
                    f"the source lists {model_count} models, under half of the {listed} listed now; "
                    "refusing it (force a refresh to accept it)"
                )
                log_.warning("plan_failed", error=str(err))
                await runs_db.finish_run(conn, run_id, "failed", error=str(err), source_url=fetched.url, sha256=digest)
                return []
        stored = await db.listed_provider_hashes(conn)
        wanted = set(scope) if scope else set(items) | set(stored)
        todo: list[tuple[str, bytes | None, str | None]] = []
        for pid in sorted(wanted):
            if pid in items:
                h = hashes[pid]
                if force or stored.get(pid) != h:
                    todo.append((pid, items[pid], h))
            elif pid in stored:
                todo.append((pid, None, None))  # vanished from the source
        snapshot_id = await runs_db.store_snapshot(
            conn, sha256=digest, source_url=fetched.url, etag=fetched.etag, body=body
        )
        await runs_db.fan_out(
            conn,
            run_id,
            todo,
            snapshot_id=snapshot_id,
            source_url=fetched.url,
            source_kind=kind,
            etag=fetched.etag,
            sha256=digest,
            fallback_reason=fallback_reason,
        )
        if not todo:
            await runs_db.finish_run(conn, run_id, "unchanged")
    log_.info(
        "run_planned", providers=len(todo), models=model_count, sha256=digest, kind=kind, fallback=fallback_reason
    )
    return [pid for pid, _, _ in todo]


async def sync_provider(ctx: RefreshContext, run_id: int, provider_id: str) -> SyncOutcome:
    """Bring one provider's stored models in line with its slice, in one transaction."""
    started = time.monotonic()
    # A per-provider source: fetch this provider's models first, outside any transaction.
    fetched: tuple[bytes, str] | None = None
    pending = await runs_db.peek_provider_run(ctx.pool, run_id, provider_id)
    if pending is not None and pending["source_kind"] == "modelmeta" and pending["slice_hash"] is not None:
        source = ModelmetaSource(ctx.fetcher, pending["source_url"].removesuffix("/providers"))
        models, content_hash = await source.provider_models(provider_id, pending["slice_hash"])
        provider_object = msgspec.json.decode(pending["slice"])
        fetched = (msgspec.json.encode({**provider_object, "models": models}), content_hash)
    async with ctx.pool.acquire() as conn, conn.transaction():
        pr = await runs_db.lock_provider_run(conn, run_id, provider_id)
        if pr is None:
            outcome = SyncOutcome("skipped")
        else:
            # Two runs touching one provider take turns, each diffing against committed state.
            await runs_db.lock_provider_for_sync(conn, provider_id)
            slice_, slice_hash = fetched or (pr["slice"], pr["slice_hash"])
            try:
                outcome = await _apply_slice(conn, run_id, provider_id, slice_, slice_hash, started)
            except MalformedDocument as e:
                # Bad data does not get better on retry: fail this provider, keep the others.
                log.warning("provider_malformed", run_id=run_id, provider_id=provider_id, error=str(e))
                pending_count = await runs_db.complete_provider_run(
                    conn,
                    run_id,
                    provider_id,
                    status="failed",
                    duration_ms=int((time.monotonic() - started) * 1000),
                    error=str(e),
                )
                outcome = SyncOutcome("failed", run_closed="pending" if pending_count == 0 else None)
    return await _after_commit(ctx, run_id, provider_id, outcome)


async def _apply_slice(
    conn: Conn,
    run_id: int,
    provider_id: str,
    slice_: bytes | None,
    slice_hash: str | None,
    started: float,
) -> SyncOutcome:
    states = await db.model_states(conn, provider_id)
    changes_at = await history_db.run_changes_at(conn, run_id)  # history (issue 13): an import's date or None
    provider: ProviderRecord | None = None
    incoming: dict[str, ModelRecord] = {}
    if slice_ is not None:
        provider, incoming = decode_provider_slice(provider_id, slice_)

    added = [mid for mid in incoming if mid not in states or not states[mid][1]]
    updated = [
        mid for mid, rec in incoming.items() if mid in states and states[mid][1] and states[mid][0] != rec.content_hash
    ]
    removed = [mid for mid, (_, listed) in states.items() if listed and mid not in incoming]
    unchanged = len(incoming) - len(added) - len(updated)

    provider_changed = False
    if provider is None:
        await db.remove_provider(conn, provider_id, changes_at)
        provider_changed = True
    else:
        assert slice_hash is not None
        old_name, provider_changed = await db.upsert_provider(conn, provider, slice_hash, changes_at)
        if old_name is not None and old_name != provider.name:
            await db.rename_provider_in_models(conn, provider_id, provider.name)

    if added or updated:
        assert provider is not None
        old_raws = await db.model_raws(conn, provider_id, updated) if updated else {}
        await db.upsert_models(
            conn, (model_row(provider_id, provider.name, incoming[mid]) for mid in added + updated), changes_at
        )
    if removed:
        await db.remove_models(conn, provider_id, removed, changes_at)
    version = None
    if added or updated or removed or provider_changed:
        # Last, so the catalog_state row lock (which orders commits) is held only briefly.
        version = await db.bump_catalog_version(conn)
        at = await history_db.stamp_version(conn, version, changes_at)  # history (issue 13)
        changes: list[tuple[Any, ...]] = [(run_id, provider_id, mid, "added", None, version) for mid in added]
        changes.extend(
            (run_id, provider_id, mid, "updated", field_changes(old_raws[mid], incoming[mid].raw), version)
            for mid in updated
        )
        changes.extend((run_id, provider_id, mid, "removed", None, version) for mid in removed)
        await db.insert_changes(conn, changes, at)
        # history (issue 13): the versions, with their validity intervals, in the same transaction
        if provider_changed:
            await history_db.record_provider_version(conn, provider_id, at, provider, slice_hash)
        name = provider.name if provider else ""
        await history_db.record_model_versions(conn, provider_id, at, name, incoming, added + updated, removed)
    pending = await runs_db.complete_provider_run(
        conn,
        run_id,
        provider_id,
        status="succeeded",
        counts=(len(added), len(updated), len(removed), unchanged),
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    return SyncOutcome(
        "succeeded",
        len(added),
        len(updated),
        len(removed),
        unchanged,
        version,
        run_closed="pending" if pending == 0 else None,
    )


async def _after_commit(ctx: RefreshContext, run_id: int, provider_id: str, outcome: SyncOutcome) -> SyncOutcome:
    log_ = log.bind(run_id=run_id, provider_id=provider_id)
    PROVIDER_SYNCS.labels(outcome.status).inc()
    if outcome.catalog_version is not None:
        await publish_invalidation(ctx, outcome.catalog_version, [provider_id], run_id)
    log_.info(
        "provider_synced",
        status=outcome.status,
        added=outcome.added,
        updated=outcome.updated,
        removed=outcome.removed,
        unchanged=outcome.unchanged,
        catalog_version=outcome.catalog_version,
    )
    # Also on a redelivered message (skipped): the worker that committed the last provider may
    # have died before closing the run.
    if outcome.run_closed or outcome.status == "skipped":
        final = await close_run(ctx, run_id)
        return SyncOutcome(**{**_as_dict(outcome), "run_closed": final})
    return outcome


def _as_dict(o: SyncOutcome) -> dict[str, Any]:
    return {f: getattr(o, f) for f in o.__slots__}


async def publish_invalidation(ctx: RefreshContext, version: int, providers: list[str], run_id: int | None) -> None:
    """Tell the web processes; a lost event is caught by their generation check."""
    try:
        await events.publish(ctx.redis, ctx.settings.redis_prefix, events.Invalidation(version, providers, run_id))
        INVALIDATIONS.labels("published").inc()
    except Exception as e:  # Redis down: data is committed; web processes catch up by polling.
        INVALIDATIONS.labels("publish_failed").inc()
        log.warning("invalidation_publish_failed", error=str(e), catalog_version=version)


#: How long closing a run waits for the web processes to reflect its data.
ACK_TIMEOUT = 3.0


async def close_run(ctx: RefreshContext, run_id: int) -> str | None:
    """Close the run if all its providers are finished; return its final status.

    Read-your-refresh: before the run can report success, every live web process must have
    dropped the cache entries this run made stale (they acknowledge catalog versions in Redis).
    A process that does not answer within ACK_TIMEOUT is caught by its own version poll instead.
    """
    if not await runs_db.awaits_close(ctx.pool, run_id):
        return None
    version = await db.catalog_version(ctx.pool)
    try:
        behind = await events.wait_for_acks(ctx.redis, ctx.settings.redis_prefix, version, ACK_TIMEOUT)
        if behind:
            log.warning("web_processes_behind", run_id=run_id, catalog_version=version, instances=behind)
    except Exception as e:  # Redis down: nothing to wait for; the web processes poll PostgreSQL.
        log.warning("ack_wait_failed", run_id=run_id, error=str(e))
    async with ctx.pool.acquire() as conn:
        closed = await runs_db.close_run_if_complete(conn, run_id)
    if closed is None:
        return None
    status, seconds = closed
    REFRESH_DURATION.labels(status).observe(seconds)
    run = await runs_db.get_run(ctx.pool, run_id)
    if run is not None:
        await db.refresh_statistics_if_stale(ctx.pool, run["added"] + run["updated"] + run["removed"])
    log.info("run_closed", run_id=run_id, status=status, duration_s=round(seconds, 3))
    return status


async def record_failure(ctx: RefreshContext, run_id: int, provider_id: str, error: str) -> int | None:
    """Count a failed sync attempt; after the last allowed one, fail the provider for good.

    Returns the attempts so far, or None when the provider-run was closed (finally failed, or
    already finished).
    """
    max_attempts = ctx.settings.provider_max_attempts
    async with ctx.pool.acquire() as conn, conn.transaction():
        attempts = await runs_db.record_attempt_failure(conn, run_id, provider_id, error)
        if attempts is None:
            return None
        PROVIDER_FAILURES.labels(str(attempts >= max_attempts).lower()).inc()
        if attempts < max_attempts:
            return attempts
        pending = await runs_db.complete_provider_run(
            conn,
            run_id,
            provider_id,
            status="failed",
            duration_ms=0,
            error=f"{error} (gave up after {attempts} attempts)",
            attempt=0,
        )
    log.error("provider_failed", run_id=run_id, provider_id=provider_id, attempts=attempts, error=error)
    if pending == 0:
        await close_run(ctx, run_id)
    return None


#: How often a stalled run's pending work is sent again before the run is closed as failed.
MAX_RESENDS = 3


async def sweep_stalled_runs(
    ctx: RefreshContext,
    *,
    idle_seconds: float,
    send_plan: Callable[[int], None],
    send_sync: Callable[[int, str], None],
) -> list[tuple[int, str]]:
    """Recover runs whose messages were lost: resend their pending work from PostgreSQL (the
    actors are idempotent, so a message that was only slow does no harm), and after MAX_RESENDS
    close the run as failed. Returns (run_id, action) for each run it touched."""
    actions: list[tuple[int, str]] = []
    async with ctx.pool.acquire() as conn:
        stalled = await runs_db.stalled_runs(conn, idle_seconds)
    for run in stalled:
        run_id = run["id"]
        if run["resends"] < MAX_RESENDS:
            async with ctx.pool.acquire() as conn:
                pending = await runs_db.pending_providers(conn, run_id) if run["planned"] else []
                await runs_db.mark_resent(conn, run_id)
            if run["planned"]:
                for pid in pending:
                    await asyncio.to_thread(send_sync, run_id, pid)
            else:
                await asyncio.to_thread(send_plan, run_id)
            log.warning("stalled_run_resent", run_id=run_id, resends=run["resends"] + 1, providers=len(pending))
            actions.append((run_id, "resent"))
            continue
        error = f"no progress for {idle_seconds:g}s after {MAX_RESENDS} resends; gave up"
        if run["planned"]:
            async with ctx.pool.acquire() as conn, conn.transaction():
                await runs_db.give_up_run(conn, run_id, error)
            await close_run(ctx, run_id)
        else:
            await fail_run(ctx.pool, run_id, error)
        log.error("stalled_run_closed", run_id=run_id, error=error)
        actions.append((run_id, "closed"))
    return actions

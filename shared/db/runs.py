"""SQL for refresh runs and their per-provider runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from shared.db import Conn, Queryable
from shared.enums import OPEN_RUN_STATUSES, ProviderRunStatus, RunStatus, SourceKind, Trigger

RUN_COLUMNS = """
    r.id, r.status, r.trigger, r.scope, r.force, r.requested_at, r.started_at, r.finished_at,
    r.source_url, r.etag, r.sha256, r.fallback_reason, r.error, r.providers_total,
    r.providers_pending, r.catalog_version,
    (SELECT count(*) FILTER (WHERE pr.status = 'succeeded') FROM refresh_provider_runs pr
        WHERE pr.run_id = r.id) AS providers_done,
    (SELECT count(*) FILTER (WHERE pr.status = 'failed') FROM refresh_provider_runs pr
        WHERE pr.run_id = r.id) AS providers_failed,
    (SELECT coalesce(sum(added), 0) FROM refresh_provider_runs pr WHERE pr.run_id = r.id) AS added,
    (SELECT coalesce(sum(updated), 0) FROM refresh_provider_runs pr WHERE pr.run_id = r.id) AS updated,
    (SELECT coalesce(sum(removed), 0) FROM refresh_provider_runs pr WHERE pr.run_id = r.id) AS removed,
    (SELECT coalesce(sum(unchanged), 0) FROM refresh_provider_runs pr WHERE pr.run_id = r.id) AS unchanged
"""


#: An Idempotency-Key answers the run it made for this long (seconds), and at most this many keys
#: are held: older ones are forgotten, so a key used again after a day makes a new run.
IDEMPOTENCY_TTL = 24 * 3600.0
IDEMPOTENCY_MAX_KEYS = 10_000


async def forget_idempotency_keys(
    conn: Queryable, *, ttl: float = IDEMPOTENCY_TTL, keep: int = IDEMPOTENCY_MAX_KEYS
) -> int:
    """Clear the keys older than `ttl` and all but the newest `keep`; return how many were cleared.
    Run before each keyed request, it keeps at most keep + 1 keys (an index holds just those)."""
    done = await conn.execute(
        """
        UPDATE refresh_runs SET idempotency_key = NULL
        WHERE idempotency_key IS NOT NULL
          AND (requested_at < now() - make_interval(secs => $1)
               OR id <= (SELECT id FROM refresh_runs WHERE idempotency_key IS NOT NULL
                         ORDER BY id DESC OFFSET $2 LIMIT 1))
        """,
        ttl,
        keep,
    )
    return int(done.split()[-1])


def scope_key(providers: Sequence[str] | None) -> str:
    """What makes two triggers the same run: the whole catalog, or the same provider set."""
    return "*" if not providers else ",".join(sorted(set(providers)))


async def create_or_join_run(
    conn: Conn,
    *,
    trigger: Trigger,
    providers: Sequence[str] | None,
    force: bool,
    idempotency_key: str | None = None,
) -> tuple[asyncpg.Record, bool]:
    """A new queued run (True), or the open run of the same scope / same key that it joins (False)."""
    scope = sorted(set(providers)) if providers else None
    key = scope_key(providers)
    if idempotency_key is not None:
        await forget_idempotency_keys(conn)
    for _ in range(5):
        row = await conn.fetchrow(
            """
            INSERT INTO refresh_runs (trigger, scope, scope_key, force, idempotency_key)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT DO NOTHING RETURNING id
            """,
            trigger,
            scope,
            key,
            force,
            idempotency_key,
        )
        if row is not None:
            return await get_run(conn, row["id"]), True  # type: ignore[return-value]
        existing = None
        if idempotency_key is not None:
            existing = await conn.fetchval("SELECT id FROM refresh_runs WHERE idempotency_key = $1", idempotency_key)
        if existing is None:
            existing = await conn.fetchval(
                "SELECT id FROM refresh_runs WHERE scope_key = $1 AND status = ANY($2::text[])",
                key,
                list(OPEN_RUN_STATUSES),
            )
        if existing is not None:
            return await get_run(conn, existing), False  # type: ignore[return-value]
    raise RuntimeError("could not create or join a refresh run")


async def get_run(conn: Queryable, run_id: int) -> asyncpg.Record | None:
    """One run with its counts."""
    return await conn.fetchrow(f"SELECT {RUN_COLUMNS} FROM refresh_runs r WHERE r.id = $1", run_id)


async def recent_runs(conn: Queryable, limit: int = 20) -> list[asyncpg.Record]:
    """The newest runs first."""
    return list(await conn.fetch(f"SELECT {RUN_COLUMNS} FROM refresh_runs r ORDER BY r.id DESC LIMIT $1", limit))


async def provider_runs(conn: Queryable, run_id: int) -> list[asyncpg.Record]:
    """The per-provider detail of a run."""
    return list(
        await conn.fetch(
            """
            SELECT provider_id, status, attempts, added, updated, removed, unchanged, duration_ms, error
            FROM refresh_provider_runs WHERE run_id = $1 ORDER BY provider_id
            """,
            run_id,
        )
    )


async def start_run(conn: Conn, run_id: int) -> asyncpg.Record | None:
    """Mark a queued run running; None when it is already finished (a redelivered message)."""
    return await conn.fetchrow(
        """
        UPDATE refresh_runs SET status = 'running', started_at = coalesce(started_at, now())
        WHERE id = $1 AND status IN ('queued', 'running')
        RETURNING id, scope, force, providers_total, snapshot_id
        """,
        run_id,
    )


async def pending_providers(conn: Conn, run_id: int) -> list[str]:
    """Providers of a run whose sync has not finished."""
    rows = await conn.fetch(
        "SELECT provider_id FROM refresh_provider_runs WHERE run_id = $1 AND status = 'pending'", run_id
    )
    return [r["provider_id"] for r in rows]


async def run_is_forced(conn: Queryable, run_id: int) -> bool:
    """Whether a run was asked with `force` (its guards give way)."""
    return bool(await conn.fetchval("SELECT force FROM refresh_runs WHERE id = $1", run_id))


async def has_provider_runs(conn: Conn, run_id: int) -> bool:
    """Whether plan_refresh already fanned this run out."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM refresh_provider_runs WHERE run_id = $1)", run_id))


async def last_good_source(conn: Conn, source_url: str) -> tuple[str | None, str | None]:
    """(ETag, sha256) of what the last whole-catalog run from this source loaded, if it fully
    succeeded: a source that answers that ETag, or that body again, has nothing new."""
    row = await conn.fetchrow(
        """
        SELECT status, etag, sha256 FROM refresh_runs
        WHERE scope IS NULL AND source_url = $1 AND fallback_reason IS NULL
          AND status IN ('succeeded', 'unchanged', 'partial', 'failed')
        ORDER BY id DESC LIMIT 1
        """,
        source_url,
    )
    if row is None or row["status"] not in (RunStatus.SUCCEEDED, RunStatus.UNCHANGED):
        return None, None
    return row["etag"], row["sha256"]


async def catalog_is_fallback(conn: Queryable) -> bool:
    """Whether the listed catalog was last loaded from the embedded fallback (a stand-in for the
    upstream, which the integrity guard does not protect)."""
    return bool(
        await conn.fetchval(
            """
            SELECT fallback_reason IS NOT NULL FROM refresh_runs
            WHERE scope IS NULL AND snapshot_id IS NOT NULL AND status IN ('succeeded', 'partial')
            ORDER BY id DESC LIMIT 1
            """
        )
    )


async def store_snapshot(conn: Conn, *, sha256: str, source_url: str, etag: str | None, body: bytes) -> int:
    """Keep the document a run loaded (once per distinct body)."""
    return int(
        await conn.fetchval(
            """
            INSERT INTO snapshots (sha256, source_url, etag, size, body) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (sha256) DO UPDATE SET etag = EXCLUDED.etag, fetched_at = now()
            RETURNING id
            """,
            sha256,
            source_url,
            etag,
            len(body),
            body,
        )
    )


async def finish_run(
    conn: Conn,
    run_id: int,
    status: RunStatus,
    *,
    error: str | None = None,
    source_url: str | None = None,
    etag: str | None = None,
    sha256: str | None = None,
    fallback_reason: str | None = None,
) -> None:
    """Close a run that ends in plan_refresh (failed or unchanged), recording its source (what is
    not given keeps its value)."""
    await conn.execute(
        """
        UPDATE refresh_runs SET status = $2, error = $3, finished_at = now(),
            source_url = coalesce($4, source_url), etag = coalesce($5, etag),
            sha256 = coalesce($6, sha256), fallback_reason = coalesce($7, fallback_reason),
            catalog_version = (SELECT version FROM catalog_state)
        WHERE id = $1 AND status IN ('queued', 'running')
        """,
        run_id,
        status,
        error,
        source_url,
        etag,
        sha256,
        fallback_reason,
    )


async def fan_out(
    conn: Conn,
    run_id: int,
    slices: Sequence[tuple[str, bytes | None, str | None]],
    *,
    snapshot_id: int | None,
    source_url: str,
    source_kind: SourceKind,
    etag: str | None,
    sha256: str | None,
    fallback_reason: str | None,
) -> None:
    """Record one pending provider-run per (provider_id, slice, slice_hash) and the run's source."""
    await conn.copy_records_to_table(
        "refresh_provider_runs",
        records=[(run_id, pid, s, h) for pid, s, h in slices],
        columns=("run_id", "provider_id", "slice", "slice_hash"),
    )
    await conn.execute(
        """
        UPDATE refresh_runs SET providers_total = $2, providers_pending = $2, snapshot_id = $3,
            source_url = $4, etag = $5, sha256 = $6, fallback_reason = $7, source_kind = $8
        WHERE id = $1
        """,
        run_id,
        len(slices),
        snapshot_id,
        source_url,
        etag,
        sha256,
        fallback_reason,
        source_kind,
    )


async def peek_provider_run(conn: Queryable, run_id: int, provider_id: str) -> asyncpg.Record | None:
    """A pending provider-run with its run's source, read without locking (None when not pending)."""
    return await conn.fetchrow(
        """
        SELECT p.slice, p.slice_hash, r.source_kind, r.source_url
        FROM refresh_provider_runs p JOIN refresh_runs r ON r.id = p.run_id
        WHERE p.run_id = $1 AND p.provider_id = $2 AND p.status = 'pending'
        """,
        run_id,
        provider_id,
    )


async def run_source_kind(conn: Queryable, run_id: int) -> SourceKind | None:
    """The kind of source a run loaded (None before its plan recorded it)."""
    kind = await conn.fetchval("SELECT source_kind FROM refresh_runs WHERE id = $1", run_id)
    return SourceKind(kind) if kind is not None else None


async def lock_provider_for_sync(conn: Conn, provider_id: str) -> None:
    """Serialise the syncs of one provider (across runs) until this transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('sync:' || $1))", provider_id)


async def lock_provider_run(conn: Conn, run_id: int, provider_id: str) -> asyncpg.Record | None:
    """Lock a pending provider-run for this transaction; None when it is no longer pending."""
    return await conn.fetchrow(
        """
        SELECT slice, slice_hash, attempts FROM refresh_provider_runs
        WHERE run_id = $1 AND provider_id = $2 AND status = 'pending'
        FOR UPDATE
        """,
        run_id,
        provider_id,
    )


async def complete_provider_run(
    conn: Conn,
    run_id: int,
    provider_id: str,
    *,
    status: ProviderRunStatus,
    counts: tuple[int, int, int, int] = (0, 0, 0, 0),
    duration_ms: int,
    error: str | None = None,
    attempt: int = 1,
) -> int:
    """Mark a provider-run finished and return how many providers of the run are still pending."""
    await conn.execute(
        """
        UPDATE refresh_provider_runs SET status = $3, added = $4, updated = $5, removed = $6,
            unchanged = $7, duration_ms = $8::int, error = $9, slice = NULL, attempts = attempts + $10,
            started_at = coalesce(started_at, now() - make_interval(secs => $8::int / 1000.0)),
            finished_at = now()
        WHERE run_id = $1 AND provider_id = $2
        """,
        run_id,
        provider_id,
        status,
        *counts,
        duration_ms,
        error,
        attempt,
    )
    # The row lock on the run serialises the providers that finish together, so exactly one of
    # them sees the count reach zero.
    return int(
        await conn.fetchval(
            "UPDATE refresh_runs SET providers_pending = providers_pending - 1 WHERE id = $1 "
            "RETURNING providers_pending",
            run_id,
        )
    )


async def complete_provider_runs(
    conn: Conn, run_id: int, done: Sequence[tuple[str, tuple[int, int, int, int]]], *, duration_ms: int
) -> int:
    """Mark provider-runs succeeded, each with its (added, updated, removed, unchanged), in one
    statement (a batch's, which took `duration_ms`); return how many of the run are still pending."""
    counts = list(zip(*(c for _, c in done), strict=True))
    return int(
        await conn.fetchval(
            """
            WITH done AS (
                UPDATE refresh_provider_runs p SET status = 'succeeded', added = c.added, updated = c.updated,
                    removed = c.removed, unchanged = c.unchanged, duration_ms = $7::int, error = NULL,
                    slice = NULL, attempts = p.attempts + 1,
                    started_at = coalesce(p.started_at, clock_timestamp() - make_interval(secs => $7::int / 1000.0)),
                    finished_at = clock_timestamp()
                FROM unnest($2::text[], $3::int[], $4::int[], $5::int[], $6::int[])
                    AS c (provider_id, added, updated, removed, unchanged)
                WHERE p.run_id = $1 AND p.provider_id = c.provider_id
                RETURNING 1
            )
            UPDATE refresh_runs SET providers_pending = providers_pending - (SELECT count(*) FROM done)
            WHERE id = $1 RETURNING providers_pending
            """,
            run_id,
            [pid for pid, _ in done],
            *(list(c) for c in counts),
            duration_ms,
        )
    )


async def record_attempt_failure(conn: Conn, run_id: int, provider_id: str, error: str) -> int | None:
    """Count a failed attempt; return the attempts so far (None if the provider-run is not pending)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        """
        UPDATE refresh_provider_runs SET attempts = attempts + 1, error = $3,
            started_at = coalesce(started_at, now())
        WHERE run_id = $1 AND provider_id = $2 AND status = 'pending'
        RETURNING attempts
        """,
        run_id,
        provider_id,
        error,
    )


async def awaits_close(conn: Queryable, run_id: int) -> bool:
    """Whether a run is still open with every provider finished."""
    return bool(
        await conn.fetchval(
            "SELECT status = 'running' AND providers_pending = 0 FROM refresh_runs WHERE id = $1", run_id
        )
    )


async def close_run_if_complete(conn: Conn, run_id: int, models_unit: str) -> tuple[RunStatus, float] | None:
    """Close a run whose providers are all finished; return its final status and its duration in
    seconds (None if it was not closed). Idempotent: a run already closed stays as it is.

    A run whose only work was the models document (`models_unit`: the catalog had nothing new) and
    that failed ends `unchanged` with the reason: the catalog is as the last good run left it.
    """
    row = await conn.fetchrow(
        """
        UPDATE refresh_runs r SET finished_at = now(),
            catalog_version = (SELECT version FROM catalog_state),
            status = CASE
                WHEN NOT EXISTS (SELECT 1 FROM refresh_provider_runs p
                                 WHERE p.run_id = r.id AND p.status = 'failed') THEN 'succeeded'
                WHEN NOT EXISTS (SELECT 1 FROM refresh_provider_runs p
                                 WHERE p.run_id = r.id AND p.provider_id <> $2) THEN 'unchanged'
                WHEN EXISTS (SELECT 1 FROM refresh_provider_runs p
                             WHERE p.run_id = r.id AND p.status = 'succeeded') THEN 'partial'
                ELSE 'failed' END,
            error = CASE
                WHEN NOT EXISTS (SELECT 1 FROM refresh_provider_runs p
                                 WHERE p.run_id = r.id AND p.status = 'failed') THEN NULL
                WHEN NOT EXISTS (SELECT 1 FROM refresh_provider_runs p
                                 WHERE p.run_id = r.id AND p.provider_id <> $2)
                THEN (SELECT error FROM refresh_provider_runs p WHERE p.run_id = r.id AND p.provider_id = $2)
                ELSE 'some providers failed; see providers' END
        WHERE id = $1 AND status = 'running' AND providers_pending = 0
        RETURNING status, extract(epoch FROM finished_at - requested_at)::float8 AS seconds
        """,
        run_id,
        models_unit,
    )
    return (RunStatus(row["status"]), row["seconds"]) if row is not None else None


async def last_success_epoch(conn: Queryable) -> float | None:
    """When the last whole-catalog run that succeeded (or found nothing new) finished, in epoch seconds."""
    value = await conn.fetchval(
        "SELECT extract(epoch FROM max(finished_at))::float8 FROM refresh_runs "
        "WHERE scope IS NULL AND status IN ('succeeded', 'unchanged')"
    )
    return float(value) if value is not None else None


async def catalog_status(conn: Queryable) -> dict[str, Any]:
    """What `modelmeta status` shows: the catalog's version and size and its last runs."""
    row = await conn.fetchrow(
        """
        SELECT (SELECT version FROM catalog_state) AS catalog_version,
               (SELECT count(*) FROM providers WHERE removed_at IS NULL) AS providers,
               (SELECT count(*) FROM models WHERE removed_at IS NULL) AS models,
               (SELECT count(*) FROM models WHERE removed_at IS NOT NULL) AS removed_models,
               (SELECT id FROM refresh_runs ORDER BY id DESC LIMIT 1) AS last_run_id,
               (SELECT id FROM refresh_runs WHERE status IN ('succeeded', 'unchanged')
                ORDER BY id DESC LIMIT 1) AS last_success_id,
               (SELECT id FROM refresh_runs WHERE snapshot_id IS NOT NULL AND status IN ('succeeded', 'partial')
                ORDER BY id DESC LIMIT 1) AS last_loaded_id
        """
    )
    assert row is not None
    out = dict(row)
    for key in ("last_run", "last_success", "last_loaded"):
        rid = out.pop(f"{key}_id")
        out[key] = await get_run(conn, rid) if rid is not None else None
    return out


async def stalled_runs(conn: Queryable, idle_seconds: float) -> list[asyncpg.Record]:
    """Open runs with no progress (requested, started, a provider finished, work resent) for a while."""
    return list(
        await conn.fetch(
            """
            SELECT r.id, r.status, r.resends,
                   EXISTS (SELECT 1 FROM refresh_provider_runs p WHERE p.run_id = r.id) AS planned
            FROM refresh_runs r
            WHERE r.status IN ('queued', 'running')
              AND greatest(r.requested_at, r.started_at, r.resent_at,
                           (SELECT max(p.finished_at) FROM refresh_provider_runs p WHERE p.run_id = r.id))
                  < now() - make_interval(secs => $1::float8)
            ORDER BY r.id
            """,
            idle_seconds,
        )
    )


async def mark_resent(conn: Queryable, run_id: int) -> None:
    await conn.execute("UPDATE refresh_runs SET resends = resends + 1, resent_at = now() WHERE id = $1", run_id)


async def give_up_run(conn: Conn, run_id: int, error: str) -> None:
    """Fail every pending provider of a stalled run; the caller then closes it."""
    await conn.execute(
        """
        WITH failed AS (
            UPDATE refresh_provider_runs SET status = 'failed', error = $2, slice = NULL, finished_at = now()
            WHERE run_id = $1 AND status = 'pending' RETURNING 1)
        UPDATE refresh_runs SET providers_pending = 0, status = 'running', started_at = coalesce(started_at, now())
        WHERE id = $1
        """,
        run_id,
        error,
    )

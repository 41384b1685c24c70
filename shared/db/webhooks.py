"""SQL for change notifications: subscriptions, the delivery outbox and its attempts, and the
change-log reads of the feeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from shared.db import Conn, Queryable

SUBSCRIPTION_COLUMNS = """
    id, url, description, providers, kinds, fields, status, disabled_reason, disabled_at, failing_since,
    cursor_seq, created_at, updated_at,
    CASE WHEN previous_expires_at > now() THEN previous_expires_at END AS previous_expires_at
"""
DELIVERY_COLUMNS = """
    id, subscription_id, generation, event_type, first_seq, last_seq, run_id, provider_id, change_count,
    status, attempts, last_status_code, last_error, next_attempt_at, created_at, first_attempt_at,
    last_attempt_at, delivered_at
"""
#: Serialises the planners: each sees the cursors the previous one left.
_PLANNER_LOCK = "SELECT pg_advisory_xact_lock(hashtext('modelmeta:webhooks:plan'))"


# -- subscriptions -------------------------------------------------------------------------------


async def create_subscription(
    conn: Queryable,
    *,
    url: str,
    description: str | None,
    providers: Sequence[str] | None,
    kinds: Sequence[str] | None,
    fields: Sequence[str] | None,
    secret: str,
) -> asyncpg.Record:
    """A new active subscription that receives the changes committed from now on."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO webhook_subscriptions (url, description, providers, kinds, fields, secret, cursor_seq)
        VALUES ($1, $2, $3, $4, $5, $6, (SELECT coalesce(max(seq), 0) FROM model_changes))
        RETURNING {SUBSCRIPTION_COLUMNS}
        """,
        url,
        description,
        providers,
        kinds,
        fields,
        secret,
    )
    assert row is not None
    return row  # type: ignore[no-any-return]


async def list_subscriptions(conn: Queryable, *, after_id: int, limit: int) -> list[asyncpg.Record]:
    """Subscriptions in id order, after a cursor."""
    return list(
        await conn.fetch(
            f"SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id > $1 ORDER BY id LIMIT $2",
            after_id,
            limit,
        )
    )


async def count_subscriptions(conn: Queryable) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM webhook_subscriptions"))


async def get_subscription(conn: Queryable, subscription_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = $1", subscription_id
    )


async def delete_subscription(conn: Queryable, subscription_id: int) -> bool:
    """Delete a subscription with its deliveries; False when there was none."""
    status = await conn.execute("DELETE FROM webhook_subscriptions WHERE id = $1", subscription_id)
    return status.endswith(" 1")


async def rotate_secret(
    conn: Queryable, subscription_id: int, secret: str, overlap_seconds: float
) -> asyncpg.Record | None:
    """Put a new secret in place; the current one keeps signing beside it for the overlap."""
    return await conn.fetchrow(
        f"""
        UPDATE webhook_subscriptions SET previous_secret = secret, secret = $2,
            previous_expires_at = now() + make_interval(secs => $3::float8), updated_at = now()
        WHERE id = $1
        RETURNING {SUBSCRIPTION_COLUMNS}
        """,
        subscription_id,
        secret,
        overlap_seconds,
    )


async def enable_subscription(conn: Queryable, subscription_id: int) -> asyncpg.Record | None:
    """Make a disabled subscription active again; it receives what was committed meanwhile."""
    return await conn.fetchrow(
        f"""
        UPDATE webhook_subscriptions SET status = 'active', disabled_reason = NULL, disabled_at = NULL,
            failing_since = NULL, updated_at = now()
        WHERE id = $1
        RETURNING {SUBSCRIPTION_COLUMNS}
        """,
        subscription_id,
    )


async def disable_subscription(conn: Conn, subscription_id: int, reason: str) -> None:
    """Disable a subscription and fail its pending deliveries (they stay replayable)."""
    async with conn.transaction():
        await conn.execute(
            """
            UPDATE webhook_subscriptions SET status = 'disabled', disabled_reason = $2, disabled_at = now(),
                updated_at = now()
            WHERE id = $1 AND status = 'active'
            """,
            subscription_id,
            reason,
        )
        await conn.execute(
            """
            UPDATE webhook_deliveries SET status = 'failed', lease_until = NULL,
                last_error = coalesce(last_error || '; ', '') || 'subscription disabled'
            WHERE subscription_id = $1 AND status = 'pending'
            """,
            subscription_id,
        )


# -- planning: the change log is the outbox ------------------------------------------------------


async def lock_planner(conn: Conn) -> None:
    """Hold the planners' lock until this transaction ends."""
    await conn.execute(_PLANNER_LOCK)


async def anything_to_plan(conn: Queryable) -> bool:
    """Whether an active subscription is behind the change log (cheap: the common answer is no)."""
    return bool(
        await conn.fetchval(
            """
            SELECT EXISTS (SELECT 1 FROM webhook_subscriptions WHERE status = 'active'
                           AND cursor_seq < (SELECT coalesce(max(seq), 0) FROM model_changes))
            """
        )
    )


async def latest_seq(conn: Queryable) -> int:
    """The last committed change. Changes are appended under the catalog_state row lock, so every
    seq up to this one is committed and any later commit gets a higher one."""
    return int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM model_changes"))


async def subscriptions_behind(conn: Conn, seq: int) -> list[asyncpg.Record]:
    """Active subscriptions whose cursor is before `seq`, with their filters."""
    return list(
        await conn.fetch(
            "SELECT id, cursor_seq, providers, kinds, fields FROM webhook_subscriptions "
            "WHERE status = 'active' AND cursor_seq < $1 ORDER BY id",
            seq,
        )
    )


async def advance_cursors(conn: Conn, subscription_ids: Sequence[int], seq: int) -> None:
    await conn.execute(
        "UPDATE webhook_subscriptions SET cursor_seq = $2 WHERE id = ANY($1::bigint[]) AND cursor_seq < $2",
        list(subscription_ids),
        seq,
    )


async def changes_in_range(conn: Queryable, after_seq: int, upto_seq: int, limit: int) -> list[asyncpg.Record]:
    """Change-log rows with after_seq < seq <= upto_seq, in seq order."""
    return list(
        await conn.fetch(
            """
            SELECT seq, at, run_id, provider_id, model_id, kind, fields, catalog_version FROM model_changes
            WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3
            """,
            after_seq,
            upto_seq,
            limit,
        )
    )


#: Columns of a planned delivery, in the order insert_deliveries takes them.
PLANNED_COLUMNS = (
    "subscription_id",
    "generation",
    "first_seq",
    "last_seq",
    "run_id",
    "provider_id",
    "catalog_version",
    "change_count",
    "committed_at",
)


async def insert_deliveries(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """Planned catalog.changed deliveries (PLANNED_COLUMNS order); a row whose key exists is not
    written again. Returns the ids of the new rows."""
    if not rows:
        return []
    columns = list(zip(*rows, strict=True))
    ids = await conn.fetch(
        """
        INSERT INTO webhook_deliveries (subscription_id, generation, first_seq, last_seq, run_id, provider_id,
            catalog_version, change_count, committed_at, event_type)
        SELECT *, 'catalog.changed' FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[],
            $6::text[], $7::bigint[], $8::int[], $9::timestamptz[])
        ON CONFLICT DO NOTHING RETURNING id
        """,
        *[list(c) for c in columns],
    )
    return [r["id"] for r in ids]


async def start_replay(conn: Conn, subscription_id: int) -> asyncpg.Record | None:
    """Number a new replay of a subscription; with its cursor, filters and status."""
    return await conn.fetchrow(
        """
        UPDATE webhook_subscriptions SET replays = replays + 1 WHERE id = $1
        RETURNING replays AS generation, cursor_seq, providers, kinds, fields, status
        """,
        subscription_id,
    )


async def insert_test_delivery(conn: Queryable, subscription_id: int) -> int | None:
    """A webhook.test delivery of a subscription (None when there is no such subscription)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        """
        INSERT INTO webhook_deliveries (subscription_id, generation, event_type)
        SELECT id, -1, 'webhook.test' FROM webhook_subscriptions WHERE id = $1 RETURNING id
        """,
        subscription_id,
    )


# -- attempts ----------------------------------------------------------------------------------


async def delivery_state(conn: Queryable, delivery_id: int) -> asyncpg.Record | None:
    """Whether and when a delivery can be attempted, read without locking."""
    return await conn.fetchrow(
        """
        SELECT d.status, d.subscription_id, s.status AS subscription_status, s.url,
            extract(epoch FROM greatest(d.next_attempt_at, coalesce(d.lease_until, d.next_attempt_at)) - now())::float8
                AS wait_s
        FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
        WHERE d.id = $1
        """,
        delivery_id,
    )


async def claim_delivery(
    conn: Queryable, delivery_id: int, lease_seconds: float, early: float
) -> asyncpg.Record | None:
    """Take a due, unleased, pending delivery of an active subscription for one attempt: count the
    attempt and lease it. Returns what the attempt needs, or None when it is not to be attempted."""
    return await conn.fetchrow(
        """
        UPDATE webhook_deliveries d SET attempts = d.attempts + 1, last_attempt_at = now(),
            first_attempt_at = coalesce(d.first_attempt_at, now()),
            lease_until = now() + make_interval(secs => $2::float8)
        FROM webhook_subscriptions s
        WHERE d.id = $1 AND s.id = d.subscription_id AND d.status = 'pending' AND s.status = 'active'
          AND d.next_attempt_at <= now() + make_interval(secs => $3::float8)
          AND (d.lease_until IS NULL OR d.lease_until < now())
        RETURNING d.id, d.subscription_id, d.attempts, d.event_type, d.first_seq, d.last_seq, d.run_id,
            d.provider_id, d.catalog_version, d.created_at,
            extract(epoch FROM now() - d.committed_at)::float8 AS since_commit_s,
            s.url, s.providers, s.kinds, s.fields, s.secret,
            CASE WHEN s.previous_expires_at > now() THEN s.previous_secret END AS previous_secret
        """,
        delivery_id,
        lease_seconds,
        early,
    )


async def release_claim(conn: Queryable, delivery_id: int) -> None:
    """Undo a claim whose attempt was not made (the receiver's limits were spent)."""
    await conn.execute(
        "UPDATE webhook_deliveries SET attempts = attempts - 1, lease_until = NULL "
        "WHERE id = $1 AND status = 'pending' AND attempts > 0",
        delivery_id,
    )


async def batch_rows(conn: Queryable, first_seq: int, last_seq: int) -> list[asyncpg.Record]:
    """The change-log rows of a delivery's range, in seq order (the caller keeps its commit's
    matching ones)."""
    return list(
        await conn.fetch(
            """
            SELECT seq, at, run_id, provider_id, model_id, kind, fields, catalog_version FROM model_changes
            WHERE seq BETWEEN $1 AND $2 ORDER BY seq
            """,
            first_seq,
            last_seq,
        )
    )


async def record_delivered(conn: Queryable, delivery_id: int, status_code: int) -> None:
    """A 2xx: the delivery is done and its subscription's failure streak ends."""
    await conn.execute(
        """
        WITH d AS (
            UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), last_status_code = $2,
                last_error = NULL, lease_until = NULL
            WHERE id = $1 RETURNING subscription_id)
        UPDATE webhook_subscriptions s SET failing_since = NULL
        FROM d WHERE s.id = d.subscription_id AND s.failing_since IS NOT NULL
        """,
        delivery_id,
        status_code,
    )


async def record_failure(
    conn: Queryable,
    delivery_id: int,
    *,
    status_code: int | None,
    error: str,
    retry_in: float | None,
    disable_after: float | None,
) -> tuple[bool, Any]:
    """A failed attempt: pending again after `retry_in` seconds, or failed for good when None.

    Returns whether the subscription has now failed continuously for `disable_after` seconds
    (never when None), and since when.
    """
    row = await conn.fetchrow(
        """
        WITH d AS (
            UPDATE webhook_deliveries SET status = CASE WHEN $4::float8 IS NULL THEN 'failed' ELSE 'pending' END,
                next_attempt_at = now() + make_interval(secs => coalesce($4::float8, 0)),
                last_status_code = $2, last_error = $3, lease_until = NULL
            WHERE id = $1 RETURNING subscription_id)
        UPDATE webhook_subscriptions s SET failing_since = coalesce(s.failing_since, now())
        FROM d WHERE s.id = d.subscription_id
        RETURNING s.failing_since,
            coalesce(now() - s.failing_since >= make_interval(secs => $5::float8), false) AS exhausted
        """,
        delivery_id,
        status_code,
        error,
        retry_in,
        disable_after,
    )
    return (bool(row["exhausted"]), row["failing_since"]) if row is not None else (False, None)


async def fail_delivery(conn: Queryable, delivery_id: int, error: str) -> None:
    """Give up a pending delivery without an attempt (its subscription was disabled)."""
    await conn.execute(
        "UPDATE webhook_deliveries SET status = 'failed', last_error = $2, lease_until = NULL "
        "WHERE id = $1 AND status = 'pending'",
        delivery_id,
        error,
    )


async def get_delivery(conn: Queryable, delivery_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1", delivery_id)


async def deliveries_of(
    conn: Queryable, subscription_id: int, *, before_id: int | None, status: str | None, limit: int
) -> list[asyncpg.Record]:
    """A subscription's deliveries, newest first."""
    return list(
        await conn.fetch(
            f"""
            SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
            WHERE subscription_id = $1 AND ($2::bigint IS NULL OR id < $2) AND ($3::text IS NULL OR status = $3)
            ORDER BY id DESC LIMIT $4
            """,
            subscription_id,
            before_id,
            status,
            limit,
        )
    )


async def count_deliveries(conn: Queryable, subscription_id: int, *, status: str | None) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1 AND ($2::text IS NULL OR status = $2)",
            subscription_id,
            status,
        )
    )


async def stalled_deliveries(conn: Queryable, idle_seconds: float, limit: int) -> list[int]:
    """Pending deliveries that nobody has attempted or been sent for `idle_seconds` past their
    time and that no worker holds; marked as sent now, for the caller to send."""
    rows = await conn.fetch(
        """
        UPDATE webhook_deliveries SET sent_at = now()
        WHERE id IN (
            SELECT id FROM webhook_deliveries
            WHERE status = 'pending' AND greatest(next_attempt_at, sent_at) < now() - make_interval(secs => $1::float8)
              AND (lease_until IS NULL OR lease_until < now())
            ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
        RETURNING id
        """,
        idle_seconds,
        limit,
    )
    return [r["id"] for r in rows]


async def pending_counts(conn: Queryable) -> tuple[int, int]:
    """Pending deliveries: (due now, waiting for a later retry)."""
    row = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE next_attempt_at <= now()) AS due,
               count(*) FILTER (WHERE next_attempt_at > now()) AS waiting
        FROM webhook_deliveries WHERE status = 'pending'
        """
    )
    assert row is not None
    return int(row["due"]), int(row["waiting"])


# -- feeds -------------------------------------------------------------------------------------


async def latest_changes(
    conn: Queryable, *, providers: Sequence[str], kinds: Sequence[str], limit: int
) -> list[asyncpg.Record]:
    """The newest matching changes, newest first."""
    return list(
        await conn.fetch(
            """
            SELECT seq, at, run_id, provider_id, model_id, kind, fields FROM model_changes
            WHERE (cardinality($1::text[]) = 0 OR provider_id = ANY($1))
              AND (cardinality($2::text[]) = 0 OR kind = ANY($2))
            ORDER BY seq DESC LIMIT $3
            """,
            list(providers),
            list(kinds),
            limit,
        )
    )


async def catalog_updated_at(conn: Queryable) -> Any:
    """When the catalog last changed (the Atom feed's `updated` when it lists nothing)."""
    return await conn.fetchval("SELECT updated_at FROM catalog_state")

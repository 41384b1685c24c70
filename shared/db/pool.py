"""asyncpg connections with jsonb handled by msgspec."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _jsonb_encode(value: Any) -> bytes:
    # jsonb's binary format is a version byte followed by the JSON text; bytes and msgspec.Raw
    # are JSON already and go through untouched, so an upstream object is stored as received.
    if isinstance(value, (bytes, msgspec.Raw)):
        return b"\x01" + bytes(value)
    return b"\x01" + _encode(value)


def _jsonb_decode(data: bytes) -> Any:
    return _decode(data[1:])


async def init_connection(conn: asyncpg.Connection) -> None:
    """Set the jsonb codec on every new connection."""
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary"
    )


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections encode and decode jsonb with msgspec.

    Statements are planned for their arguments every time (plan_cache_mode), not with a generic
    plan after five runs. asyncpg's reset on release stays on: it costs a round trip, but a connection that a server
    restart left in a bad state fails it and is replaced rather than handed to the next request.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        command_timeout=60,
        # Every statement planned for its own arguments: a generic plan cannot turn a search's
        # LIKE 'prefix%' into an index range, nor tell a broad filter from a rare one.
        server_settings={"plan_cache_mode": "force_custom_plan"},
    )
    assert pool is not None
    return pool

"""The change feed: every added, updated and removed model, in sequence order."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from services.api import keys
from services.api.cache import ALL
from services.api.respond import Cached, encode
from shared.db import api_reads
from shared.schemas.api import ChangesQuery, Page, change_object


async def changes(request: web.Request, *, query: ChangesQuery) -> Cached:
    pool = request.app[keys.POOL]
    since = query.since

    async def build() -> bytes:
        rows, total, last = await api_reads.changes_since(
            pool,
            since_seq=since if isinstance(since, int) else 0,
            after_seq=query.cursor or 0,
            since_time=since if isinstance(since, datetime) else None,
            providers=[p for p in query.provider if p],
            kinds=[str(k) for k in query.kind],
            limit=query.limit,
        )
        page = Page(data=[change_object(r) for r in rows], total=total, next_cursor=str(last) if last else None)
        return encode(page)

    return Cached(frozenset({ALL}), build)

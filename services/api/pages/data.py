"""Where the pages get their data: the JSON API's own answers and the same shared/ functions.

A route that takes only a query (the model list, compare, providers, refresh status) is answered by
calling the API's handler with the page's request re-addressed to the API route, so that a page
shows exactly what the API answers and shares its response cache. The rest calls the functions
those handlers call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from aiohttp import web
from yarl import URL

from services.api import keys, views
from shared.api_models import run_object
from shared.db import models as q
from shared.db import runs as runs_db

Handler = Callable[[web.Request], Awaitable[web.Response]]
_decode = msgspec.json.Decoder()


async def _api(request: web.Request, handler: Handler, path: str, params: Mapping[str, str]) -> Any:
    """The body of an API GET, as the API answers it (errors raise shared.errors as they do there)."""
    sub = request.clone(rel_url=URL(path).with_query(dict(params)), headers={})
    response = await handler(sub)
    assert isinstance(response.body, bytes)
    return _decode.decode(response.body)


async def model_list(request: web.Request, params: Mapping[str, str]) -> Any:
    """GET /api/v1/models: {data, total, next_cursor}."""
    return await _api(request, views.list_models, "/api/v1/models", params)


async def providers(request: web.Request) -> list[Any]:
    """GET /api/v1/providers: the listed providers, by id."""
    body = await _api(request, views.list_providers, "/api/v1/providers", {})
    return list(body["data"])


async def comparison(request: web.Request, params: Mapping[str, str]) -> Any:
    """GET /api/v1/models/compare: {data, differences, cheapest, largest_context, cost_estimates, benchmarks}."""
    return await _api(request, views.compare, "/api/v1/models/compare", params)


async def refresh_status(request: web.Request) -> Any:
    """GET /api/v1/refresh/status: {data: runs, schedule, source}."""
    return await _api(request, views.refresh_status, "/api/v1/refresh/status", {})


async def model(request: web.Request, provider_id: str, model_id: str) -> dict[str, Any] | None:
    """The model object (listed or removed), or None."""
    doc = await q.get_model(request.app[keys.POOL], provider_id, model_id)
    return None if doc is None else dict(_decode.decode(doc))


async def provider(request: web.Request, provider_id: str) -> dict[str, Any] | None:
    doc = await q.get_provider(request.app[keys.POOL], provider_id)
    return None if doc is None else dict(_decode.decode(doc))


async def history(request: web.Request, provider_id: str, model_id: str) -> list[dict[str, Any]]:
    """The model's changes, newest first: {seq, at, run_id, kind, fields}."""
    rows = await q.model_history(request.app[keys.POOL], provider_id, model_id)
    return [{k: r[k] for k in ("seq", "at", "run_id", "kind", "fields")} for r in rows]


async def benchmarks(request: web.Request, provider_id: str, model_id: str) -> list[dict[str, Any]]:
    rows = await q.benchmarks_for(request.app[keys.POOL], [(provider_id, model_id)])
    return [dict(r) for r in rows]


async def run(request: web.Request, run_id: int) -> Any:
    """GET /api/v1/refresh/{run_id}: one run with its per-provider detail, or None."""
    pool = request.app[keys.POOL]
    row = await runs_db.get_run(pool, run_id)
    if row is None:
        return None
    return msgspec.to_builtins(run_object(row, providers=await runs_db.provider_runs(pool, run_id)))


async def catalog_status(request: web.Request) -> dict[str, Any]:
    """Counts of the catalog and the run that last loaded it (its source and fallback reason)."""
    return dict(await runs_db.catalog_status(request.app[keys.POOL]))

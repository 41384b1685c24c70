"""Where the pages get their data: the JSON API's own answers and the same shared/db reads.

A route that takes only a query (the model list, compare, providers, refresh status) is answered by
the very handler `endpoint()` builds from its Route in services/api/routes.py, called with the
page's request re-addressed to the API route: a page shows exactly what the API answers, its
parameters are decoded and validated by the API's one decoder (services/api/params.py), and it
shares the API's response cache. A model's own data (the model, its provider, its whole history and
its benchmarks) is read with the shared/db functions the API's handlers read it with.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import msgspec
from aiohttp import web
from yarl import URL

from services.api import keys
from services.api.auth import Handler
from services.api.route import endpoint
from services.api.routes import ROUTES
from shared.db import api_reads, scores
from shared.db import runs as runs_db
from shared.schemas.api import run_object

#: The largest page the API answers (PageSize): the pages ask for whole lists in as few as that.
MAX_PAGE = 500
_decode = msgspec.json.Decoder()


@functools.cache
def _handler(path: str) -> Handler:
    """The aiohttp handler of the API's GET route at `path`, as add_routes registers it."""
    route = next(r for r in ROUTES if r.method == "GET" and r.path == path)
    return endpoint(route)


async def _api(request: web.Request, path: str, params: Mapping[str, str]) -> Any:
    """The body of an API GET, as the API answers it (errors raise shared.errors as they do there)."""
    sub = request.clone(rel_url=URL(path).with_query(dict(params)), headers={})
    response = await _handler(path)(sub)
    assert isinstance(response, web.Response)
    assert isinstance(response.body, bytes)
    return _decode.decode(response.body)


async def model_list(request: web.Request, params: Mapping[str, str]) -> Any:
    """GET /api/v1/models: {data, total, next_cursor}."""
    return await _api(request, "/api/v1/models", params)


async def providers(request: web.Request) -> list[Any]:
    """GET /api/v1/providers: every listed provider, by id (following the cursors)."""
    out: list[Any] = []
    params = {"limit": str(MAX_PAGE)}
    while True:
        body = await _api(request, "/api/v1/providers", params)
        out += body["data"]
        if not body["next_cursor"]:
            return out
        params = {"limit": str(MAX_PAGE), "cursor": body["next_cursor"]}


async def comparison(request: web.Request, params: Mapping[str, str]) -> Any:
    """GET /api/v1/models/compare: {data, differences, cheapest, largest_context, cost_estimates, benchmarks}."""
    return await _api(request, "/api/v1/models/compare", params)


async def refresh_status(request: web.Request) -> Any:
    """GET /api/v1/refresh/status: {data: runs, schedule, source}."""
    return await _api(request, "/api/v1/refresh/status", {})


async def model(request: web.Request, provider_id: str, model_id: str) -> dict[str, Any] | None:
    """The model object (listed or removed), or None."""
    doc = await api_reads.get_model(request.app[keys.POOL], provider_id, model_id)
    return None if doc is None else dict(_decode.decode(doc))


async def provider(request: web.Request, provider_id: str) -> dict[str, Any] | None:
    doc = await api_reads.get_provider(request.app[keys.POOL], provider_id)
    return None if doc is None else dict(_decode.decode(doc))


async def history(request: web.Request, provider_id: str, model_id: str) -> list[dict[str, Any]]:
    """The model's changes, all of them, newest first: {seq, at, run_id, kind, fields}."""
    pool = request.app[keys.POOL]
    out: list[dict[str, Any]] = []
    before: int | None = None
    while True:
        rows, _, before = await api_reads.model_history(pool, provider_id, model_id, before_seq=before, limit=MAX_PAGE)
        out += [{k: r[k] for k in ("seq", "at", "run_id", "kind", "fields")} for r in rows]
        if before is None:
            return out


async def benchmarks(request: web.Request, provider_id: str, model_id: str) -> list[dict[str, Any]]:
    """The model's benchmark results (the first MAX_PAGE, as the API orders them)."""
    rows, _, _ = await scores.list_scores(request.app[keys.POOL], [(provider_id, model_id)], after=None, limit=MAX_PAGE)
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

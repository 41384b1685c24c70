"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api import keys
from services.api.respond import encode
from shared.db import api_reads
from shared.schemas.api import Health, Readiness


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=encode(Health(status="ok")), content_type="application/json")


async def readyz(request: web.Request) -> web.Response:
    """Ready when PostgreSQL and Redis answer and a catalog is loaded; 503 says which is not."""
    checks: dict[str, str] = {}
    try:
        loaded = await api_reads.catalog_loaded(request.app[keys.POOL], within=2)
        checks["postgresql"] = "ok"
        checks["catalog"] = "ok" if loaded else "empty"
    except Exception as e:
        checks["postgresql"] = f"unreachable: {type(e).__name__}"
        checks["catalog"] = "unknown"
    try:
        await asyncio.wait_for(request.app[keys.REDIS].ping(), 2)
        checks["redis"] = "ok"
    except Exception as e:
        checks["redis"] = f"unreachable: {type(e).__name__}"
    ready = all(v == "ok" for v in checks.values())
    body = encode(Readiness(ready=ready, checks=checks))
    return web.Response(status=200 if ready else 503, body=body, content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

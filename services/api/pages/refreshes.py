"""Refreshes, for operators: recent runs with their per-provider detail, the schedule and the
source (with the fallback reason when the embedded catalog is serving). The page's script polls its
`runs` part while a run is open, and starts a refresh with an admin token it keeps in memory."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from services.api.pages import data
from services.api.pages.render import render
from shared.embedded import EMBEDDED_URL
from shared.enums import OPEN_RUN_STATUSES, RunStatus

#: How a run's source_url reads when it loaded a catalog shipped in the package.
EMBEDDED_SCHEME = EMBEDDED_URL.split(":", 1)[0] + ":"


def _elapsed(run: dict[str, Any]) -> float | None:
    started = run.get("started_at") or run.get("requested_at")
    if not started:
        return None
    t0 = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
    done = run.get("finished_at")
    t1 = datetime.fromisoformat(str(done).replace("Z", "+00:00")) if done else datetime.now(UTC)
    return (t1 - t0).total_seconds()


async def refreshes_page(request: web.Request) -> web.Response:
    status = await data.refresh_status(request)
    runs = status["data"]
    for r in runs:
        r["elapsed"] = _elapsed(r)
    raw = request.query.get("run", "")
    chosen = int(raw) if raw.isdigit() and len(raw) <= 18 else (runs[0]["id"] if runs else None)
    detail = await data.run(request, chosen) if chosen is not None else None
    if detail is not None:
        detail["elapsed"] = _elapsed(detail)
    catalog = await data.catalog_status(request)
    loaded = catalog.get("last_loaded")
    context = {
        "title": "Refreshes",
        "runs": runs,
        "detail": detail,
        "missing_run": raw if raw and detail is None else None,
        "open": any(not RunStatus(r["status"]).is_final for r in runs),
        "open_statuses": [s.value for s in OPEN_RUN_STATUSES],
        "schedule": status["schedule"],
        "source": status["source"],
        "catalog": catalog,
        "loaded_from": loaded["source_url"] if loaded else None,
        "embedded": bool(loaded and (loaded["source_url"] or "").startswith(EMBEDDED_SCHEME)),
        "fallback_reason": loaded["fallback_reason"] if loaded else None,
    }
    return render(request, "refreshes.html", context)

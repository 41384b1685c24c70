"""Compare 2 to 10 models side by side, the differences marked, with a cost estimate for the
input, output and cached tokens the visitor types (GET /api/v1/models/compare does the work)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from services.api.pages import data
from services.api.pages.formatting import money, number, price, value
from services.api.pages.render import not_found, problems, render, wants_html
from shared.errors import BadRequest, NotFound

MAX_MODELS = 10
TOKEN_FIELDS = (
    ("input_tokens", "Input tokens"),
    ("output_tokens", "Output tokens"),
    ("cached_tokens", "Cached tokens"),
)
#: The rows of the side-by-side table: (label, dotted path in the model object, formatter).
ROWS: tuple[tuple[str, str, Any], ...] = (
    ("Provider", "provider_id", value),
    ("Input $/1M", "cost.input", price),
    ("Output $/1M", "cost.output", price),
    ("Reasoning $/1M", "cost.reasoning", price),
    ("Cache read $/1M", "cost.cache_read", price),
    ("Cache write $/1M", "cost.cache_write", price),
    ("Context (tokens)", "limit.context", number),
    ("Max input (tokens)", "limit.input", number),
    ("Max output (tokens)", "limit.output", number),
    ("Input modalities", "modalities.input", value),
    ("Output modalities", "modalities.output", value),
    ("Tool calling", "tool_call", value),
    ("Reasoning", "reasoning", value),
    ("Attachments", "attachment", value),
    ("Structured output", "structured_output", value),
    ("Temperature", "temperature", value),
    ("Open weights", "open_weights", value),
    ("Family", "family", value),
    ("Released", "release_date", value),
    ("Knowledge cut-off", "knowledge", value),
    ("Status", "status", value),
)


def requested_ids(request: web.Request) -> list[str]:
    """The ids asked for, in order, without repeats: `ids=a/b,c/d` and repeated `ids` (the catalog's checkboxes)."""
    ids = [i.strip() for raw in request.query.getall("ids", []) for i in raw.split(",") if i.strip()]
    return list(dict.fromkeys(ids))


def _at(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _differs(path: str, differences: dict[str, Any]) -> bool:
    return path in differences or any(p.startswith(path + ".") for p in differences)


def table(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows shown: a row no model has a value for is left out; a differing row is marked."""
    models, differences = body["data"], body["differences"]
    rows = []
    for label, path, fmt in ROWS:
        values = [_at(m, path) for m in models]
        if path != "status" and all(v is None for v in values):
            continue
        cells = [fmt(v) if not (path == "status" and v is None) else "active" for v in values]
        differs = _differs(path, differences) or len(set(cells)) > 1
        rows.append({"label": label, "cells": cells, "differs": differs})
    return rows


def _href(ids: list[str], tokens: dict[str, str]) -> str:
    return "/compare?" + urlencode({"ids": ",".join(ids), **tokens})


async def compare_page(request: web.Request) -> web.Response:
    ids = requested_ids(request)
    tokens = {k: request.query[k].strip() for k, _ in TOKEN_FIELDS if request.query.get(k, "").strip()}
    context: dict[str, Any] = {"title": "Compare models", "ids": ids, "tokens": tokens, "token_fields": TOKEN_FIELDS}
    context["errors"] = []
    if len(ids) > MAX_MODELS:
        context["errors"] = [{"name": "ids", "reason": f"compare at most {MAX_MODELS} models; {len(ids)} were given"}]
    if len(ids) < 2 or context["errors"]:
        return render(request, "compare.html", context, status=400 if context["errors"] else 200)
    try:
        body = await data.comparison(request, {"ids": ",".join(ids), **tokens})
    except BadRequest as e:
        context["errors"] = problems(e)
        return render(request, "compare.html", context, status=400)
    except NotFound as e:
        if not wants_html(request):
            raise
        return not_found(request, str(e).removeprefix("no model "))
    estimates = body.get("cost_estimates") or {}
    context.update(
        models=[
            {
                "m": m,
                "remove_href": _href([i for i in ids if i != m["id"]], tokens) if len(ids) > 2 else None,
                "estimate": money(estimates.get(m["id"])) if estimates else None,
            }
            for m in body["data"]
        ],
        rows=table(body),
        cheapest=body.get("cheapest"),
        largest_context=body.get("largest_context"),
        benchmarks=body.get("benchmarks") or {},
        differences=body["differences"],
    )
    return render(request, "compare.html", context)

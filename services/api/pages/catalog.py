"""The catalog at `/`: search as you type, filters, sortable columns, paging by the API's cursors.

The page's query string is the API's own list parameters (plus `page`, the page number shown), so
a search is a URL that can be bookmarked and shared, and each column header and pager link is a
plain link that works without a script.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiMapping

from services.api import keys
from services.api.cache import CACHED_FOR
from services.api.pages import data
from services.api.pages.formatting import number, price, tokens
from services.api.pages.render import PAGES, PART_HEADER, Page, PageCache, model_path, problems, respond
from services.api.pages.render import page as rendered_page
from shared.errors import BadRequest
from shared.schemas.api import Modality, ModelListQuery, ModelStatus

PAGE_SIZE = 50
#: column -> (API sort name or None for the API's default order, first direction, header text).
COLUMNS: dict[str, tuple[str | None, str, str]] = {
    "name": ("name", "", "Model"),
    "provider": (None, "", "Provider"),
    "input_cost": ("input_cost", "", "Input $/1M"),
    "output_cost": ("output_cost", "", "Output $/1M"),
    "context": ("context", "-", "Context"),
    "release_date": ("release_date", "-", "Released"),
}
CAPABILITY_LABELS = {
    "tool_call": "Tool calling",
    "reasoning": "Reasoning",
    "attachment": "Attachments",
    "temperature": "Temperature",
    "structured_output": "Structured output",
    "open_weights": "Open weights",
    "interleaved": "Interleaved reasoning",
    "vision": "Image input",
    "audio_input": "Audio input",
    "pdf_input": "PDF input",
    "video_input": "Video input",
    "image_output": "Image output",
    "audio_output": "Audio output",
}
_MULTI = ("provider", "capability", "input_modalities", "output_modalities", "status", "family")
#: The API's list parameters (GET /api/v1/models), which are the page's too.
LIST_PARAMS = frozenset(ModelListQuery.__struct_fields__)
MODALITIES = tuple(m.value for m in Modality)
STATUSES = tuple(s.value for s in ModelStatus)


def list_params(query: MultiMapping[str]) -> dict[str, str]:
    """The API list parameters of a page URL: repeated fields (a form's checkboxes) joined by commas,
    empty fields (a form's blank inputs) left out."""
    out: dict[str, str] = {}
    for key in LIST_PARAMS - {"limit"}:
        values = [v.strip() for v in query.getall(key, []) if v.strip()]
        if key in _MULTI:
            values = [part.strip() for v in values for part in v.split(",") if part.strip()]
            values = list(dict.fromkeys(values))
        if values:
            out[key] = ",".join(values) if key in _MULTI else values[-1]
    return out


@dataclass(frozen=True, slots=True)
class Row:
    """One model of the table, its cells already formatted (rendering it is then just output)."""

    id: str
    href: str
    name: str
    provider_id: str
    provider: str
    status: str | None
    input: str
    output: str
    context: str
    context_full: str | None
    released: str


def table_rows(models: list[dict[str, Any]], provider_names: dict[str, str]) -> list[Row]:
    rows = []
    for m in models:
        cost = m.get("cost") or {}
        context = (m.get("limit") or {}).get("context")
        rows.append(
            Row(
                id=m["id"],
                href=model_path(m["id"]),
                name=m.get("name") or m["id"],
                provider_id=m["provider_id"],
                provider=provider_names.get(m["provider_id"], m["provider_id"]),
                status=m.get("status"),
                input=price(cost.get("input")),
                output=price(cost.get("output")),
                context=tokens(context),
                context_full=number(context) if context else None,
                released=m.get("release_date") or "—",
            )
        )
    return rows


def _href(params: dict[str, str], **changes: str | None) -> str:
    merged = {**params, **changes}
    query = urlencode([(k, v) for k, v in merged.items() if v])
    return "/?" + query if query else "/"


def sort_headers(params: dict[str, str]) -> list[dict[str, Any]]:
    """Each column header: its link (which toggles the direction) and its aria-sort state."""
    current = params.get("sort", "")
    base = {k: v for k, v in params.items() if k not in ("cursor", "page")}
    out = []
    for key, (api_name, first, label) in COLUMNS.items():
        if api_name is None:  # the API's default order: provider, then model id (best match when searching)
            active = not current and "q" not in params
            state = "ascending" if active else None
            href = _href(base, sort=None) if "q" not in params else None
        else:
            active = current.removeprefix("-") == api_name
            state = ("descending" if current.startswith("-") else "ascending") if active else None
            # A second click on the sorted column turns its direction; a first click sorts its natural way.
            toggled = api_name if current.startswith("-") else "-" + api_name
            href = _href(base, sort=toggled if active else first + api_name)
        out.append({"key": key, "label": label, "href": href, "sort": state})
    return out


async def catalog_page(request: web.Request) -> web.Response:
    """The catalog, or the part of it the request asks for: kept for its URL while the API's cache
    keeps what it was rendered from (a search typed again, the first page of every visitor)."""
    cache = request.app[keys.CACHE]
    kept: PageCache = request.app[PAGES].kept
    key, epoch = kept.key(request), cache.epoch
    rendered = kept.get(key, epoch)
    if rendered is None:
        rendered = await _catalog(request)
        if cache.enabled and rendered.status == 200 and cache.epoch == epoch:  # nothing dropped meanwhile
            rendered.expires = time.monotonic() + cache.ttl
            kept.put(key, rendered, epoch)
    # A part (the table, swapped in as you type) may be reused by the browser as long as the API's
    # answers it is made of (a search typed again, or backspaced to); the page itself is revalidated.
    return respond(request, rendered, cache_control=CACHED_FOR if PART_HEADER in request.headers else "no-cache")


async def _catalog(request: web.Request) -> Page:
    params = list_params(request.query)
    page_raw = request.query.get("page", "1")
    page = int(page_raw) if page_raw.isdigit() and 0 < int(page_raw) < 10**6 else 1
    if "cursor" not in params:
        page = 1
    errors: list[dict[str, str]] = []
    result: dict[str, Any] = {"data": [], "total": 0, "next_cursor": None}
    try:
        result = await data.model_list(request, {**params, "limit": str(PAGE_SIZE)})
    except BadRequest as e:
        errors = problems(e)
    base = {k: v for k, v in params.items() if k != "cursor"}
    providers = await data.providers(request)
    selected = {k: set(v.split(",")) for k, v in params.items() if k in _MULTI}
    first = (page - 1) * PAGE_SIZE + 1
    context = {
        "title": "Models",
        "params": params,
        "selected": selected,
        "result": result,
        "errors": errors,
        # (value, label, selected) of the provider filter: plain tuples, the cheapest thing to render
        "provider_options": [
            (p["id"], f"{p['name']} ({p['model_count']})", p["id"] in selected.get("provider", ())) for p in providers
        ],
        "rows": table_rows(result["data"], {p["id"]: p["name"] for p in providers}),
        "n_filters": len([k for k in params if k not in ("q", "sort", "cursor")]),
        "pages": max(1, -(-result["total"] // PAGE_SIZE)),
        "capabilities": CAPABILITY_LABELS,
        "modalities": MODALITIES,
        "statuses": STATUSES,
        "columns": sort_headers(params),
        "page": page,
        "first": first,
        "last": first + len(result["data"]) - 1,
        "next_href": _href(base, cursor=result["next_cursor"], page=str(page + 1)) if result["next_cursor"] else None,
        "first_href": _href(base) if page > 1 else None,
    }
    return rendered_page(request, "catalog.html", context, status=400 if errors else 200)

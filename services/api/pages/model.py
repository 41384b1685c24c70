"""A model's page: every field readable, its benchmarks, and its history (a price chart and the
list of its changes). An unknown id answers 404: an HTML page to a browser, problem+json to an
API client."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from services.api.pages import data
from services.api.pages.formatting import price, value
from services.api.pages.history import chart, price_steps
from services.api.pages.render import not_found, render, wants_html
from shared.enums import ChangeKind
from shared.errors import NotFound

COST_LABELS = {
    "input": "Input",
    "output": "Output",
    "reasoning": "Reasoning",
    "cache_read": "Cache read",
    "cache_write": "Cache write",
    "input_audio": "Audio input",
    "output_audio": "Audio output",
}
#: Capability fields: field -> label (the value may be a boolean or, for some, an object).
CAPABILITY_FIELDS = {
    "tool_call": "Tool calling",
    "reasoning": "Reasoning",
    "attachment": "Attachments",
    "temperature": "Temperature",
    "structured_output": "Structured output",
    "open_weights": "Open weights",
    "interleaved": "Interleaved reasoning",
    "experimental": "Experimental",
}
DATE_FIELDS = {
    "release_date": "Released",
    "last_updated": "Last updated",
    "knowledge": "Knowledge cut-off",
    "first_seen_at": "First seen here",
    "updated_at": "Last changed here",
    "removed_at": "Removed from the catalog",
}
#: Fields shown in their own section; every other field of the model goes under "Other fields".
SHOWN = {
    "id",
    "name",
    "provider_id",
    "model_id",
    "status",
    "cost",
    "limit",
    "modalities",
    "reasoning_options",
    "family",
    "canonical_id",
    "canonical_link",
    *CAPABILITY_FIELDS,
    *DATE_FIELDS,
}


def cost_rows(cost: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, price) of each flat price, known ones first."""
    keys = [k for k in COST_LABELS if k in cost]
    keys += sorted(k for k, v in cost.items() if k not in COST_LABELS and not isinstance(v, dict | list))
    return [(COST_LABELS.get(k, k.replace("_", " ").capitalize()), price(cost[k])) for k in keys]


def tier_table(cost: dict[str, Any]) -> dict[str, Any] | None:
    """The price tiers (and models.dev's older context_over_200k) as one table."""
    tiers = [t for t in cost.get("tiers") or [] if isinstance(t, dict)]
    rows = []
    for t in tiers:
        tier = t.get("tier") or {}
        if tier.get("type") == "context" and isinstance(tier.get("size"), int):
            label = f"Context over {tier['size']:,} tokens"
        else:
            label = value(tier) if tier else "Tier"
        rows.append((label, {k: v for k, v in t.items() if k != "tier"}))
    if not tiers and isinstance(cost.get("context_over_200k"), dict):
        rows.append(("Context over 200,000 tokens", cost["context_over_200k"]))
    if not rows:
        return None
    keys = [k for k in COST_LABELS if any(k in r for _, r in rows)]
    keys += sorted({k for _, r in rows for k in r} - set(keys))
    return {
        "headers": [COST_LABELS.get(k, k) for k in keys],
        "rows": [(label, [price(r.get(k)) for k in keys]) for label, r in rows],
    }


def change_rows(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The change log for people: each change's fields as (path, old, new), prices as prices."""
    out = []
    for c in changes:
        fields = []
        for path, (old, new) in sorted((c.get("fields") or {}).items()):
            fmt = price if path.startswith("cost.") and not isinstance(old or new, dict | list) else value
            fields.append((path, fmt(old), fmt(new)))
        note = {ChangeKind.ADDED: "First seen in the catalog.", ChangeKind.REMOVED: "Left the catalog."}.get(c["kind"])
        out.append({"at": c["at"], "kind": c["kind"], "run_id": c["run_id"], "fields": fields, "note": note})
    return out


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


async def model_page(request: web.Request) -> web.Response:
    pid, mid = request.match_info["provider_id"], request.match_info["model_id"]
    model = await data.model(request, pid, mid)
    if model is None:
        if wants_html(request):
            return not_found(request, f"{pid}/{mid}")
        raise NotFound(f"no model {pid}/{mid}")
    changes = await data.history(request, pid, mid)
    cost = model.get("cost") if isinstance(model.get("cost"), dict) else {}
    now = datetime.now(UTC)
    seen = [t for t in (_instant(model.get("first_seen_at")), *(c["at"] for c in changes)) if t is not None]
    start = min(seen) if seen else now
    end = _instant(model.get("removed_at")) or now
    context = {
        "title": model.get("name") or model["id"],
        "m": model,
        "provider": await data.provider(request, pid),
        "costs": cost_rows(cost or {}),
        "tiers": tier_table(cost or {}),
        "capabilities": [(label, model[k]) for k, label in CAPABILITY_FIELDS.items() if k in model],
        "dates": [(label, model[k], k.endswith("_at")) for k, label in DATE_FIELDS.items() if model.get(k) is not None],
        "others": {k: v for k, v in model.items() if k not in SHOWN},
        "benchmarks": await data.benchmarks(request, pid, mid),
        "chart": chart(price_steps(cost, changes, start), end),
        "changes": change_rows(changes),
    }
    return render(request, "model.html", context)

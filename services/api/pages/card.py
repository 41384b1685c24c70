"""A canonical model's page (models.dev's model card): what the model is, its benchmark results,
and every provider that offers it with its price: "where can I run this model, and at what
price". An unknown id answers 404: an HTML page to a browser, problem+json to an API client."""

from __future__ import annotations

import math
from typing import Any

import msgspec
from aiohttp import web

from services.api import keys
from services.api.pages.render import not_found, render, wants_html
from shared.db import canonical_reads
from shared.errors import NotFound

#: The card's fields shown in the table of facts, in order, with their labels.
FACTS = {
    "family": "Family",
    "release_date": "Released",
    "last_updated": "Last updated",
    "knowledge": "Knowledge cut-off",
    "open_weights": "Open weights",
    "license": "License",
    "reasoning": "Reasoning",
    "tool_call": "Tool calling",
    "attachment": "Attachments",
    "structured_output": "Structured output",
    "temperature": "Temperature",
}
#: Fields of a benchmark result shown in its own column; the rest (harness, variant, ...) as details.
RESULT_COLUMNS = ("name", "score", "metric", "source", "date")
_decode = msgspec.json.Decoder()


def _input_price(offering: dict[str, Any]) -> float:
    cost = offering.get("cost")
    price = cost.get("input") if isinstance(cost, dict) else None
    return float(price) if isinstance(price, int | float) and not isinstance(price, bool) else math.inf


def benchmark_rows(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's results, each with its qualifiers (harness, variant, dataset, version, ...)."""
    rows = []
    for result in card.get("benchmarks") or []:
        if isinstance(result, dict):
            extra = {k: v for k, v in result.items() if k not in RESULT_COLUMNS}
            rows.append({**{k: result.get(k) for k in RESULT_COLUMNS}, "extra": extra})
    return rows


async def card_page(request: web.Request) -> web.Response:
    canonical_id = f"{request.match_info['lab']}/{request.match_info['id']}"
    doc = await canonical_reads.get_card(request.app[keys.POOL], canonical_id)
    if doc is None:
        if wants_html(request):
            return not_found(request, canonical_id)
        raise NotFound(f"no canonical model {canonical_id}")
    card = dict(_decode.decode(doc))
    offerings = sorted(card.get("offerings") or [], key=lambda o: (_input_price(o), o["id"]))
    context = {
        "title": card.get("name") or canonical_id,
        "c": card,
        "facts": [(label, card[k]) for k, label in FACTS.items() if card.get(k) is not None],
        "links": [x for x in (card.get("links") or []) if isinstance(x, dict) and x.get("url")],
        "weights": [x for x in (card.get("weights") or []) if isinstance(x, dict) and x.get("url")],
        "benchmarks": benchmark_rows(card),
        "offerings": offerings,
    }
    return render(request, "card.html", context)

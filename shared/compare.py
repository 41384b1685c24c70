"""Models side by side, and what a request costs: pure functions over models.dev model objects
(prices in USD per 1M tokens, as models.dev gives them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.catalog import field_changes

#: models.dev's older form of a context tier: prices beyond this many input tokens.
CONTEXT_OVER_200K = 200_000


@dataclass(frozen=True, slots=True)
class Tokens:
    """The tokens of one request: input (cached ones included), output, and cached input."""

    input: int = 0
    output: int = 0
    cached: int = 0


def prices_for(cost: Mapping[str, Any], input_tokens: int) -> dict[str, Any]:
    """The prices that apply to a request of this many input tokens: the largest context tier it
    exceeds (`tiers`), else `context_over_200k` beyond 200k tokens, else the base prices."""
    prices = dict(cost)
    tiers = [t for t in cost.get("tiers") or [] if (t.get("tier") or {}).get("type") == "context"]
    applicable = [t for t in tiers if input_tokens > (t["tier"].get("size") or 0)]
    if applicable:
        tier = max(applicable, key=lambda t: t["tier"].get("size") or 0)
        prices.update({k: v for k, v in tier.items() if k != "tier" and v is not None})
    elif not tiers and isinstance(cost.get("context_over_200k"), dict) and input_tokens > CONTEXT_OVER_200K:
        prices.update({k: v for k, v in cost["context_over_200k"].items() if v is not None})
    return prices


def estimate_cost(model: Mapping[str, Any], tokens: Tokens) -> float | None:
    """USD for one request: cached input at cache_read (input price without one), the rest of the
    input and the output at their prices; None when the model has no input or output price."""
    cost = model.get("cost")
    if not isinstance(cost, dict) or cost.get("input") is None or cost.get("output") is None:
        return None
    prices = prices_for(cost, tokens.input)
    cached = min(tokens.cached, tokens.input)
    cache_price = prices.get("cache_read")
    if cache_price is None:
        cache_price = prices["input"]
    total = (tokens.input - cached) * prices["input"] + cached * cache_price + tokens.output * prices["output"]
    return round(float(total) / 1_000_000, 10)


def list_price(model: Mapping[str, Any]) -> float | None:
    """Input plus output price per 1M tokens: what "cheapest" compares without a token count."""
    cost = model.get("cost") or {}
    if cost.get("input") is None or cost.get("output") is None:
        return None
    return float(cost["input"]) + float(cost["output"])


def value_at(model: Any, path: str) -> Any:
    """The value at a dotted path (`cost.input`), or None where the path does not lead."""
    cur = model
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def differences(models: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Every dotted path on which any two models differ, with each model's value there, by path."""
    paths: set[str] = set()
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            paths |= set(field_changes(a, b))
    return {p: [value_at(m, p) for m in models] for p in sorted(paths)}


def lowest(values: Mapping[str, float | None]) -> str | None:
    """The key of the smallest value (the smallest key among equals); None when none has one."""
    known = [(v, k) for k, v in values.items() if v is not None]
    return min(known)[1] if known else None


def highest(values: Mapping[str, float | None]) -> str | None:
    """The key of the largest value (the largest key among equals); None when none has one."""
    known = [(v, k) for k, v in values.items() if v is not None]
    return max(known)[1] if known else None


@dataclass(frozen=True, slots=True)
class Summary:
    """What compare adds to the models: differences, the cheapest, the largest context and
    (with a token count) each one's cost estimate."""

    differences: dict[str, list[Any]]
    cheapest: str | None
    largest_context: str | None
    cost_estimates: dict[str, float | None] | None


def compare(models: Sequence[tuple[str, Mapping[str, Any]]], tokens: Tokens | None) -> Summary:
    """Compare models given as (canonical id, model object), in the order asked. The cheapest is by
    cost estimate when tokens are given, else by list price (input plus output)."""
    estimates = {k: estimate_cost(m, tokens) for k, m in models} if tokens is not None else None
    prices = estimates if estimates is not None else {k: list_price(m) for k, m in models}
    contexts = {k: (m.get("limit") or {}).get("context") for k, m in models}
    return Summary(
        differences=differences([m for _, m in models]),
        cheapest=lowest(prices),
        largest_context=highest(contexts),
        cost_estimates=estimates,
    )


#: The qualifiers of a card's benchmark result that tell its results of one benchmark apart.
QUALIFIERS = ("harness", "variant", "dataset", "version")


def score_label(s: Mapping[str, Any]) -> str:
    """A result's row in the score table: the benchmark, with its metric and qualifiers."""
    details = [s["metric"], *(s.get(q) for q in QUALIFIERS)]
    shown = ", ".join(str(d) for d in details if d)
    return str(s["benchmark"]) + (f" ({shown})" if shown else "")


def score_table(scores: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Benchmark results side by side, imported and from the models' cards, as {benchmark (metric,
    qualifiers): {canonical id: score}}. A model's second result in one row (another source or
    origin) gets a row of its own, labelled with its source (or origin): none is dropped."""
    table: dict[str, dict[str, float]] = {}
    for s in scores:
        model = f"{s['provider_id']}/{s['model_id']}"
        label = score_label(s)
        if model in table.get(label, {}):
            label += f" [{s['source'] or s.get('origin') or ''}]"
        row = table.setdefault(label, {})
        n = 2
        while model in row:  # the same source twice too (a card's repeated entry)
            row = table.setdefault(f"{label} #{n}", {})
            n += 1
        row[model] = s["score"]
    return table

"""Compare and cost estimation (shared/compare.py): pure functions over models.dev objects."""

from __future__ import annotations

from typing import Any

import pytest

from shared.compare import (
    Tokens,
    compare,
    differences,
    estimate_cost,
    highest,
    list_price,
    lowest,
    prices_for,
    score_table,
)

PLAIN = {"id": "plain", "cost": {"input": 2, "output": 10}, "limit": {"context": 128_000}}
CACHED = {"id": "cached", "cost": {"input": 3, "output": 15, "cache_read": 0.3}, "limit": {"context": 200_000}}
TIERED = {
    "id": "tiered",
    "cost": {
        "input": 1.25,
        "output": 10,
        "cache_read": 0.31,
        "tiers": [
            {"input": 2.5, "output": 15, "cache_read": 0.625, "tier": {"type": "context", "size": 200_000}},
            {"input": 5, "output": 20, "tier": {"type": "context", "size": 1_000_000}},
        ],
    },
    "limit": {"context": 2_000_000},
}
OVER_200K = {
    "id": "over",
    "cost": {
        "input": 3,
        "output": 15,
        "cache_read": 0.3,
        "context_over_200k": {"input": 6, "output": 22.5, "cache_read": 0.6},
    },
}


def usd(input_price: float, output_price: float, cache_price: float, t: Tokens) -> float:
    return ((t.input - t.cached) * input_price + t.cached * cache_price + t.output * output_price) / 1e6


def test_plain_prices_and_cached_input_at_the_input_price_without_cache_read() -> None:
    t = Tokens(input=10_000, output=2_000, cached=4_000)
    assert estimate_cost(PLAIN, t) == pytest.approx(usd(2, 10, 2, t))
    assert estimate_cost(PLAIN, Tokens()) == 0


def test_cached_input_at_cache_read() -> None:
    t = Tokens(input=10_000, output=1_000, cached=6_000)
    assert estimate_cost(CACHED, t) == pytest.approx(usd(3, 15, 0.3, t))
    # More cached tokens than input tokens: every input token is cached, no more.
    more = Tokens(input=1_000, output=0, cached=5_000)
    assert estimate_cost(CACHED, more) == pytest.approx(1_000 * 0.3 / 1e6)


def test_context_tiers_apply_beyond_their_size_the_largest_exceeded_wins() -> None:
    at = Tokens(input=200_000, output=1_000, cached=0)
    assert estimate_cost(TIERED, at) == pytest.approx(usd(1.25, 10, 0.31, at))  # not beyond 200k
    over = Tokens(input=300_000, output=1_000, cached=100_000)
    assert estimate_cost(TIERED, over) == pytest.approx(usd(2.5, 15, 0.625, over))
    far = Tokens(input=1_500_000, output=1_000, cached=100_000)
    # The 1M tier names no cache_read: the base cache_read stays.
    assert estimate_cost(TIERED, far) == pytest.approx(usd(5, 20, 0.31, far))
    assert prices_for(TIERED["cost"], 1_500_000)["input"] == 5  # type: ignore[arg-type]


def test_context_over_200k_applies_beyond_200k_and_only_without_tiers() -> None:
    below = Tokens(input=150_000, output=1_000, cached=50_000)
    assert estimate_cost(OVER_200K, below) == pytest.approx(usd(3, 15, 0.3, below))
    above = Tokens(input=250_000, output=1_000, cached=50_000)
    assert estimate_cost(OVER_200K, above) == pytest.approx(usd(6, 22.5, 0.6, above))
    both = {"cost": {**TIERED["cost"], "context_over_200k": {"input": 99, "output": 99}}}  # type: ignore[dict-item]
    assert estimate_cost(both, above) == pytest.approx(usd(2.5, 15, 0.625, above))


def test_no_estimate_without_an_input_and_an_output_price() -> None:
    for model in ({"id": "x"}, {"cost": {"input": 1}}, {"cost": {"output": 1}}, {"cost": None}):
        assert estimate_cost(model, Tokens(input=1, output=1)) is None
        assert list_price(model) is None
    # A null cache_read is no price: the input price applies.
    nulls = {"cost": {"input": 1, "output": 2, "cache_read": None}}
    assert estimate_cost(nulls, Tokens(input=10, cached=10)) == pytest.approx(10 / 1e6)


def test_differences_name_every_path_where_any_two_differ() -> None:
    a = {"name": "A", "cost": {"input": 1, "output": 2}, "limit": {"context": 10}, "tool_call": True}
    b = {"name": "B", "cost": {"input": 1, "output": 3}, "limit": {"context": 10}, "tool_call": True}
    c = {"name": "A", "cost": {"input": 1, "output": 2}, "limit": {"context": 10}, "tool_call": True, "new": 1}
    assert differences([a, b, c]) == {
        "cost.output": [2, 3, 2],
        "name": ["A", "B", "A"],
        "new": [None, None, 1],
    }
    assert differences([a, dict(a)]) == {}


def test_cheapest_and_largest_context() -> None:
    assert lowest({"a": 3.0, "b": None, "c": 1.0}) == "c"
    assert lowest({"b": 1.0, "a": 1.0}) == "a"  # ties: the smallest id
    assert lowest({"a": None}) is None
    assert highest({"a": 10, "b": 20, "c": None}) == "b"
    models: list[tuple[str, dict[str, Any]]] = [("p/plain", PLAIN), ("p/cached", CACHED), ("p/tiered", TIERED)]
    by_list_price = compare(models, None)
    assert by_list_price.cost_estimates is None
    assert by_list_price.cheapest == "p/tiered"  # 1.25 + 10 < 2 + 10 < 3 + 15
    assert by_list_price.largest_context == "p/tiered"
    # With a token count the cheapest is by estimate: mostly cached input favours cache_read.
    t = Tokens(input=100_000, output=10, cached=100_000)
    estimated = compare(models, t)
    assert estimated.cost_estimates == {k: pytest.approx(estimate_cost(m, t)) for k, m in models}
    assert estimated.cheapest == "p/cached"


def test_score_table() -> None:
    rows = [
        {"provider_id": "a", "model_id": "m", "benchmark": "mmlu", "metric": "", "score": 80.0},
        {"provider_id": "b", "model_id": "n/x", "benchmark": "mmlu", "metric": "", "score": 82.5},
        {"provider_id": "a", "model_id": "m", "benchmark": "gpqa", "metric": "accuracy", "score": 55.0},
    ]
    assert score_table(rows) == {"mmlu": {"a/m": 80.0, "b/n/x": 82.5}, "gpqa (accuracy)": {"a/m": 55.0}}

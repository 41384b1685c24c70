"""The models document (canonical models), pure parts: where it is, how it is read, how a card's
changes are recorded."""

from __future__ import annotations

import pytest

from shared.canonical import card_segment, change_view, lists_no_cards, parse_models_document
from shared.catalog import field_changes
from shared.errors import MalformedDocument
from shared.sources import models_document_url


@pytest.mark.parametrize(
    ("catalog", "models"),
    [
        ("https://models.dev/api.json?type=all", "https://models.dev/models.json"),
        ("https://host/x/api-2026-07-02.json", "https://host/x/models-2026-07-02.json"),
        ("https://host/catalog.json?token=t&type=chat", "https://host/models.json?token=t"),
        ("file:///srv/data/api.json", "file:///srv/data/models.json"),
        ("file:///srv/data/upstream.json", "file:///srv/data/models.json"),
    ],
)
def test_the_models_document_is_beside_the_catalog(catalog: str, models: str) -> None:
    assert models_document_url(catalog) == models


def test_odd_entries_are_left_out_and_odd_fields_kept() -> None:
    body = (
        b'{"lab/a": {"name": "A", "benchmarks": null}, "lab/b": {"name": 3, "benchmarks": [{"score": "45%"}]},'
        b' "no-lab": {"name": "C"}, "lab/d": [1], "lab/e": {"x": 1e400}}'
    )
    cards, skipped = parse_models_document(body)
    assert sorted(cards) == ["lab/a", "lab/b"]
    assert cards["lab/b"].raw == {"name": 3, "benchmarks": [{"score": "45%"}]}
    assert sorted(skipped) == ["lab/d", "lab/e", "no-lab"]
    with pytest.raises(MalformedDocument):
        parse_models_document(b'["lab/a"]')
    assert lists_no_cards(b" {} ") and not lists_no_cards(b'{"lab/a": {}}') and not lists_no_cards(b"nope")


def test_a_changed_score_is_one_field() -> None:
    old = {"name": "A", "benchmarks": [{"name": "X", "score": 1}, {"name": "Y", "score": 2}]}
    new = {"name": "A", "benchmarks": [{"name": "X", "score": 1}, {"name": "Y", "score": 2.5}]}
    assert field_changes(change_view(old), change_view(new)) == {"benchmarks.1.score": [2, 2.5]}
    grown = {**new, "benchmarks": [*new["benchmarks"], {"name": "Z", "score": 3}]}
    assert field_changes(change_view(new), change_view(grown)) == {
        "benchmarks.2.name": [None, "Z"],
        "benchmarks.2.score": [None, 3],
    }
    assert card_segment("moonshotai/Kimi-K2.5") == "kimi-k2.5"

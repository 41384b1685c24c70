"""One helper decodes every request's parameters and describes them (services/api/params.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from multidict import MultiDict

from services.api.params import decode, describe
from shared.enums import ChangeKind
from shared.errors import BadRequest
from shared.schemas.api import Capability, ChangesQuery, CompareQuery, ModelListQuery, RunPath, Sort


def problems(values: dict[str, str] | MultiDict[str], spec: type) -> dict[str, str]:
    with pytest.raises(BadRequest) as e:
        decode(values, spec)
    return dict(e.value.invalid_params)


def test_values_as_the_document_describes_them() -> None:
    q = decode({"capability": "vision,tool_call", "limit": "7", "sort": "-context", "released_after": "2025-06-01",
                "include_removed": "true", "max_input_cost": "0.5"}, ModelListQuery)  # fmt: skip
    assert q.capability == [Capability.VISION, Capability.TOOL_CALL]
    assert (q.limit, q.sort, q.include_removed, q.max_input_cost) == (7, Sort.CONTEXT_DESC, True, 0.5)
    assert q.released_after is not None and q.released_after.isoformat() == "2025-06-01"
    assert decode({}, ModelListQuery).limit == 50
    assert decode({"provider": ""}, ModelListQuery).provider == []
    changes = decode({"since": "2026-01-01T00:00:00Z", "kind": "added,removed", "cursor": "12"}, ChangesQuery)
    assert changes.since == datetime(2026, 1, 1, tzinfo=UTC)
    assert changes.kind == [ChangeKind.ADDED, ChangeKind.REMOVED] and changes.cursor == 12
    assert decode({"since": "42"}, ChangesQuery).since == 42
    assert decode({"run_id": "7"}, RunPath).run_id == 7


def test_every_problem_at_once() -> None:
    got = problems(
        {"limit": "501", "capability": "vision,telepathy", "colour": "red", "min_context": "-1", "sort": "price"},
        ModelListQuery,
    )
    assert set(got) == {"limit", "capability", "colour", "min_context", "sort"}
    assert got["colour"] == "unknown parameter"
    assert got["limit"] == "expected a whole number 1..500, got '501'"
    assert got["min_context"].startswith("expected a whole number 0..") and got["min_context"].endswith("got '-1'")
    assert "tool_call" in got["capability"] and "'vision,telepathy'" in got["capability"]
    assert problems({}, CompareQuery) == {"ids": "required"}
    assert set(problems({"ids": "a/b", "input_tokens": "x"}, CompareQuery)) == {"ids", "input_tokens"}
    assert problems({"q": "a\x00"}, ModelListQuery) == {"q": "contains a NUL character"}


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("limit", "1.5"),
        ("limit", "05"),
        ("limit", "true"),
        ("min_context", "null"),
        ("max_input_cost", "NaN"),
        ("max_input_cost", "1e999"),
        ("released_after", "2025-13-01"),
        ("released_after", "2025-6-1"),
        ("include_removed", "yes"),
        ("q", "   "),
        ("q", "a" * 201),
        ("cursor", "not/base64"),
        ("capability", "vision,"),
        ("capability", " vision"),
    ],
)
def test_a_value_outside_the_document_is_refused(name: str, raw: str) -> None:
    assert name in problems({name: raw}, ModelListQuery)


def test_no_null_no_unix_time_no_repeats() -> None:
    assert "since" in problems({"since": "0.5"}, ChangesQuery)  # not a unix time
    assert "since" in problems({"since": "null"}, ChangesQuery)
    assert "since" in problems({"since": "2026-01-01T00:00:00"}, ChangesQuery)  # an offset is required
    repeated = problems(MultiDict([("limit", "1"), ("limit", "2")]), ChangesQuery)
    assert repeated == {"limit": "given more than once (a list is comma-separated)"}


def test_the_same_struct_describes_the_parameters() -> None:
    params, components = describe(ModelListQuery, "query")
    by_name = {p["name"]: p for p in params}
    assert list(by_name) == list(ModelListQuery.__struct_fields__)
    assert by_name["capability"]["style"] == "form" and by_name["capability"]["explode"] is False
    assert by_name["capability"]["schema"]["items"] == {"$ref": "#/components/schemas/Capability"}
    assert set(components["Capability"]["enum"]) == {c.value for c in Capability}
    assert by_name["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}
    assert by_name["min_context"]["schema"]["type"] == "integer"  # no null: absent is how a query says it
    assert by_name["min_context"]["description"] == "context limit at least"
    assert not any(p["required"] for p in params)
    compare_params, _ = describe(CompareQuery, "query")
    ids = compare_params[0]
    assert (ids["name"], ids["required"], ids["schema"]["minItems"], ids["schema"]["maxItems"]) == ("ids", True, 2, 10)
    path, _ = describe(RunPath, "path")
    assert path[0]["in"] == "path" and path[0]["required"] is True

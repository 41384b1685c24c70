"""The catalog in time without services: instants, dated documents, the catalog-at reader's SQL and
the OpenAPI document's `at` and /prices."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.api.openapi import build_openapi
from services.api.routes import ROUTES
from shared.db.history import catalog_at
from shared.errors import HistoryImportError
from shared.history import dated_documents, parse_at, parse_instant


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01", utc(2026, 3, 1, 23, 59, 59, 999999)),
        ("2026-03-01T10:00:00Z", utc(2026, 3, 1, 10)),
        ("2026-03-01t10:00:00z", utc(2026, 3, 1, 10)),
        ("2026-03-01 10:00:00Z", utc(2026, 3, 1, 10)),
        ("2026-03-01T10:00:00.5Z", utc(2026, 3, 1, 10, 0, 0, 500000)),
        ("2026-03-01T10:00:00.123456789+02:00", utc(2026, 3, 1, 8, 0, 0, 123456)),
        ("2026-03-01T10:00:00 02:00", utc(2026, 3, 1, 8)),  # an unencoded + in a query string
        ("2026-03-01T23:30:00-01:00", utc(2026, 3, 2, 0, 30)),
        ("2026-12-31T23:59:60Z", utc(2027, 1, 1)),  # a leap second
        ("0001-01-01T00:00:00-01:00", utc(1, 1, 1, 1)),
    ],
)
def test_at_takes_a_date_or_an_rfc3339_time(text: str, expected: datetime) -> None:
    assert parse_at(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "now",
        "2026-3-1",
        "2026-02-30",
        "2026-13-01",
        "2026-03-01T24:00:00Z",
        "2026-03-01T10:60:00Z",
        "2026-03-01T10:00:61Z",
        "2026-03-01T10:00:00",
        "2026-03-01T10:00Z",
        "2026-03-01T10:00:00+24:00",
        "2026-03-01T10:00:00+0200",
        "20260301",
        "2026-03-01T10:00:00Z ",
    ],
)
def test_a_malformed_at_says_why(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected|not a|out of the range|no valid|not a time"):
        parse_at(text)


def test_an_at_beyond_the_range_of_times_is_the_first_or_last_instant() -> None:
    # A valid RFC 3339 time is an instant for at= (the document admits any); the CLI still refuses it.
    assert parse_at("0001-01-01T00:00:00+01:00") == datetime.min.replace(tzinfo=UTC)
    assert parse_at("9999-12-31T23:59:59-01:00") == datetime.max.replace(tzinfo=UTC)
    with pytest.raises(ValueError, match="out of the range"):
        parse_instant("0001-01-01T00:00:00+01:00")


def test_an_instant_is_a_time_not_a_date() -> None:
    with pytest.raises(ValueError, match="expected an RFC 3339 time"):
        parse_instant("2026-03-01")


def test_documents_are_dated_by_their_name_or_an_explicit_time(tmp_path: Path) -> None:
    names = ["models.dev-2025-12-01.json", "api-2026-03-01-v2-2026-03-05.json", "snapshot.json"]
    for name in names:
        (tmp_path / name).write_text("{}")
    docs = dated_documents(
        [
            str(tmp_path / names[0]),
            str(tmp_path / names[1]),
            f"{tmp_path / names[2]}@2026-04-16T12:30:00+02:00",
            f"{tmp_path / names[0]}@2026-05-01",
        ]
    )
    assert [(d.path.name, d.at) for d in docs] == [
        (names[0], utc(2025, 12, 1)),
        (names[1], utc(2026, 3, 1)),  # the first date in the name
        (names[2], utc(2026, 4, 16, 10, 30)),
        (names[0], utc(2026, 5, 1)),  # a date alone: its midnight
    ]


def test_undated_out_of_order_and_missing_documents_are_all_reported(tmp_path: Path) -> None:
    for name in ("a-2026-03-01.json", "b-2026-02-01.json", "c-2026-02-01.json", "undated.json"):
        (tmp_path / name).write_text("{}")
    with pytest.raises(HistoryImportError) as caught:
        dated_documents(
            [
                str(tmp_path / "a-2026-03-01.json"),
                str(tmp_path / "b-2026-02-01.json"),
                str(tmp_path / "c-2026-02-01.json"),
                str(tmp_path / "undated.json"),
                str(tmp_path / "gone-2026-09-01.json"),
                f"{tmp_path / 'a-2026-03-01.json'}@2026-10-01T25:00:00Z",
                f"{tmp_path / 'a-2026-03-01.json'}@2999-01-01",
            ]
        )
    message = str(caught.value)
    assert message.startswith("nothing imported: ")
    assert "b-2026-02-01.json (2026-02-01T00:00:00Z) is not later than" in message
    assert "c-2026-02-01.json (2026-02-01T00:00:00Z) is not later than" in message
    assert "undated.json: no date in its name" in message
    assert "gone-2026-09-01.json: no such file" in message
    assert "is not a time of day" in message
    assert "a-2026-03-01.json is dated 2999-01-01T00:00:00Z, in the future" in message


class _Capture:
    def __init__(self) -> None:
        self.sql: list[str] = []

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self.sql.append(sql)
        return []

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self.sql.append(sql)
        return None


async def test_the_catalog_at_an_instant_heads_each_query_with_the_relations_then() -> None:
    target = _Capture()
    reader = catalog_at(target, utc(2026, 5, 1, 12))  # type: ignore[arg-type]
    await reader.fetch("SELECT api_doc FROM models WHERE removed_at IS NULL")
    await reader.fetchval("  with x AS (SELECT 1) SELECT * FROM x, providers")
    plain, headed = target.sql
    assert plain.startswith("WITH models AS NOT MATERIALIZED (")
    assert "providers AS NOT MATERIALIZED (" in plain
    assert "'2026-05-01T12:00:00+00:00'::timestamptz" in plain
    assert plain.endswith("\nSELECT api_doc FROM models WHERE removed_at IS NULL")
    # A query with its own common table expressions gets these first, in the same WITH.
    assert headed.startswith("WITH models AS NOT MATERIALIZED (")
    assert headed.endswith("),  x AS (SELECT 1) SELECT * FROM x, providers")


def test_openapi_documents_at_and_the_price_timeline() -> None:
    doc = build_openapi(ROUTES)
    paths = (
        "/api.json",
        "/api/v1/models",
        "/api/v1/models/{provider_id}/{model_id}",
        "/api/v1/models/compare",
        "/api/v1/models/capability/{capability}",
        "/api/v1/providers/{provider_id}/models",
    )
    for path in paths:
        assert "at" in [p["name"] for p in doc["paths"][path]["get"]["parameters"]], path
    prices = doc["paths"]["/api/v1/models/{provider_id}/{model_id}/prices"]["get"]
    schema = prices["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Page_PricePeriod_"}, schema
    assert set(doc["components"]["schemas"]["PricePeriod"]["required"]) == {"from", "to", "cost"}

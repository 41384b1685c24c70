"""Model-list parameters (API.md's filters, sort and cursor): parsed and validated in one place."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from shared.errors import BadRequest

#: capability name -> SQL condition on `models`.
CAPABILITIES: dict[str, str] = {
    "tool_call": "tool_call IS TRUE",
    "reasoning": "reasoning IS TRUE",
    "attachment": "attachment IS TRUE",
    "temperature": "temperature IS TRUE",
    "structured_output": "structured_output IS TRUE",
    "open_weights": "open_weights IS TRUE",
    "interleaved": "interleaved IS TRUE",
    "vision": "input_modalities @> '{image}'",
    "audio_input": "input_modalities @> '{audio}'",
    "pdf_input": "input_modalities @> '{pdf}'",
    "video_input": "input_modalities @> '{video}'",
    "image_output": "output_modalities @> '{image}'",
    "audio_output": "output_modalities @> '{audio}'",
}
MODALITIES = ("text", "image", "audio", "video", "pdf")
STATUSES = ("alpha", "beta", "deprecated", "active")
#: sort name -> (SQL expression ascending, SQL expression descending, its type). Models without the
#: value come last either way, so NULL is mapped past the end in the direction of the sort.
SORTS: dict[str, tuple[str, str, str]] = {
    "name": ("lower(name)", "lower(name)", "text"),
    "release_date": ("coalesce(release_date, '9999-99-99')", "coalesce(release_date, '')", "text"),
    "input_cost": ("coalesce(input_cost, 'Infinity'::float8)", "coalesce(input_cost, '-Infinity'::float8)", "float8"),
    "output_cost": (
        "coalesce(output_cost, 'Infinity'::float8)",
        "coalesce(output_cost, '-Infinity'::float8)",
        "float8",
    ),
    "context": ("coalesce(context_limit, 9223372036854775807)", "coalesce(context_limit, -1)", "bigint"),
}
LIST_PARAMS = frozenset(
    {
        "provider",
        "capability",
        "input_modalities",
        "output_modalities",
        "family",
        "status",
        "min_context",
        "min_output",
        "max_input_cost",
        "max_output_cost",
        "released_after",
        "released_before",
        "q",
        "include_removed",
        "sort",
        "limit",
        "cursor",
    }
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: The largest number a numeric filter accepts (it has to fit a PostgreSQL bigint or float8).
MAX_NUMBER = 10**12
#: A canonical model id (provider_id/model_id); the pattern the OpenAPI document states for ids.
MODEL_ID_PATTERN = r"[^/,\x00]+/[^,\x00]+"


def csv_pattern(values: tuple[str, ...] | list[str]) -> str:
    """A regular expression for a comma-separated list of these values (or nothing)."""
    one = "(" + "|".join(re.escape(v) for v in values) + ")"
    return f"^({one}(,{one})*)?$"


@dataclass
class ModelQuery:
    """A validated model-list request."""

    providers: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    input_modalities: list[str] = field(default_factory=list)
    output_modalities: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    min_context: int | None = None
    min_output: int | None = None
    max_input_cost: float | None = None
    max_output_cost: float | None = None
    released_after: str | None = None
    released_before: str | None = None
    q: str | None = None
    include_removed: bool = False
    sort: str | None = None
    descending: bool = False
    limit: int = 50
    cursor: list[Any] | None = None


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_model_query(params: Mapping[str, str], *, fixed: Mapping[str, str] | None = None) -> ModelQuery:
    """Validate query parameters; every problem is reported at once, as BadRequest.invalid_params."""
    errors: list[tuple[str, str]] = []
    q = ModelQuery()
    merged = {**params, **(fixed or {})}
    for name in params:
        if name not in LIST_PARAMS:
            errors.append((name, "unknown parameter"))

    def one_of(name: str, allowed: Any) -> list[str]:
        values = _split(merged.get(name, ""))
        bad = [v for v in values if v not in allowed]
        if bad:
            errors.append((name, f"unknown value(s) {', '.join(bad)}; expected any of {', '.join(allowed)}"))
        return values

    def number(name: str, kind: type, minimum: float = 0) -> Any:
        raw = merged.get(name)
        if raw is None:
            return None
        try:
            value = kind(raw)
            if value != value or not minimum <= value <= MAX_NUMBER:
                raise ValueError
        except ValueError:
            errors.append(
                (name, f"expected a {'whole ' if kind is int else ''}number {minimum:g}..{MAX_NUMBER}, got {raw!r}")
            )
            return None
        return value

    def date(name: str) -> str | None:
        raw = merged.get(name)
        if raw is None:
            return None
        if not _DATE.fullmatch(raw):
            errors.append((name, f"expected a date YYYY-MM-DD, got {raw!r}"))
            return None
        return raw

    q.providers = _split(merged.get("provider", ""))
    q.capabilities = one_of("capability", tuple(CAPABILITIES))
    q.input_modalities = one_of("input_modalities", MODALITIES)
    q.output_modalities = one_of("output_modalities", MODALITIES)
    q.families = _split(merged.get("family", ""))
    q.statuses = one_of("status", STATUSES)
    q.min_context = number("min_context", int)
    q.min_output = number("min_output", int)
    q.max_input_cost = number("max_input_cost", float)
    q.max_output_cost = number("max_output_cost", float)
    q.released_after = date("released_after")
    q.released_before = date("released_before")
    text = merged.get("q")
    if text is not None:
        text = text.strip()
        if not text or len(text) > 200:
            errors.append(("q", "expected 1 to 200 characters"))
        q.q = text or None
    removed = merged.get("include_removed")
    if removed is not None:
        if removed.lower() not in ("true", "false", "1", "0"):
            errors.append(("include_removed", f"expected true or false, got {removed!r}"))
        q.include_removed = removed.lower() in ("true", "1")
    sort = merged.get("sort")
    if sort is not None:
        name = sort.removeprefix("-")
        if name not in SORTS:
            errors.append(("sort", f"expected one of {', '.join(SORTS)}, optionally with '-', got {sort!r}"))
        else:
            q.sort, q.descending = name, sort.startswith("-")
    limit = number("limit", int, 1)
    if limit is not None:
        if limit > 500:
            errors.append(("limit", f"expected 1 to 500, got {limit}"))
        else:
            q.limit = limit
    cursor = merged.get("cursor") or None
    if cursor is not None:
        q.cursor = decode_cursor(cursor, cursor_kind(q), errors)
    if errors:
        raise BadRequest("invalid query parameters", errors)
    return q


def cursor_kind(q: ModelQuery) -> str:
    """What a cursor's position is measured in; a cursor from another ordering is refused."""
    if q.sort:
        return f"{'-' if q.descending else ''}{q.sort}"
    return "rank" if q.q else "id"


def encode_cursor(kind: str, position: list[Any]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([kind, *position])).decode().rstrip("=")


def decode_cursor(value: str, kind: str, errors: list[tuple[str, str]]) -> list[Any] | None:
    try:
        data = msgspec.json.decode(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        if not isinstance(data, list) or len(data) < 3 or data[0] != kind:
            raise ValueError
        if not all(isinstance(x, str) for x in data[-2:]):
            raise ValueError
        return data[1:]
    except (ValueError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        errors.append(("cursor", "not a cursor of this list (use next_cursor from the previous page)"))
        return None

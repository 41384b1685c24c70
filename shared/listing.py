"""Model lists: a request's parameters made into one ModelQuery for the reads, and the opaque
cursors of keyset paging. Pure: the SQL for these lives in shared/db/api_reads.py."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec

from shared.errors import BadRequest
from shared.exports.model_types import types_asked
from shared.schemas.api import (
    Capability,
    CapabilityModelsQuery,
    Modality,
    ModelListQuery,
    ModelStatus,
    ProviderModelsQuery,
    parse_sort,
)

ModelListParams = ModelListQuery | CapabilityModelsQuery | ProviderModelsQuery


class ModelQuery(msgspec.Struct, frozen=True, kw_only=True):
    """A validated model-list request, whatever route it came by."""

    providers: list[str] = []
    capabilities: list[Capability] = []
    input_modalities: list[Modality] = []
    output_modalities: list[Modality] = []
    families: list[str] = []
    statuses: list[ModelStatus] = []
    #: Model types (empty: every type).
    types: list[str] = []
    min_context: int | None = None
    min_output: int | None = None
    max_input_cost: float | None = None
    max_output_cost: float | None = None
    released_after: str | None = None
    released_before: str | None = None
    q: str | None = None
    include_removed: bool = False
    #: Has a result of this benchmark (imported or on its card; name case-insensitive).
    has_benchmark: str | None = None
    sort: str | None = None
    #: The benchmark whose score orders the list when `sort` is "benchmark".
    sort_benchmark: str | None = None
    descending: bool = False
    limit: int = 50
    cursor: list[Any] | None = None

    def filter_key(self) -> bytes:
        """What the total depends on: everything but the order and the page."""
        return msgspec.json.encode(
            msgspec.structs.replace(self, sort=None, sort_benchmark=None, descending=False, limit=0, cursor=None)
        )

    def cursor_kind(self) -> str:
        """What a cursor's position is measured in; a cursor from another ordering is refused (a
        benchmark's by a digest of its name, which may be long)."""
        if self.sort:
            key = self.sort
            if self.sort_benchmark is not None:
                key += ":" + hashlib.sha256(self.sort_benchmark.lower().encode()).hexdigest()[:16]
            return f"{'-' if self.descending else ''}{key}"
        return "rank" if self.q else "id"


def _clean(values: Sequence[str]) -> list[str]:
    return [v.strip() for v in values if v.strip()]


def model_query(
    params: ModelListParams, *, provider: str | None = None, capability: Capability | None = None
) -> ModelQuery:
    """The ModelQuery of a model list's decoded parameters (and the provider or capability of its path)."""
    providers = [provider] if provider is not None else _clean(getattr(params, "provider", []))
    capabilities = [capability] if capability is not None else list(getattr(params, "capability", []))
    q = params.q.strip() if params.q is not None else None
    sort, descending, benchmark = parse_sort(params.sort) if params.sort else (None, False, None)
    query = ModelQuery(
        providers=providers,
        capabilities=capabilities,
        input_modalities=params.input_modalities,
        output_modalities=params.output_modalities,
        families=_clean(params.family),
        statuses=params.status,
        types=types_asked(params.type, default=None) or [],
        min_context=params.min_context,
        min_output=params.min_output,
        max_input_cost=params.max_input_cost,
        max_output_cost=params.max_output_cost,
        released_after=params.released_after.isoformat() if params.released_after else None,
        released_before=params.released_before.isoformat() if params.released_before else None,
        q=q or None,
        include_removed=params.include_removed,
        has_benchmark=params.has_benchmark.strip() if params.has_benchmark is not None else None,
        sort=sort,
        sort_benchmark=benchmark,
        descending=descending,
        limit=params.limit,
    )
    if not params.cursor:
        return query
    return msgspec.structs.replace(query, cursor=decode_cursor(params.cursor, query.cursor_kind(), 3))


def encode_cursor(kind: str, position: Sequence[Any]) -> str:
    """An opaque cursor: the kind of list it pages and the position after the last row."""
    return base64.urlsafe_b64encode(msgspec.json.encode([kind, *position])).decode().rstrip("=")


def decode_cursor(value: str, kind: str, size: int) -> list[str]:
    """The position of a cursor of this kind of list (`size` text values), or BadRequest."""
    try:
        data = msgspec.json.decode(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        if not isinstance(data, list) or len(data) != size + 1 or data[0] != kind:
            raise ValueError
        if not all(isinstance(x, str) for x in data[1:]):
            raise ValueError
        return data[1:]
    except (ValueError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise BadRequest(
            "invalid query parameters",
            [("cursor", "not a cursor of this list (use next_cursor from the previous page)")],
        ) from None

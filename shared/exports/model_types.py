"""models.dev's `type=`: which model types a whole-catalog document holds, in one place.

models.dev classifies models by `type` (a model without one is `chat`) and its `api.json` answers
chat models only unless asked `?type=all` or `?type=embedding,image`. `types_asked` turns a request's
`type=` into the types to keep (None: every type); the SQL that builds the document
(shared/db/api_reads.catalog_document) and `select` below, for a parsed document, keep the same ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from shared.schemas.api import ModelType, TypeChoice

#: What models.dev's api.json answers when not asked for a type.
CHAT_ONLY: Final = (str(ModelType.CHAT),)


def model_type(model: Mapping[str, Any]) -> str:
    """A model's type as models.dev reads it: `chat` when it has none."""
    kind = model.get("type")
    return kind if isinstance(kind, str) and kind else str(ModelType.CHAT)


def types_asked(asked: Sequence[TypeChoice | str], default: tuple[str, ...] | None = CHAT_ONLY) -> list[str] | None:
    """The types a `type=` value keeps, sorted (None: every type); `default` when none is asked."""
    if not asked:
        return list(default) if default is not None else None
    if TypeChoice.ALL in asked:
        return None
    return sorted({str(t) for t in asked})


def select(
    doc: Mapping[str, Any], *, providers: Iterable[str] | None = None, types: Sequence[str] | None = CHAT_ONLY
) -> dict[str, Any]:
    """A parsed models.dev document with just these providers (None: all) and models of these
    types (None: all); a provider keeps its place with no model left."""
    wanted = set(providers) if providers is not None else None
    kinds = set(types) if types is not None else None
    return {
        pid: {
            **provider,
            "models": {
                mid: model
                for mid, model in (provider.get("models") or {}).items()
                if kinds is None or model_type(model) in kinds
            },
        }
        for pid, provider in doc.items()
        if wanted is None or pid in wanted
    }

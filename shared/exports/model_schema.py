"""models.dev's `/model-schema.json`: a JSON Schema whose `$defs.Model` enumerates every model id.

opencode's configuration schema refers to it (`"$ref": "https://models.dev/model-schema.json#/$defs/Model"`)
to check a `provider/model` setting. models.dev builds it from its default `/api.json` answer (chat
models only: a model without `type` is chat), sorts the ids with JavaScript's default sort (UTF-16 code
units) and writes it with `JSON.stringify(schema, null, 2)`; this does the same, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from shared.exports.model_types import CHAT_ONLY, select

#: models.dev's own identifiers, kept so that the document is interchangeable with models.dev's.
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://models.dev/model-schema.json"


def _utf16_order(model_id: str) -> bytes:
    """The key of JavaScript's default `Array.prototype.sort`: UTF-16 code units, in order."""
    return model_id.encode("utf-16-be", "surrogatepass")


def model_ids(doc: Mapping[str, Any], types: Sequence[str] | None = CHAT_ONLY) -> list[str]:
    """Every `provider/model` id of these types (None: all; models.dev's default: chat), in
    models.dev's order."""
    ids = [f"{pid}/{mid}" for pid, provider in select(doc, types=types).items() for mid in provider["models"]]
    return sorted(ids, key=_utf16_order)


def model_schema(doc: Mapping[str, Any], types: Sequence[str] | None = CHAT_ONLY) -> dict[str, Any]:
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "$defs": {
            "Model": {
                "type": "string",
                "enum": model_ids(doc, types),
                "description": "AI model identifier in provider/model format",
            },
        },
    }


def model_schema_json(doc: Mapping[str, Any], types: Sequence[str] | None = CHAT_ONLY) -> bytes:
    """The document as models.dev serves it (`JSON.stringify(schema, null, 2)`)."""
    return json.dumps(model_schema(doc, types), indent=2, ensure_ascii=False).encode()

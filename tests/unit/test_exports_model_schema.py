"""`/model-schema.json` as models.dev builds it, from the real 2026-07-02 catalog."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from shared.embedded import document
from shared.exports.model_schema import model_ids, model_schema, model_schema_json


@pytest.fixture(scope="module")
def catalog() -> dict[str, Any]:
    return json.loads(document("api-2026-07-02"))  # type: ignore[no-any-return]


def test_every_model_id_once_sorted(catalog: dict[str, Any]) -> None:
    ids = model_schema(catalog)["$defs"]["Model"]["enum"]
    expected = {f"{pid}/{mid}" for pid, p in catalog.items() for mid in p["models"]}
    assert len(ids) == len(expected) == 5276
    assert set(ids) == expected
    assert ids == sorted(ids)  # every id in this catalog is ASCII: code point order is UTF-16 order


def test_the_document_models_dev_serves(catalog: dict[str, Any]) -> None:
    body = model_schema_json(catalog)
    schema = json.loads(body)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://models.dev/model-schema.json"
    assert schema["$defs"]["Model"]["type"] == "string"
    assert schema["$defs"]["Model"]["description"] == "AI model identifier in provider/model format"
    # JSON.stringify(schema, null, 2): two-space indent, ", " never, ": " after keys.
    assert body.startswith(b'{\n  "$schema": "https://json-schema.org/draft/2020-12/schema",\n  "$id": ')
    assert b'\n      "enum": [\n        "302ai/' in body
    assert body.endswith(b'"description": "AI model identifier in provider/model format"\n    }\n  }\n}')


def test_it_validates_a_config_value_as_opencode_refers_to_it(catalog: dict[str, Any]) -> None:
    schema = model_schema(catalog)
    registry: Registry[Any] = Registry().with_resource(schema["$id"], Resource.from_contents(schema))
    validator = jsonschema.Draft202012Validator({"$ref": f"{schema['$id']}#/$defs/Model"}, registry=registry)
    validator.validate("anthropic/claude-sonnet-4-5")
    validator.validate("openrouter/anthropic/claude-sonnet-4")
    with pytest.raises(jsonschema.ValidationError):
        validator.validate("anthropic/no-such-model")


def test_chat_models_only_as_models_dev_default_answer() -> None:
    doc = {
        "p": {
            "models": {
                "chat": {"id": "chat"},
                "typed-chat": {"id": "typed-chat", "type": "chat"},
                "embedder": {"id": "embedder", "type": "embedding"},
                "imager": {"id": "imager", "type": "image"},
            }
        }
    }
    assert model_ids(doc) == ["p/chat", "p/typed-chat"]
    assert model_ids({}) == []
    assert json.loads(model_schema_json({}))["$defs"]["Model"]["enum"] == []


def test_javascript_sort_order_not_code_point_order() -> None:
    # JavaScript sorts UTF-16 code units: U+1F600 (D83D DE00) before U+FF5E; code points disagree.
    doc = {"p": {"models": {"\uff5e": {}, "\U0001f600": {}, "Z": {}, "a": {}, "_": {}}}}
    assert model_ids(doc) == ["p/Z", "p/_", "p/a", "p/\U0001f600", "p/\uff5e"]
    assert sorted(["p/\uff5e", "p/\U0001f600"]) == ["p/\uff5e", "p/\U0001f600"]
    # Non-ASCII text is written as itself, as JSON.stringify does.
    assert "\U0001f600".encode() in model_schema_json(doc)

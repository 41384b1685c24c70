from __future__ import annotations

import gc
import json

import msgspec
import pytest

from shared.catalog import decode_changed_models, decode_provider_slice, field_changes, parse_document, sha256_hex
from shared.embedded import document
from shared.errors import MalformedDocument
from shared.schemas.catalog import Document
from tests.support import CATALOG_NEW, CATALOG_OLD, SAMPLE


@pytest.mark.parametrize("name", [CATALOG_OLD, CATALOG_NEW])
def test_every_provider_and_model_of_the_real_catalogs_decodes(name: str) -> None:
    body = document(name)
    doc = msgspec.json.decode(body, type=Document)
    raw = json.loads(body)
    assert set(doc) == set(raw)
    parsed = parse_document(body)
    assert parsed.model_count == sum(len(p["models"]) for p in raw.values())
    for pid, data in parsed.slices.items():
        provider, models = decode_provider_slice(pid, data)
        assert provider.name == raw[pid]["name"]
        assert {m: r.raw for m, r in models.items()} == raw[pid]["models"]
        for rec in models.values():
            assert rec.model.id == raw[pid]["models"][rec.model_id]["id"]


def test_sample_has_every_field_kind() -> None:
    raw = json.loads(SAMPLE.read_bytes())
    parse_document(SAMPLE.read_bytes())
    models = [m for p in raw.values() for m in p["models"].values()]
    keys = {k for m in models for k in m}
    cost_keys = {k for m in models for k in m.get("cost", {})}
    assert {"reasoning_options", "interleaved", "provider", "experimental", "status", "knowledge"} <= keys
    assert {"tiers", "context_over_200k", "cache_read", "cache_write", "input_audio", "output_audio"} <= cost_keys
    assert any("/" in mid for p in raw.values() for mid in p["models"])
    assert {m.get("status") for m in models} >= {"alpha", "beta", "deprecated", None}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"a": {"id": "a", "name": "A", "models": {"m": {"id": "m", "name": "M"', "truncated"),
        (b"[]", "array"),
        (b"{}", "no providers"),
        (b'{"a": {"id": "a", "name": "A", "models": []}}', "at `$[...].models`"),
        (b'{"a": {"id": "a", "name": "A", "models": {"m": {"id": "m", "name": "M", "limit": {"context": "big"}}}}}',
         "limit.context"),
        (b'{"a": {"id": "a", "name": "A", "models": {"m": {"id": "m", "name": "M", "cost": {"input": "1"}}}}}',
         "cost.input"),
    ],
)  # fmt: skip
def test_malformed_documents_say_where(body: bytes, where: str) -> None:
    with pytest.raises(MalformedDocument) as e:
        parse_document(body)
    assert str(e.value).startswith("not a models.dev document: ")
    assert where in str(e.value)


def test_no_collection_runs_while_a_document_is_decoded() -> None:
    """The decode of a large document is not slowed by the cyclic collector, and the collector is
    left as it was found, also when the document is malformed."""
    body = document(CATALOG_NEW)
    collections: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        assert parse_document(body).model_count > 5_000
        assert collections == []  # 57 when it runs while the catalog is decoded
        with pytest.raises(MalformedDocument):
            parse_document(body[:-2])
        assert gc.isenabled() and collections == []
        kept = [{"x": [i]} for i in range(10_000)]  # collections run again once it is done
        assert collections and len(kept) == 10_000
        gc.disable()
        parse_document(body)
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.callbacks.remove(seen)


def test_unknown_fields_are_kept_in_raw() -> None:
    body = b'{"a": {"id": "a", "name": "A", "future": 1, "models": {"x/y": {"id": "x/y", "name": "Y", "new": [1]}}}}'
    provider, models = decode_provider_slice("a", parse_document(body).slices["a"])
    assert provider.raw == {"id": "a", "name": "A", "future": 1}
    assert models["x/y"].raw["new"] == [1]


def test_field_changes() -> None:
    old = {"name": "A", "cost": {"input": 1, "output": 2}, "limit": {"context": 10}, "modalities": {"input": ["text"]}}
    new = {"name": "A", "cost": {"input": 1.5}, "limit": {"context": 10}, "modalities": {"input": ["text", "image"]}}
    assert field_changes(old, new) == {
        "cost.input": [1, 1.5],
        "cost.output": [2, None],
        "modalities.input": [["text"], ["text", "image"]],
    }
    assert field_changes({"cost": {"input": 3}}, {}) == {"cost.input": [3, None]}
    assert field_changes({"a": 1}, {"a": 1.0}) == {}
    assert field_changes({"a": True}, {"a": 1}) == {"a": [True, 1]}


def test_models_whose_bytes_are_vouched_for_are_not_decoded() -> None:
    data = b'{"id": "a", "name": "A", "env": [], "models": {"m1": {"id": "m1", "name": "One"}, "m2": {"bad": 1}}}'
    digests: dict[str, str] = {}

    def vouch(mid: str, digest: str) -> bool:
        digests[mid] = digest
        return mid == "m2"

    provider, models, kept = decode_changed_models("a", data, vouch)
    assert provider.raw == {"id": "a", "name": "A", "env": []}
    assert list(models) == ["m1"] and kept == ["m2"]  # m2 (invalid) was never decoded
    assert models["m1"].raw_sha256 == digests["m1"] == sha256_hex(b'{"id": "m1", "name": "One"}')
    with pytest.raises(MalformedDocument):  # the same slice with nothing vouched for: m2 is decoded
        decode_changed_models("a", data, lambda mid, digest: False)

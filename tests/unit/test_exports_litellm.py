"""The catalog as a LiteLLM model cost map, from the real 2026-07-02 catalog, checked against LiteLLM."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from shared.compare import Tokens, estimate_cost
from shared.embedded import document
from shared.exports.litellm import (
    LITELLM_PROVIDERS,
    cost_map_entry,
    litellm_cost_map,
    litellm_cost_map_json,
    model_mode,
    per_token,
)
from tests.support import need_service

# LiteLLM's own types make pydantic warn; that is LiteLLM's business, not a failure of ours.
pytestmark = pytest.mark.filterwarnings("ignore:.* using the `ReadOnly` qualifier")

#: Providers whose every priced model LiteLLM prices with its generic calculator from our map.
MAJOR = (
    "openai",
    "anthropic",
    "google",
    "google-vertex",
    "amazon-bedrock",
    "togetherai",
    "mistral",
    "deepseek",
    "xai",
    "groq",
    "fireworks-ai",
)
#: (input, output, cached) tokens: small, past the 128k tiers only, past every tier.
TOKENS = ((1000, 500, 200), (150_000, 1000, 0), (300_000, 2000, 100_000))


@pytest.fixture(scope="module")
def catalog() -> dict[str, Any]:
    return json.loads(document("api-2026-07-02"))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def cost_map(catalog: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return litellm_cost_map(catalog)


@pytest.fixture(scope="module")
def litellm() -> Iterator[Any]:
    """LiteLLM itself, with its bundled map (no fetch at import)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "true")
        try:
            import litellm
        except ImportError:
            need_service("litellm is not installed (pip install -e '.[dev]')")
        yield litellm


def test_one_entry_per_model_keyed_by_id(catalog: dict[str, Any], cost_map: dict[str, dict[str, Any]]) -> None:
    expected = [f"{pid}/{mid}" for pid in sorted(catalog) for mid in sorted(catalog[pid]["models"])]
    assert list(cost_map) == expected
    assert len(cost_map) == 5276
    assert json.loads(litellm_cost_map_json(catalog)) == cost_map


def test_prices_per_token_with_cache_and_tiers(catalog: dict[str, Any], cost_map: dict[str, dict[str, Any]]) -> None:
    fields = {"input": "input_cost_per_token", "output": "output_cost_per_token"}
    fields |= {"cache_read": "cache_read_input_token_cost", "cache_write": "cache_creation_input_token_cost"}
    checked = 0
    for key, entry in cost_map.items():
        pid, mid = key.split("/", 1)
        cost = catalog[pid]["models"][mid].get("cost") or {}
        for field, name in fields.items():
            if field in cost:
                assert math.isclose(entry[name], cost[field] / 1e6, rel_tol=1e-12, abs_tol=1e-18), (key, name)
                checked += 1
            else:
                assert name not in entry, (key, name)
        tiers = {t["tier"]["size"]: t for t in cost.get("tiers") or []}
        if not tiers and "context_over_200k" in cost:
            tiers = {200_000: cost["context_over_200k"]}
        above = {k for k in entry if "_above_" in k}
        assert {int(k.rsplit("_above_", 1)[1].removesuffix("k_tokens")) * 1000 for k in above} == set(tiers), key
        for size, tier in tiers.items():
            for field, name in fields.items():
                if field in tier:
                    assert entry[f"{name}_above_{size // 1000}k_tokens"] == per_token(tier[field])
    assert checked > 10_000
    gpt = cost_map["openai/gpt-5.4"]  # tiers at 272k beside models.dev's legacy context_over_200k
    assert gpt["input_cost_per_token"] == 2.5e-06
    assert gpt["input_cost_per_token_above_272k_tokens"] == 5e-06
    assert gpt["cache_read_input_token_cost_above_272k_tokens"] == 5e-07
    assert "input_cost_per_token_above_200k_tokens" not in gpt
    assert per_token(0.15) == 1.5e-07 and per_token(3) == 3e-06 and per_token(0) == 0.0


def test_limits_mode_and_supports(catalog: dict[str, Any], cost_map: dict[str, dict[str, Any]]) -> None:
    for key, entry in cost_map.items():
        pid, mid = key.split("/", 1)
        m = catalog[pid]["models"][mid]
        inputs, outputs, limit = m["modalities"]["input"], m["modalities"]["output"], m["limit"]
        assert entry["supports_vision"] == ("image" in inputs)
        assert entry["supports_pdf_input"] == ("pdf" in inputs)
        assert entry["supports_audio_input"] == ("audio" in inputs)
        assert entry["supports_video_input"] == ("video" in inputs)
        assert entry["supports_audio_output"] == ("audio" in outputs)
        assert entry["supports_function_calling"] == m["tool_call"]
        assert entry["supports_reasoning"] == m["reasoning"]
        assert entry.get("supports_response_schema") == m.get("structured_output")
        assert entry.get("max_input_tokens") == ((limit.get("input") or limit["context"]) or None)
        assert entry.get("max_output_tokens") == (limit["output"] or None)
        assert entry.get("max_tokens") == (limit["output"] or entry.get("max_input_tokens"))
        assert entry["mode"] in {"chat", "embedding", "rerank", "image_generation", "video_generation"} | {
            "audio_speech",
            "audio_transcription",
        }
    modes = {k: cost_map[k]["mode"] for k in cost_map}
    assert modes["openai/text-embedding-3-small"] == "embedding"
    assert modes["vercel/cohere/rerank-v3.5"] == "rerank"
    assert modes["groq/whisper-large-v3"] == "audio_transcription"
    assert modes["google/gemini-2.5-flash-preview-tts"] == "audio_speech"
    assert modes["openai/gpt-4o"] == "chat"
    assert sum(1 for m in modes.values() if m == "chat") > 5000


def test_models_dev_type_decides_the_mode() -> None:
    base = {"modalities": {"input": ["text"], "output": ["text"]}}
    expected = {"embedding": "embedding", "image": "image_generation", "reranking": "rerank"}
    expected |= {"transcription": "audio_transcription", "speech": "audio_speech", "decision": "decisions"}
    expected |= {"video": "video_generation", "realtime": "realtime", "chat": "chat"}
    for kind, mode in expected.items():
        assert model_mode({**base, "type": kind, "id": "text-embedding-3"}) == mode  # the type wins over the id
    assert model_mode({"modalities": {"input": ["text"], "output": ["image"]}}) == "image_generation"
    assert model_mode({"modalities": {"input": ["text"], "output": ["text", "image"]}}) == "chat"
    granular = cost_map_entry("p", {**base, "tool_call": {"supported": True, "parallel": False}, "limit": {}})
    assert granular["supports_function_calling"] is True
    assert granular["supports_parallel_function_calling"] is False
    assert "max_tokens" not in granular and "input_cost_per_token" not in granular


def test_provider_names_are_litellm_s_own(
    catalog: dict[str, Any], cost_map: dict[str, dict[str, Any]], litellm: Any
) -> None:
    from litellm.llms.openai_like.json_loader import JSONProviderRegistry

    names = {p.value for p in litellm.provider_list} | set(JSONProviderRegistry.list_providers())
    assert set(LITELLM_PROVIDERS.values()) <= names, set(LITELLM_PROVIDERS.values()) - names
    assert set(LITELLM_PROVIDERS) <= set(catalog), set(LITELLM_PROVIDERS) - set(catalog)
    for pid in catalog:  # a provider whose id LiteLLM spells with `_` is not left behind
        if pid not in names and pid.replace("-", "_") in names:
            assert pid in LITELLM_PROVIDERS, pid
    assert cost_map["google-vertex/gemini-2.5-pro"]["litellm_provider"] == "vertex_ai"
    assert cost_map["amazon-bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0"]["litellm_provider"] == "bedrock"
    assert cost_map["togetherai/moonshotai/Kimi-K2.5"]["litellm_provider"] == "together_ai"
    assert cost_map["openai/gpt-4o"]["litellm_provider"] == "openai"
    assert cost_map["google-vertex/gemini-2.5-pro"]["aliases"] == ["vertex_ai/gemini-2.5-pro"]
    assert "aliases" not in cost_map["openai/gpt-4o"]
    aliases = [a for e in cost_map.values() for a in e.get("aliases", [])]
    assert len(aliases) == len(set(aliases)) and not set(aliases) & set(cost_map)


def test_litellm_accepts_the_map_and_prices_as_our_estimate(
    catalog: dict[str, Any], cost_map: dict[str, dict[str, Any]], litellm: Any
) -> None:
    from litellm.litellm_core_utils.get_model_cost_map import (
        GetModelCostMap,
        _finalize_model_cost_map,
        adopt_model_cost_map,
    )

    # LiteLLM refuses a fetched map under half the size of its bundled one.
    assert GetModelCostMap.validate_model_cost_map(cost_map, GetModelCostMap.get_backup_model_count())
    bundled = litellm.model_cost
    adopt_model_cost_map(_finalize_model_cost_map(json.loads(litellm_cost_map_json(catalog))))
    try:
        priced = 0
        for pid in MAJOR:
            for mid, model in catalog[pid]["models"].items():
                if "cost" not in model:
                    continue
                entry = cost_map[f"{pid}/{mid}"]
                name = entry.get("aliases", [f"{pid}/{mid}"])[0]
                for it, ot, ct in TOKENS:
                    a, b = litellm.cost_per_token(
                        model=name, prompt_tokens=it, completion_tokens=ot, cache_read_input_tokens=ct
                    )
                    ours = estimate_cost(model, Tokens(it, ot, ct))
                    assert ours is not None and math.isclose(a + b, ours, rel_tol=1e-9, abs_tol=1e-9), (name, it)
                priced += 1
        assert priced > 300
    finally:
        adopt_model_cost_map(bundled)

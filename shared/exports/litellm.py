"""The catalog as a LiteLLM model cost map (`model_prices_and_context_window.json`'s shape).

LiteLLM loads its map from any URL given as `LITELLM_MODEL_COST_MAP_URL` and prices every call with
it. One entry per model, keyed by the canonical `provider/model` id, with `litellm_provider` in
LiteLLM's own provider names, prices in USD per token (models.dev's are per million), the context
tiers LiteLLM reads (`input_cost_per_token_above_200k_tokens`, ...), limits, `mode` and `supports_*`.
A field models.dev does not give is left out, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

import msgspec

#: models.dev provider id -> LiteLLM's name for the same provider, where the two differ. A provider
#: not listed keeps its models.dev id, which is LiteLLM's name too where LiteLLM knows the provider
#: (anthropic, openai, mistral, groq, ...). Names from `litellm.provider_list` and LiteLLM's
#: OpenAI-compatible provider registry (`litellm/llms/openai_like/providers.json`).
LITELLM_PROVIDERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "abliteration-ai": "abliteration",
        "alibaba": "dashscope",
        "alibaba-cn": "dashscope",
        "amazon-bedrock": "bedrock",
        "azure-cognitive-services": "azure",
        "cloudflare-workers-ai": "cloudflare",
        "digitalocean": "gradient_ai",
        "fireworks-ai": "fireworks_ai",
        "friendli": "friendliai",
        "github-copilot": "github_copilot",
        "github-models": "github",
        "gmicloud": "gmi",
        "google": "gemini",
        "google-vertex": "vertex_ai",
        "google-vertex-anthropic": "vertex_ai",
        "llama": "meta_llama",
        "lmstudio": "lm_studio",
        "minimax-cn": "minimax",
        "moonshotai": "moonshot",
        "moonshotai-cn": "moonshot",
        "nova": "amazon_nova",
        "novita-ai": "novita",
        "nvidia": "nvidia_nim",
        "ollama-cloud": "ollama",
        "opencode-go": "opencode_go",
        "perplexity-agent": "perplexity",
        "sap-ai-core": "sap",
        "snowflake-cortex": "snowflake",
        "tencent-tokenhub": "tencent",
        "togetherai": "together_ai",
        "venice": "veniceai",
        "vercel": "vercel_ai_gateway",
        "xiaomi": "xiaomi_mimo",
        "zhipuai": "bigmodel",
    }
)

#: models.dev `cost` field (USD per 1M tokens) -> LiteLLM key (USD per token).
PRICE_KEYS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "input": "input_cost_per_token",
        "output": "output_cost_per_token",
        "cache_read": "cache_read_input_token_cost",
        "cache_write": "cache_creation_input_token_cost",
        "reasoning": "output_cost_per_reasoning_token",
        "input_audio": "input_cost_per_audio_token",
        "output_audio": "output_cost_per_audio_token",
    }
)

#: The prices LiteLLM switches past a prompt size, as `<key>_above_<size>_tokens`.
TIERED_PRICES: Final = ("input", "output", "cache_read", "cache_write")

#: models.dev model `type` -> LiteLLM `mode`.
MODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "chat": "chat",
        "image": "image_generation",
        "video": "video_generation",
        "embedding": "embedding",
        "reranking": "rerank",
        "decision": "decisions",
        "transcription": "audio_transcription",
        "speech": "audio_speech",
        "realtime": "realtime",
    }
)

#: For a model without `type` (catalogs before models.dev classified models): a word in its family
#: or id, then what it outputs when that is not text.
_MODE_WORDS: Final = (("rerank", "rerank"), ("embed", "embedding"))
_MODE_OUTPUTS: Final = (("image", "image_generation"), ("video", "video_generation"), ("audio", "audio_speech"))

#: LiteLLM `supports_*` flag -> the modality that grants it (input side unless noted).
_MODALITY_FLAGS: Final = (
    ("supports_vision", "input", "image"),
    ("supports_pdf_input", "input", "pdf"),
    ("supports_audio_input", "input", "audio"),
    ("supports_video_input", "input", "video"),
    ("supports_audio_output", "output", "audio"),
)

_MILLION: Final = Decimal(1_000_000)
_encoder: Final = msgspec.json.Encoder()


def litellm_provider(provider_id: str) -> str:
    """LiteLLM's name for a models.dev provider (its own id where LiteLLM has no other name)."""
    return LITELLM_PROVIDERS.get(provider_id, provider_id)


def per_token(per_million: float | int) -> float:
    """USD per 1M tokens -> USD per token, the nearest float to the exact quotient."""
    return float(Decimal(str(per_million)) / _MILLION)


def model_mode(model: Mapping[str, Any]) -> str:
    """LiteLLM's `mode`: from models.dev's `type`, else from the model's family, id and outputs."""
    kind = model.get("type")
    if isinstance(kind, str) and kind in MODES:
        return MODES[kind]
    words = f"{model.get('family') or ''} {model.get('id') or ''}".lower()
    for word, mode in _MODE_WORDS:
        if word in words:
            return mode
    modalities = model.get("modalities") or {}
    inputs, outputs = modalities.get("input") or [], modalities.get("output") or []
    if "text" not in outputs:
        for output, mode in _MODE_OUTPUTS:
            if output in outputs:
                return mode
    if inputs == ["audio"] and outputs == ["text"]:
        return "audio_transcription"
    return "chat"


def _tier_suffix(size: int) -> str:
    """LiteLLM's threshold spelling: `200k` for 200000, the plain number otherwise."""
    return f"above_{size // 1000}k_tokens" if size % 1000 == 0 else f"above_{size}_tokens"


def _prices(cost: Mapping[str, Any]) -> dict[str, float]:
    out = {key: per_token(cost[field]) for field, key in PRICE_KEYS.items() if _is_price(cost.get(field))}
    tiers = [t for t in cost.get("tiers") or [] if (t.get("tier") or {}).get("type") == "context"]
    # models.dev keeps `context_over_200k` beside `tiers` for older clients; the tiers are the truth.
    if not tiers and isinstance(cost.get("context_over_200k"), Mapping):
        tiers = [{**cost["context_over_200k"], "tier": {"type": "context", "size": 200_000}}]
    for tier in tiers:
        size = tier["tier"].get("size")
        if not isinstance(size, int) or size <= 0:
            continue
        for field in TIERED_PRICES:
            if _is_price(tier.get(field)):
                out[f"{PRICE_KEYS[field]}_{_tier_suffix(size)}"] = per_token(tier[field])
    return out


def _is_price(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _limits(limit: Mapping[str, Any]) -> dict[str, int]:
    """models.dev writes 0 for an unknown limit: that is left out."""
    context, given_input, output = (limit.get(k) for k in ("context", "input", "output"))
    max_input = given_input or context
    out: dict[str, int] = {}
    if isinstance(max_input, int) and max_input > 0:
        out["max_input_tokens"] = max_input
    if isinstance(output, int) and output > 0:
        out["max_output_tokens"] = output
    # LiteLLM's legacy `max_tokens`: the output limit where there is one, else the input's.
    if out:
        out["max_tokens"] = out.get("max_output_tokens", out.get("max_input_tokens", 0))
    return out


def _supports(model: Mapping[str, Any], cost: Mapping[str, Any]) -> dict[str, bool]:
    modalities = model.get("modalities") or {}
    out = {flag: kind in (modalities.get(side) or []) for flag, side, kind in _MODALITY_FLAGS}
    tool_call = model.get("tool_call")
    if isinstance(tool_call, Mapping):  # models.dev's granular form: {"supported", "parallel", ...}
        out["supports_function_calling"] = bool(tool_call.get("supported"))
        if isinstance(tool_call.get("parallel"), bool):
            out["supports_parallel_function_calling"] = tool_call["parallel"]
    elif isinstance(tool_call, bool):
        out["supports_function_calling"] = tool_call
    if isinstance(model.get("reasoning"), bool):
        out["supports_reasoning"] = model["reasoning"]
    if isinstance(model.get("structured_output"), bool):
        out["supports_response_schema"] = model["structured_output"]
    if _is_price(cost.get("cache_read")) or _is_price(cost.get("cache_write")):
        out["supports_prompt_caching"] = True
    return out


def cost_map_entry(provider_id: str, model: Mapping[str, Any]) -> dict[str, Any]:
    """One model as a LiteLLM cost map entry."""
    given = model.get("cost")
    cost: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    modalities = model.get("modalities") or {}
    entry: dict[str, Any] = {"litellm_provider": litellm_provider(provider_id), "mode": model_mode(model)}
    entry.update(_limits(model.get("limit") or {}))
    entry.update(_prices(cost))
    entry.update(_supports(model, cost))
    if modalities.get("input"):
        entry["supported_modalities"] = list(modalities["input"])
    if modalities.get("output"):
        entry["supported_output_modalities"] = list(modalities["output"])
    return entry


def litellm_cost_map(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every model of a models.dev document, keyed `provider/model`, in (provider, model) order.

    A model of a provider that LiteLLM names differently also answers to LiteLLM's own spelling
    (`vertex_ai/gemini-2.5-pro` for `google-vertex/gemini-2.5-pro`) through LiteLLM's `aliases`: the
    name its callers use. Where two providers share a LiteLLM name, the first in id order has it, and
    no alias shadows an entry of its own.
    """
    models = sorted((pid, mid, model) for pid, p in doc.items() for mid, model in (p.get("models") or {}).items())
    entries = {f"{pid}/{mid}": cost_map_entry(pid, model) for pid, mid, model in models}
    claimed = set(entries)
    for pid, mid, _ in models:  # provider id order: `alibaba` before `alibaba-cn`
        entry = entries[f"{pid}/{mid}"]
        alias = f"{entry['litellm_provider']}/{mid}"
        if entry["litellm_provider"] != pid and alias not in claimed:
            claimed.add(alias)
            entry["aliases"] = [alias]
    return entries


def litellm_cost_map_json(doc: Mapping[str, Any]) -> bytes:
    return _encoder.encode(litellm_cost_map(doc))

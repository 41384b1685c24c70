"""Synthetic models.dev catalogs of any size, deterministic from a seed, with the real catalog's
shape: ids with `/` (about half of them), optional fields at their real frequencies, costs, tiers,
modalities, reasoning options, provider overrides; and a "next version" of any document with a
chosen share of models added, removed and changed.

    python benchmarks/synth.py --models 100000 --providers 1000 --seed 7 > big.json
    python benchmarks/synth.py --next big.json --changed 0.05 --seed 8 > big-next.json
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
from typing import Any

# Shares measured on api-2026-07-02.json (5,276 models).
FIELD_SHARE = {
    "temperature": 0.86,
    "family": 0.77,
    "reasoning_options": 0.60,
    "knowledge": 0.49,
    "structured_output": 0.49,
    "interleaved": 0.11,
    "provider": 0.03,
    "status": 0.03,
    "experimental": 0.008,
}
COST_SHARE = {
    "cost": 0.93,
    "cache_read": 0.41,
    "cache_write": 0.14,
    "tiers": 0.036,
    "reasoning": 0.013,
    "input_audio": 0.011,
    "output_audio": 0.003,
}
INPUT_MODALITY = {"image": 0.49, "pdf": 0.19, "video": 0.12, "audio": 0.06}
OUTPUT_MODALITY = {"image": 0.026, "audio": 0.012, "video": 0.009}
CONTEXTS = [128000, 262144, 1000000, 200000, 131072, 400000, 1048576, 256000, 204800, 32768, 8192, 65536]
OUTPUTS = [128000, 65536, 16384, 32768, 131072, 8192, 64000, 4096]
INPUT_PRICES = [0.0, 0.02, 0.1, 0.2, 0.29, 0.4, 0.64, 1.1, 2.0, 3.0, 5.0, 15.0]
FAMILIES = [
    "qwen",
    "gpt",
    "glm",
    "llama",
    "claude-opus",
    "kimi-k2",
    "minimax",
    "claude-sonnet",
    "deepseek",
    "grok",
    "gemini-pro",
    "gemini-flash",
    "mistral-large",
    "gpt-oss",
    "phi",
    "command-r",
    "nova",
    "jamba",
]
VENDORS = [
    "openai",
    "anthropic",
    "google",
    "meta-llama",
    "qwen",
    "mistralai",
    "deepseek",
    "x-ai",
    "moonshotai",
    "z-ai",
    "minimax",
    "nvidia",
    "microsoft",
    "cohere",
    "amazon",
    "ai21",
]
WORDS = ["pro", "mini", "flash", "turbo", "max", "instruct", "chat", "coder", "vision", "lite", "thinking", "preview"]


def _date(rng: random.Random, year_from: int = 2023, year_to: int = 2026) -> str:
    y = rng.randint(year_from, year_to)
    m = rng.randint(1, 12)
    return f"{y}-{m:02d}" if rng.random() < 0.04 else f"{y}-{m:02d}-{rng.randint(1, 28):02d}"


def _price(rng: random.Random) -> float:
    return round(rng.choice(INPUT_PRICES) * rng.uniform(0.8, 1.25), 4)


def make_model(rng: random.Random, model_id: str) -> dict[str, Any]:
    """One model object, fields present at the real catalog's rates."""
    inputs = ["text"] + [m for m, share in INPUT_MODALITY.items() if rng.random() < share]
    outputs = ["text"] + [m for m, share in OUTPUT_MODALITY.items() if rng.random() < share]
    released = _date(rng)
    m: dict[str, Any] = {
        "id": model_id,
        "name": model_id.split("/")[-1].replace("-", " ").title(),
        "attachment": "image" in inputs or "pdf" in inputs,
        "reasoning": rng.random() < 0.55,
        "tool_call": rng.random() < 0.85,
        "release_date": released,
        "last_updated": released if rng.random() < 0.6 else _date(rng, int(released[:4]), 2026),
        "modalities": {"input": inputs, "output": outputs},
        "open_weights": rng.random() < 0.3,
        "limit": {"context": rng.choice(CONTEXTS), "output": rng.choice(OUTPUTS)},
    }
    if rng.random() < 0.18:
        m["limit"]["input"] = int(m["limit"]["context"] * 0.75)
    if rng.random() < FIELD_SHARE["family"]:
        m["family"] = rng.choice(FAMILIES)
    if rng.random() < FIELD_SHARE["temperature"]:
        m["temperature"] = rng.random() < 0.95
    if rng.random() < FIELD_SHARE["structured_output"]:
        m["structured_output"] = rng.random() < 0.9
    if rng.random() < FIELD_SHARE["knowledge"]:
        m["knowledge"] = _date(rng, 2023, 2025)[:7]
    if m["reasoning"] and rng.random() < FIELD_SHARE["reasoning_options"] / 0.55:
        m["reasoning_options"] = [{"type": "toggle"}, {"type": "budget_tokens", "min": 1024, "max": 32000}]
    if rng.random() < FIELD_SHARE["interleaved"]:
        m["interleaved"] = True if rng.random() < 0.06 else {"field": "reasoning_content"}
    if rng.random() < FIELD_SHARE["status"]:
        m["status"] = rng.choice(["deprecated"] * 7 + ["beta"] * 2 + ["alpha"])
    if rng.random() < FIELD_SHARE["provider"]:
        m["provider"] = {"npm": "@ai-sdk/openai-compatible", "api": "https://api.example.com/v1", "shape": "responses"}
    if rng.random() < FIELD_SHARE["experimental"]:
        m["experimental"] = {"modes": {"fast": {"cost": {"input": 5, "output": 30}}}}
    if rng.random() < COST_SHARE["cost"]:
        price = _price(rng)
        cost: dict[str, Any] = {"input": price, "output": round(price * rng.choice([1, 2, 3, 4, 5, 8]), 4)}
        for key, factor in (("cache_read", 0.1), ("cache_write", 1.25), ("reasoning", 4.0)):
            if rng.random() < COST_SHARE[key]:
                cost[key] = round(price * factor, 4)
        if rng.random() < COST_SHARE["input_audio"]:
            cost["input_audio"] = round(price * 10, 4)
        if rng.random() < COST_SHARE["output_audio"]:
            cost["output_audio"] = round(price * 20, 4)
        if rng.random() < COST_SHARE["tiers"]:
            tier = {k: v * 2 for k, v in cost.items() if k in ("input", "output", "cache_read", "cache_write")}
            cost["tiers"] = [{**tier, "tier": {"type": "context", "size": 200000}}]
            cost["context_over_200k"] = dict(tier)
        m["cost"] = cost
    return m


def _provider_sizes(rng: random.Random, models: int, providers: int) -> list[int]:
    # Skewed like the real catalog: a few providers with hundreds of models, most with a handful.
    weights = [1.0 / (i + 1) ** 0.9 for i in range(providers)]
    rng.shuffle(weights)
    total = sum(weights)
    sizes = [max(1, int(models * w / total)) for w in weights]
    i = 0
    while sum(sizes) < models:
        sizes[i % providers] += 1
        i += 1
    while sum(sizes) > models:
        j = max(range(providers), key=lambda k: sizes[k])
        sizes[j] -= 1
    return sizes


def _model_id(rng: random.Random, seen: set[str]) -> str:
    while True:
        base = (
            f"{rng.choice(FAMILIES)}-{rng.randint(1, 9)}.{rng.randint(0, 9)}-{rng.choice(WORDS)}-{rng.randrange(10**6)}"
        )
        mid = f"{rng.choice(VENDORS)}/{base}" if rng.random() < 0.55 else base
        if mid not in seen:
            seen.add(mid)
            return mid


def generate(models: int, providers: int, seed: int = 1) -> dict[str, Any]:
    """A models.dev document of `models` models across `providers` providers."""
    rng = random.Random(seed)
    doc: dict[str, Any] = {}
    for n, size in enumerate(_provider_sizes(rng, models, providers)):
        pid = f"provider-{n:04d}"
        seen: set[str] = set()
        p: dict[str, Any] = {
            "id": pid,
            "env": [f"{pid.upper().replace('-', '_')}_API_KEY"],
            "npm": "@ai-sdk/openai-compatible",
            "name": f"Provider {n}",
            "doc": f"https://{pid}.example.com/docs",
        }
        if rng.random() < 0.84:
            p["api"] = f"https://api.{pid}.example.com/v1"
        p["models"] = {mid: make_model(rng, mid) for mid in (_model_id(rng, seen) for _ in range(size))}
        doc[pid] = p
    return doc


def next_version(
    doc: dict[str, Any], *, added: float = 0.0, removed: float = 0.0, changed: float = 0.0, seed: int = 2
) -> dict[str, Any]:
    """A later version of `doc`: shares of its models added, removed and changed (a price, a limit,
    a new field), the rest untouched."""
    rng = random.Random(seed)
    new = copy.deepcopy(doc)
    keys = [(pid, mid) for pid, p in new.items() for mid in p["models"]]
    rng.shuffle(keys)
    n_removed, n_changed = int(len(keys) * removed), int(len(keys) * changed)
    for pid, mid in keys[:n_removed]:
        del new[pid]["models"][mid]
    for pid, mid in keys[n_removed : n_removed + n_changed]:
        m = new[pid]["models"][mid]
        kind = rng.randrange(3)
        if kind == 0 and "cost" in m:
            m["cost"]["input"] = round(m["cost"]["input"] * 0.8 + 0.01, 4)
        elif kind == 1:
            m["limit"]["context"] = m["limit"]["context"] * 2
        else:
            m["last_updated"] = "2026-11-01"
            m["knowledge"] = "2026-06"
    pids = list(new)
    for _ in range(int(len(keys) * added)):
        pid = rng.choice(pids)
        seen = set(new[pid]["models"])
        mid = _model_id(rng, seen)
        new[pid]["models"][mid] = make_model(rng, mid)
    return new


def searches(doc: dict[str, Any], n: int, seed: int = 1) -> list[str]:
    """`n` distinct searches as people type them: one to three consecutive words of a model's name,
    the last one cut short (at least two letters), lower or as written."""
    rng = random.Random(seed)
    names = [m["name"] for p in doc.values() for m in p["models"].values()]
    out: dict[str, None] = {}
    while len(out) < n:
        words = rng.choice(names).split()
        start = rng.randrange(len(words))
        picked = words[start : start + rng.randint(1, 3)]
        last = picked[-1]
        picked[-1] = last[: rng.randint(min(2, len(last)), len(last))]
        text = " ".join(picked)
        out[text.lower() if rng.random() < 0.7 else text] = None
    return list(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=100_000)
    ap.add_argument("--providers", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--next", metavar="DOC", help="write a next version of this document instead")
    ap.add_argument("--added", type=float, default=0.0)
    ap.add_argument("--removed", type=float, default=0.0)
    ap.add_argument("--changed", type=float, default=0.0)
    a = ap.parse_args()
    if a.next:
        with open(a.next, "rb") as f:
            doc = next_version(json.load(f), added=a.added, removed=a.removed, changed=a.changed, seed=a.seed)
    else:
        doc = generate(a.models, a.providers, a.seed)
    json.dump(doc, sys.stdout, separators=(",", ":"))


if __name__ == "__main__":
    main()

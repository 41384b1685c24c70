"""Every route of the web process, declared once (services/api/route.py): registered in this order
(aiohttp tries routes in order, so fixed paths come before the model paths that could swallow
them) and documented by the OpenAPI document."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from services.api.handlers import benchmarks, changes, compare, documents, health, models, providers, refresh
from services.api.openapi import build_openapi, docs_page, openapi_document
from services.api.params import decode_json
from services.api.respond import encode
from services.api.route import Body, Route, endpoint
from shared.model_scores import CSV_TYPES, parse_benchmarks
from shared.schemas import api
from shared.schemas.api import Page


def _refresh_body(data: bytes, content_type: str) -> api.RefreshRequest:
    return decode_json(data, api.RefreshRequest, empty=api.RefreshRequest())


def _benchmarks_body(data: bytes, content_type: str) -> list[api.BenchmarkIn]:
    return parse_benchmarks(data, csv_format=content_type in CSV_TYPES)


_REFRESH_BODY = Body(content={"application/json": api.RefreshRequest}, decode=_refresh_body)
_BENCHMARKS_BODY = Body(
    content={"application/json": api.BenchmarkList, "text/csv": str}, decode=_benchmarks_body, required=True
)
#: Where a provider id or a bare model id would stand, the reserved words are not one (they have
#: routes of their own, so that the router answers 405, not a model lookup, for another method).
_NOT_RESERVED = "(?!(?:" + "|".join(sorted(models.RESERVED)) + ")(?:/|$))[^/]+"
_MODEL = "/api/v1/models/{provider_id:" + _NOT_RESERVED + "}/{model_id:.+}"
_READINESS: dict[str, Any] = {
    "503": {
        "description": "Not ready",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}},
    }
}
_METRICS: dict[str, Any] = {"200": {"description": "Prometheus text format", "content": {"text/plain": {}}}}


def _post_refresh(path: str, summary: str, description: str | None = None) -> Route:
    return Route(
        "POST",
        path,
        refresh.post_refresh,
        summary,
        headers=api.RefreshHeaders,
        body=_REFRESH_BODY,
        answer=api.Run,
        status=202,
        admin=True,
        description=description,
    )


def _refresh_status(path: str, summary: str, description: str | None = None) -> Route:
    return Route(
        "GET", path, refresh.refresh_status, summary, query=api.Query, answer=api.RefreshStatus, description=description
    )


_SEED = "The seed's route, kept as an alias: the same auth and answers as {}."

ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", health.healthz, "Liveness", answer=api.Health),
    Route("GET", "/readyz", health.readyz, "Readiness", answer=api.Readiness, responses=_READINESS),
    Route("GET", "/metrics", health.metrics, "Prometheus metrics", responses=_METRICS),
    Route(
        "GET",
        "/api.json",
        documents.api_json,
        "The catalog in models.dev's shape",
        query=api.DocumentQuery,
        answer=dict[str, Any],
        cached=True,
    ),
    Route(
        "GET",
        "/model-schema.json",
        documents.model_schema,
        "JSON Schema of every model id, as models.dev serves it",
        query=api.DocumentQuery,
        answer=dict[str, Any],
        cached=True,
    ),
    Route(
        "GET",
        "/exports/litellm.json",
        documents.litellm_cost_map,
        "The catalog as a LiteLLM model cost map (LITELLM_MODEL_COST_MAP_URL)",
        query=api.LiteLLMQuery,
        answer=dict[str, Any],
        cached=True,
    ),
    Route("GET", "/api/v1/openapi.json", openapi_document, "This document", documented=False),
    Route("GET", "/docs", docs_page, "The API reference", documented=False),
    Route(
        "GET",
        "/api/v1/models",
        models.list_models,
        "List models",
        query=api.ModelListQuery,
        answer=Page[api.ModelObject],
        cached=True,
    ),
    Route(
        "GET",
        "/api/v1/models/compare",
        compare.compare_models,
        "Compare 2 to 10 models",
        query=api.CompareQuery,
        answer=api.Comparison,
        cached=True,
        problems=(404,),
    ),
    Route(
        "GET",
        "/api/v1/models/capability/{capability}",
        models.models_by_capability,
        "Models with a capability",
        query=api.CapabilityModelsQuery,
        path_params=api.CapabilityPath,
        answer=Page[api.ModelObject],
        cached=True,
    ),
    _post_refresh(
        "/api/v1/models/refresh", "Trigger a refresh (admin; the seed's route)", _SEED.format("POST /api/v1/refresh")
    ),
    _refresh_status(
        "/api/v1/models/refresh/status",
        "Recent runs and the schedule (the seed's route)",
        _SEED.format("GET /api/v1/refresh/status"),
    ),
    Route(
        "GET",
        _MODEL + "/history",
        models.model_history,
        "A model's changes, newest first",
        query=api.HistoryQuery,
        path_params=api.ModelPath,
        answer=Page[api.Change],
        cached=True,
        problems=(404,),
    ),
    Route(
        "GET",
        _MODEL + "/benchmarks",
        benchmarks.model_benchmarks,
        "A model's benchmark results",
        query=api.ModelBenchmarksQuery,
        path_params=api.ModelPath,
        answer=Page[api.Benchmark],
        problems=(404,),
    ),
    Route(
        "GET",
        _MODEL,
        models.get_model,
        "One model",
        query=api.Query,
        path_params=api.ModelPath,
        answer=api.ModelObject,
        cached=True,
        problems=(404,),
    ),
    Route(
        "GET",
        "/api/v1/models/{model_id:" + _NOT_RESERVED + "}",
        models.get_bare_model,
        "A model by its bare id (the seed's form)",
        query=api.Query,
        path_params=api.BareModelPath,
        answer=api.ModelObject,
        cached=True,
        problems=(300, 404),
        redirects=(308,),
        description="A model id without its provider: 308 to its canonical URL when exactly one provider "
        "lists it, 300 with their canonical ids (`choices`) when several do, 404 when none does. A path whose "
        "first segment is a provider is canonical.",
    ),
    Route(
        "GET",
        "/api/v1/capabilities",
        models.capabilities,
        "Capabilities with model counts",
        query=api.CapabilitiesQuery,
        answer=Page[api.CapabilityCount],
        cached=True,
    ),
    Route(
        "GET",
        "/api/v1/providers",
        providers.list_providers,
        "Providers",
        query=api.ProvidersQuery,
        answer=Page[api.Provider],
        cached=True,
    ),
    Route(
        "GET",
        "/api/v1/providers/{provider_id}",
        providers.get_provider,
        "One provider",
        query=api.Query,
        path_params=api.ProviderPath,
        answer=api.Provider,
        cached=True,
        problems=(404,),
    ),
    Route(
        "GET",
        "/api/v1/providers/{provider_id}/models",
        providers.provider_models,
        "A provider's models",
        query=api.ProviderModelsQuery,
        path_params=api.ProviderPath,
        answer=Page[api.ModelObject],
        cached=True,
        problems=(404,),
    ),
    _post_refresh("/api/v1/refresh", "Trigger a refresh (admin)"),
    _refresh_status("/api/v1/refresh/status", "Recent runs and the schedule"),
    Route(
        "GET",
        "/api/v1/refresh/{run_id}",
        refresh.get_run,
        "One run with its providers",
        query=api.Query,
        path_params=api.RunPath,
        answer=api.Run,
        problems=(404,),
    ),
    Route(
        "GET",
        "/api/v1/changes",
        changes.changes,
        "The change feed",
        query=api.ChangesQuery,
        answer=Page[api.Change],
        cached=True,
    ),
    Route(
        "GET",
        "/api/v1/benchmarks",
        benchmarks.list_benchmarks,
        "Benchmark results",
        query=api.BenchmarksQuery,
        answer=Page[api.Benchmark],
    ),
    Route(
        "POST",
        "/api/v1/benchmarks",
        benchmarks.post_benchmarks,
        "Import benchmark results (admin)",
        body=_BENCHMARKS_BODY,
        answer=api.Imported,
        status=201,
        admin=True,
    ),
)


@functools.cache
def openapi_json() -> bytes:
    """The served OpenAPI document (built once per process)."""
    return encode(build_openapi(ROUTES))


def add_routes(app: web.Application, routes: tuple[Route, ...] = ROUTES) -> None:
    for route in routes:
        handler = endpoint(route)
        if route.method == "GET":
            app.router.add_get(route.path, handler)
        else:
            app.router.add_route(route.method, route.path, handler)

"""Every route of the web process, declared once (services/api/route.py): registered in this order
(aiohttp tries routes in order, so fixed paths come before the model paths that could swallow
them) and documented by the OpenAPI document."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from services.api.handlers import (
    benchmarks,
    canonical,
    changes,
    compare,
    documents,
    feeds,
    health,
    models,
    providers,
    refresh,
    webhooks,
)
from services.api.openapi import build_openapi, openapi_document
from services.api.params import decode_json
from services.api.respond import encode
from services.api.route import Body, Route, endpoint
from shared.errors import PayloadTooLarge
from shared.model_scores import CSV_TYPES, parse_benchmarks
from shared.schemas import api
from shared.schemas.api import Page
from shared.webhooks.objects import Delivery, Replay, Subscription

S = TypeVar("S", bound=msgspec.Struct)
#: The largest body a webhook admin route takes.
WEBHOOK_BODY = 64 * 1024


def _refresh_body(data: bytes, content_type: str) -> api.RefreshRequest:
    return decode_json(data, api.RefreshRequest, empty=api.RefreshRequest())


def _benchmarks_body(data: bytes, content_type: str) -> list[api.BenchmarkIn]:
    return parse_benchmarks(data, csv_format=content_type in CSV_TYPES)


def _json_body(spec: type[S], limit: int = WEBHOOK_BODY) -> Body:
    """A required JSON body of one Struct, at most `limit` bytes."""

    def decode(data: bytes, content_type: str) -> S:
        if len(data) > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes")
        return decode_json(data, spec)

    return Body(content={"application/json": spec}, decode=decode, required=True)


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


def _webhook(method: str, path: str, handler: Any, summary: str, **kw: Any) -> Route:
    """An admin route of change notifications: answers 404 for a subscription that is not there."""
    return Route(method, "/api/v1/webhooks" + path, handler, summary, admin=True, problems=(404,), **kw)


_ID = api.WebhookPath
_ATOM: dict[str, Any] = {"200": {"description": "An Atom 1.0 feed", "content": {"application/atom+xml": {}}}}
_SSE: dict[str, Any] = {"200": {"description": "Server-sent events", "content": {"text/event-stream": {}}}}
#: Change notifications (issue 12): the feeds and the webhook admin routes.
FEEDS_AND_WEBHOOKS: tuple[Route, ...] = (
    Route(
        "GET",
        "/api/v1/changes.atom",
        feeds.changes_atom,
        "The change feed as Atom",
        query=api.ChangesQuery,
        responses=_ATOM,
    ),
    Route(
        "GET",
        "/api/v1/changes/stream",
        feeds.changes_stream,
        "The change feed as server-sent events",
        query=api.ChangeFilters,
        headers=api.StreamHeaders,
        responses=_SSE,
    ),
    Route(
        "POST",
        "/api/v1/webhooks",
        webhooks.create,
        "Subscribe a URL to changes (admin); the answer holds the secret, once",
        body=_json_body(api.SubscriptionCreate),
        answer=Subscription,
        status=201,
        admin=True,
    ),
    Route(
        "GET",
        "/api/v1/webhooks",
        webhooks.list_subscriptions,
        "Webhook subscriptions (admin)",
        query=api.WebhooksQuery,
        answer=Page[Subscription],
        admin=True,
    ),
    _webhook(
        "GET", "/{id}", webhooks.get_subscription, "One subscription (admin)", path_params=_ID, answer=Subscription
    ),
    _webhook(
        "DELETE", "/{id}", webhooks.delete_subscription, "Delete a subscription (admin)", path_params=_ID, status=204
    ),
    _webhook(
        "POST",
        "/{id}/rotate-secret",
        webhooks.rotate,
        "A new secret; the old one signs too for 24 hours (admin)",
        path_params=_ID,
        answer=Subscription,
    ),
    _webhook(
        "POST",
        "/{id}/enable",
        webhooks.enable,
        "Enable a subscription again (admin)",
        path_params=_ID,
        answer=Subscription,
    ),
    _webhook(
        "POST", "/{id}/test", webhooks.test, "Send a webhook.test event now (admin)", path_params=_ID, answer=Delivery
    ),
    _webhook(
        "GET",
        "/{id}/deliveries",
        webhooks.deliveries,
        "A subscription's deliveries, newest first (admin)",
        path_params=_ID,
        query=api.DeliveriesQuery,
        answer=Page[Delivery],
    ),
    _webhook(
        "POST",
        "/{id}/replay",
        webhooks.replay,
        "Deliver again every matching change after a seq (admin)",
        path_params=_ID,
        body=_json_body(api.ReplayRequest),
        answer=Replay,
        status=202,
    ),
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
        "/models.json",
        documents.models_json,
        "The canonical models (model cards with their benchmark results) in models.dev's shape",
        query=api.ModelsDocumentQuery,
        answer=dict[str, Any],
        cached=True,
    ),
    Route(
        "GET",
        "/catalog.json",
        documents.catalog_json,
        "The canonical models and the catalog together, as models.dev's {models, providers}",
        query=api.DocumentQuery,
        answer=api.CatalogDocument,
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
        _MODEL + "/prices",
        models.model_prices,
        "A model's price timeline: each interval with the same cost object, oldest first",
        query=api.Query,
        path_params=api.ModelPath,
        answer=Page[api.PricePeriod],
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
        query=api.OneModelQuery,
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
        query=api.OneModelQuery,
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
    Route(
        "GET",
        "/api/v1/canonical-models",
        canonical.list_canonical_models,
        "Canonical models (model cards), by id",
        query=api.CanonicalModelsQuery,
        answer=Page[api.CanonicalModel],
        cached=True,
    ),
    Route(
        "GET",
        "/api/v1/canonical-models/{lab}/{id:.+}",
        canonical.get_canonical_model,
        "One canonical model: its card and every provider model linked to it, with its price",
        query=api.Query,
        path_params=api.CanonicalPath,
        answer=api.CanonicalModelDetail,
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
    *FEEDS_AND_WEBHOOKS,
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

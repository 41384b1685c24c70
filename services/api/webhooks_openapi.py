"""The OpenAPI description of the change-notification routes (webhooks and feeds), from the same
Structs the handlers decode and encode. Lead: merged into the served document by
services/api/openapi.py; re-home with the generated OpenAPI."""

from __future__ import annotations

from typing import Any

from services.api.webhooks import ReplayRequest, SubscriptionCreate
from shared.webhooks.objects import Delivery, Replay, Subscription

#: Structs whose schemas the routes below refer to (components/schemas/<name>).
STRUCTS = (SubscriptionCreate, ReplayRequest, Subscription, Delivery, Replay)

_ADMIN: list[dict[str, list[str]]] = [{"bearer": []}]
_PROBLEM = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}
_SEQ = {"type": "string", "pattern": "^[0-9]{1,18}$"}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _page(name: str) -> dict[str, Any]:
    items = {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}}
    schema = {
        "type": "object",
        "required": ["data", "total", "next_cursor"],
        "properties": {"data": items, "total": {"type": "integer"}, "next_cursor": {"type": ["string", "null"]}},
    }
    return {"application/json": {"schema": schema}}


def _admin(summary: str, ok: dict[str, Any], *, body: str | None = None, params: list[Any] | None = None) -> Any:
    op: dict[str, Any] = {
        "summary": summary,
        "security": _ADMIN,
        "parameters": params or [],
        "responses": {
            **ok,
            "400": {"description": "Bad Request", **_PROBLEM},
            "401": {"description": "No token", **_PROBLEM},
            "403": {"description": "Wrong token", **_PROBLEM},
            "404": {"description": "Not Found", **_PROBLEM},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(body)}
    return op


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_LIMIT = _q("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size")
_CURSOR = _q("cursor", _SEQ, "next_cursor of the previous page")
_CHANGE_FILTERS = [
    _q("since", {"anyOf": [_SEQ, {"type": "string", "format": "date-time"}]}, "a cursor (seq) or an RFC 3339 time"),
    _q("provider", {"type": "string", "pattern": "^[^\x00]*$"}, "comma-separated providers"),
    _q("kind", {"type": "string", "pattern": "^((added|updated|removed)(,(added|updated|removed))*)?$"}, "kinds"),
]


def openapi_paths() -> dict[str, Any]:
    """Path items of the webhook admin routes and the feeds."""
    sub_ok = {"200": {"description": "OK", "content": _json("Subscription")}}
    return {
        "/api/v1/webhooks": {
            "post": _admin(
                "Subscribe a URL to change notifications (the answer alone shows the secret)",
                {"201": {"description": "Created", "content": _json("Subscription")}},
                body="SubscriptionCreate",
            ),
            "get": _admin(
                "Webhook subscriptions",
                {"200": {"description": "OK", "content": _page("Subscription")}},
                params=[_LIMIT, _CURSOR],
            ),
        },
        "/api/v1/webhooks/{id}": {
            "get": _admin("One webhook subscription", sub_ok, params=[_ID]),
            "delete": _admin("Delete a subscription", {"204": {"description": "Deleted"}}, params=[_ID]),
        },
        "/api/v1/webhooks/{id}/rotate-secret": {
            "post": _admin("A new secret; the previous one signs beside it for 24 hours", sub_ok, params=[_ID])
        },
        "/api/v1/webhooks/{id}/enable": {"post": _admin("Enable a disabled subscription", sub_ok, params=[_ID])},
        "/api/v1/webhooks/{id}/test": {
            "post": _admin(
                "Send a webhook.test event now",
                {
                    "200": {"description": "Attempted", "content": _json("Delivery")},
                    "202": {"description": "Left to the workers", "content": _json("Delivery")},
                },
                params=[_ID],
            )
        },
        "/api/v1/webhooks/{id}/deliveries": {
            "get": _admin(
                "Recent deliveries, newest first",
                {"200": {"description": "OK", "content": _page("Delivery")}},
                params=[_ID, _LIMIT, _CURSOR, _q("status", {"enum": ["pending", "delivered", "failed"]}, "status")],
            )
        },
        "/api/v1/webhooks/{id}/replay": {
            "post": _admin(
                "Deliver again every matching change after a seq",
                {"202": {"description": "Planned", "content": _json("Replay")}},
                body="ReplayRequest",
                params=[_ID],
            )
        },
        "/api/v1/changes.atom": {
            "get": {
                "summary": "The change feed as Atom 1.0",
                "parameters": [*_CHANGE_FILTERS, _CURSOR, _LIMIT],
                "responses": {
                    "200": {"description": "OK", "content": {"application/atom+xml": {"schema": {"type": "string"}}}},
                    "304": {"description": "Not Modified"},
                    "400": {"description": "Bad Request", **_PROBLEM},
                },
            }
        },
        "/api/v1/changes/stream": {
            "get": {
                "summary": "The change feed live, as server-sent events (id = seq; Last-Event-ID resumes)",
                "parameters": [
                    *_CHANGE_FILTERS,
                    {"name": "Last-Event-ID", "in": "header", "required": False, "schema": _SEQ},
                ],
                "responses": {
                    "200": {
                        "description": "An endless stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": {"description": "Bad Request", **_PROBLEM},
                },
            }
        },
    }

"""The OpenAPI 3.1 document, generated from the route table: each route's parameters from the
same Structs that decode its requests, its body and answer from the Structs it decodes and encodes."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import msgspec
from aiohttp import web

from services.api import keys
from services.api.params import describe
from services.api.route import Route
from shared.schemas.api import Problem

_REF = "#/components/schemas/{name}"
_PROBLEM = {"content": {"application/problem+json": {"schema": {"$ref": _REF.format(name="Problem")}}}}
#: A request the HTTP server itself cannot read (a request line over 8 kB) is refused before any
#: route sees it, as text; everything else is a problem.
_BAD_REQUEST = {
    "description": "Bad Request: invalid_params names every bad parameter",
    "content": {**_PROBLEM["content"], "text/plain": {"schema": {"type": "string"}}},
}
_INFO = {"title": "modelmeta", "version": "1", "description": "A mirror of the models.dev catalog."}


def _types(routes: Sequence[Route]) -> list[Any]:
    """Every type a route answers or takes as a body (each once, in order)."""
    found: dict[Any, None] = {Problem: None}
    for route in routes:
        if route.answer is not None:
            found[route.answer] = None
        for t in route.body.content.values() if route.body else ():
            found[t] = None
    return list(found)


def _parameters(route: Route, components: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for spec, where in ((route.path_params, "path"), (route.query, "query"), (route.headers, "header")):
        if spec is not None:
            params, refs = describe(spec, where)  # type: ignore[arg-type]
            out += params
            components.update(refs)
    return out


def _responses(route: Route, schema_of: dict[Any, Any]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": HTTPStatus(route.status).phrase}
    if route.answer is not None:
        ok["content"] = {"application/json": {"schema": schema_of[route.answer]}}
    out: dict[str, Any] = {str(route.status): ok}
    if route.cached:
        out["304"] = {"description": "Not Modified (If-None-Match)"}
    for status in route.redirects:
        out[str(status)] = {
            "description": HTTPStatus(status).phrase,
            "headers": {"Location": {"schema": {"type": "string"}}},
        }
    problems = [*route.problems]
    if route.query or route.path_params or route.headers or route.body:
        problems.append(400)
    if route.admin:
        problems += [401, 403]
    if route.body:
        problems.append(413)
    for status in sorted(problems):
        out[str(status)] = {"description": HTTPStatus(status).phrase, **_PROBLEM}
    if 400 in problems:
        out["400"] = _BAD_REQUEST
    return out | route.responses


def _operation(route: Route, schema_of: dict[Any, Any], components: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": route.summary}
    if route.description:
        op["description"] = route.description
    parameters = _parameters(route, components)
    if parameters:
        op["parameters"] = parameters
    if route.body is not None:
        content = {ctype: {"schema": schema_of[t]} for ctype, t in route.body.content.items()}
        op["requestBody"] = {"required": route.body.required, "content": content}
    if route.admin:
        op["security"] = [{"bearer": []}]
    op["responses"] = _responses(route, schema_of)
    return op


def build_openapi(routes: Sequence[Route]) -> dict[str, Any]:
    """The document of these routes (those marked documented)."""
    documented = [r for r in routes if r.documented]
    types = _types(documented)
    refs, components = msgspec.json.schema_components(types, ref_template=_REF)
    schema_of = dict(zip(types, refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in documented:
        paths.setdefault(route.doc_path, {})[route.method.lower()] = _operation(route, schema_of, components)
    return {
        "openapi": "3.1.0",
        "info": _INFO,
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[keys.OPENAPI], content_type="application/json")

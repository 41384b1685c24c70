"""Rendering a page: Jinja templates from this package, a whole page or one part of it.

A script on the page asks for one part (a named template block) with the `X-Page-Part` header and
swaps it in: the same template renders the first, server-rendered load and every update, so the
pages work before any script runs and there is one way to write each thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from services.api.pages.assets import Assets
from services.api.pages.formatting import FILTERS
from shared.errors import BadRequest

PART_HEADER = "X-Page-Part"
#: Every page's policy: nothing from another host, no inline script.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def model_path(model_id: str) -> str:
    """The page of a model, from its canonical id (`provider/model`, the model part may hold `/`)."""
    return "/m/" + quote(model_id, safe="/")


class Renderer:
    """The template environment and the static files, built once per app in setup_pages."""

    def __init__(self) -> None:
        self.assets = Assets()
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("services.api.pages", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=jinja2.ChainableUndefined,
        )
        self.env.filters.update(FILTERS)
        self.env.filters["model_path"] = model_path
        self.env.globals["asset"] = self.assets.url

    def html(self, template: str, context: Mapping[str, Any], part: str | None = None) -> str:
        tmpl = self.env.get_template(template)
        if part and part in tmpl.blocks:
            return "".join(tmpl.blocks[part](tmpl.new_context(dict(context))))
        return tmpl.render(context)


PAGES = web.AppKey("pages", Renderer)


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200, csp: str = CSP
) -> web.Response:
    """The page (or the part the request asks for), compressed when the client allows it."""
    part = request.headers.get(PART_HEADER)
    body = request.app[PAGES].html(template, {"path": request.path, **context}, part)
    response = web.Response(
        text=body,
        status=status,
        content_type="text/html",
        headers={
            "Cache-Control": "no-cache",
            "Vary": f"{PART_HEADER}, Accept, Accept-Encoding",
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )
    response.enable_compression()
    return response


def problems(error: BadRequest) -> list[dict[str, str]]:
    """A BadRequest as the list a page shows (the same names and reasons as the API's invalid_params)."""
    return [{"name": n, "reason": r} for n, r in error.invalid_params] or [{"name": "", "reason": error.detail}]


def not_found(request: web.Request, missing: str) -> web.Response:
    """The 404 page of a browser (an API client gets problem+json: raise NotFound for it)."""
    return render(request, "not_found.html", {"title": "Not found", "missing": missing}, status=404)


def wants_html(request: web.Request) -> bool:
    """True when the client ranks text/html at least as high as JSON (a browser; not curl or an API client)."""
    best: dict[str, float] = {}
    for item in request.headers.get("Accept", "").split(","):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        best[media.lower()] = max(q, best.get(media.lower(), 0.0))
    html = best.get("text/html", 0.0)
    json = max(best.get("application/json", 0.0), best.get("application/problem+json", 0.0))
    return html > 0 and html >= json

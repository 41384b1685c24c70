"""Rendering a page: Jinja templates from this package, a whole page or one part of it.

A script on the page asks for one part (a named template block) with the `X-Page-Part` header and
swaps it in: the same template renders the first, server-rendered load and every update, so the
pages work before any script runs and there is one way to write each thing.

The style sheet is inlined in each page (allowed by its hash in the policy): a first load paints
without waiting for a second request. A page is compressed on the event loop (tens of kB: a
millisecond or less, where a hop to a thread costs more; a page over THREADED_SIZE still goes to
one), and the catalog keeps the pages it rendered (PageCache) while the API's response cache drops
nothing.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import jinja2
import markupsafe
from aiohttp import web

from services.api.compression import COMPRESSORS, FAST_CODINGS, IDENTITY, MIN_SIZE, THREADED_SIZE, negotiate
from services.api.pages.assets import Assets
from services.api.pages.formatting import FILTERS
from shared.errors import BadRequest

PART_HEADER = "X-Page-Part"
#: Every page's policy: nothing from another host, no inline script; the inlined style sheet is
#: allowed by its hash (added by Renderer.policy).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_STYLE_SRC = "style-src 'self'"


def model_path(model_id: str) -> str:
    """The page of a model, from its canonical id (`provider/model`, the model part may hold `/`)."""
    return "/m/" + quote(model_id, safe="/")


class Renderer:
    """The template environment and the static files, built once per app in setup_pages."""

    def __init__(self) -> None:
        self.assets = Assets()
        style = self.assets.get("pages.css")
        assert style is not None
        css = style.body.decode()
        if "</" in css:
            raise ValueError("pages.css cannot be inlined: it holds '</'")
        self.style_hash = "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"
        self.kept = PageCache()
        self._policies: dict[str, str] = {}
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
        # The style sheet as it is in the file: the hash in the policy is that of these very bytes.
        self.env.globals["inline_style"] = markupsafe.Markup(css)

    def html(self, template: str, context: Mapping[str, Any], part: str | None = None) -> str:
        tmpl = self.env.get_template(template)
        if part and part in tmpl.blocks:
            return "".join(tmpl.blocks[part](tmpl.new_context(dict(context))))
        return tmpl.render(context)

    def policy(self, csp: str) -> str:
        """The policy with the inlined style sheet's hash among the allowed styles; unchanged when it
        allows every inline style already (a hash there would turn 'unsafe-inline' off)."""
        out = self._policies.get(csp)
        if out is None:
            allows_all = any(d.strip().startswith("style-src") and "'unsafe-inline'" in d for d in csp.split(";"))
            out = csp if allows_all else csp.replace(_STYLE_SRC, f"{_STYLE_SRC} {self.style_hash}", 1)
            self._policies[csp] = out
        return out


PAGES = web.AppKey("pages", Renderer)


class Page:
    """A rendered page (or part), and its body in each content coding asked for so far."""

    __slots__ = ("bodies", "expires", "size", "status")

    def __init__(self, body: bytes, status: int = 200, expires: float = 0.0) -> None:
        self.bodies = {IDENTITY: body}
        self.status = status
        self.expires = expires
        self.size = len(body)

    def body(self, coding: str) -> bytes:
        out = self.bodies.get(coding)
        if out is None:
            out = self.bodies[coding] = COMPRESSORS[coding](self.bodies[IDENTITY])
            self.size += len(out)
        return out


class PageCache:
    """Rendered pages by URL (path and query as sent) and part, for a page built from the API's
    cached answers only (the catalog). A page is served from here while the API's response cache
    has dropped nothing since it was rendered (its epoch: any invalidation event, version gap or
    reconnect) and for at most the cache's TTL; bounded in bytes, least recently used out first."""

    def __init__(self, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.epoch = -1
        self.pages: OrderedDict[str, Page] = OrderedDict()

    @staticmethod
    def key(request: web.Request) -> str:
        return f"{request.headers.get(PART_HEADER, '')} {request.raw_path}"

    def get(self, key: str, epoch: int) -> Page | None:
        if epoch != self.epoch:
            self.clear(epoch)
            return None
        page = self.pages.get(key)
        if page is None or page.expires <= time.monotonic():
            return None
        self.pages.move_to_end(key)
        return page

    def put(self, key: str, page: Page, epoch: int) -> None:
        """Keep a page rendered from what the cache held at `epoch` (not kept if it dropped since)."""
        if epoch != self.epoch:
            return
        old = self.pages.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        self.pages[key] = page
        self.bytes += page.size
        while self.bytes > self.max_bytes and self.pages:
            self.bytes -= self.pages.popitem(last=False)[1].size

    def clear(self, epoch: int) -> None:
        self.pages.clear()
        self.bytes = 0
        self.epoch = epoch


def page(request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200) -> Page:
    """The page (or the part the request asks for) rendered."""
    part = request.headers.get(PART_HEADER)
    body = request.app[PAGES].html(template, {"path": request.path, **context}, part)
    return Page(body.encode(), status)


def respond(request: web.Request, page: Page, *, csp: str = CSP, cache_control: str = "no-cache") -> web.Response:
    """A page as the answer, in the coding the request accepts (bodies over 1 kB)."""
    body = page.bodies[IDENTITY]
    coding = negotiate(request.headers.get("Accept-Encoding"), FAST_CODINGS) if len(body) > MIN_SIZE else IDENTITY
    headers = {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": cache_control,
        "Vary": f"{PART_HEADER}, Accept, Accept-Encoding",
        "Content-Security-Policy": request.app[PAGES].policy(csp),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }
    if len(body) > THREADED_SIZE:  # a large page (a long history): aiohttp compresses it in a thread
        response = web.Response(body=body, status=page.status, headers=headers)
        response.enable_compression()
        return response
    if coding != IDENTITY:
        body = page.body(coding)
        headers["Content-Encoding"] = coding
    return web.Response(body=body, status=page.status, headers=headers)


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200, csp: str = CSP
) -> web.Response:
    """The page (or the part the request asks for), compressed when the client allows it."""
    return respond(request, page(request, template, context, status=status), csp=csp)


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

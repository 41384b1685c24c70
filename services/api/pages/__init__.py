"""Pages for people: the catalog, a model's page, compare, refreshes and the API reference.

Server-rendered HTML from the templates and static files in this package: every page works
before any script runs, and its small script fetches parts of the same page to update it as you
type. Nothing is loaded from another host. `setup_pages(app)` registers every route.
"""

from __future__ import annotations

from aiohttp import web

from services.api.pages import assets
from services.api.pages.card import card_page
from services.api.pages.catalog import catalog_page
from services.api.pages.compare import compare_page
from services.api.pages.model import model_page
from services.api.pages.refreshes import refreshes_page
from services.api.pages.render import CSP, PAGES, Renderer, render

__all__ = ["setup_pages"]

#: Swagger UI sets inline styles from its script.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


async def docs_page(request: web.Request) -> web.Response:
    """The interactive API reference: Swagger UI (from its PyPI package) on /api/v1/openapi.json."""
    return render(request, "docs.html", {"title": "API reference"}, csp=DOCS_CSP)


async def static_file(request: web.Request) -> web.Response:
    return assets.serve(request, request.app[PAGES].assets)


def setup_pages(app: web.Application) -> None:
    """Register the pages and their static files on the web app."""
    app[PAGES] = Renderer()
    r = app.router
    r.add_get("/", catalog_page)
    r.add_get("/m/{provider_id}/{model_id:.+}", model_page)
    r.add_get("/cards/{lab}/{id:.+}", card_page)
    r.add_get("/compare", compare_page)
    r.add_get("/refreshes", refreshes_page)
    r.add_get("/docs", docs_page)
    r.add_get("/static/{name}", static_file)

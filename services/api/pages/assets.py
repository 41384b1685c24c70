"""Static files of the pages: this package's CSS and scripts, and Swagger UI from its PyPI package.

Each file is read and gzip-compressed once, on its first request, and served with a strong ETag.
Templates link to `/static/{name}?v={hash}`: such a URL never changes meaning, so browsers may keep
it for a year; any other request is revalidated.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

_HERE = "services.api.pages"
#: URL name -> (package, file inside it). Swagger UI comes from swagger-ui-py's copy of the
#: swagger-ui dist (5.x, which renders OpenAPI 3.1).
_SOURCES: dict[str, tuple[str, str]] = {
    "pages.css": (_HERE, "static/pages.css"),
    "pages.js": (_HERE, "static/pages.js"),
    "docs.js": (_HERE, "static/docs.js"),
    "favicon.svg": (_HERE, "static/favicon.svg"),
    "swagger-ui.css": ("swagger_ui", "static/swagger-ui.css"),
    "swagger-ui-bundle.js": ("swagger_ui", "static/swagger-ui-bundle.js"),
}
_IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes
    content_type: str
    version: str  # the first hex digits of the body's hash

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def _file(package: str, path: str) -> Traversable:
    node = resources.files(package)
    for part in path.split("/"):
        node = node / part
    return node


class Assets:
    """The static files by URL name, loaded lazily."""

    def __init__(self) -> None:
        self._loaded: dict[str, Asset] = {}

    def get(self, name: str) -> Asset | None:
        if name not in _SOURCES:
            return None
        asset = self._loaded.get(name)
        if asset is None:
            body = _file(*_SOURCES[name]).read_bytes()
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype.endswith(("javascript", "json", "svg+xml")):
                ctype += "; charset=utf-8"
            version = hashlib.blake2b(body, digest_size=6).hexdigest()
            asset = self._loaded[name] = Asset(body, gzip.compress(body, 9, mtime=0), ctype, version)
        return asset

    def url(self, name: str) -> str:
        asset = self.get(name)
        if asset is None:
            raise KeyError(f"no static file {name!r}")
        return f"/static/{name}?v={asset.version}"


def accepts_gzip(request: web.Request) -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*") and params.replace(" ", "") not in ("q=0", "q=0.0"):
            return True
    return False


def serve(request: web.Request, assets: Assets) -> web.Response:
    asset = assets.get(request.match_info["name"])
    if asset is None:
        raise web.HTTPNotFound(text=f"no static file {request.match_info['name']!r}")
    fresh = request.query.get("v") == asset.version
    headers = {
        "ETag": asset.etag,
        "Cache-Control": _IMMUTABLE if fresh else "no-cache",
        "Vary": "Accept-Encoding",
        "Content-Type": asset.content_type,
    }
    if asset.etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers=headers)
    if accepts_gzip(request) and len(asset.gzipped) < len(asset.body):
        return web.Response(body=asset.gzipped, headers={**headers, "Content-Encoding": "gzip"})
    return web.Response(body=asset.body, headers=headers)

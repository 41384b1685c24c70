"""Fetching the upstream: HTTP(S) with conditional GETs, retries and the shared rate limiter,
or a local file for air-gapped sites."""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import aiohttp
import msgspec
import structlog

from shared.canonical import UPSTREAM_LINK_FIELDS
from shared.errors import DocumentTooLarge, MalformedDocument, RateLimited, UpstreamRejected, UpstreamUnavailable
from shared.metrics import UPSTREAM_RESPONSES
from shared.ratelimit import RateLimiter
from shared.retry import UPSTREAM_FETCH

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Fetched:
    """An upstream answer: body None means 304 Not Modified (or, with `missing`, 404)."""

    url: str
    body: bytes | None
    etag: str | None
    catalog_version: str | None = None  # X-Catalog-Version, when the upstream is a modelmeta
    missing: bool = False  # the upstream has no such document (asked with missing_ok)


def parse_retry_after(value: str | None, default: float = 1.0) -> float:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def document_request_url(url: str) -> str:
    """The URL to GET a models.dev document from: over http(s), with `type=all` added to its query
    (models.dev answers chat models only unless asked; a static host ignores it), unless the query
    already names a type. A file has no query."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return url
    if any(name == "type" for name, _ in parse_qsl(parts.query, keep_blank_values=True)):
        return url
    return urlunsplit(parts._replace(query=f"{parts.query}&type=all" if parts.query else "type=all"))


def models_document_url(url: str) -> str:
    """Where models.dev's `/models.json` is beside a catalog document at `url`: the same host and
    folder, the file name's leading `api` made `models` (`api.json` -> `models.json`,
    `api-2026-07-02.json` -> `models-2026-07-02.json`), or `models.json` when the name has none.
    The query is kept (a token, a signature) but for `type`, which is the catalog's."""
    parts = urlsplit(url)
    folder, _, name = parts.path.rpartition("/")
    sibling = "models" + name[3:] if name.startswith("api") and name.endswith(".json") else "models.json"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "type"])
    return urlunsplit(parts._replace(path=f"{folder}/{sibling}", query=query, fragment=""))


class HttpFetcher:
    """GETs through the rate limiter with timeouts, a size cap, retries on 5xx and 429."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        limiter: RateLimiter,
        *,
        timeout: float,
        max_bytes: int,
        attempts: int,
        token: str | None = None,
    ) -> None:
        self.session = session
        self.limiter = limiter
        self.timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
        self.max_bytes = max_bytes
        self.attempts = attempts
        self.token = token

    async def get(self, url: str, *, etag: str | None = None, missing_ok: bool = False) -> Fetched:
        """Fetch url; Fetched.body is None when the upstream says it has not changed, or (with
        `missing_ok`) when it has no such document (404, or no such file): Fetched.missing."""
        if url.startswith("file://"):
            return await asyncio.to_thread(self._read_file, url, missing_ok)
        host = urlsplit(url).netloc
        headers = {"Accept": "application/json"}
        if etag:
            headers["If-None-Match"] = etag
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        last_error = ""
        attempt = 0
        while attempt < self.attempts:
            attempt += 1
            await self.limiter.acquire(host)
            try:
                async with self.session.get(url, headers=headers, timeout=self.timeout) as resp:
                    UPSTREAM_RESPONSES.labels(host, str(resp.status)).inc()
                    log.debug("upstream_response", url=url, status=resp.status, attempt=attempt)
                    if resp.status == 304:
                        return Fetched(url, None, etag)
                    if resp.status == 200:
                        body = await self._read_capped(resp)
                        return Fetched(url, body, resp.headers.get("ETag"), resp.headers.get("X-Catalog-Version"))
                    if resp.status == 429:
                        delay = parse_retry_after(resp.headers.get("Retry-After"))
                        await self.limiter.pause(host, delay)
                        last_error = f"429 Too Many Requests (Retry-After {delay:g}s)"
                        if delay > self.limiter.max_wait:
                            raise RateLimited(host, delay)
                        attempt -= 1  # a 429 is the upstream pacing us, not a failure
                        continue
                    if resp.status >= 500:
                        last_error = f"HTTP {resp.status}"
                    elif resp.status == 404 and missing_ok:
                        return Fetched(url, None, None, missing=True)
                    else:
                        raise UpstreamRejected(f"{url} answered HTTP {resp.status}")
            except (aiohttp.ClientError, TimeoutError) as e:
                UPSTREAM_RESPONSES.labels(host, type(e).__name__).inc()
                last_error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            log.warning("upstream_retry", url=url, attempt=attempt, error=last_error)
            if attempt < self.attempts:
                await asyncio.sleep(UPSTREAM_FETCH.delay(attempt))
        raise UpstreamUnavailable(f"{url}: {last_error} after {self.attempts} attempts")

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        if resp.content_length is not None and resp.content_length > self.max_bytes:
            raise DocumentTooLarge(f"{resp.url}: {resp.content_length} bytes is over {self.max_bytes}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                raise DocumentTooLarge(f"{resp.url}: body is over {self.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _read_file(self, url: str, missing_ok: bool) -> Fetched:
        path = Path(unquote(urlsplit(url).path))
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise DocumentTooLarge(f"{url}: {size} bytes is over {self.max_bytes}")
            return Fetched(url, path.read_bytes(), None)
        except OSError as e:
            if missing_ok and isinstance(e, FileNotFoundError):
                return Fetched(url, None, None, missing=True)
            raise UpstreamUnavailable(f"{url}: {e.strerror or e}") from None


# -- another modelmeta as the upstream, provider by provider ----------------------------------

#: Fields a modelmeta adds to the upstream objects it serves; a mirror strips them again.
_MODEL_ADDED = frozenset({"id", "source_id", "provider_id", "model_id", "first_seen_at", "updated_at", "removed_at"})
#: ... and to the canonical models (cards) it serves.
_CARD_ADDED = frozenset({"content_hash", "first_seen_at", "updated_at", "removed_at", "offerings"})
_PROVIDER_ADDED = frozenset({"model_count", "content_hash", "first_seen_at", "updated_at", "removed_at"})


class UpstreamProvider(msgspec.Struct, frozen=True):
    """What a mirror needs of each entry of another modelmeta's provider list."""

    id: str
    name: str
    content_hash: str
    model_count: int


class _ProviderPage(msgspec.Struct):
    data: list[UpstreamProvider]
    next_cursor: str | None = None


class _RawPage(msgspec.Struct):
    data: list[dict[str, Any]]


class _ModelPage(msgspec.Struct):
    data: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ProviderListing:
    """Another modelmeta's providers: each one's own object (as the document would hold it) and
    the hash that tells whether anything of it changed."""

    providers: dict[str, bytes]
    hashes: dict[str, str]
    model_count: int


#: Providers per page of the provider list a mirror reads: all of them (the API's largest page).
PROVIDER_PAGE = 500


def modelmeta_base(url: str) -> str:
    """The base URL of a modelmeta given as MODELSDEV_URL (with or without /api/v1), or of its
    provider list (a run's source URL)."""
    return url.split("?", 1)[0].rstrip("/").removesuffix("/api/v1/providers").removesuffix("/api/v1")


def parse_provider_listing(body: bytes) -> ProviderListing:
    """Validate GET /api/v1/providers of another modelmeta."""
    try:
        typed = msgspec.json.decode(body, type=_ProviderPage)
        raw = msgspec.json.decode(body, type=_RawPage).data
    except (msgspec.DecodeError, RecursionError) as e:
        raise MalformedDocument(f"not a modelmeta provider list: {e}") from None
    if typed.next_cursor is not None:
        raise MalformedDocument(f"the upstream lists more than {PROVIDER_PAGE} providers, more than one page holds")
    providers = {
        p.id: msgspec.json.encode({k: v for k, v in r.items() if k not in _PROVIDER_ADDED})
        for p, r in zip(typed.data, raw, strict=True)
    }
    return ProviderListing(
        providers=providers,
        hashes={p.id: p.content_hash for p in typed.data},
        model_count=sum(p.model_count for p in typed.data),
    )


def upstream_model(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(model_id, the models.dev object) from a model object another modelmeta served.

    Its link to a canonical model is the other modelmeta's (the mirror computes its own): an
    `inferred` link's `canonical_id` was added; an `upstream` one came from the object itself
    when no other field named the model (migration 0012's order of fields)."""
    model_id = obj["model_id"]
    raw = {k: v for k, v in obj.items() if k not in _MODEL_ADDED and k != "canonical_link"}
    link = obj.get("canonical_link")
    if link == "inferred" or (
        link == "upstream" and any(raw.get(f) == raw.get("canonical_id") for f in UPSTREAM_LINK_FIELDS[1:])
    ):
        raw.pop("canonical_id", None)
    raw["id"] = obj.get("source_id", model_id)
    return model_id, raw


class ModelmetaSource:
    """Reads another modelmeta through its REST API; every request goes through the fetcher."""

    def __init__(self, fetcher: HttpFetcher, url: str, *, page_size: int = 500, attempts: int = 3) -> None:
        self.fetcher = fetcher
        self.base = modelmeta_base(url)
        self.page_size = page_size
        self.attempts = attempts

    @staticmethod
    def providers_url_of(url: str) -> str:
        """The whole provider list of the modelmeta at `url` (its base URL, with or without /api/v1),
        on one page: a list answers 50 rows unless asked for more."""
        return f"{modelmeta_base(url)}/api/v1/providers?limit={PROVIDER_PAGE}"

    @property
    def providers_url(self) -> str:
        return self.providers_url_of(self.base)

    async def providers(self, etag: str | None) -> Fetched:
        """The provider list (body None when the upstream's ETag says nothing changed)."""
        return await self.fetcher.get(self.providers_url, etag=etag)

    async def provider_models(self, provider_id: str, expected_hash: str) -> tuple[dict[str, dict[str, Any]], str]:
        """Every listed model of a provider, page by page, and the provider hash they belong to.

        One page is one consistent read. Over several pages the upstream may refresh midway, so the
        provider's hash is read again afterwards: if it moved, the pages are read again.
        """
        for _ in range(self.attempts):
            models: dict[str, dict[str, Any]] = {}
            pages = 0
            cursor: str | None = None
            while True:
                query = {"limit": str(self.page_size), **({"cursor": cursor} if cursor else {})}
                page = await self.fetcher.get(f"{self._provider_url(provider_id)}/models?{urlencode(query)}")
                assert page.body is not None
                pages += 1
                try:
                    decoded = msgspec.json.decode(page.body, type=_ModelPage)
                    for obj in decoded.data:
                        mid, raw = upstream_model(obj)
                        models[mid] = raw
                except (msgspec.DecodeError, KeyError, RecursionError) as e:
                    raise MalformedDocument(f"provider {provider_id!r}: not a modelmeta model page: {e}") from None
                cursor = decoded.next_cursor
                if cursor is None:
                    break
            if pages == 1:
                return models, expected_hash
            now = await self.fetcher.get(self._provider_url(provider_id))
            assert now.body is not None
            current = msgspec.json.decode(now.body, type=UpstreamProvider).content_hash
            if current == expected_hash:
                return models, current
            log.info("upstream_moved_while_paging", provider_id=provider_id)
            expected_hash = current
        raise UpstreamUnavailable(f"provider {provider_id!r}: the upstream kept changing while it was read")

    async def canonical_models(self) -> Fetched:
        """The other modelmeta's canonical models, page by page, as a models.dev `/models.json`
        (Fetched.missing when it serves none: an older modelmeta). Read again when the upstream
        refreshed between the pages."""
        for _ in range(self.attempts):
            cards: dict[str, Any] = {}
            cursor: str | None = None
            versions: set[str | None] = set()
            while True:
                query = {"limit": str(self.page_size), **({"cursor": cursor} if cursor else {})}
                url = f"{self.base}/api/v1/canonical-models?{urlencode(query)}"
                page = await self.fetcher.get(url, missing_ok=True)
                if page.missing:
                    return page
                assert page.body is not None
                versions.add(page.catalog_version)
                try:
                    decoded = msgspec.json.decode(page.body, type=_ModelPage)
                    for obj in decoded.data:
                        cards[obj["id"]] = {k: v for k, v in obj.items() if k not in _CARD_ADDED}
                except (msgspec.DecodeError, KeyError, RecursionError) as e:
                    raise MalformedDocument(f"not a modelmeta canonical-model page: {e}") from None
                cursor = decoded.next_cursor
                if cursor is None:
                    break
            if len(versions) == 1:
                return Fetched(f"{self.base}/api/v1/canonical-models", msgspec.json.encode(cards), None)
            log.info("upstream_moved_while_paging", what="canonical-models")
        raise UpstreamUnavailable("canonical models: the upstream kept changing while they were read")

    def _provider_url(self, provider_id: str) -> str:
        return f"{self.base}/api/v1/providers/{quote(provider_id, safe='')}"

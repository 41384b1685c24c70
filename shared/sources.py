"""Fetching the upstream: HTTP(S) with conditional GETs, retries and the shared rate limiter,
or a local file for air-gapped sites."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiohttp
import structlog

from shared.errors import DocumentTooLarge, RateLimited, UpstreamRejected, UpstreamUnavailable
from shared.metrics import UPSTREAM_RESPONSES
from shared.ratelimit import RateLimiter

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Fetched:
    """An upstream answer: body None means 304 Not Modified."""

    url: str
    body: bytes | None
    etag: str | None


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


def backoff(attempt: int, base: float = 0.25, cap: float = 8.0) -> float:
    """Exponential backoff with full jitter for attempt 1, 2, ..."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1))) + base / 2


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

    async def get(self, url: str, *, etag: str | None = None) -> Fetched:
        """Fetch url; Fetched.body is None when the upstream says it has not changed."""
        if url.startswith("file://"):
            return await asyncio.to_thread(self._read_file, url)
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
                        return Fetched(url, await self._read_capped(resp), resp.headers.get("ETag"))
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
                    else:
                        raise UpstreamRejected(f"{url} answered HTTP {resp.status}")
            except (aiohttp.ClientError, TimeoutError) as e:
                UPSTREAM_RESPONSES.labels(host, type(e).__name__).inc()
                last_error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            log.warning("upstream_retry", url=url, attempt=attempt, error=last_error)
            if attempt < self.attempts:
                await asyncio.sleep(backoff(attempt))
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

    def _read_file(self, url: str) -> Fetched:
        path = Path(unquote(urlsplit(url).path))
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise DocumentTooLarge(f"{url}: {size} bytes is over {self.max_bytes}")
            return Fetched(url, path.read_bytes(), None)
        except OSError as e:
            raise UpstreamUnavailable(f"{url}: {e.strerror or e}") from None

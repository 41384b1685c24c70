"""Who the client is (X-Forwarded-For and TRUSTED_PROXIES), the settings of the limits, and the
bound on long-lived streams."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from services.api import keys
from services.api.ratelimit import StreamSlots, client_address, client_key
from shared.config import RateLimit, Settings
from shared.errors import ConfigError

PROXIES = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "192.0.2.1"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        ("198.51.100.7", ["203.0.113.1"], (), "198.51.100.7"),  # no trusted proxies: the header is ignored
        ("198.51.100.7", ["203.0.113.1"], PROXIES, "198.51.100.7"),  # the peer is no proxy of ours
        ("10.1.2.3", ["203.0.113.1"], PROXIES, "203.0.113.1"),
        ("10.1.2.3", [], PROXIES, "10.1.2.3"),  # a proxy that says nothing: the proxy
        ("10.1.2.3", ["6.6.6.6, 203.0.113.1, 192.0.2.1"], PROXIES, "203.0.113.1"),  # right-most untrusted
        ("10.1.2.3", ["6.6.6.6", "203.0.113.1"], PROXIES, "203.0.113.1"),  # two header lines are one list
        ("10.1.2.3", ["10.9.9.9, 192.0.2.1"], PROXIES, "10.9.9.9"),  # all trusted: the left-most
        ("10.1.2.3", ["203.0.113.1, not-an-ip"], PROXIES, "10.1.2.3"),  # garbage stops the walk
        ("10.1.2.3", ["2001:db8::1"], PROXIES, "2001:db8::1"),
        (None, ["203.0.113.1"], PROXIES, "unknown"),
    ],
)
def test_client_address(peer: str | None, forwarded: list[str], trusted: tuple, client: str) -> None:  # type: ignore[type-arg]
    assert client_address(peer, forwarded, trusted) == client


def test_ipv6_clients_share_their_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("198.51.100.7") == "198.51.100.7"


def test_settings_of_the_limits() -> None:
    s = Settings.from_env({})
    assert (s.api_rate_limit, s.api_document_rate_limit, s.trusted_proxies, s.web_concurrency) == (None, None, (), 1)
    s = Settings.from_env(
        {
            "API_RATE_LIMIT": "600/minute",
            "API_DOCUMENT_RATE_LIMIT": "10/minute",
            "TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1, ::1",
            "WEB_CONCURRENCY": "4",
            "WEB_MAX_STREAMS_PER_CLIENT": "2",
        }
    )
    assert s.api_rate_limit == RateLimit(600, 60.0) and s.api_document_rate_limit == RateLimit(10, 60.0)
    assert [str(n) for n in s.trusted_proxies] == ["10.0.0.0/8", "192.0.2.1/32", "::1/128"]
    assert (s.web_concurrency, s.web_max_streams_per_client) == (4, 2)
    assert Settings.from_env({"API_RATE_LIMIT": "off"}).api_rate_limit is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("API_RATE_LIMIT", "fast"),
        ("TRUSTED_PROXIES", "10.0.0.0/33"),
        ("TRUSTED_PROXIES", "proxy.local"),
        ("WEB_CONCURRENCY", "0"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


async def test_streams_are_bounded_per_client_and_per_process() -> None:
    app = web.Application()
    app[keys.SETTINGS] = Settings()
    slots = StreamSlots(total=3, per_client=2)
    release = asyncio.Event()

    async def stream(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(text="done")

    def request(peer: str) -> web.Request:
        return make_mocked_request("GET", "/api/v1/changes/stream", app=app, transport=_Transport(peer))

    held = [asyncio.create_task(slots.serve(request(p), stream)) for p in ("198.51.100.1", "198.51.100.1")]
    await asyncio.sleep(0)
    third = await slots.serve(request("198.51.100.1"), stream)
    assert third.status == 429 and third.headers["Retry-After"] == "5"
    held.append(asyncio.create_task(slots.serve(request("198.51.100.2"), stream)))
    await asyncio.sleep(0)
    assert slots.held == 3
    full = await slots.serve(request("198.51.100.3"), stream)
    assert full.status == 503
    release.set()
    assert [r.status for r in await asyncio.gather(*held)] == [200, 200, 200]
    assert slots.held == 0 and not slots.open


class _Transport:
    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.peer, 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False

"""Where a webhook may be sent: refused by address, before any connection is attempted.

A URL is checked when a subscription is made and again before each attempt (DNS can change). A
host name is resolved (which connects to nothing but the resolver) and every address it has must
be public; the delivery session's connector resolves through GuardedResolver, so the addresses
it connects to are the ones checked, not a second answer from a rebinding DNS server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import SplitResult, urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from shared.errors import TargetRefused

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT = 5.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: host, port -> the addresses the host resolves to.
Resolve = Callable[[str, int], Awaitable[list[str]]]


def address_problem(ip: IPAddress) -> str | None:
    """Why a webhook may not go to this address, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return address_problem(embedded)
    for attribute, name in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, attribute):
            return name
    return None if ip.is_global else "not globally routable"


def parse_target(url: str) -> SplitResult:
    """A well-formed http(s) URL with a host and no credentials, or TargetRefused saying why."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as e:
        raise TargetRefused(f"not a valid URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("expected an http or https URL with a host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("credentials in the URL are not accepted; receivers verify the signature")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise TargetRefused("the URL contains whitespace or control characters")
    return parts


async def system_resolve(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (no connection to the host itself)."""
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), RESOLVE_TIMEOUT
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _refuse_addresses(host: str, addresses: list[str]) -> None:
    if not addresses:
        raise TargetRefused(f"{host} has no address")
    for text in addresses:
        problem = address_problem(ipaddress.ip_address(text.split("%", 1)[0]))
        if problem is not None:
            raise TargetRefused(f"{host} resolves to {text}, a {problem} address (WEBHOOK_ALLOW_PRIVATE is off)")


async def check_target(url: str, *, allow_private: bool, resolve: Resolve = system_resolve) -> None:
    """Refuse a URL that is malformed or whose host is (or resolves to) a non-public address.

    Nothing connects to the host: an address literal is judged as it stands, a name by the
    addresses the resolver gives for it.
    """
    parts = parse_target(url)
    if allow_private:
        return
    host = parts.hostname
    assert host is not None
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is not None:
        _refuse_addresses(host, [str(literal)])
        return
    try:
        addresses = await resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    except (OSError, TimeoutError) as e:
        raise TargetRefused(f"{host} does not resolve: {e}") from None
    _refuse_addresses(host, addresses)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing non-public addresses unless allowed: the connector connects
    only to addresses that passed the check."""

    def __init__(self, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self.allow_private = allow_private
        self.inner = inner or ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        if not self.allow_private:
            _refuse_addresses(host, [r["host"] for r in results])
        return results

    async def close(self) -> None:
        await self.inner.close()

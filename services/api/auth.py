"""Admin routes: a bearer token from ADMIN_TOKENS, compared in constant time and never logged."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from services.api import keys
from shared.errors import Forbidden, Unauthorized

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def check_admin(request: web.Request) -> None:
    """Unauthorized without a token, Forbidden with one that is not an admin token."""
    header = request.headers.get("Authorization", "")
    if not header:
        raise Unauthorized("this route needs Authorization: Bearer <admin token>")
    scheme, _, token = header.partition(" ")
    ok = False
    for t in request.app[keys.SETTINGS].admin_tokens:  # compare against every token, in constant time
        ok |= hmac.compare_digest(token.strip().encode(), t.encode())
    if scheme.lower() != "bearer" or not ok:
        raise Forbidden("the bearer token is not an admin token")


def admin_only(handler: Handler) -> Handler:
    """The handler behind the admin check."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> Any:
        check_admin(request)
        return await handler(request)

    return guarded

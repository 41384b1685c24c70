"""The physical ceiling: a bare aiohttp handler returning fixed bytes (read from a file)."""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web


def main() -> None:
    body = Path(sys.argv[1]).read_bytes()
    port = int(sys.argv[2])

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    web.run_app(app, port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()

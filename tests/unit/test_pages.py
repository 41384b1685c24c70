"""The pages' pure parts: price history from a change log, the chart, formats, Accept negotiation."""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import MultiDict

from services.api.pages.catalog import CAPABILITY_LABELS, list_params, sort_headers
from services.api.pages.formatting import duration, money, price, tokens, value
from services.api.pages.history import chart, price_steps
from services.api.pages.render import CSP, PAGES, Page, PageCache, Renderer, respond, wants_html
from shared.schemas.api import Capability

MARCH, JULY, NOW = (datetime(2026, m, d, 12, tzinfo=UTC) for m, d in ((3, 1), (7, 2), (11, 1)))


def change(at: datetime, kind: str, fields: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    return {"at": at, "kind": kind, "fields": fields, "run_id": 1, "seq": 1}


def test_prices_are_walked_back_from_the_current_ones_through_each_update() -> None:
    changes = [  # newest first, as GET .../history answers
        change(JULY, "updated", {"cost.input": [0.04, 0.08], "limit.context": [96000, 131072]}),
        change(MARCH, "added"),
    ]
    steps = {s.key: s for s in price_steps({"input": 0.08, "output": 0.16}, changes, MARCH)}
    assert steps["input"].starts == [MARCH, JULY]
    assert steps["input"].values == [0.04, 0.08]
    assert steps["output"].starts == [MARCH] and steps["output"].values == [0.16]
    assert "cache_read" not in steps  # never had a price: not drawn


def test_a_cost_object_that_appeared_gives_no_price_before_it() -> None:
    changes = [change(JULY, "updated", {"cost": [None, {"input": 1, "output": 2}]})]
    steps = {s.key: s for s in price_steps({"input": 1, "output": 2}, changes, MARCH)}
    assert steps["input"].values == [None, 1.0]
    drawn = chart(list(steps.values()), NOW)
    assert drawn is not None
    line = next(line for line in drawn.lines if line["key"] == "input")
    assert line["d"].count("M") == 1 and "V" not in line["d"], "the gap before the first price is not drawn"


def test_the_chart_steps_join_and_its_axis_is_round() -> None:
    steps = price_steps({"input": 3}, [change(JULY, "updated", {"cost.input": [5, 3]})], MARCH)
    drawn = chart(steps, NOW)
    assert drawn is not None
    assert [label for _, label in drawn.y_ticks] == ["$0", "$2.00", "$4.00", "$6.00", "$8.00"]
    (line,) = drawn.lines
    assert line["d"].startswith(f"M{drawn.x0}.0 ") and "V" in line["d"] and line["d"].endswith(f"H{drawn.x1}.0")
    assert len(line["points"]) == 1
    assert "$5.00 from 2026-03-01, $3.00 from 2026-07-02" in drawn.description
    assert chart([], NOW) is None


@pytest.mark.parametrize(
    ("number", "text"),
    [(3, "$3.00"), (0.075, "$0.075"), (0.0375, "$0.0375"), (1250, "$1,250.00"), (0, "$0"), (0.00012, "$0.00012")],
)
def test_prices_read_as_dollars_per_million(number: float, text: str) -> None:
    assert price(number) == text


def test_other_formats() -> None:
    assert price(None) == price(True) == price("3") == "—"
    assert money(0.4915) == "$0.49" and money(0.0012345) == "$0.001234"
    assert tokens(128000) == "128K" and tokens(1_048_576) == "1.05M" and tokens(512) == "512"
    assert value([1, "a"]) == "1, a" and value(True) == "yes" and value({"type": "toggle"}) == "type: toggle"
    assert value(131072) == "131,072"
    assert duration(45) == "45 s" and duration(3600) == "1 h" and duration(5400) == "1 h 30 min"


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("application/json", False),
        ("*/*", False),
        ("", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0", False),
    ],
)
def test_a_browser_is_told_from_an_api_client_by_accept(accept: str, html: bool) -> None:
    assert wants_html(make_mocked_request("GET", "/m/a/b", headers={"Accept": accept})) is html


def test_page_urls_are_the_api_list_parameters() -> None:
    query = MultiDict(
        [("q", " gpt "), ("capability", "vision"), ("capability", "reasoning,vision"), ("min_context", ""), ("x", "1")]
    )
    assert list_params(query) == {"q": "gpt", "capability": "vision,reasoning"}
    headers = {h["key"]: h for h in sort_headers({"sort": "-context", "q": "gpt"})}
    assert headers["context"]["sort"] == "descending" and "sort=context" in headers["context"]["href"]
    assert headers["name"]["sort"] is None and "sort=name" in headers["name"]["href"]
    assert headers["provider"]["href"] is None, "searching orders by best match, not by provider"
    assert set(CAPABILITY_LABELS) == set(Capability), "a filter checkbox for every capability the API knows"


def test_parts_render_alone_and_text_is_escaped() -> None:
    renderer = Renderer()
    html = renderer.html("not_found.html", {"missing": "<b>x</b>/y", "path": "/"})
    assert "&lt;b&gt;x&lt;/b&gt;/y" in html and "<b>x</b>" not in html
    part = renderer.html("refreshes.html", {"runs": [], "open": False}, part="runs")
    assert part.lstrip().startswith('<div id="runs-state" data-open="false">') and "<html" not in part


def test_the_inlined_style_sheet_is_allowed_by_its_hash_and_only_by_it() -> None:
    renderer = Renderer()
    html = renderer.html("not_found.html", {"missing": "x", "path": "/"})
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    assert style is not None and "table.models" in style.group(1)
    digest = "'sha256-" + base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode() + "'"
    policy = renderer.policy(CSP)
    assert f"style-src 'self' {digest};" in policy and "unsafe-inline" not in policy
    assert "script-src 'self';" in policy, "scripts stay files from this host"
    docs = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
    assert renderer.policy(docs) == docs, "a hash beside 'unsafe-inline' would turn it off"


def test_kept_pages_live_while_the_cache_drops_nothing_and_within_their_age() -> None:
    kept = PageCache(max_bytes=250)
    later = time.monotonic() + 60
    assert kept.get("a", epoch=3) is None
    kept.put("a", Page(b"x" * 100, expires=later), epoch=3)
    assert kept.get("a", epoch=3) is not None
    kept.put("b", Page(b"y" * 100, expires=later), epoch=2)  # rendered before a drop: not kept
    assert kept.get("b", epoch=3) is None
    kept.put("c", Page(b"z" * 100, expires=time.monotonic() - 1), epoch=3)
    assert kept.get("c", epoch=3) is None, "past its age"
    kept.put("d", Page(b"w" * 100, expires=later), epoch=3)  # over 250 bytes: the least recently used goes
    assert kept.get("a", epoch=3) is None and kept.get("d", epoch=3) is not None and kept.bytes <= 250
    assert kept.get("d", epoch=4) is None, "anything the API cache dropped drops every kept page"
    assert kept.pages == {} and kept.bytes == 0


def test_a_page_is_compressed_once_per_coding() -> None:
    page = Page(b"<p>" + b"model " * 500 + b"</p>")
    gz = page.body("gzip")
    assert gzip.decompress(gz) == page.bodies["identity"] and page.body("gzip") is gz
    assert page.size == 3007 + len(gz)


def test_a_page_is_answered_in_the_coding_asked_for_and_a_large_one_left_to_a_thread() -> None:
    app = web.Application()
    app[PAGES] = Renderer()
    body = b"<p>" + b"model " * 500 + b"</p>"

    def coding(accept: str) -> str | None:
        return respond(
            make_mocked_request("GET", "/", headers={"Accept-Encoding": accept}, app=app), Page(body)
        ).headers.get("Content-Encoding")

    # A page is compressed for each request: zstd (the fastest) when it is as welcome as brotli.
    assert coding("gzip, deflate, br, zstd") == "zstd" and coding("gzip, br, zstd;q=0.5") == "br"
    request = make_mocked_request("GET", "/", headers={"Accept-Encoding": "gzip, br;q=0.5"}, app=app)
    small = respond(request, Page(body))
    assert small.headers["Content-Encoding"] == "gzip" and isinstance(small.body, bytes)
    assert gzip.decompress(small.body) == body
    assert app[PAGES].style_hash in small.headers["Content-Security-Policy"]
    large = respond(request, Page(b"<p>" + b"model " * 50_000 + b"</p>"))
    assert "Content-Encoding" not in large.headers and large.compression, "aiohttp compresses it off the loop"
    assert "Content-Encoding" not in respond(make_mocked_request("GET", "/", app=app), Page(b"x" * 5000)).headers

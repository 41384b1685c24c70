"""The pages in a real browser: Playwright driving Debian's chromium against a `modelmeta web`
process serving the real catalog of 2026-07-02 (loaded after that of 2026-03-01, for history).

Every test fails if a request leaves the host or the console shows an error. Screenshots of each
page at desktop and phone widths go to .test-output/screenshots/.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from shared.config import Settings
from shared.embedded import document
from tests.support import (
    CATALOG_NEW,
    CATALOG_OLD,
    REDIS_URL,
    ROOT,
    connection,
    create_database,
    drop_database,
    env_for,
    flat_models,
    need_service,
    pipeline,
    refresh_inline,
    web_process_sync,
    worker,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = ROOT / ".test-output" / "screenshots"
TOKEN = "pages-admin-token"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
#: The model whose input price the refresh test changes upstream.
CHANGED = ("anthropic", "claude-sonnet-4-5")
NEW_INPUT_PRICE = 2.75
OLD, NEW = (json.loads(document(n)) for n in (CATALOG_OLD, CATALOG_NEW))
MODELS = "models-2026-07-02"
CARDS = json.loads(document(MODELS))


@dataclass
class Site:
    base: str
    env: dict[str, str]
    tmp: Path


@dataclass
class Watch:
    """What a page did: requests that tried to leave the host, and console errors."""

    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def _load(settings: Settings, tmp: Path) -> None:
    """Both real catalogs through the real pipeline, then the runs dated as the documents are, so
    the history spans four months (as `import-history` of the two files would)."""
    # The newer one with models.dev's models document beside it (model cards and their benchmarks);
    # the web process's upstream has it beside too, so a refresh keeps the cards.
    for name in (MODELS, "models"):
        (tmp / f"{name}.json").write_bytes(document(MODELS))
    for name in (CATALOG_OLD, CATALOG_NEW):
        path = tmp / f"{name}.json"
        path.write_bytes(document(name))
        async with pipeline(settings, modelsdev_url=f"file://{path}") as ctx:
            assert (await refresh_inline(ctx))["status"] == "succeeded"
    async with connection(settings.database_url) as conn:
        await conn.execute(
            """
            UPDATE model_changes SET at = CASE run_id WHEN 1 THEN timestamptz '2026-03-01 12:00Z'
                                                      ELSE timestamptz '2026-07-02 12:00Z' END;
            UPDATE models m SET first_seen_at = c.first, updated_at = c.last,
                   removed_at = CASE WHEN m.removed_at IS NULL THEN NULL ELSE c.last END
              FROM (SELECT provider_id, model_id, min(at) AS first, max(at) AS last FROM model_changes GROUP BY 1, 2) c
             WHERE c.provider_id = m.provider_id AND c.model_id = m.model_id;
            UPDATE models SET api_doc = model_api_doc(
                provider_id, model_id, raw, first_seen_at, updated_at, removed_at, canonical_id, canonical_link);
            """
        )


def _require_browser() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need_service("playwright is not installed: pip install -e '.[dev]'")
    if not CHROMIUM.exists():
        need_service(f"{CHROMIUM} is missing: apt-get install chromium (`make test` does)")
    return sync_playwright


@pytest.fixture(scope="module")
def site(template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    _require_browser()
    tmp = tmp_path_factory.mktemp("pages")
    db, prefix = f"mm_pages_{uuid.uuid4().hex[:10]}", f"mmtest-{uuid.uuid4().hex[:10]}"
    dsn = asyncio.run(create_database(db, template_db))
    settings = Settings(
        database_url=dsn, redis_url=REDIS_URL, redis_prefix=prefix, admin_tokens=(TOKEN,), upstream_attempts=2
    )
    client = redis.Redis.from_url(REDIS_URL)
    try:
        asyncio.run(_load(settings, tmp))
        upstream = json.loads(document(CATALOG_NEW))
        upstream[CHANGED[0]]["models"][CHANGED[1]]["cost"]["input"] = NEW_INPUT_PRICE
        (tmp / "upstream.json").write_text(json.dumps(upstream))
        env = env_for(settings, MODELSDEV_URL=f"file://{tmp / 'upstream.json'}", LOG_LEVEL="warning")
        with web_process_sync(env, tmp / "web.log") as base:
            yield Site(base, env, tmp)
    finally:
        asyncio.run(drop_database(dsn))
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    with _require_browser()() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def watch() -> Watch:
    return Watch()


def _open(browser: Any, site: Site, watch: Watch, viewport: dict[str, int], scheme: str = "light") -> Any:
    """A new browser context that refuses (and records) any request to another host."""
    context = browser.new_context(viewport=viewport, color_scheme=scheme)
    host = urlsplit(site.base).netloc

    def guard(route: Any) -> None:
        if urlsplit(route.request.url).netloc == host:
            route.continue_()
        else:
            watch.outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watch.errors.append(f"uncaught: {e}"))
    return page


@pytest.fixture
def page(browser: Any, site: Site, watch: Watch) -> Iterator[Any]:
    p = _open(browser, site, watch, DESKTOP)
    yield p
    p.context.close()
    assert watch.outside == [], f"requests left the host: {watch.outside}"
    assert watch.errors == [], f"console errors: {watch.errors}"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _api(site: Site, path: str) -> Any:
    with urllib.request.urlopen(site.base + path, timeout=10) as r:
        return json.loads(r.read())


def _money(value: float) -> str:
    return f"${value:,.2f}"


# -- the catalog -------------------------------------------------------------------------------


def test_typing_in_the_search_box_filters_the_table_best_match_first(page: Any, site: Site) -> None:
    expect = _expect()
    page.goto(site.base + "/")
    expect(page.locator("#count")).to_contain_text("5,276 models")
    box = page.get_by_role("searchbox", name="Search models")
    box.press_sequentially("claude sonnet 4.5", delay=20)
    expect(page.locator("#count")).to_contain_text("match “claude sonnet 4.5”")
    total = int(re.sub(r"\D", "", page.locator("#count").inner_text().split("model")[0]))
    api = _api(site, "/api/v1/models?q=claude+sonnet+4.5&limit=50")
    assert 0 < total == api["total"] < 5276
    names = page.locator("table.models tbody th a").all_inner_texts()
    assert names == [m["name"] for m in api["data"]], "the table is the API's best-match-first order"
    assert "q=claude+sonnet+4.5" in page.url
    page.reload()  # the search is in the URL: a reload (or a shared link) shows the same table
    expect(page.get_by_role("searchbox")).to_have_value("claude sonnet 4.5")
    assert page.locator("table.models tbody th a").all_inner_texts() == names


def test_filters_sorting_and_paging_keep_their_state_in_the_url(page: Any, site: Site) -> None:
    expect = _expect()
    page.goto(site.base + "/")
    page.locator("summary", has_text="Filters").click()
    page.get_by_label("Provider").select_option("anthropic")
    page.get_by_label("Tool calling").check()
    page.get_by_label("Minimum context (tokens)").fill("1000000")
    expect(page).to_have_url(re.compile(r"(?=.*provider=anthropic)(?=.*capability=tool_call)(?=.*min_context=1000000)"))
    total = _api(site, "/api/v1/models?provider=anthropic&capability=tool_call&min_context=1000000")["total"]
    expect(page.locator("#count")).to_contain_text(f"{total} model")
    page.locator("th.col-input_cost a").click()
    expect(page.locator("th.col-input_cost")).to_have_attribute("aria-sort", "ascending")
    prices = [float(t.strip("$").replace(",", "")) for t in page.locator("tbody td:nth-child(4)").all_inner_texts()]
    assert prices == sorted(prices) and len(prices) > 1
    page.go_back()
    expect(page.locator("th.col-input_cost")).not_to_have_attribute("aria-sort", "ascending")
    page.goto(site.base + "/?sort=-context")
    page.get_by_role("link", name="Next page »").click()
    expect(page.locator("#count")).to_contain_text("showing 51 to 100")
    assert "cursor=" in page.url and "page=2" in page.url


def test_text_typed_in_the_search_box_is_shown_back_escaped(page: Any, site: Site) -> None:
    expect = _expect()
    typed = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2"><b>bold</b>'
    page.goto(site.base + "/")
    page.get_by_role("searchbox").fill(typed)
    expect(page.locator("mark.typed")).to_have_text(typed)
    page.goto(site.base + "/?q=" + urllib.request.quote(typed))  # the server-rendered page, before any script
    expect(page.locator("mark.typed")).to_have_text(typed)
    expect(page.locator("td.empty")).to_contain_text(typed)
    assert page.evaluate("window.__xss") is None
    assert page.locator("#results b, #results img, #results script").count() == 0


# -- a model's page ----------------------------------------------------------------------------


def test_a_model_page_shows_its_prices_limits_and_price_history(page: Any, site: Site) -> None:
    expect = _expect()
    pid, mid = "openrouter", "google/gemma-3-27b-it"
    old, new = OLD[pid]["models"][mid], NEW[pid]["models"][mid]
    assert old["cost"]["input"] != new["cost"]["input"]
    page.goto(site.base + "/?q=gemma-3-27b-it&provider=openrouter")
    page.get_by_role("link", name=new["name"], exact=True).first.click()
    expect(page).to_have_url(f"{site.base}/m/{pid}/{mid}")
    expect(page.get_by_role("heading", level=1)).to_have_text(new["name"])
    prices = page.locator("#prices")
    expect(prices.get_by_role("row", name="Input")).to_contain_text(f"${new['cost']['input']:.2f}")
    expect(prices.get_by_role("row", name="Output")).to_contain_text(f"${new['cost']['output']:.2f}")
    expect(page.get_by_role("row", name="Context window")).to_contain_text(f"{new['limit']['context']:,}")
    chart = page.get_by_role("img", name=re.compile("Prices of .* over time"))
    expect(chart).to_be_visible()
    assert chart.locator("path.line.s-input").get_attribute("d").count("H") == 2, "one step before, one after"
    change = page.locator("table.changes li", has_text="cost.input")
    expect(change).to_contain_text(f"${old['cost']['input']:.2f}")
    expect(change).to_contain_text(f"${new['cost']['input']:.2f}")


def test_an_unknown_model_is_a_404_page_for_a_browser_and_problem_json_for_a_client(
    page: Any, site: Site, watch: Watch
) -> None:
    expect = _expect()
    html = page.request.get(site.base + "/m/nope/no-such-model", headers={"Accept": "text/html"})
    assert html.status == 404 and html.headers["content-type"].startswith("text/html")
    problem = page.request.get(site.base + "/m/nope/no-such-model", headers={"Accept": "application/json"})
    assert problem.status == 404 and problem.headers["content-type"].startswith("application/problem+json")
    assert problem.json()["detail"] == "no model nope/no-such-model"
    response = page.goto(site.base + "/m/nope/no-such-model")
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.locator("main")).to_contain_text("nope/no-such-model")
    # Chromium logs the 404 of the page itself; nothing else may be there.
    watch.errors[:] = [e for e in watch.errors if "404" not in e]


def test_a_model_page_leads_to_its_card_with_benchmarks_and_every_offering(page: Any, site: Site, watch: Watch) -> None:
    expect = _expect()
    card_id = "anthropic/claude-sonnet-4-5"
    card = CARDS[card_id]
    offerings = sorted(
        (f"{pid}/{mid}", m)
        for pid, p in NEW.items()
        for mid, m in p["models"].items()
        if mid.rsplit("/", 1)[-1].lower() == "claude-sonnet-4-5"
    )
    assert len(offerings) > 5 and card["benchmarks"]
    page.goto(site.base + "/m/anthropic/claude-sonnet-4-5")
    link = page.get_by_role("link", name=card_id, exact=True)
    expect(page.locator("p.canonical")).to_contain_text("inferred from its id")
    link.click()
    expect(page).to_have_url(f"{site.base}/cards/{card_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text(card["name"])
    rows = page.locator("#offerings tbody tr")
    expect(rows).to_have_count(len(offerings))
    cheapest = min(offerings, key=lambda o: (o[1].get("cost", {}).get("input", float("inf")), o[0]))
    expect(rows.first).to_contain_text(cheapest[1]["name"])
    expect(rows.first).to_contain_text(f"${cheapest[1]['cost']['input']:.2f}")
    results = page.locator("#card-benchmarks tbody tr")
    expect(results).to_have_count(len(card["benchmarks"]))
    first = card["benchmarks"][0]
    expect(results.first).to_contain_text(first["name"])
    expect(results.first).to_contain_text(str(first["score"]))
    # The offering's own page lists the card's results as its benchmarks, marked as from the card.
    page.goto(site.base + "/m/anthropic/claude-sonnet-4-5")
    bench = page.locator("section", has=page.locator("#h-bench"))
    expect(bench.get_by_role("row", name=first["name"]).first).to_contain_text("model card")
    # An unknown card: the 404 page (Chromium logs the 404 of the page itself).
    assert page.goto(site.base + "/cards/nope/none").status == 404
    expect(page.locator("main")).to_contain_text("nope/none")
    watch.errors[:] = [e for e in watch.errors if "404" not in e]


# -- compare -----------------------------------------------------------------------------------


def test_compare_two_models_ticked_in_the_table_with_a_cost_estimate(page: Any, site: Site) -> None:
    expect = _expect()
    a, b = "anthropic/claude-sonnet-4-5", "openai/gpt-4o"
    page.goto(site.base + "/?q=claude-sonnet-4-5&provider=anthropic")
    page.locator(f'input[name="ids"][value="{a}"]').check()
    page.get_by_label("Provider").select_option("openai")  # the ticks stay while the table changes
    page.get_by_role("searchbox").fill("gpt-4o")
    page.locator(f'input[name="ids"][value="{b}"]').check()
    expect(page.locator("#picked")).to_contain_text("2 ticked")
    page.get_by_role("button", name="Compare ticked models").click()
    expect(page).to_have_url(re.compile(r"/compare\?ids="))
    expect(page.get_by_role("heading", level=1)).to_have_text("Compare models")
    expect(page.locator("tr.differs", has_text="Provider")).to_contain_text("differs")
    tokens = {"input_tokens": 100_000, "output_tokens": 20_000, "cached_tokens": 40_000}
    for name, label in (("input_tokens", "Input tokens"), ("output_tokens", "Output tokens")):
        page.get_by_label(label).fill(str(tokens[name]))
    page.get_by_label("Cached tokens").press_sequentially(str(tokens["cached_tokens"]))
    for model_id in (a, b):
        pid, _, mid = model_id.partition("/")
        cost = NEW[pid]["models"][mid]["cost"]
        uncached = tokens["input_tokens"] - tokens["cached_tokens"]
        usd = (
            uncached * cost["input"]
            + tokens["cached_tokens"] * cost.get("cache_read", cost["input"])
            + tokens["output_tokens"] * cost["output"]
        ) / 1_000_000
        expect(page.locator(f'td[data-estimate="{model_id}"] output')).to_have_text(_money(usd))
    assert "input_tokens=100000" in page.url and "cached_tokens=40000" in page.url
    # A third model by id, with suggestions from the API's search as you type.
    add = page.get_by_label("Add a model by id")
    add.press_sequentially("gemini-2.5-pro")
    expect(page.locator('#suggestions option[value="google/gemini-2.5-pro"]')).to_have_count(1)
    add.fill("google/gemini-2.5-pro")
    add.press("Enter")
    expect(page.locator("table.compare thead th")).to_have_count(4)
    expect(page.get_by_label("Input tokens")).to_have_value("100000")


# -- refreshes ---------------------------------------------------------------------------------


def test_start_a_refresh_with_the_admin_token_and_watch_it_succeed(page: Any, site: Site) -> None:
    expect = _expect()
    pid, mid = CHANGED
    with worker(site.env, site.tmp / "worker.log", threads=2):
        page.goto(site.base + "/refreshes")
        expect(page.get_by_role("row", name=re.compile("Upstream"))).to_contain_text("upstream.json")
        page.get_by_label("Admin token").fill(TOKEN)
        page.get_by_role("button", name="Start refresh").click()
        expect(page.locator("#start-result")).to_contain_text("started; following it", timeout=15_000)
        run_id = re.search(r"#(\d+)", page.locator("#start-result").inner_text()).group(1)  # type: ignore[union-attr]
        expect(page.get_by_label("Admin token")).to_have_value("")
        expect(page.locator("#h-run")).to_contain_text(f"Run #{run_id}")
        expect(page.locator("#h-run")).to_contain_text("succeeded", timeout=90_000)
    expect(page.get_by_role("row", name=re.compile(f"^{pid}\\b"))).to_contain_text("~1")
    storage = page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie")
    assert TOKEN not in page.url and TOKEN not in storage
    page.goto(f"{site.base}/m/{pid}/{mid}")
    expect(page.locator("#prices").get_by_role("row", name="Input")).to_contain_text(f"${NEW_INPUT_PRICE:.2f}")
    assert flat_models(NEW)[CHANGED]["cost"]["input"] != NEW_INPUT_PRICE
    # The catalog page of this search was rendered (and kept) before the refresh, by the compare test:
    # it is rendered again from the new catalog, not served as kept.
    row = page.locator(f'tbody tr:has(input[value="{pid}/{mid}"]) td.num').first
    for _ in range(20):
        page.goto(f"{site.base}/?q={mid}&provider={pid}")
        if row.inner_text() == f"${NEW_INPUT_PRICE:.2f}":
            break
        page.wait_for_timeout(250)
    expect(row).to_have_text(f"${NEW_INPUT_PRICE:.2f}")


# -- every page: keyboard, labels, phone width, both schemes, screenshots ------------------------

PAGES = {
    "catalog": "/",
    "model": "/m/anthropic/claude-opus-4-1",
    "card": "/cards/anthropic/claude-sonnet-4-5",
    "compare": "/compare?ids=anthropic/claude-sonnet-4-5,openai/gpt-4o,google/gemini-2.5-pro"
    "&input_tokens=100000&output_tokens=20000&cached_tokens=40000",
    "refreshes": "/refreshes",
    "docs": "/docs",
}
#: Controls without a label (an <input> with no <label> and no aria-label), on the page as rendered.
UNLABELLED = """() => [...document.querySelectorAll('main input, main select, main textarea')]
  .filter(e => e.type !== 'hidden' && !e.closest('#swagger-ui'))
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
  .map(e => e.outerHTML.slice(0, 120))"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_at_desktop_and_phone_width(browser: Any, site: Site, watch: Watch, scheme: str) -> None:
    expect = _expect()
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = _open(browser, site, watch, viewport, scheme)
        try:
            for name, path in PAGES.items():
                page.goto(site.base + path)
                if name == "docs":
                    expect(page.locator(".opblock").first).to_be_visible(timeout=15_000)
                page.wait_for_load_state("networkidle")
                assert page.evaluate(UNLABELLED) == [], f"{name}: controls without a label"
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"{name} at {size} width scrolls sideways by {overflow}px"
                page.screenshot(path=str(SHOTS / f"{name}-{size}-{scheme}.png"), full_page=True)
        finally:
            page.context.close()
    assert watch.outside == [], f"requests left the host: {watch.outside}"
    assert watch.errors == [], f"console errors: {watch.errors}"


def test_the_catalog_works_from_the_keyboard_with_visible_focus(page: Any, site: Site) -> None:
    expect = _expect()
    page.goto(site.base + "/")
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "q":
            break
    else:
        pytest.fail("the search box is not reached within 10 tabs")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), "the focused search box shows no focus ring"
    page.keyboard.type("gpt-5")
    expect(page.locator("#count")).to_contain_text("match “gpt-5”")
    page.keyboard.press("Tab")  # the Search button, then the filters, then the results' first link
    assert page.evaluate("document.activeElement.textContent") == "Search"

"""Pages benchmark, in Debian's chromium driven by Playwright, on the 5,276-model catalog.

(a) the first load of `/` in a fresh browser context (no cache): bytes transferred, compressed, for
    the page and everything it loads; goal under 150 kB;
(b) time from navigation start to the first rows of the table on screen (the frame painted after
    the first row is in the document); goal within 300 ms;
(c) a keystroke in the search box until the table has updated and been painted, over 30
    keystrokes typed one at a time; goal p95 within 100 ms.

    python benchmarks/pages_bench.py [--loads 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.api_bench import free_port, load_catalog, wait_up
from benchmarks.common import ROOT, bench_env, table, write_results
from shared.embedded import EMBEDDED_CATALOG, document

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: What is typed, one key at a time (Backspace included): 30 keystrokes.
KEYS = [*"claude sonnet", *["Backspace"] * 6, *"opus 4", *["Backspace"] * 2, *"gpt"]
#: Records, in the page, when #results changed and the next frame was painted.
WATCH_RESULTS = """() => {
  window.__painted = [];
  new MutationObserver(() => requestAnimationFrame(() => window.__painted.push(performance.now())))
    .observe(document.getElementById('results'), {childList: true});
  window.__keys = [];
  document.getElementById('q').addEventListener('keydown', (e) => window.__keys.push(e.timeStamp));
}"""
#: Runs before the page's own scripts: records when the first table row was in the document and the
#: frame after it was painted (two animation frames later).
FIRST_ROWS = """new MutationObserver((_, observer) => {
  if (!document.querySelector('table.models tbody tr')) return;
  observer.disconnect();
  requestAnimationFrame(() => requestAnimationFrame(() => { window.__firstRows = performance.now(); }));
}).observe(document, {childList: true, subtree: true});"""


def first_load(browser: Any, base: str) -> tuple[int, float]:
    """(bytes transferred, ms to the first rows) of one cold load of `/`."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    context.add_init_script(FIRST_ROWS)
    page = context.new_page()
    responses: list[Any] = []
    page.on("requestfinished", lambda r: responses.append(r))
    page.goto(base + "/", wait_until="load")
    first_rows = float(page.wait_for_function("window.__firstRows").json_value())
    page.wait_for_load_state("networkidle")
    sizes = [r.sizes() for r in responses]
    transferred = sum(s["responseBodySize"] + s["responseHeadersSize"] for s in sizes)
    context.close()
    return transferred, first_rows


def empty_page_paint(browser: Any, base: str) -> float:
    """The baseline: ms to the first paint of a near-empty page of the same site (no table), cold."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.goto(base + "/compare", wait_until="load")
    paint = page.wait_for_function("performance.getEntriesByName('first-contentful-paint')[0]?.startTime").json_value()
    context.close()
    return float(paint)


def keystrokes(browser: Any, base: str) -> tuple[list[float], list[float]]:
    """ms from each keydown to the painted update of the table, and of each the server's answer
    (the part's fetch, request to response end)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.goto(base + "/")
    page.wait_for_load_state("networkidle")
    page.evaluate(WATCH_RESULTS)
    page.focus("#q")
    for i, key in enumerate(KEYS, start=1):
        page.keyboard.press("Space" if key == " " else key)
        page.wait_for_function(f"window.__painted.length >= {i}", timeout=10_000)
        page.wait_for_timeout(60)  # typing speed: a key every ~100 ms, each waited for
    keys, painted, fetches = page.evaluate(
        "[window.__keys, window.__painted, performance.getEntriesByType('resource')"
        ".filter(r => r.initiatorType === 'fetch').map(r => r.responseEnd - r.requestStart)]"
    )
    context.close()
    return [p - k for k, p in zip(keys, painted, strict=True)], fetches


def measure(base: str, loads: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        first_load(browser, base)  # warm the server (its cache and templates), not the browser
        runs = [first_load(browser, base) for _ in range(loads)]
        empty = [empty_page_paint(browser, base) for _ in range(loads)]
        typing, answers = keystrokes(browser, base)
        browser.close()
    return {
        "sizes": [r[0] for r in runs],
        "first_rows": [r[1] for r in runs],
        "empty": empty,
        "typing": typing,
        "answers": answers,
    }


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


async def main_async(args: argparse.Namespace) -> None:
    async with bench_env() as (dsn, env):
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            f.write(document(EMBEDDED_CATALOG))
            f.flush()
            await load_catalog(dsn, env["REDIS_PREFIX"], Path(f.name))
        port = free_port()
        web = subprocess.Popen([sys.executable, "-m", "services.cli", "web"], cwd=ROOT, env={**env, "PORT": str(port)})
        try:
            wait_up(f"http://127.0.0.1:{port}/readyz")
            m = await asyncio.to_thread(measure, f"http://127.0.0.1:{port}", args.loads)
        finally:
            web.terminate()
            web.wait(20)
    sizes, first_rows, empty, typing, answers = (m["sizes"], m["first_rows"], m["empty"], m["typing"], m["answers"])
    print(f"catalog: {EMBEDDED_CATALOG} (5,276 models); {args.loads} cold loads of /; {len(typing)} keystrokes")
    rows = [
        (
            "first load of / in a fresh browser: bytes transferred (compressed), everything it loads",
            f"{max(sizes) / 1000:.1f} kB",
            "150 kB (goal)",
            f"{max(sizes) / 150_000:.2f}x",
        ),
        (
            f"first load of /: navigation start to the first rows painted, median and worst of {args.loads}",
            f"{statistics.median(first_rows):.0f} ms, worst {max(first_rows):.0f} ms",
            f"300 ms (goal); a near-empty page's first paint: {statistics.median(empty):.0f} ms, "
            f"worst {max(empty):.0f} ms",
            f"{statistics.median(first_rows) / 300:.2f}x",
        ),
        (
            f"a keystroke in the search box to the table updated and painted, {len(typing)} keystrokes",
            f"p50 {statistics.median(typing):.0f} ms, p95 {p95(typing):.0f} ms, worst {max(typing):.0f} ms",
            f"p95 100 ms (goal); the server's answers: p50 {statistics.median(answers):.0f} ms, "
            f"p95 {p95(answers):.0f} ms",
            f"{p95(typing) / 100:.2f}x",
        ),
    ]
    print(table(rows))
    write_results("6-pages", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=10)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()

"""Request handlers: decode the request, call shared/, encode the answer (through the cache)."""

from __future__ import annotations

import asyncio
import hmac
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from services.api import history, keys
from services.api.cache import ALL
from shared.api_models import (
    Benchmark,
    Change,
    Comparison,
    Name,
    RefreshStatus,
    Schedule,
    Source,
    run_object,
)
from shared.benchmarks import import_benchmarks, parse_benchmarks
from shared.catalog import field_changes
from shared.db import models as q
from shared.db import runs as runs_db
from shared.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized
from shared.listing import CAPABILITIES, cursor_kind, encode_cursor, parse_model_query
from shared.refresh import fail_run, request_refresh
from shared.schedule import read_state

_enc = msgspec.json.Encoder()
MAX_BODY = 8 * 1024 * 1024  # room for a 10,000-row benchmark import


def _json(obj: Any) -> bytes:
    return _enc.encode(obj)


async def respond(request: web.Request, key: str, tags: frozenset[str], build: Any) -> web.Response:
    """Serve a GET from the cache (building it on a miss) with ETag, 304 and version headers."""
    cache = request.app[keys.CACHE]
    entry = await cache.get_or_build(key, tags, build)
    headers = {
        "ETag": entry.etag,
        "X-Catalog-Version": str(entry.version),
        "Cache-Control": "public, max-age=15",
    }
    inm = request.headers.get("If-None-Match")
    if inm and (inm.strip() == "*" or entry.etag in [t.strip() for t in inm.split(",")]):
        return web.Response(status=304, headers=headers)
    return web.Response(body=entry.body, content_type="application/json", headers=headers)


def json_page(docs: list[str], total: int, next_cursor: str | None) -> bytes:
    """A list answer around objects that are JSON text already (spliced, not re-encoded)."""
    return b'{"data":[' + ",".join(docs).encode() + b'],"total":%d,"next_cursor":%s}' % (total, _json(next_cursor))


def _cache_key(request: web.Request) -> str:
    return request.path + "?" + urlencode(sorted(request.query.items()))


def _split_id(model_path: str) -> tuple[str, str]:
    pid, sep, mid = model_path.partition("/")
    if not sep or not pid or not mid:
        raise BadRequest("invalid model id", [("id", f"expected provider_id/model_id, got {model_path!r}")])
    return pid, mid


# -- models ------------------------------------------------------------------------------------


async def list_models(request: web.Request, fixed: dict[str, str] | None = None) -> web.Response:
    pit, request = await history.point_in_time(request)  # history (issue 13): `at=`
    mq = parse_model_query(request.query, fixed=fixed)
    pool = history.reader(request, pit)
    tags = frozenset(mq.providers) if mq.providers else frozenset({ALL})

    totals = request.app[keys.TOTALS]
    filter_key = urlencode(
        sorted((k, v) for k, v in {**request.query, **(fixed or {})}.items() if k not in ("cursor", "limit", "sort"))
    ) + (f"@{pit.version}" if pit else "")

    async def build() -> bytes:
        version = request.app[keys.CACHE].version
        docs, total, position = await q.list_models(pool, mq, known_total=totals.get(filter_key))
        totals.put(filter_key, version, total)
        return json_page(docs, total, encode_cursor(cursor_kind(mq), position) if position else None)

    if pit is not None:
        return await history.respond_at(request, pit, tags, build)
    return await respond(request, _cache_key(request), tags, build)


async def models_by_capability(request: web.Request) -> web.Response:
    cap = request.match_info["capability"]
    if cap not in CAPABILITIES:
        raise BadRequest("unknown capability", [("capability", f"expected one of {', '.join(CAPABILITIES)}")])
    if "capability" in request.query:
        raise BadRequest("capability is given by the path", [("capability", "not allowed here")])
    return await list_models(request, fixed={"capability": cap})


async def provider_models(request: web.Request) -> web.Response:
    pid = request.match_info["provider_id"]
    if "provider" in request.query:
        raise BadRequest("the provider is given by the path", [("provider", "not allowed here")])
    if await q.get_provider(request.app[keys.POOL], pid) is None:
        raise NotFound(f"no provider {pid!r}")
    return await list_models(request, fixed={"provider": pid})


async def model_resource(request: web.Request) -> web.Response:
    """/models/{provider_id}/{model_id}, with /benchmarks, /history and /prices as sub-resources."""
    pid, rest = request.match_info["provider_id"], request.match_info["model_id"]
    subresources = (("/benchmarks", _model_benchmarks), ("/history", _model_history), ("/prices", history.model_prices))
    for suffix, handler in subresources:
        if rest.endswith(suffix) and len(rest) > len(suffix):
            return await handler(request, pid, rest[: -len(suffix)])
    pit, request = await history.point_in_time(request)  # history (issue 13): `at=`
    if request.query:
        raise BadRequest("this route takes no parameters", [(k, "unknown parameter") for k in request.query])
    pool = history.reader(request, pit)

    async def build() -> bytes:
        doc = await q.get_model(pool, pid, rest)
        if doc is None:
            raise NotFound(f"no model {pid}/{rest}")
        return doc.encode()

    if pit is not None:
        return await history.respond_at(request, pit, frozenset({pid}), build)
    return await respond(request, _cache_key(request), frozenset({pid}), build)


async def _model_history(request: web.Request, pid: str, mid: str) -> web.Response:
    pool = request.app[keys.POOL]

    async def build() -> bytes:
        if await q.get_model(pool, pid, mid) is None:
            raise NotFound(f"no model {pid}/{mid}")
        rows = await q.model_history(pool, pid, mid)
        return _json({"data": [_change(r) for r in rows], "total": len(rows), "next_cursor": None})

    return await respond(request, _cache_key(request), frozenset({pid}), build)


async def _model_benchmarks(request: web.Request, pid: str, mid: str) -> web.Response:
    pool = request.app[keys.POOL]
    if await q.get_model(pool, pid, mid) is None:
        raise NotFound(f"no model {pid}/{mid}")
    rows = await q.benchmarks_for(pool, [(pid, mid)])
    body = _json({"data": [_benchmark(r) for r in rows], "total": len(rows), "next_cursor": None})
    return web.Response(body=body, content_type="application/json", headers={"Cache-Control": "no-cache"})


def _change(r: Any) -> Change:
    return Change(
        seq=r["seq"],
        at=r["at"],
        run_id=r["run_id"],
        id=f"{r['provider_id']}/{r['model_id']}",
        provider_id=r["provider_id"],
        model_id=r["model_id"],
        kind=r["kind"],
        fields=r["fields"],
    )


def _benchmark(r: Any) -> Benchmark:
    return Benchmark(
        model=f"{r['provider_id']}/{r['model_id']}",
        benchmark=r["benchmark"],
        score=r["score"],
        metric=r["metric"] or None,
        source=r["source"] or None,
        date=r["measured_at"],
    )


def estimate_cost(raw: dict[str, Any], input_tokens: int, output_tokens: int, cached_tokens: int) -> float | None:
    """USD for one request: cached input at cache_read, and a context tier's prices beyond its size."""
    cost = raw.get("cost")
    if not isinstance(cost, dict) or cost.get("input") is None or cost.get("output") is None:
        return None
    prices = dict(cost)
    tiers = [t for t in cost.get("tiers") or [] if (t.get("tier") or {}).get("type") == "context"]
    applicable = [t for t in tiers if input_tokens > (t["tier"].get("size") or 0)]
    if applicable:
        prices.update({k: v for k, v in max(applicable, key=lambda t: t["tier"]["size"]).items() if k != "tier"})
    elif not tiers and isinstance(cost.get("context_over_200k"), dict) and input_tokens > 200_000:
        prices.update(cost["context_over_200k"])
    cached = min(cached_tokens, input_tokens)
    cache_price = prices.get("cache_read", prices["input"])
    total = (input_tokens - cached) * prices["input"] + cached * cache_price + output_tokens * prices["output"]
    return round(float(total) / 1_000_000, 10)


async def compare(request: web.Request) -> web.Response:
    pit, request = await history.point_in_time(request)  # history (issue 13): `at=`, prices in force then
    errors: list[tuple[str, str]] = []
    allowed = {"ids", "input_tokens", "output_tokens", "cached_tokens"}
    errors += [(k, "unknown parameter") for k in request.query if k not in allowed]
    ids = [i for i in request.query.get("ids", "").split(",") if i]
    if not 2 <= len(ids) <= 10:
        errors.append(("ids", f"expected 2 to 10 comma-separated model ids, got {len(ids)}"))
    tokens: dict[str, int] = {}
    for name in ("input_tokens", "output_tokens", "cached_tokens"):
        raw = request.query.get(name)
        if raw is not None:
            if not raw.isdigit() or int(raw) > 10**9:
                errors.append((name, f"expected a whole number 0..1000000000, got {raw!r}"))
            else:
                tokens[name] = int(raw)
    parsed = []
    for i in ids:
        pid, sep, mid = i.partition("/")
        if not sep or not pid or not mid:
            errors.append(("ids", f"{i!r} is not provider_id/model_id"))
        parsed.append((pid, mid))
    if errors:
        raise BadRequest("invalid query parameters", errors)
    pool = history.reader(request, pit)

    async def build() -> bytes:
        rows = {(r["provider_id"], r["model_id"]): r for r in await q.get_models_for_compare(pool, parsed)}
        missing = [f"{p}/{m}" for p, m in parsed if (p, m) not in rows]
        if missing:
            raise NotFound(f"no model {', '.join(missing)}")
        ordered = [rows[k] for k in parsed]
        raws = [r["raw"] for r in ordered]
        paths: set[str] = set()
        for a in raws[1:]:
            paths |= set(field_changes(raws[0], a))
        for i, a in enumerate(raws):
            for b in raws[i + 1 :]:
                paths |= set(field_changes(a, b))
        differences = {p: [_at(r, p) for r in raws] for p in sorted(paths)}
        estimates = None
        if tokens:
            it, ot, ct = tokens.get("input_tokens", 0), tokens.get("output_tokens", 0), tokens.get("cached_tokens", 0)
            estimates = {
                f"{k[0]}/{k[1]}": estimate_cost(r["raw"], it, ot, ct) for k, r in zip(parsed, ordered, strict=True)
            }
        priced = {
            f"{k[0]}/{k[1]}": (estimates or {}).get(f"{k[0]}/{k[1]}") if estimates else _sum_price(r["raw"])
            for k, r in zip(parsed, ordered, strict=True)
        }
        cheapest = (
            min((v, k) for k, v in priced.items() if v is not None)[1]
            if any(v is not None for v in priced.values())
            else None
        )
        ctx = {
            f"{k[0]}/{k[1]}": (r["raw"].get("limit") or {}).get("context") for k, r in zip(parsed, ordered, strict=True)
        }
        largest = (
            max((v, k) for k, v in ctx.items() if v is not None)[1]
            if any(v is not None for v in ctx.values())
            else None
        )
        bench = await q.benchmarks_for(pool, parsed)
        benchmarks: dict[str, dict[str, float]] = {}
        for b in bench:
            name = b["benchmark"] + (f" ({b['metric']})" if b["metric"] else "")
            benchmarks.setdefault(name, {})[f"{b['provider_id']}/{b['model_id']}"] = b["score"]
        return _json(
            Comparison(
                data=[msgspec.Raw(r["doc"].encode()) for r in ordered],
                differences=differences,
                cheapest=cheapest,
                largest_context=largest,
                cost_estimates=estimates,
                benchmarks=benchmarks,
            )
        )

    tags = frozenset(p for p, _ in parsed) | frozenset({ALL})
    if pit is not None:  # benchmarks are today's: cached as briefly as the current comparison
        return await history.respond_at(request, pit, tags, build, final=False)
    return await respond(request, _cache_key(request), tags, build)


def _at(raw: dict[str, Any], path: str) -> Any:
    cur: Any = raw
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _sum_price(raw: dict[str, Any]) -> float | None:
    cost = raw.get("cost") or {}
    if cost.get("input") is None or cost.get("output") is None:
        return None
    return float(cost["input"]) + float(cost["output"])


async def capabilities(request: web.Request) -> web.Response:
    pool = request.app[keys.POOL]

    async def build() -> bytes:
        counts = await q.capability_counts(pool)
        data = [{"name": n, "count": c} for n, c in counts.items()]
        return _json({"data": data, "total": len(data), "next_cursor": None})

    return await respond(request, _cache_key(request), frozenset({ALL}), build)


# -- providers ---------------------------------------------------------------------------------


async def list_providers(request: web.Request) -> web.Response:
    bad = [(k, "unknown parameter") for k in request.query if k != "include_removed"]
    inc = request.query.get("include_removed", "false").lower()
    if inc not in ("true", "false", "1", "0"):
        bad.append(("include_removed", "expected true or false"))
    if bad:
        raise BadRequest("invalid query parameters", bad)
    pool = request.app[keys.POOL]

    async def build() -> bytes:
        docs = await q.list_providers(pool, inc in ("true", "1"))
        return (
            b'{"data":[' + ",".join(docs).encode() + b'],"total":' + str(len(docs)).encode() + b',"next_cursor":null}'
        )

    return await respond(request, _cache_key(request), frozenset({ALL}), build)


async def get_provider(request: web.Request) -> web.Response:
    pid = request.match_info["provider_id"]
    pool = request.app[keys.POOL]

    async def build() -> bytes:
        doc = await q.get_provider(pool, pid)
        if doc is None:
            raise NotFound(f"no provider {pid!r}")
        return doc.encode()

    return await respond(request, _cache_key(request), frozenset({pid}), build)


# -- the catalog in models.dev's shape --------------------------------------------------------


async def api_json(request: web.Request) -> web.Response:
    pit, request = await history.point_in_time(request)  # history (issue 13): `at=`
    pool = history.reader(request, pit)

    async def build() -> bytes:
        return (await q.catalog_document(pool)).encode()

    if pit is not None:
        return await history.respond_at(request, pit, frozenset({ALL}), build)
    return await respond(request, "/api.json", frozenset({ALL}), build)


# -- changes -----------------------------------------------------------------------------------


async def changes(request: web.Request) -> web.Response:
    errors = [
        (k, "unknown parameter") for k in request.query if k not in ("since", "provider", "kind", "limit", "cursor")
    ]
    after, since_time = 0, None
    cursor = request.query.get("cursor")
    if cursor is not None:
        if cursor.isdigit() and len(cursor) <= 18:
            after = int(cursor)
        else:
            errors.append(("cursor", f"expected next_cursor of the previous page, got {cursor!r}"))
    since = request.query.get("since")
    if since is not None:
        if since.isdigit() and len(since) <= 18:
            after = max(after, int(since))
        else:
            try:
                since_time = datetime.fromisoformat(since.upper().replace("Z", "+00:00"))
                if since_time.tzinfo is None:
                    raise ValueError
            except ValueError:
                errors.append(("since", f"expected a cursor or an RFC 3339 time with offset, got {since!r}"))
    kinds = [k for k in request.query.get("kind", "").split(",") if k]
    if any(k not in ("added", "updated", "removed") for k in kinds):
        errors.append(("kind", "expected added, updated or removed"))
    limit_raw = request.query.get("limit", "50")
    if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= 500:
        errors.append(("limit", f"expected 1 to 500, got {limit_raw!r}"))
    if errors:
        raise BadRequest("invalid query parameters", errors)
    providers = [p for p in request.query.get("provider", "").split(",") if p]
    limit = int(limit_raw)
    pool = request.app[keys.POOL]

    async def build() -> bytes:
        rows = await q.changes_since(
            pool, after_seq=after, since_time=since_time, providers=providers, kinds=kinds, limit=limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = str(rows[-1]["seq"]) if more and rows else None
        return _json({"data": [_change(r) for r in rows], "total": len(rows), "next_cursor": nxt})

    return await respond(request, _cache_key(request), frozenset({ALL}), build)


# -- admin: refresh and benchmarks ------------------------------------------------------------


def require_admin(request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    if not header:
        raise Unauthorized("this route needs Authorization: Bearer <admin token>")
    scheme, _, token = header.partition(" ")
    tokens = request.app[keys.SETTINGS].admin_tokens
    ok = False
    for t in tokens:  # compare against every token, in constant time
        ok |= hmac.compare_digest(token.strip().encode(), t.encode())
    if scheme.lower() != "bearer" or not ok:
        raise Forbidden("the bearer token is not an admin token")


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /api/v1/refresh."""

    providers: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=1000)] | None = None
    force: bool = False


async def _body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge(f"the body is over {MAX_BODY} bytes")
    return await request.read()


async def post_refresh(request: web.Request) -> web.Response:
    require_admin(request)
    data = await _body(request)
    try:
        body = msgspec.json.decode(data, type=RefreshRequest) if data.strip() else RefreshRequest()
    except (msgspec.DecodeError, RecursionError) as e:
        raise BadRequest(f"invalid body: {e}", [("body", str(e))]) from None
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise BadRequest("invalid Idempotency-Key", [("Idempotency-Key", "expected 1 to 200 characters")])
    pool = request.app[keys.POOL]
    run, created = await request_refresh(
        pool, trigger="api", providers=body.providers, force=body.force, idempotency_key=key
    )
    if created:
        try:
            await asyncio.to_thread(request.app[keys.ENQUEUE], run["id"])
        except Exception as e:
            await fail_run(pool, run["id"], f"could not enqueue: {e}")
            raise
        run = await runs_db.get_run(pool, run["id"]) or run
    location = f"/api/v1/refresh/{run['id']}"
    return web.Response(
        status=202,
        body=_json(run_object(run, coalesced=not created)),
        content_type="application/json",
        headers={"Location": location},
    )


async def refresh_status(request: web.Request) -> web.Response:
    pool, settings = request.app[keys.POOL], request.app[keys.SETTINGS]
    runs = await runs_db.recent_runs(pool, 20)
    state = None
    try:
        state = await read_state(request.app[keys.REDIS], settings.redis_prefix)
    except Exception:
        state = None
    schedule = Schedule(
        interval=settings.refresh_interval,
        next_run_at=datetime.fromtimestamp(state.next_run_at, tz=UTC) if state else None,
        leader=state.leader if state else None,
    )
    body = RefreshStatus(
        data=[run_object(r) for r in runs], schedule=schedule, source=Source(url=settings.modelsdev_url)
    )
    return web.Response(body=_json(body), content_type="application/json", headers={"Cache-Control": "no-cache"})


async def get_run(request: web.Request) -> web.Response:
    raw = request.match_info["run_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest("invalid run id", [("run_id", "expected a run number")])
    pool = request.app[keys.POOL]
    run = await runs_db.get_run(pool, int(raw))
    if run is None:
        raise NotFound(f"no run {raw}")
    detail = await runs_db.provider_runs(pool, int(raw))
    return web.Response(
        body=_json(run_object(run, providers=detail)),
        content_type="application/json",
        headers={"Cache-Control": "no-cache"},
    )


async def post_benchmarks(request: web.Request) -> web.Response:
    require_admin(request)
    data = await _body(request)
    items = parse_benchmarks(data, csv_format=request.content_type in ("text/csv", "application/csv"))
    settings = request.app[keys.SETTINGS]
    n = await import_benchmarks(request.app[keys.POOL], request.app[keys.REDIS], settings.redis_prefix, items)
    return web.Response(status=201, body=_json({"imported": n}), content_type="application/json")


async def get_benchmarks(request: web.Request) -> web.Response:
    ids = [i for i in request.query.get("ids", "").split(",") if i]
    pairs = [_split_id(i) for i in ids]
    pool = request.app[keys.POOL]
    rows = await q.benchmarks_for(pool, pairs) if pairs else await q.all_benchmarks(pool)
    body = _json({"data": [_benchmark(r) for r in rows], "total": len(rows), "next_cursor": None})
    return web.Response(body=body, content_type="application/json", headers={"Cache-Control": "no-cache"})

"""The operator CLI: `modelmeta migrate | refresh | runs | run | worker | web | scheduler`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import dramatiq.errors
import msgspec
import redis.exceptions

from services.cli_webhooks import add_parser as add_webhooks_parser
from services.cli_webhooks import cmd_webhooks
from shared.config import Settings
from shared.enums import FINAL_RUN_STATUSES, RunStatus, Trigger
from shared.errors import ConfigError

if TYPE_CHECKING:
    from shared.schedule import ScheduleState

EXIT_FAILED = 1
EXIT_UNREACHABLE = 2


def _run_dict(r: Any) -> dict[str, Any]:
    from shared.schemas.api import run_object

    return msgspec.to_builtins(run_object(r))  # type: ignore[no-any-return]


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return urlunsplit(parts)


def _print_table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def _fmt_time(v: Any) -> str:
    return v.strftime("%Y-%m-%d %H:%M:%S") if v is not None else "-"


async def _connect(settings: Settings) -> asyncpg.Connection:
    from shared.db.pool import init_connection

    conn = await asyncpg.connect(settings.database_url, timeout=10)
    await init_connection(conn)
    return conn


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from migrations import migrate

    applied = await migrate(settings.database_url)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


async def cmd_refresh(settings: Settings, args: argparse.Namespace) -> int:
    from shared.db.pool import create_pool
    from shared.refresh import fail_run, request_refresh
    from shared.sender import Sender

    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    sender = Sender.from_settings(settings)
    try:
        run, created = await request_refresh(
            pool, trigger=Trigger.CLI, providers=args.provider or None, force=args.force
        )
        if created:
            try:
                await asyncio.to_thread(sender.plan_refresh, run["id"])
            except Exception as e:
                await fail_run(pool, run["id"], f"could not enqueue: {e}")
                raise
        if args.json and not args.wait:
            print(msgspec.json.encode({**_run_dict(run), "coalesced": not created}).decode())
        elif not args.wait:
            print(run["id"] if created else f"{run['id']} (joined the open run of the same scope)")
        if not args.wait:
            return 0
        return await _wait(pool, run["id"], as_json=args.json)
    finally:
        sender.close()
        await pool.close()


async def _wait(pool: asyncpg.Pool, run_id: int, *, as_json: bool) -> int:
    from shared.db import runs

    tty = sys.stdout.isatty() and not as_json
    last = None
    while True:
        run = await runs.get_run(pool, run_id)
        assert run is not None
        total, done, failed = run["providers_total"], run["providers_done"], run["providers_failed"]
        line = f"run {run_id}: {run['status']}  providers {done + failed}/{total} (failed {failed})"
        if tty:
            width = 30
            filled = int(width * (done + failed) / total) if total else 0
            print(f"\r[{'#' * filled}{'.' * (width - filled)}] {line}", end="", flush=True)
        elif line != last and not as_json:
            print(line, flush=True)
        last = line
        if run["status"] in FINAL_RUN_STATUSES:
            break
        await asyncio.sleep(0.3)
    if tty:
        print()
    if as_json:
        print(msgspec.json.encode(_run_dict(run)).decode())
    else:
        print(
            f"run {run_id} {run['status']}: +{run['added']} added, ~{run['updated']} updated, "
            f"-{run['removed']} removed"
            + (f"; error: {run['error']}" if run["error"] else "")
            + (f"; fallback: {run['fallback_reason']}" if run["fallback_reason"] else "")
        )
    return 0 if run["status"] in (RunStatus.SUCCEEDED, RunStatus.UNCHANGED) else EXIT_FAILED


async def cmd_runs(settings: Settings, args: argparse.Namespace) -> int:
    from shared.db import runs

    conn = await _connect(settings)
    try:
        recent = await runs.recent_runs(conn, args.limit)
    finally:
        await conn.close()
    if args.json:
        print(msgspec.json.encode([_run_dict(r) for r in recent]).decode())
        return 0
    _print_table(
        [
            [
                str(r["id"]),
                r["status"],
                r["trigger"],
                _fmt_time(r["requested_at"]),
                _fmt_time(r["finished_at"]),
                f"{r['providers_done'] + r['providers_failed']}/{r['providers_total']}",
                str(r["providers_failed"]),
                f"+{r['added']} ~{r['updated']} -{r['removed']}",
            ]
            for r in recent
        ],
        ["ID", "STATUS", "TRIGGER", "REQUESTED", "FINISHED", "PROVIDERS", "FAILED", "CHANGES"],
    )
    return 0


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from shared.db import runs

    conn = await _connect(settings)
    try:
        run = await runs.get_run(conn, args.run_id)
        providers = await runs.provider_runs(conn, args.run_id) if run else []
    finally:
        await conn.close()
    if run is None:
        print(f"modelmeta: no run {args.run_id}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        from shared.schemas.api import provider_run_object

        out = {**_run_dict(run), "providers": [msgspec.to_builtins(provider_run_object(p)) for p in providers]}
        print(msgspec.json.encode(out).decode())
        return 0
    for key in (
        "id",
        "status",
        "trigger",
        "requested_at",
        "started_at",
        "finished_at",
        "source_url",
        "sha256",
        "fallback_reason",
        "error",
        "added",
        "updated",
        "removed",
        "unchanged",
    ):
        print(f"{key:>16}: {run[key] if run[key] is not None else '-'}")
    print()
    _print_table(
        [
            [
                p["provider_id"],
                p["status"],
                str(p["attempts"]),
                f"+{p['added']} ~{p['updated']} -{p['removed']}",
                str(p["duration_ms"] or "-"),
                (p["error"] or "")[:80],
            ]
            for p in providers
        ],
        ["PROVIDER", "STATUS", "ATTEMPTS", "CHANGES", "MS", "ERROR"],
    )
    return 0


async def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from redis.asyncio import Redis

    from shared.db import runs
    from shared.schedule import read_state

    conn = await _connect(settings)
    try:
        st = await runs.catalog_status(conn)
    finally:
        await conn.close()
    schedule, redis_error = None, None
    client = Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)
    try:
        schedule = await read_state(client, settings.redis_prefix)
    except redis.exceptions.RedisError as e:
        redis_error = f"Redis unreachable at {_safe_url(settings.redis_url)}: {e}"
    finally:
        await client.aclose()
    loaded = st["last_loaded"]
    out = {
        "catalog_version": st["catalog_version"],
        "providers": st["providers"],
        "models": st["models"],
        "removed_models": st["removed_models"],
        "source": settings.modelsdev_url,
        "fallback_reason": loaded["fallback_reason"] if loaded else None,
        "last_run": _run_dict(st["last_run"]) if st["last_run"] else None,
        "last_success": _run_dict(st["last_success"]) if st["last_success"] else None,
        "interval": settings.refresh_interval,
        "next_run_at": schedule.next_run_at if schedule else None,
        "scheduler": schedule.leader if schedule else None,
        "warnings": [redis_error] if redis_error else [],
    }
    if args.json:
        print(msgspec.json.encode(out).decode())
        return 0
    for k, v in _status_lines(out, st, schedule, redis_error):
        print(f"{k:>16}: {v}")
    if redis_error:
        print(f"modelmeta: warning: {redis_error}", file=sys.stderr)
    return 0


def _status_lines(
    out: dict[str, Any], st: dict[str, Any], schedule: ScheduleState | None, redis_error: str | None
) -> list[tuple[str, str]]:
    """`modelmeta status` as (label, value) lines."""
    last, ok, loaded = st["last_run"], st["last_success"], st["last_loaded"]
    if schedule is None:
        next_run = "unknown (no scheduler is running)" if not redis_error else "unknown"
    elif schedule.next_run_at is None:
        next_run = "none (automatic refreshes are off)"
    else:
        next_run = _fmt_time(datetime.fromtimestamp(schedule.next_run_at, tz=UTC)) + " UTC"
    return [
        ("catalog version", str(out["catalog_version"])),
        ("catalog", f"{out['providers']} providers, {out['models']} models ({out['removed_models']} removed)"),
        ("source", out["source"]),
        ("loaded from", (loaded["source_url"] or "-") if loaded else "-"),
        ("fallback reason", out["fallback_reason"] or "-"),
        (
            "last run",
            f"{last['id']} {last['status']} at {_fmt_time(last['finished_at'] or last['requested_at'])}"
            if last
            else "none yet",
        ),
        ("last success", f"{ok['id']} at {_fmt_time(ok['finished_at'])}" if ok else "none yet"),
        ("next run", next_run),
        ("interval", f"{out['interval']:g} s"),
    ]


async def cmd_import_benchmarks(settings: Settings, args: argparse.Namespace) -> int:
    from redis.asyncio import Redis

    from shared.db.pool import create_pool
    from shared.errors import BadRequest
    from shared.model_scores import import_benchmarks, parse_benchmarks

    path = Path(args.file)
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as e:
        print(f"modelmeta: cannot read {path}: {e.strerror}", file=sys.stderr)
        return EXIT_FAILED
    csv_format = path.suffix.lower() == ".csv" or (args.format == "csv")
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    client = Redis.from_url(settings.redis_url, socket_connect_timeout=3)
    try:
        n = await import_benchmarks(pool, client, settings.redis_prefix, parse_benchmarks(data, csv_format=csv_format))
    except BadRequest as e:
        print(f"modelmeta: {path}: {e.detail}", file=sys.stderr)
        for name, reason in e.invalid_params[:20]:
            print(f"  {name}: {reason}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await client.aclose()
        await pool.close()
    print(f"imported {n} benchmark result(s) from {path}")
    return 0


async def cmd_import_history(settings: Settings, args: argparse.Namespace) -> int:
    """History (issue 13): dated models.dev documents replayed as refresh runs at their dates."""
    from shared.errors import HistoryImportError
    from shared.history import DatedDocument, dated_documents, import_history
    from shared.resources import close_context, open_context

    try:
        docs = dated_documents(args.files)
    except HistoryImportError as e:
        print(f"modelmeta: {e}", file=sys.stderr)
        return EXIT_FAILED

    def report(doc: DatedDocument, run: asyncpg.Record) -> None:
        print(
            f"{doc.at.isoformat().replace('+00:00', 'Z')}  {doc.path}: run {run['id']} {run['status']}, "
            f"+{run['added']} added, ~{run['updated']} updated, -{run['removed']} removed",
            flush=True,
        )

    ctx = await open_context(settings, client_name="import-history")
    try:
        await import_history(ctx, docs, report)
    except HistoryImportError as e:
        print(f"modelmeta: {e}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await close_context(ctx)
    print(f"imported {len(docs)} document(s)")
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from services.worker.main import run_worker

    return run_worker(settings, threads=args.threads)


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    from services.api.main import run_web

    return run_web(settings)


def cmd_scheduler(settings: Settings, args: argparse.Namespace) -> int:
    from services.scheduler.main import run_scheduler

    return run_scheduler(settings)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="modelmeta", description="A self-hosted mirror of the models.dev catalog.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations (the Procfile's release step)")
    r = sub.add_parser("refresh", help="enqueue a refresh run and print its id")
    r.add_argument("--provider", action="append", metavar="P", help="only this provider (repeatable)")
    r.add_argument("--force", action="store_true", help="refetch and resync even if unchanged")
    r.add_argument("--wait", action="store_true", help="follow the run until it ends; exit 0 if it succeeded")
    r.add_argument("--json", action="store_true", help="print JSON")
    runs = sub.add_parser("runs", help="list recent runs")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true", help="print JSON")
    one = sub.add_parser("run", help="show one run with its providers")
    one.add_argument("run_id", type=int)
    one.add_argument("--json", action="store_true", help="print JSON")
    w = sub.add_parser("worker", help="run a dramatiq worker (one process; run more of them to scale)")
    w.add_argument("--threads", type=int, default=8, help="worker threads (default: 8)")
    st = sub.add_parser("status", help="catalog version and size, last and next run, source")
    st.add_argument("--json", action="store_true", help="print JSON")
    ib = sub.add_parser("import-benchmarks", help="import benchmark results from a JSON or CSV file")
    ib.add_argument("file", help="a JSON list or a CSV file (model, benchmark, score, metric, source, date)")
    ib.add_argument("--format", choices=("json", "csv"), help="default: by the file's extension")
    # history (issue 13)
    ih = sub.add_parser(
        "import-history", help="load dated models.dev documents, oldest first, as the catalog's history"
    )
    ih.add_argument(
        "files",
        nargs="+",
        metavar="FILE[@TIME]",
        help="a models.dev api.json dated by the first YYYY-MM-DD in its name (its midnight, UTC), "
        "or FILE@2026-04-16T00:00:00Z; oldest first, all after the newest change already recorded",
    )
    sub.add_parser("web", help="run the HTTP API on $PORT ($WEB_CONCURRENCY processes, default 1)")
    sub.add_parser("scheduler", help="run the periodic refresh scheduler")
    add_webhooks_parser(sub)  # change notifications (issue 12)
    return p


_ASYNC: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "migrate": cmd_migrate,
    "refresh": cmd_refresh,
    "runs": cmd_runs,
    "run": cmd_run,
    "status": cmd_status,
    "import-benchmarks": cmd_import_benchmarks,
    "import-history": cmd_import_history,
    "webhooks": cmd_webhooks,  # change notifications (issue 12)
}
_SYNC: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "worker": cmd_worker,
    "web": cmd_web,
    "scheduler": cmd_scheduler,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as e:
        print(f"modelmeta: configuration error: {e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    from shared.logging import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    if args.command in _SYNC:
        # The long-running processes start after the release step, even when started beside it.
        from migrations import SchemaBehind, wait_for_schema

        try:
            asyncio.run(wait_for_schema(settings.database_url))
        except SchemaBehind as e:
            print(f"modelmeta: {e}", file=sys.stderr)
            return EXIT_FAILED
        except (OSError, asyncpg.PostgresError) as e:
            print(f"modelmeta: cannot reach PostgreSQL at {_safe_url(settings.database_url)}: {e}", file=sys.stderr)
            return EXIT_UNREACHABLE
        return _SYNC[args.command](settings, args)
    started = time.monotonic()
    try:
        return asyncio.run(_ASYNC[args.command](settings, args))
    except (redis.exceptions.ConnectionError, dramatiq.errors.BrokerConnectionError) as e:
        print(f"modelmeta: cannot reach Redis at {_safe_url(settings.redis_url)}: {e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InvalidCatalogNameError, TimeoutError) as e:
        print(f"modelmeta: cannot reach PostgreSQL at {_safe_url(settings.database_url)}: {e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        print(f"\nmodelmeta: interrupted after {time.monotonic() - started:.1f}s", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

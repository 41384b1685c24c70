"""The catalog in time: instants as the API and the CLI take them, and import-history, which
replays dated models.dev documents through the refresh pipeline, each as a run at its date."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import asyncpg
import structlog

from shared import refresh
from shared.db import history as history_db
from shared.db import runs as runs_db
from shared.enums import RunStatus, Trigger
from shared.errors import HistoryImportError
from shared.resources import RefreshContext
from shared.sources import Fetched

log = structlog.get_logger(__name__)

_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
# RFC 3339 date-time; a space for the offset's `+` is how an unencoded `+` arrives in a query string.
_INSTANT = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+\- ])(\d{2}):(\d{2}))")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date") from None


def parse_instant(value: str, *, clamp: bool = False) -> datetime:
    """An RFC 3339 date-time as an aware UTC datetime; ValueError says what is wrong. clamp: a
    time beyond the range of datetime is its first or last instant instead of an error."""
    m = _INSTANT.fullmatch(value)
    if m is None:
        raise ValueError(f"expected an RFC 3339 time such as 2026-04-16T12:00:00Z, got {value!r}")
    day, hour, minute, second = _date(m[1]), int(m[2]), int(m[3]), int(m[4])
    if hour > 23 or minute > 59 or second > 60:
        raise ValueError(f"{value!r} is not a time of day")
    offset = timedelta()
    if m[7] is not None:
        if int(m[8]) > 23 or int(m[9]) > 59:
            raise ValueError(f"{value!r} has no valid UTC offset")
        offset = timedelta(hours=int(m[8]), minutes=int(m[9])) * (-1 if m[7] == "-" else 1)
    micro = int((m[5] or "0")[:6].ljust(6, "0"))
    # A leap second (:60) is the instant after :59.999999; the offset is taken away in UTC.
    local = datetime.combine(day, time(hour, minute, min(second, 59), micro), UTC)
    try:
        return local + timedelta(seconds=second - min(second, 59)) - offset
    except OverflowError:
        if clamp:
            return datetime.min.replace(tzinfo=UTC) if local.year == 1 else datetime.max.replace(tzinfo=UTC)
        raise ValueError(f"{value!r} is out of the range of supported times") from None


def parse_at(value: str) -> datetime:
    """`at=`: an RFC 3339 instant, or a YYYY-MM-DD date meaning the end of that day (UTC); any
    valid one is an instant (one before year 1 in UTC is the first, as one after 9999 the last)."""
    if _DATE.fullmatch(value):
        return datetime.combine(_date(value), time.max, UTC)
    if not _INSTANT.fullmatch(value):
        raise ValueError(f"expected an RFC 3339 time (2026-04-16T12:00:00Z) or a date (2026-04-16), got {value!r}")
    return parse_instant(value, clamp=True)


@dataclass(frozen=True, slots=True)
class DatedDocument:
    """A models.dev document to import, and the time of the changes it makes."""

    path: Path
    at: datetime


def _dated(spec: str) -> DatedDocument:
    name, sep, when = spec.rpartition("@")
    if sep and _DATE.match(when):  # FILE@2026-04-16T00:00:00Z (or FILE@2026-04-16: its midnight)
        at = datetime.combine(_date(when), time(), UTC) if _DATE.fullmatch(when) else parse_instant(when)
        return DatedDocument(Path(name), at)
    found = _DATE.search(Path(spec).name)
    if found is None:
        raise ValueError(f"{spec}: no date in its name; name it with its YYYY-MM-DD, or give FILE@2026-04-16T00:00:00Z")
    return DatedDocument(Path(spec), datetime.combine(_date(found[0]), time(), UTC))


def dated_documents(specs: Sequence[str]) -> list[DatedDocument]:
    """The documents named by FILE or FILE@TIME arguments, given oldest first, each later than the
    one before (a catalog has one state at each instant) and none in the future; HistoryImportError
    lists every problem."""
    problems: list[str] = []
    docs: list[DatedDocument] = []
    for spec in specs:
        try:
            doc = _dated(spec)
        except ValueError as e:
            problems.append(str(e))
            continue
        if not doc.path.is_file():
            problems.append(f"{doc.path}: no such file")
        if doc.at > datetime.now(UTC):
            problems.append(f"{doc.path} is dated {_iso(doc.at)}, in the future")
        if docs and doc.at <= docs[-1].at:
            problems.append(
                f"{doc.path} ({_iso(doc.at)}) is not later than {docs[-1].path} ({_iso(docs[-1].at)}): "
                "give the files oldest first, each with its own time"
            )
        docs.append(doc)
    if problems:
        raise HistoryImportError("nothing imported: " + "; ".join(problems))
    return docs


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def import_history(
    ctx: RefreshContext,
    docs: Sequence[DatedDocument],
    on_run: Callable[[DatedDocument, asyncpg.Record], None] = lambda doc, run: None,
) -> list[asyncpg.Record]:
    """Load each document, oldest first, as a refresh run (trigger `import`) whose changes and
    versions carry the document's time. Refuses before writing anything when a document is not
    later than the newest change recorded; stops at a document that cannot be loaded, the ones
    before it committed. Returns the closed runs."""
    newest = await history_db.newest_change(ctx.pool)
    if docs and newest is not None and docs[0].at <= newest:
        raise HistoryImportError(
            f"nothing imported: {docs[0].path} is dated {_iso(docs[0].at)}, not after the newest change "
            f"already recorded ({_iso(newest)}); history can only be added after it (import into a new "
            "database, before its first refresh)"
        )
    runs = []
    for doc in docs:
        run = await _import_one(ctx, doc)
        on_run(doc, run)
        runs.append(run)
        if run["status"] not in (RunStatus.SUCCEEDED, RunStatus.UNCHANGED):
            raise HistoryImportError(
                f"{doc.path}: run {run['id']} {run['status']}: {run['error'] or 'see the run'}; "
                f"stopped there ({len(runs) - 1} earlier file(s) imported)"
            )
    return runs


async def _import_one(ctx: RefreshContext, doc: DatedDocument) -> asyncpg.Record:
    try:
        body = await asyncio.to_thread(doc.path.read_bytes)
    except OSError as e:
        raise HistoryImportError(f"{doc.path}: cannot read it: {e.strerror}; stopped there") from None
    async with ctx.pool.acquire() as conn, conn.transaction():
        run, created = await runs_db.create_or_join_run(conn, trigger=Trigger.IMPORT, providers=None, force=False)
        if not created:
            raise HistoryImportError(
                f"{doc.path}: refresh run {run['id']} is in progress; import-history needs the catalog to "
                "itself: run it again when that run has finished"
            )
        await history_db.set_run_changes_at(conn, run["id"], doc.at)
    log.info("history_import_started", run_id=run["id"], file=str(doc.path), at=_iso(doc.at))
    try:
        document = Fetched(url=doc.path.resolve().as_uri(), body=body, etag=None)
        for provider_id in await refresh.plan_refresh(ctx, run["id"], document=document):
            await refresh.sync_provider(ctx, run["id"], provider_id)
    except BaseException:
        # Interrupted (or a database error): close the run so that nothing resends its work later.
        await refresh.fail_run(ctx.pool, run["id"], f"import-history of {doc.path} stopped before the run finished")
        raise
    final = await runs_db.get_run(ctx.pool, run["id"])
    assert final is not None
    return final

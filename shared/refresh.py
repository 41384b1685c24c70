"""The refresh pipeline's logic: request a run, plan it, sync one provider, close the run.

The dramatiq actors in services/worker are thin wrappers around these functions; everything here
takes its resources explicitly (shared.resources) and is safe to run twice for the same message.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
import structlog

from shared import events
from shared.canonical import (
    CANONICAL_PROVIDER,
    card_segment,
    change_view,
    lists_no_cards,
    models_document_hash,
    parse_models_document,
)
from shared.catalog import (
    ModelRecord,
    ProviderRecord,
    decode_changed_models,
    diff_states,
    field_changes,
    model_row,
    parse_document,
    sha256_hex,
)
from shared.config import Settings
from shared.db import Conn, canonical_writes, catalog_writes, runs
from shared.db import history as history_db
from shared.embedded import EMBEDDED_MODELS, EMBEDDED_MODELS_URL, EMBEDDED_URL, document, embedded_catalog
from shared.enums import ChangeKind, ProviderRunStatus, RunStatus, SourceKind, SyncStatus, Trigger
from shared.errors import IntegrityGuardTripped, MalformedDocument, UpstreamError, UpstreamUnavailable
from shared.metrics import INVALIDATIONS, PROVIDER_FAILURES, PROVIDER_SYNCS, REFRESH_DURATION
from shared.resources import RefreshContext
from shared.sources import (
    Fetched,
    ModelmetaSource,
    document_request_url,
    models_document_url,
    parse_provider_listing,
)
from shared.webhooks.outbox import enqueue_deliveries

log = structlog.get_logger(__name__)

#: A provider to sync: (provider_id, its slice of the source or None when it vanished, slice hash).
ProviderWork = tuple[str, bytes | None, str | None]


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What one sync_provider call did."""

    status: SyncStatus
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    catalog_version: int | None = None
    #: This call finished the run's last pending provider: the run is to be closed.
    last_provider: bool = False
    #: The run's final status, when this call closed it.
    run_closed: RunStatus | None = None
    #: The providers whose cached answers this sync made stale, when not just its own.
    invalidate: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Loaded:
    """The source as fetched (body None: not modified), or the embedded catalog in its place."""

    fetched: Fetched
    kind: SourceKind
    fallback_reason: str | None = None
    #: The source is what the last good run loaded (sha256), and only its models document is new.
    unchanged_sha256: str | None = None
    #: sha256 of the body (None when not modified).
    digest: str | None = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        body = self.fetched.body
        object.__setattr__(self, "digest", sha256_hex(body) if body is not None else None)


@dataclass(frozen=True, slots=True)
class _Cards:
    """What a run does with the models document: sync it (`work`, with where it came from), or
    record that it could not be read (`error`)."""

    work: ProviderWork | None = None
    url: str | None = None
    etag: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Parsed:
    """Per provider: its part of the source and the hash that says whether it changed."""

    items: Mapping[str, bytes]
    hashes: Mapping[str, str]
    model_count: int


async def request_refresh(
    pool: asyncpg.Pool,
    *,
    trigger: Trigger,
    providers: Sequence[str] | None = None,
    force: bool = False,
    idempotency_key: str | None = None,
) -> tuple[asyncpg.Record, bool]:
    """Create a queued run, or join the open run of the same scope; True when created."""
    async with pool.acquire() as conn:
        return await runs.create_or_join_run(
            conn, trigger=trigger, providers=providers, force=force, idempotency_key=idempotency_key
        )


async def fail_run(pool: asyncpg.Pool, run_id: int, error: str) -> None:
    """Close a run that could not go on, with the reason."""
    async with pool.acquire() as conn:
        await runs.finish_run(conn, run_id, RunStatus.FAILED, error=error)


def source_of(settings: Settings) -> tuple[SourceKind, str]:
    """The kind of the upstream and the URL that plan_refresh fetches."""
    kind = settings.resolved_source_kind
    if kind == SourceKind.MODELMETA:
        return kind, ModelmetaSource.providers_url_of(settings.modelsdev_url)
    return kind, document_request_url(settings.modelsdev_url)


async def plan_refresh(ctx: RefreshContext, run_id: int, *, document: Fetched | None = None) -> list[str]:
    """Fetch and validate the source, then record one provider-run per provider to sync.

    Returns the providers whose sync_provider messages must be sent (again, on redelivery).
    Errors of the source close the run as failed and change nothing; RateLimited propagates so
    that the actor retries later. `document`: a models.dev document to load instead of fetching
    the source (import-history).
    """
    kind, url = source_of(ctx.settings)
    if document is not None:  # history (issue 13): a dated document handed in, not the source
        kind, url = SourceKind.DOCUMENT, document.url
    async with ctx.pool.acquire() as conn:
        run = await runs.start_run(conn, run_id)
        if run is None:
            log.info("plan_skipped", run_id=run_id, reason="run already finished")
            return []
        planned = await runs.has_provider_runs(conn, run_id)
        pending = await runs.pending_providers(conn, run_id) if planned else []
        # A handed-in document is always compared provider by provider (history: issue 13).
        force = run["force"] or document is not None
        etag, good_sha256 = (None, None) if force else await runs.last_good_source(conn, url)
        catalog_empty = await catalog_writes.catalog_is_empty(conn)
    if planned:  # a redelivered message: send what is pending again, or close what nothing holds open
        if not pending:
            await close_run(ctx, run_id)
        return pending
    loaded = (
        _Loaded(document, kind)
        if document is not None
        else await _load(ctx, run_id, kind, url, etag=etag, catalog_empty=catalog_empty)
    )
    if loaded is None:
        return []
    # The models document (canonical models) of a whole-catalog run from the source, not of an import.
    whole = document is None and run["scope"] is None
    cards = await _load_cards(ctx, run_id, loaded, force=run["force"]) if whole else None
    # A models document that could not be read does not make an unchanged catalog's run fail: the
    # run ends unchanged with the reason (and the catalog's ETag stays the one to ask with).
    unread = cards.error if cards is not None else None
    if (cards is None or unread) and await _finish_if_unchanged(ctx, run_id, loaded, good_sha256, error=unread):
        return []
    if loaded.fetched.body is None or loaded.digest == good_sha256:  # only the models document is new
        parsed: _Parsed | None = _Parsed({}, {}, 0)
        loaded = dataclasses.replace(loaded, unchanged_sha256=good_sha256)
    else:
        parsed = await _parse(ctx, run_id, loaded)
    if parsed is None:
        return []
    return await _record_plan(ctx, run_id, loaded, parsed, cards, scope=run["scope"], force=run["force"])


async def _load(
    ctx: RefreshContext, run_id: int, kind: SourceKind, url: str, *, etag: str | None, catalog_empty: bool
) -> _Loaded | None:
    """Fetch the source; with nothing stored and no upstream, the embedded catalog instead.

    None when the run ended here (failed, or nothing to fetch from).
    """
    if not ctx.settings.upstream_enabled:
        if catalog_empty:
            return _embedded("the upstream is disabled (MODELSDEV_ENABLED=false) and the catalog is empty")
        async with ctx.pool.acquire() as conn:
            await runs.finish_run(conn, run_id, RunStatus.UNCHANGED)
        log.info("run_unchanged", run_id=run_id, reason="the upstream is disabled (MODELSDEV_ENABLED=false)")
        return None
    try:
        return _Loaded(await ctx.fetcher.get(url, etag=etag), kind)
    except UpstreamUnavailable as e:
        if catalog_empty:
            log.warning("upstream_unreachable_loading_embedded", run_id=run_id, error=str(e))
            return _embedded(f"upstream unreachable and the catalog is empty: {e}")
        error: UpstreamError = e
    except UpstreamError as e:
        error = e
    log.warning("plan_failed", run_id=run_id, error=str(error))
    await fail_run(ctx.pool, run_id, str(error))
    return None


async def _load_cards(ctx: RefreshContext, run_id: int, loaded: _Loaded, *, force: bool) -> _Cards | None:
    """Fetch the models document beside the catalog (models.dev's `/models.json`, or another
    modelmeta's canonical models), conditionally; None when there is nothing to sync: it is
    unchanged, or the upstream has none and none is stored. A 404 is not an error."""
    stored, stored_url, stored_etag = await canonical_writes.stored_source(ctx.pool)
    try:
        if loaded.fetched.url == EMBEDDED_URL:
            fetched = Fetched(EMBEDDED_MODELS_URL, document(EMBEDDED_MODELS), None)
        elif loaded.kind == SourceKind.MODELMETA:
            fetched = await ModelmetaSource(ctx.fetcher, ctx.settings.modelsdev_url).canonical_models()
        else:
            url = models_document_url(loaded.fetched.url)
            etag = stored_etag if stored and stored_url == url and not force else None
            fetched = await ctx.fetcher.get(url, etag=etag, missing_ok=True)
    except UpstreamError as e:
        log.warning("models_document_failed", run_id=run_id, error=str(e))
        return _Cards(error=f"the models document could not be read: {e}")
    if fetched.missing:
        log.info("models_document_absent", run_id=run_id, url=fetched.url, stored=bool(stored))
        return _Cards(work=(CANONICAL_PROVIDER, None, None), url=fetched.url) if stored else None
    if fetched.body is None:  # 304
        return None
    digest = models_document_hash(fetched.body)
    if (digest == stored and not force) or (not stored and lists_no_cards(fetched.body)):
        return None  # unchanged, or none stored and none served (another modelmeta without cards)
    return _Cards(work=(CANONICAL_PROVIDER, fetched.body, digest), url=fetched.url, etag=fetched.etag)


def _embedded(reason: str) -> _Loaded:
    """The real models.dev catalog shipped in the package, loaded for `reason`."""
    return _Loaded(Fetched(EMBEDDED_URL, embedded_catalog(), None), SourceKind.DOCUMENT, fallback_reason=reason)


async def _finish_if_unchanged(
    ctx: RefreshContext, run_id: int, loaded: _Loaded, good_sha256: str | None, *, error: str | None = None
) -> bool:
    """End the run as unchanged when the source has nothing new (a 304, or the very document the
    last good run loaded: a file, or an upstream without ETags), noting `error` (what else could
    not be read); True when it did."""
    fetched, digest = loaded.fetched, loaded.digest
    if digest is None:
        reason, digest = "304 Not Modified", good_sha256
    elif digest == good_sha256:
        reason = "same document as the last good run"
    else:
        return False
    async with ctx.pool.acquire() as conn:
        await runs.finish_run(
            conn, run_id, RunStatus.UNCHANGED, error=error, source_url=fetched.url, etag=fetched.etag, sha256=digest
        )
    log.info("run_unchanged", run_id=run_id, reason=reason, sha256=digest, error=error)
    return True


async def _parse(ctx: RefreshContext, run_id: int, loaded: _Loaded) -> _Parsed | None:
    """Validate the body: per provider, its slice of the document, or (another modelmeta) its own
    object, whose models sync_provider fetches. None when the run failed on a malformed body."""
    body = loaded.fetched.body
    assert body is not None
    try:
        if loaded.kind == SourceKind.DOCUMENT:
            doc = parse_document(body)
            return _Parsed(doc.slices, doc.slice_hashes, doc.model_count)
        listing = parse_provider_listing(body)
        return _Parsed(listing.providers, listing.hashes, listing.model_count)
    except MalformedDocument as e:
        log.warning("plan_failed", run_id=run_id, error=str(e), sha256=loaded.digest)
        async with ctx.pool.acquire() as conn:
            await runs.finish_run(
                conn, run_id, RunStatus.FAILED, error=str(e), source_url=loaded.fetched.url, sha256=loaded.digest
            )
        return None


def providers_to_sync(
    parsed: _Parsed, stored: Mapping[str, str], *, scope: Sequence[str] | None, force: bool
) -> list[ProviderWork]:
    """The providers (of the scope, or all) that are new, changed, or vanished from the source."""
    wanted = set(scope) if scope else set(parsed.items) | set(stored)
    todo: list[ProviderWork] = []
    for pid in sorted(wanted):
        if pid in parsed.items:
            h = parsed.hashes[pid]
            if force or stored.get(pid) != h:
                todo.append((pid, parsed.items[pid], h))
        elif pid in stored:
            todo.append((pid, None, None))  # vanished from the source
    return todo


async def _integrity_guard(conn: Conn, model_count: int) -> IntegrityGuardTripped | None:
    """Refuse a document that lists under half of the models listed now (unless forced, or what
    is listed is the embedded catalog standing in for an upstream that was away)."""
    listed = await catalog_writes.listed_model_count(conn)
    if model_count * 2 >= listed or await runs.catalog_is_fallback(conn):
        return None
    return IntegrityGuardTripped(
        f"the source lists {model_count} models, under half of the {listed} listed now; "
        "refusing it (force a refresh to accept it)"
    )


async def _record_plan(
    ctx: RefreshContext,
    run_id: int,
    loaded: _Loaded,
    parsed: _Parsed,
    cards: _Cards | None,
    *,
    scope: list[str] | None,
    force: bool,
) -> list[str]:
    """In one transaction: the guard, the snapshot and one provider-run per provider to sync (and
    one for the models document, `@models`, when it is to be synced or could not be read)."""
    if loaded.unchanged_sha256 is not None:
        return await _record_cards_plan(ctx, run_id, loaded, cards)
    fetched, digest = loaded.fetched, loaded.digest
    assert fetched.body is not None
    assert digest is not None
    async with ctx.pool.acquire() as conn, conn.transaction():
        refused = None if scope is not None or force else await _integrity_guard(conn, parsed.model_count)
        if refused is not None:
            log.warning("plan_failed", run_id=run_id, error=str(refused))
            await runs.finish_run(
                conn, run_id, RunStatus.FAILED, error=str(refused), source_url=fetched.url, sha256=digest
            )
            return []
        stored = await catalog_writes.listed_provider_hashes(conn)
        todo = providers_to_sync(parsed, stored, scope=scope, force=force)
        snapshot_id = await runs.store_snapshot(
            conn, sha256=digest, source_url=fetched.url, etag=fetched.etag, body=fetched.body
        )
        todo, pending = await _fan_out(conn, run_id, loaded, todo, cards, snapshot_id=snapshot_id, sha256=digest)
    if pending == 0 and todo:  # only the models document, which could not be read: the run ends here
        await close_run(ctx, run_id)
        return []
    log.info(
        "run_planned",
        run_id=run_id,
        providers=len(todo),
        models=parsed.model_count,
        sha256=digest,
        kind=loaded.kind,
        fallback=loaded.fallback_reason,
    )
    return [pid for pid, _, _ in todo if cards is None or cards.error is None or pid != CANONICAL_PROVIDER]


async def _record_cards_plan(ctx: RefreshContext, run_id: int, loaded: _Loaded, cards: _Cards | None) -> list[str]:
    """The plan of a run whose catalog is what the last good run loaded and whose models document
    is new (or could not be read): the `@models` provider-run only, and the last run's source."""
    assert cards is not None
    async with ctx.pool.acquire() as conn, conn.transaction():
        _, pending = await _fan_out(conn, run_id, loaded, [], cards, snapshot_id=None, sha256=loaded.unchanged_sha256)
    log.info("run_planned", run_id=run_id, providers=0, models_document=cards.error or "changed")
    if pending == 0:
        await close_run(ctx, run_id)
        return []
    return [CANONICAL_PROVIDER]


async def _fan_out(
    conn: Conn,
    run_id: int,
    loaded: _Loaded,
    todo: list[ProviderWork],
    cards: _Cards | None,
    *,
    snapshot_id: int | None,
    sha256: str | None,
) -> tuple[list[ProviderWork], int]:
    """Record the provider-runs (the models document's first) and the run's source; a models document
    that could not be read is a failed provider-run from the start. Returns the provider-runs and
    how many are pending; with none at all, the run is unchanged."""
    if cards is not None:
        # First: cards stored before the offerings are written link them as they are inserted.
        todo = [cards.work or (CANONICAL_PROVIDER, None, ""), *todo]
        await canonical_writes.record_run_models_source(conn, run_id, cards.url or "", cards.etag)
    fetched = loaded.fetched
    await runs.fan_out(
        conn,
        run_id,
        todo,
        snapshot_id=snapshot_id,
        source_url=fetched.url,
        source_kind=loaded.kind,
        etag=fetched.etag,
        sha256=sha256,
        fallback_reason=loaded.fallback_reason,
    )
    pending = len(todo)
    if cards is not None and cards.error is not None:
        pending = await runs.complete_provider_run(
            conn, run_id, CANONICAL_PROVIDER, status=ProviderRunStatus.FAILED, duration_ms=0, error=cards.error
        )
    if not todo:
        await runs.finish_run(conn, run_id, RunStatus.UNCHANGED)
    return todo, pending


async def sync_provider(ctx: RefreshContext, run_id: int, provider_id: str) -> SyncOutcome:
    """Bring one provider's stored models in line with its slice, in one transaction."""
    started = time.monotonic()
    # A per-provider source: fetch this provider's models first, outside any transaction.
    fetched = await _fetch_provider_models(ctx, run_id, provider_id)
    async with ctx.pool.acquire() as conn, conn.transaction():
        pr = await runs.lock_provider_run(conn, run_id, provider_id)
        if pr is None:
            outcome = SyncOutcome(SyncStatus.SKIPPED)
        else:
            # Two runs touching one provider take turns, each diffing against committed state.
            await runs.lock_provider_for_sync(conn, provider_id)
            slice_, slice_hash = fetched or (pr["slice"], pr["slice_hash"])
            try:
                if provider_id == CANONICAL_PROVIDER:
                    outcome = await _apply_cards(conn, run_id, slice_, slice_hash, started)
                else:
                    await canonical_writes.hold_links_shared(conn)
                    outcome = await _apply_slice(conn, run_id, provider_id, slice_, slice_hash, started)
            except (MalformedDocument, IntegrityGuardTripped) as e:
                outcome = await _fail_provider(conn, run_id, provider_id, e, started)
    return await _after_commit(ctx, run_id, provider_id, outcome)


async def _fail_provider(conn: Conn, run_id: int, provider_id: str, error: Exception, started: float) -> SyncOutcome:
    """Bad data does not get better on retry: fail this provider, keep the others."""
    log.warning("provider_malformed", run_id=run_id, provider_id=provider_id, error=str(error))
    pending = await runs.complete_provider_run(
        conn, run_id, provider_id, status=ProviderRunStatus.FAILED, duration_ms=_ms_since(started), error=str(error)
    )
    return SyncOutcome(SyncStatus.FAILED, last_provider=pending == 0)


#: Up to this many providers to sync, a plan sends one message each (a catalog of today's size,
#: ~150 providers, has fewer than that changed on most refreshes); beyond, they are spread over at
#: most this many messages (work for every worker thread), each synced in one transaction with one
#: catalog version, at most BATCH_MAX providers to a message: with 5% of 100,000 models changed
#: across 1,000 providers (825 of them changed), 64 commits instead of 825 (issue 14).
MAX_MESSAGES = 64
BATCH_MAX = 50


def sync_batches(providers: Sequence[str]) -> list[list[str]]:
    """The sync messages of a plan's providers: the models document alone, the others in batches."""
    others = [pid for pid in providers if pid != CANONICAL_PROVIDER]
    size = min(BATCH_MAX, max(1, -(-len(others) // MAX_MESSAGES)))
    alone = [[pid] for pid in providers if pid == CANONICAL_PROVIDER]
    return alone + [others[i : i + size] for i in range(0, len(others), size)]


async def syncs_in_batches(ctx: RefreshContext, run_id: int) -> bool:
    """Whether a run's providers sync in batches: those of a document (a per-provider source fetches
    each provider's models in its own message)."""
    return await runs.run_source_kind(ctx.pool, run_id) == SourceKind.DOCUMENT


async def sync_providers(ctx: RefreshContext, run_id: int, provider_ids: Sequence[str]) -> list[SyncOutcome]:
    """Bring several providers of a document's run in line with their slices in one transaction,
    with one catalog version for what they changed (a refresh that changes a few models of many
    providers commits a few times, not once per provider). A provider whose slice is malformed
    fails alone; any other error rolls the whole batch back and propagates (the worker then syncs
    its providers one by one). The models document and a per-provider source sync one by one."""
    ids = sorted(set(provider_ids))  # every batch takes its locks in this one order
    one_by_one = len(ids) == 1 or CANONICAL_PROVIDER in ids
    if one_by_one or await runs.run_source_kind(ctx.pool, run_id) != SourceKind.DOCUMENT:
        return [await sync_provider(ctx, run_id, pid) for pid in ids]
    started = time.monotonic()
    done: list[tuple[str, SyncOutcome]] = []
    async with ctx.pool.acquire() as conn, conn.transaction():
        slices, failed = [], []
        for pid, slice_, slice_hash in await _lock_batch(conn, run_id, ids):
            try:
                slices.append(await _read_slice(conn, pid, slice_, slice_hash, started))
            except MalformedDocument as e:
                failed.append((pid, e))
        if slices:
            done.extend(zip([s.provider_id for s in slices], await _apply_slices(conn, run_id, slices), strict=True))
        # After the version's row lock, the order in which every sync takes the run's row lock.
        done.extend([(pid, await _fail_provider(conn, run_id, pid, e, started)) for pid, e in failed])
    return await _after_batch_commit(ctx, run_id, done, skipped=[pid for pid in ids if pid not in dict(done)])


async def _lock_batch(conn: Conn, run_id: int, provider_ids: Sequence[str]) -> list[ProviderWork]:
    """Lock the batch's pending provider-runs and its providers' syncs (as sync_provider does, in
    the order given); the work of those still pending."""
    work: list[ProviderWork] = []
    for pid in provider_ids:
        pr = await runs.lock_provider_run(conn, run_id, pid)
        if pr is not None:
            await runs.lock_provider_for_sync(conn, pid)
            work.append((pid, pr["slice"], pr["slice_hash"]))
    if work:
        await canonical_writes.hold_links_shared(conn)
    return work


async def _after_batch_commit(
    ctx: RefreshContext, run_id: int, done: list[tuple[str, SyncOutcome]], *, skipped: list[str]
) -> list[SyncOutcome]:
    """_after_commit for a batch: one invalidation for the providers it changed, one planning of
    webhook deliveries, and the run closed when its last provider was among them (or when some
    were already done: a redelivered message whose worker may have died before closing it)."""
    for pid, outcome in done:
        PROVIDER_SYNCS.labels(outcome.status).inc()
        _log_synced(run_id, pid, outcome)
    if skipped:
        PROVIDER_SYNCS.labels(SyncStatus.SKIPPED).inc(len(skipped))
    versions = [o.catalog_version for _, o in done if o.catalog_version is not None]
    if versions:
        changed = [pid for pid, o in done if o.catalog_version is not None]
        await publish_invalidation(ctx, max(versions), changed, run_id)
    if versions or skipped:
        await enqueue_deliveries(ctx.pool, ctx.sender.deliver_changes, run_id=run_id, providers=len(done))
    outcomes = [o for _, o in done] + [SyncOutcome(SyncStatus.SKIPPED)] * len(skipped)
    if skipped or any(o.last_provider for o in outcomes):
        closed = await close_run(ctx, run_id)
        outcomes = [dataclasses.replace(o, run_closed=closed) for o in outcomes]
    return outcomes


async def _fetch_provider_models(ctx: RefreshContext, run_id: int, provider_id: str) -> tuple[bytes, str] | None:
    """With another modelmeta as the source: this provider's object with its models, and its
    hash. None for a document source (the slice is stored with the provider-run)."""
    if provider_id == CANONICAL_PROVIDER:  # the models document was read whole by plan_refresh
        return None
    pending = await runs.peek_provider_run(ctx.pool, run_id, provider_id)
    if pending is None or pending["source_kind"] != SourceKind.MODELMETA or pending["slice_hash"] is None:
        return None
    source = ModelmetaSource(ctx.fetcher, pending["source_url"].removesuffix("/providers"))
    models, content_hash = await source.provider_models(provider_id, pending["slice_hash"])
    provider_object = msgspec.json.decode(pending["slice"])
    return msgspec.json.encode({**provider_object, "models": models}), content_hash


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


@dataclass(slots=True)
class _Slice:
    """One provider's slice decoded and diffed against its stored models, then written."""

    provider_id: str
    provider: ProviderRecord | None  # None: it vanished from the source
    slice_hash: str | None
    incoming: dict[str, ModelRecord]  # the models whose bytes are not as stored, decoded
    added: list[str]
    updated: list[str]
    removed: list[str]
    kept: int  # listed models whose bytes hash as stored: neither decoded nor written
    started: float
    provider_changed: bool = False
    old_raws: dict[str, Any] = dataclasses.field(default_factory=dict)  # of the updated models

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.provider_changed)

    def counts(self) -> tuple[int, int, int, int]:
        """(added, updated, removed, unchanged)."""
        unchanged = len(self.incoming) + self.kept - len(self.added) - len(self.updated)
        return len(self.added), len(self.updated), len(self.removed), unchanged

    def change_rows(self, run_id: int, version: int) -> list[tuple[Any, ...]]:
        """Its change-log rows (CHANGE_COLUMNS order) in `version`."""
        pid = self.provider_id
        rows: list[tuple[Any, ...]] = [(run_id, pid, mid, ChangeKind.ADDED, None, version) for mid in self.added]
        rows.extend(
            (run_id, pid, mid, ChangeKind.UPDATED, field_changes(self.old_raws[mid], self.incoming[mid].raw), version)
            for mid in self.updated
        )
        rows.extend((run_id, pid, mid, ChangeKind.REMOVED, None, version) for mid in self.removed)
        return rows


async def _apply_slice(
    conn: Conn,
    run_id: int,
    provider_id: str,
    slice_: bytes | None,
    slice_hash: str | None,
    started: float,
) -> SyncOutcome:
    """Write one provider's slice (None: it vanished) and its change log; mark its provider-run done."""
    read = await _read_slice(conn, provider_id, slice_, slice_hash, started)
    return (await _apply_slices(conn, run_id, [read]))[0]


async def _read_slice(
    conn: Conn, provider_id: str, slice_: bytes | None, slice_hash: str | None, started: float
) -> _Slice:
    """Decode a slice (None: the provider vanished) and diff it against the stored models; raises
    MalformedDocument, before anything is written."""
    states = await catalog_writes.model_states(conn, provider_id)
    provider: ProviderRecord | None = None
    incoming: dict[str, ModelRecord] = {}
    kept: list[str] = []
    if slice_ is not None:
        # A listed model whose bytes hash as stored is unchanged: it is neither decoded nor written.
        provider, incoming, kept = decode_changed_models(
            provider_id, slice_, lambda mid, digest: mid in states and states[mid][1] and states[mid][2] == digest
        )
    added, updated, removed = diff_states(states, incoming, kept)
    return _Slice(provider_id, provider, slice_hash, incoming, added, updated, removed, len(kept), started)


async def _apply_slices(conn: Conn, run_id: int, slices: Sequence[_Slice]) -> list[SyncOutcome]:
    """Write read slices, then (when any changed) take one catalog version for all of them with
    their change log and versions; mark their provider-runs done, in the order of `slices`."""
    changes_at = await history_db.run_changes_at(conn, run_id)  # history (issue 13): an import's date or None
    await _write_slices(conn, slices, changes_at)
    version = await _record_changes(conn, run_id, slices, changes_at)
    started = min(s.started for s in slices)
    pending = await runs.complete_provider_runs(
        conn, run_id, [(s.provider_id, s.counts()) for s in slices], duration_ms=_ms_since(started)
    )
    # The last of them closes the run's last provider-run when none is pending after them all.
    return [
        SyncOutcome(
            SyncStatus.SUCCEEDED,
            *s.counts(),
            version if s.changed else None,
            last_provider=pending == 0 and i == len(slices) - 1,
        )
        for i, s in enumerate(slices)
    ]


async def _write_slices(conn: Conn, slices: Sequence[_Slice], at: datetime | None) -> None:
    """Upsert the providers (or mark them removed), then the added and updated models of them all in
    one upsert, and soft-remove the removed ones (at `at`, or now); keep the updated models'
    previous raw objects (for their change records)."""
    rows: list[tuple[Any, ...]] = []
    for s in slices:
        s.provider_changed = await _write_provider(conn, s.provider_id, s.provider, s.slice_hash, at)
        if s.updated:
            s.old_raws = await catalog_writes.model_raws(conn, s.provider_id, s.updated)
        if s.added or s.updated:
            assert s.provider is not None
            rows.extend(model_row(s.provider_id, s.provider.name, s.incoming[mid]) for mid in s.added + s.updated)
        if s.removed:
            await catalog_writes.remove_models(conn, s.provider_id, s.removed, at)
    if rows:
        await catalog_writes.upsert_models(conn, rows, at)


async def _record_changes(conn: Conn, run_id: int, slices: Sequence[_Slice], changes_at: datetime | None) -> int | None:
    """The catalog version of what the slices changed (None: nothing), with its change log and the
    versions of the providers and models (history, issue 13). Last, so the catalog_state row lock
    (which orders commits) is held only briefly."""
    changed = [s for s in slices if s.changed]
    if not changed:
        return None
    version = await catalog_writes.bump_catalog_version(conn)
    at = await history_db.stamp_version(conn, version, changes_at)
    await catalog_writes.insert_changes(conn, [row for s in changed for row in s.change_rows(run_id, version)], at)
    for s in changed:
        if s.provider_changed:
            await history_db.record_provider_version(conn, s.provider_id, at, s.provider, s.slice_hash)
    await history_db.record_model_versions(
        conn,
        at,
        [(s.provider_id, mid) for s in changed for mid in (*s.added, *s.updated, *s.removed)],
        [(s.provider_id, mid) for s in changed for mid in s.removed],
        [
            (s.provider_id, mid, s.provider.name, s.incoming[mid].raw)
            for s in changed
            if s.provider is not None
            for mid in (*s.added, *s.updated)
        ],
    )
    return version


async def _apply_cards(
    conn: Conn, run_id: int, document_body: bytes | None, digest: str | None, started: float
) -> SyncOutcome:
    """Write the models document (None: the upstream has none any more) like a provider's slice:
    cards added, updated and removed, their change log (as `@models`), versions and benchmark rows,
    and the links of the offerings whose inferred card came or went; mark the provider-run done."""
    await canonical_writes.hold_links_exclusive(conn)
    incoming, skipped = parse_models_document(document_body) if document_body is not None else ({}, [])
    if skipped:
        log.warning("models_document_entries_skipped", run_id=run_id, count=len(skipped), ids=skipped[:20])
    states = await canonical_writes.card_states(conn)
    added, updated, removed = diff_states(states, incoming)
    await _cards_guard(conn, run_id, states, removed)
    version = None
    relinked: list[str] = []
    if added or updated or removed:
        version = await catalog_writes.bump_catalog_version(conn)
        at = await history_db.stamp_version(conn, version, await history_db.run_changes_at(conn, run_id))
        old_raws = await canonical_writes.card_raws(conn, updated) if updated else {}
        await canonical_writes.upsert_cards(conn, [incoming[cid] for cid in added + updated], at)
        await canonical_writes.remove_cards(conn, removed, at)
        changes: list[tuple[Any, ...]] = [
            (run_id, CANONICAL_PROVIDER, cid, ChangeKind.ADDED, None, version) for cid in added
        ]
        changes.extend(
            (run_id, CANONICAL_PROVIDER, cid, ChangeKind.UPDATED, field_changes(*views), version)
            for cid, views in ((cid, (change_view(old_raws[cid]), change_view(incoming[cid].raw))) for cid in updated)
        )
        changes.extend((run_id, CANONICAL_PROVIDER, cid, ChangeKind.REMOVED, None, version) for cid in removed)
        await catalog_writes.insert_changes(conn, changes, at)
        await canonical_writes.record_card_versions(conn, at, incoming, added + updated, removed)
        relinked = await canonical_writes.relink_models(conn, [card_segment(cid) for cid in added + removed])
    url, etag = await canonical_writes.run_models_source(conn, run_id)
    await canonical_writes.set_stored_source(conn, digest or "", url, etag)
    pending = await runs.complete_provider_run(
        conn,
        run_id,
        CANONICAL_PROVIDER,
        status=ProviderRunStatus.SUCCEEDED,
        counts=(len(added), len(updated), len(removed), len(incoming) - len(added) - len(updated)),
        duration_ms=_ms_since(started),
    )
    # The offerings' benchmark results and links follow the cards: every provider's entries go.
    invalidate = (CANONICAL_PROVIDER, *await catalog_writes.provider_ids(conn)) if version is not None else ()
    log.info("models_document_synced", run_id=run_id, cards=len(incoming), relinked=len(relinked))
    return SyncOutcome(
        SyncStatus.SUCCEEDED,
        len(added),
        len(updated),
        len(removed),
        len(incoming) - len(added) - len(updated),
        version,
        last_provider=pending == 0,
        invalidate=invalidate,
    )


async def _cards_guard(
    conn: Conn, run_id: int, states: Mapping[str, tuple[str, bool, str | None]], removed: Sequence[str]
) -> None:
    """The catalog's integrity guard, for the cards: a document that vanished or lost over half of
    them is more likely an upstream fault than a decision. A forced refresh accepts it, and so does
    a set of cards the embedded catalog stood in with (the upstream's own data replaces it)."""
    listed = sum(1 for _, is_listed, _ in states.values() if is_listed)
    if len(removed) * 2 <= listed or await runs.run_is_forced(conn, run_id):
        return
    _, stored_url, _ = await canonical_writes.stored_source(conn)
    if stored_url == EMBEDDED_MODELS_URL:
        return
    raise IntegrityGuardTripped(
        f"the models document would remove {len(removed)} of the {listed} listed cards; "
        "refusing it (force a refresh to accept it)"
    )


async def _write_provider(
    conn: Conn, provider_id: str, provider: ProviderRecord | None, slice_hash: str | None, at: datetime | None
) -> bool:
    """Upsert the provider, or mark it removed (None); True when it changed. `at`: the time of the
    change when it is not now (history imports)."""
    if provider is None:
        await catalog_writes.remove_provider(conn, provider_id, at)
        return True
    assert slice_hash is not None
    old_name, changed = await catalog_writes.upsert_provider(conn, provider, slice_hash, at)
    if old_name is not None and old_name != provider.name:
        await catalog_writes.rename_provider_in_models(conn, provider_id, provider.name)
    return changed


def _log_synced(run_id: int, provider_id: str, outcome: SyncOutcome) -> None:
    log.info(
        "provider_synced",
        run_id=run_id,
        provider_id=provider_id,
        status=outcome.status,
        added=outcome.added,
        updated=outcome.updated,
        removed=outcome.removed,
        unchanged=outcome.unchanged,
        catalog_version=outcome.catalog_version,
    )


async def _after_commit(ctx: RefreshContext, run_id: int, provider_id: str, outcome: SyncOutcome) -> SyncOutcome:
    PROVIDER_SYNCS.labels(outcome.status).inc()
    if outcome.catalog_version is not None:
        await publish_invalidation(ctx, outcome.catalog_version, list(outcome.invalidate or (provider_id,)), run_id)
    _log_synced(run_id, provider_id, outcome)
    # Change notifications (issue 12): deliveries of what this commit appended (a redelivered,
    # skipped message plans what a crash after the commit left).
    if outcome.catalog_version is not None or outcome.status == SyncStatus.SKIPPED:
        await enqueue_deliveries(ctx.pool, ctx.sender.deliver_changes, run_id=run_id, provider_id=provider_id)
    # Also on a redelivered message (skipped): the worker that committed the last provider may
    # have died before closing the run.
    if outcome.last_provider or outcome.status == SyncStatus.SKIPPED:
        return dataclasses.replace(outcome, run_closed=await close_run(ctx, run_id))
    return outcome


async def publish_invalidation(ctx: RefreshContext, version: int, providers: list[str], run_id: int | None) -> None:
    """Tell the web processes; a lost event is caught by their generation check."""
    try:
        await events.publish(ctx.redis, ctx.settings.redis_prefix, events.Invalidation(version, providers, run_id))
        INVALIDATIONS.labels("published").inc()
    except Exception as e:  # Redis down: data is committed; web processes catch up by polling.
        INVALIDATIONS.labels("publish_failed").inc()
        log.warning("invalidation_publish_failed", error=str(e), catalog_version=version)


#: How long closing a run waits for the web processes to reflect its data.
ACK_TIMEOUT = 3.0


async def close_run(ctx: RefreshContext, run_id: int) -> RunStatus | None:
    """Close the run if all its providers are finished; return its final status.

    Read-your-refresh: before the run can report success, every live web process must have
    dropped the cache entries this run made stale (they acknowledge catalog versions in Redis).
    A process that does not answer within ACK_TIMEOUT is caught by its own version poll instead.
    """
    if not await runs.awaits_close(ctx.pool, run_id):
        return None
    version = await catalog_writes.catalog_version(ctx.pool)
    try:
        behind = await events.wait_for_acks(ctx.redis, ctx.settings.redis_prefix, version, ACK_TIMEOUT)
        if behind:
            log.warning("web_processes_behind", run_id=run_id, catalog_version=version, instances=behind)
    except Exception as e:  # Redis down: nothing to wait for; the web processes poll PostgreSQL.
        log.warning("ack_wait_failed", run_id=run_id, error=str(e))
    async with ctx.pool.acquire() as conn:
        closed = await runs.close_run_if_complete(conn, run_id, CANONICAL_PROVIDER)
    if closed is None:
        return None
    status, seconds = closed
    REFRESH_DURATION.labels(status).observe(seconds)
    run = await runs.get_run(ctx.pool, run_id)
    if run is not None:
        await catalog_writes.refresh_statistics_if_stale(ctx.pool, run["added"] + run["updated"] + run["removed"])
    log.info("run_closed", run_id=run_id, status=status, duration_s=round(seconds, 3))
    return status


async def record_failure(ctx: RefreshContext, run_id: int, provider_id: str, error: str) -> int | None:
    """Count a failed sync attempt; after the last allowed one, fail the provider for good.

    Returns the attempts so far, or None when the provider-run was closed (finally failed, or
    already finished).
    """
    max_attempts = ctx.settings.provider_max_attempts
    async with ctx.pool.acquire() as conn, conn.transaction():
        attempts = await runs.record_attempt_failure(conn, run_id, provider_id, error)
        if attempts is None:
            return None
        PROVIDER_FAILURES.labels(str(attempts >= max_attempts).lower()).inc()
        if attempts < max_attempts:
            return attempts
        pending = await runs.complete_provider_run(
            conn,
            run_id,
            provider_id,
            status=ProviderRunStatus.FAILED,
            duration_ms=0,
            error=f"{error} (gave up after {attempts} attempts)",
            attempt=0,
        )
    log.error("provider_failed", run_id=run_id, provider_id=provider_id, attempts=attempts, error=error)
    if pending == 0:
        await close_run(ctx, run_id)
    return None

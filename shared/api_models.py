"""msgspec Structs of the REST API's objects (API.md), and their builders from database rows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import msgspec

#: A provider id or any other short name in a request body: no NUL, which PostgreSQL cannot store.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]


class RunSource(msgspec.Struct, kw_only=True):
    """Where a run's document came from."""

    url: str | None
    etag: str | None
    sha256: str | None
    fallback_reason: str | None


class RunCounts(msgspec.Struct, kw_only=True):
    """Progress and changes of a run."""

    providers_total: int
    providers_done: int
    providers_failed: int
    added: int
    updated: int
    removed: int
    unchanged: int


class ProviderRun(msgspec.Struct, kw_only=True):
    """One provider's part of a run."""

    provider_id: str
    status: str
    attempts: int
    added: int
    updated: int
    removed: int
    duration_ms: int | None
    error: str | None


class Run(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A refresh run."""

    id: int
    status: str
    trigger: str
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    scope: list[str] | None
    force: bool
    error: str | None
    catalog_version: int | None
    source: RunSource
    counts: RunCounts
    coalesced: bool | None = None
    providers: list[ProviderRun] | None = None


def run_object(r: Any, *, coalesced: bool | None = None, providers: list[Any] | None = None) -> Run:
    """A Run from a row of shared.db.runs (RUN_COLUMNS)."""
    return Run(
        id=r["id"],
        status=r["status"],
        trigger=r["trigger"],
        requested_at=r["requested_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        scope=r["scope"],
        force=r["force"],
        error=r["error"],
        catalog_version=r["catalog_version"],
        source=RunSource(url=r["source_url"], etag=r["etag"], sha256=r["sha256"], fallback_reason=r["fallback_reason"]),
        counts=RunCounts(
            providers_total=r["providers_total"],
            providers_done=r["providers_done"],
            providers_failed=r["providers_failed"],
            added=r["added"],
            updated=r["updated"],
            removed=r["removed"],
            unchanged=r["unchanged"],
        ),
        coalesced=coalesced,
        providers=[provider_run_object(p) for p in providers] if providers is not None else None,
    )


def provider_run_object(p: Any) -> ProviderRun:
    """A ProviderRun from a row of shared.db.runs.provider_runs."""
    return ProviderRun(
        provider_id=p["provider_id"],
        status=p["status"],
        attempts=p["attempts"],
        added=p["added"],
        updated=p["updated"],
        removed=p["removed"],
        duration_ms=p["duration_ms"],
        error=p["error"],
    )


class Provider(msgspec.Struct, kw_only=True):
    """A provider: the upstream provider object as received (fields models.dev adds later
    included), with its count of listed models and a hash that changes with any of its data."""

    id: str
    name: str
    env: list[str] = []
    npm: str | None = None
    api: str | None = None
    doc: str | None = None
    model_count: int
    content_hash: str
    first_seen_at: datetime
    updated_at: datetime
    removed_at: datetime | None


class Change(msgspec.Struct, kw_only=True):
    """One entry of the change log; `fields` maps a dotted path to [old, new] for updates."""

    seq: int
    at: datetime
    run_id: int | None
    id: str
    provider_id: str
    model_id: str
    kind: str
    fields: dict[str, list[Any]] | None


class Benchmark(msgspec.Struct, kw_only=True):
    """A benchmark result of a model."""

    model: str
    benchmark: str
    score: float
    metric: str | None
    source: str | None
    date: date | None


class Comparison(msgspec.Struct, kw_only=True):
    """2 to 10 models side by side (`data` holds model objects, in the order asked)."""

    data: list[msgspec.Raw]
    differences: dict[str, list[Any]]
    cheapest: str | None
    largest_context: str | None
    cost_estimates: dict[str, float | None] | None
    benchmarks: dict[str, dict[str, float]]


class Schedule(msgspec.Struct, kw_only=True):
    """The scheduler's plan, as the leading scheduler last published it."""

    interval: float
    next_run_at: datetime | None
    leader: str | None


class Source(msgspec.Struct, kw_only=True):
    """The upstream in use."""

    url: str


class RefreshStatus(msgspec.Struct, kw_only=True):
    """Recent runs, newest first, with the schedule and the source."""

    data: list[Run]
    schedule: Schedule
    source: Source

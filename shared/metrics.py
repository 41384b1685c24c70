"""Prometheus metrics of the refresh pipeline (the web process's own live in services/api).

A worker process serves them, with its message metrics, on WORKER_METRICS_PORT.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REFRESH_DURATION = Histogram(
    "modelmeta_refresh_duration_seconds",
    "From a run's request to its close",
    ["status"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
PROVIDER_SYNCS = Counter("modelmeta_provider_syncs_total", "sync_provider outcomes", ["status"])
PROVIDER_FAILURES = Counter(
    "modelmeta_provider_failures_total", "Failed sync attempts (final=true when the provider gave up)", ["final"]
)
RATELIMIT_WAIT = Histogram(
    "modelmeta_ratelimit_wait_seconds",
    "Time spent waiting for an upstream request slot",
    ["host"],
    buckets=(0.001, 0.01, 0.1, 0.5, 1, 2, 5),
)
RATELIMIT_DEFERRED = Counter(
    "modelmeta_ratelimit_deferred_total", "Waits too long to hold a worker: retried later", ["host"]
)
RATELIMIT_PAUSES = Counter("modelmeta_ratelimit_pauses_total", "429 answers that paused a host", ["host"])
UPSTREAM_RESPONSES = Counter(
    "modelmeta_upstream_responses_total", "Upstream answers by status (or error kind)", ["host", "status"]
)
INVALIDATIONS = Counter("modelmeta_invalidation_events_total", "Cache-invalidation events by outcome", ["outcome"])

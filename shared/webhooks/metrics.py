"""Prometheus metrics of webhook delivery (a worker serves them on WORKER_METRICS_PORT; the pending
gauge is set by the web process, which serves it on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERY_ATTEMPTS = Counter(
    "modelmeta_webhook_attempts_total",
    "Delivery attempts by outcome (delivered, retrying, failed, gone, refused)",
    ["outcome"],
)
FIRST_ATTEMPT_LATENCY = Histogram(
    "modelmeta_webhook_first_attempt_latency_seconds",
    "From the commit of a delivery's changes to its first attempt",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
ATTEMPT_SECONDS = Histogram(
    "modelmeta_webhook_attempt_seconds",
    "Time of one delivery attempt's HTTP request",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DELIVERIES_PLANNED = Counter("modelmeta_webhook_deliveries_planned_total", "Deliveries planned from the change log")
DELIVERIES_PENDING = Gauge(
    "modelmeta_webhook_deliveries_pending",
    "Pending deliveries (the delivery queue's depth): due now, or waiting for a retry",
    ["state"],
)

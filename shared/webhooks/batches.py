"""Planning deliveries: a subscription's matching changes, at most 100 to a delivery.

A batch never spans two commits, so each delivery is one run's and one provider's changes
(API.md: `data` has one `run_id` and one `provider_id`). Its range (first_seq, last_seq) with the
subscription is its key: the changes it carries are the matching ones in that range.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.webhooks.filters import Filters

#: At most this many changes in one delivery.
BATCH_SIZE = 100


@dataclass(frozen=True, slots=True)
class Batch:
    """The changes of one delivery: a seq range within one commit."""

    first_seq: int
    last_seq: int
    run_id: int | None
    provider_id: str
    catalog_version: int
    count: int
    committed_at: datetime

    def row(self) -> tuple[Any, ...]:
        """The batch's columns of a planned delivery (shared.db.webhooks.PLANNED_COLUMNS after the
        subscription and generation)."""
        return (
            self.first_seq,
            self.last_seq,
            self.run_id,
            self.provider_id,
            self.catalog_version,
            self.count,
            self.committed_at,
        )


def batches(rows: Iterable[Any], filters: Filters, size: int = BATCH_SIZE) -> list[Batch]:
    """Cut the matching rows (of model_changes, in seq order) into batches of at most `size`."""
    out: list[Batch] = []
    current: list[Any] = []

    def close() -> None:
        if current:
            first, last = current[0], current[-1]
            out.append(
                Batch(
                    first["seq"],
                    last["seq"],
                    first["run_id"],
                    first["provider_id"],
                    first["catalog_version"],
                    len(current),
                    max(r["at"] for r in current),
                )
            )
            current.clear()

    for r in rows:
        if not filters.matches(r["provider_id"], r["kind"], r["fields"]):
            continue
        if current and (
            len(current) >= size
            or (r["catalog_version"], r["provider_id"]) != (current[0]["catalog_version"], current[0]["provider_id"])
        ):
            close()
        current.append(r)
    close()
    return out


def in_batch(row: Any, provider_id: str | None, catalog_version: int | None) -> bool:
    """Whether a row of a batch's seq range belongs to it (its commit), before filtering."""
    return bool(row["provider_id"] == provider_id and row["catalog_version"] == catalog_version)

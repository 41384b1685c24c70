"""The named states and kinds of modelmeta, as StrEnums: their values are what the API, the
database and the queue carry, so a member compares equal to (and encodes as) its string."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """A refresh run's status (API.md, "The run object")."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    UNCHANGED = "unchanged"

    @property
    def is_final(self) -> bool:
        """Whether the run has ended."""
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


#: Statuses of a run still in progress.
OPEN_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
#: Statuses of a run that has ended.
FINAL_RUN_STATUSES = tuple(s for s in RunStatus if s.is_final)


class ProviderRunStatus(StrEnum):
    """One provider's part of a run."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class SyncStatus(StrEnum):
    """What one sync_provider call did."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class Trigger(StrEnum):
    """What asked for a run."""

    API = "api"
    SCHEDULER = "scheduler"
    CLI = "cli"
    IMPORT = "import"


class ChangeKind(StrEnum):
    """The kind of a change-log entry."""

    ADDED = "added"
    UPDATED = "updated"
    REMOVED = "removed"


class SourceKind(StrEnum):
    """What the upstream is: a models.dev-shaped document, or another modelmeta."""

    DOCUMENT = "document"
    MODELMETA = "modelmeta"


class SubscriptionStatus(StrEnum):
    """A webhook subscription's status."""

    ACTIVE = "active"
    DISABLED = "disabled"


class DeliveryStatus(StrEnum):
    """A webhook delivery's status: pending until delivered, or failed for good (replayable)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"

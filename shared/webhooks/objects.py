"""The API's webhook objects (API.md, "Change notifications") and their builders from rows of
shared.db.webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from shared.webhooks.payload import message_id


class Subscription(msgspec.Struct, kw_only=True):
    """A webhook subscription. `secret` appears only in the answers that create it."""

    id: int
    url: str
    description: str | None
    providers: list[str] | None
    kinds: list[str] | None
    fields: list[str] | None
    status: str
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    #: Changes up to this seq have been planned into deliveries.
    cursor_seq: int
    #: While a rotation overlaps: when the previous secret stops signing.
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    secret: str | msgspec.UnsetType = msgspec.UNSET


class Delivery(msgspec.Struct, kw_only=True):
    """One delivery of a subscription: an event and its attempts."""

    id: int
    webhook_id: str
    subscription_id: int
    event_type: str
    status: str
    attempts: int
    last_response_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    first_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    first_seq: int | None
    last_seq: int | None
    run_id: int | None
    provider_id: str | None
    change_count: int
    #: 0 as planned after a commit, N for the Nth replay, -1 for a test event.
    replay: int


class Replay(msgspec.Struct, kw_only=True):
    """What a replay planned."""

    subscription_id: int
    since_seq: int
    through_seq: int
    deliveries: int


def subscription_object(r: Any, secret: str | None = None) -> Subscription:
    """A Subscription from a row (SUBSCRIPTION_COLUMNS), with the secret only when given."""
    return Subscription(
        id=r["id"],
        url=r["url"],
        description=r["description"],
        providers=r["providers"],
        kinds=r["kinds"],
        fields=r["fields"],
        status=r["status"],
        disabled_reason=r["disabled_reason"],
        disabled_at=r["disabled_at"],
        failing_since=r["failing_since"],
        cursor_seq=r["cursor_seq"],
        previous_secret_expires_at=r["previous_expires_at"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        secret=secret if secret is not None else msgspec.UNSET,
    )


def delivery_object(r: Any) -> Delivery:
    """A Delivery from a row (DELIVERY_COLUMNS)."""
    return Delivery(
        id=r["id"],
        webhook_id=message_id(r["id"]),
        subscription_id=r["subscription_id"],
        event_type=r["event_type"],
        status=r["status"],
        attempts=r["attempts"],
        last_response_code=r["last_status_code"],
        last_error=r["last_error"],
        next_attempt_at=r["next_attempt_at"] if r["status"] == "pending" else None,
        created_at=r["created_at"],
        first_attempt_at=r["first_attempt_at"],
        last_attempt_at=r["last_attempt_at"],
        delivered_at=r["delivered_at"],
        first_seq=r["first_seq"],
        last_seq=r["last_seq"],
        run_id=r["run_id"],
        provider_id=r["provider_id"],
        change_count=r["change_count"],
        replay=r["generation"],
    )

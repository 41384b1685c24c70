"""What a delivery carries: the event body (API.md, "Change notifications"), built the same way on
every attempt so that one webhook-id always goes with one body."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec

from shared.schemas.api import Change, change_object

CATALOG_CHANGED = "catalog.changed"
WEBHOOK_TEST = "webhook.test"
EVENT_TYPES = (CATALOG_CHANGED, WEBHOOK_TEST)

_encode = msgspec.json.Encoder().encode


class ChangedData(msgspec.Struct, kw_only=True):
    """The data of a catalog.changed event: changes of one provider's commit in one run."""

    run_id: int | None
    provider_id: str
    changes: list[Change]


class TestData(msgspec.Struct, kw_only=True):
    """The data of a webhook.test event."""

    subscription_id: int
    message: str


class Event(msgspec.Struct, kw_only=True):
    """The body of every delivery."""

    type: str
    timestamp: datetime
    data: ChangedData | TestData


def message_id(delivery_id: int) -> str:
    """The webhook-id of a delivery: one per delivery row, the same on every retry."""
    return f"msg_{delivery_id}"


def changed_body(timestamp: datetime, run_id: int | None, provider_id: str, rows: Iterable[Any]) -> bytes:
    """A catalog.changed body; `timestamp` is the delivery's creation time, fixed across retries."""
    data = ChangedData(run_id=run_id, provider_id=provider_id, changes=[change_object(r) for r in rows])
    return _encode(Event(type=CATALOG_CHANGED, timestamp=timestamp, data=data))


def test_body(timestamp: datetime, subscription_id: int) -> bytes:
    """A webhook.test body."""
    data = TestData(subscription_id=subscription_id, message="a test event from modelmeta")
    return _encode(Event(type=WEBHOOK_TEST, timestamp=timestamp, data=data))

"""The pure parts of change notifications: signatures, filters, batches, the retry schedule,
target safety (without any connection) and the settings."""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
import standardwebhooks

from shared.config import Settings, parse_schedule
from shared.errors import ConfigError, TargetRefused
from shared.webhooks.batches import batches
from shared.webhooks.filters import Filters, field_matches
from shared.webhooks.retries import next_delay, parse_retry_after
from shared.webhooks.signing import new_secret, sign, webhook_headers
from shared.webhooks.targets import GuardedResolver, check_target

# -- signatures --------------------------------------------------------------------------------


def test_signature_verifies_with_the_standard_webhooks_library() -> None:
    secret, body, ts = new_secret(), b'{"type":"catalog.changed","data":{}}', int(datetime.now(UTC).timestamp())
    assert secret.startswith("whsec_")
    headers = webhook_headers([secret], "msg_1", ts, body)
    assert standardwebhooks.Webhook(secret).verify(body, headers) == {"type": "catalog.changed", "data": {}}
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new_secret()).verify(body, headers)


def test_rotation_overlap_signs_with_both_secrets() -> None:
    old, new, body, ts = new_secret(), new_secret(), b"{}", int(datetime.now(UTC).timestamp())
    headers = webhook_headers([new, old], "msg_2", ts, body)
    assert headers["webhook-signature"] == f"{sign(new, 'msg_2', ts, body)} {sign(old, 'msg_2', ts, body)}"
    for secret in (old, new):
        standardwebhooks.Webhook(secret).verify(body, headers)
    assert len({new_secret() for _ in range(50)}) == 50


# -- filters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("cost.*", "cost.input", True),
        ("cost.*", "cost.context_over_200k.input", True),
        ("cost.*", "limit.context", False),
        ("cost.*", "costs.input", False),
        ("*.input", "cost.input", True),
        ("*.input", "limit.input", True),
        ("*.input", "limit.output", False),
        ("limit.context", "limit.context", True),
        ("limit.context", "limit", True),  # the whole limit object replaced
        ("limit.context", "limit.output", False),
        ("cost", "cost.input", True),
        ("cost.in*", "cost.input", True),
        ("cost.in*", "cost.output", False),
        ("cost.input", "cost.input_audio", False),
        ("a.b", "a+b", False),
    ],
)
def test_field_patterns(pattern: str, path: str, expected: bool) -> None:
    assert field_matches(pattern, path) is expected


def test_filters_combine_with_and() -> None:
    f = Filters.of(["anthropic"], None, ["cost.*"])
    assert f.matches("anthropic", "updated", {"cost.input": [1, 2]})
    assert not f.matches("anthropic", "updated", {"name": ["a", "b"]})
    assert not f.matches("openai", "updated", {"cost.input": [1, 2]})
    assert f.matches("anthropic", "added", None)  # fields narrows updates only
    assert not Filters.of(None, ["updated"], ["cost.*"]).matches("anthropic", "added", None)
    assert Filters.of(None, None, None).matches("x", "removed", None)
    assert Filters.of([], [], []) == Filters()


# -- batches -----------------------------------------------------------------------------------


def _rows(spec: list[tuple[str, int, int]]) -> list[dict[str, Any]]:
    """(provider, catalog_version, how many) -> change rows in seq order."""
    out, seq, at = [], 0, datetime(2026, 7, 2, tzinfo=UTC)
    for provider, version, n in spec:
        for i in range(n):
            seq += 1
            kind = ("added", "updated", "removed")[i % 3]
            fields = {"cost.input": [1, 2]} if i % 2 else {"name": ["a", "b"]}
            row = {"seq": seq, "at": at + timedelta(seconds=seq), "run_id": 7, "provider_id": provider}
            row |= {"model_id": f"m{i}", "kind": kind, "catalog_version": version}
            out.append(row | {"fields": fields if kind == "updated" else None})
    return out


def test_batches_hold_at_most_100_and_never_span_commits() -> None:
    rows = _rows([("a", 1, 250), ("b", 2, 100), ("c", 3, 1)])
    got = batches(rows, Filters())
    assert [(b.provider_id, b.count) for b in got] == [("a", 100), ("a", 100), ("a", 50), ("b", 100), ("c", 1)]
    assert sum(b.count for b in got) == len(rows)
    assert [(b.first_seq, b.last_seq) for b in got][:3] == [(1, 100), (101, 200), (201, 250)]
    assert got[0].committed_at == rows[99]["at"]
    seqs = [r["seq"] for r in rows]
    # Ranges are disjoint and in order.
    assert all(x.last_seq < y.first_seq for x, y in itertools.pairwise(got))
    assert seqs[-1] == got[-1].last_seq


def test_filtered_batches_count_only_matching_changes() -> None:
    rows = _rows([("a", 1, 300), ("b", 2, 300)])
    f = Filters.of(["a"], ["updated"], ["cost.*"])
    expected = [r for r in rows if r["provider_id"] == "a" and r["kind"] == "updated" and "cost.input" in r["fields"]]
    got = batches(rows, f)
    assert sum(b.count for b in got) == len(expected)
    assert got[0].first_seq == expected[0]["seq"] and got[-1].last_seq == expected[-1]["seq"]


# -- retries -----------------------------------------------------------------------------------

STANDARD = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


def test_retry_schedule_with_jitter_and_end() -> None:
    rng = random.Random(1)
    for attempts, base in enumerate(STANDARD[1:], start=1):
        for _ in range(20):
            delay = next_delay(STANDARD, attempts, rng=rng)
            assert delay is not None
            assert base * 0.9 <= delay <= base * 1.1
    assert next_delay(STANDARD, len(STANDARD)) is None  # 8 attempts made: failed for good
    assert next_delay(STANDARD, 1, retry_after=600.0) == 600.0  # Retry-After beyond the schedule wins
    assert 4.5 <= (next_delay(STANDARD, 1, retry_after=1.0) or 0) <= 5.5


def test_retry_after_forms() -> None:
    now = datetime(2026, 7, 2, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0.0
    assert parse_retry_after("999999999") == 86400.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_settings_read_the_webhook_variables() -> None:
    s = Settings.from_env(
        {
            "WEBHOOK_ALLOW_PRIVATE": "true",
            "WEBHOOK_RETRY_SCHEDULE": "0, 0.2s, 1, 5m",
            "WEBHOOK_TIMEOUT": "3s",
            "WEBHOOK_RATE_LIMIT": "5/second",
            "WEBHOOK_CONCURRENCY": "2",
            "WEBHOOK_DISABLE_AFTER": "1d",
        }
    )
    assert s.webhook_allow_private is True
    assert s.webhook_retry_schedule == (0.0, 0.2, 1.0, 300.0)
    assert (s.webhook_timeout, s.webhook_rate_limit.count, s.webhook_concurrency) == (3.0, 5, 2)
    assert s.webhook_disable_after == 86400.0
    assert Settings().webhook_retry_schedule == STANDARD
    assert Settings().webhook_allow_private is False
    assert parse_schedule("0") == (0.0,)
    for bad in ("", "0,,5s", "soon", "-1"):
        with pytest.raises(ConfigError, match="WEBHOOK_RETRY_SCHEDULE"):
            Settings.from_env({"WEBHOOK_RETRY_SCHEDULE": bad or ","})


# -- target safety -----------------------------------------------------------------------------


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fail the test on any attempt to open a connection (name resolution is allowed)."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise AssertionError(f"a connection was attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", refuse)
    monkeypatch.setattr(asyncio.BaseEventLoop, "sock_connect", refuse)
    return attempts


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]:8080/hook", "loopback"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://224.0.0.251/", "multicast"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://localhost/", "loopback"),
        ("http://LocalHost:9/x", "loopback"),
        ("http://2130706433/", "loopback"),  # 127.0.0.1 as one number
        ("http://127.1/", "loopback"),
    ],
)
async def test_private_targets_are_refused_without_connecting(no_connections: list[Any], url: str, reason: str) -> None:
    with pytest.raises(TargetRefused, match=reason):
        await check_target(url, allow_private=False)
    assert no_connections == []


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/", "http:///nohost", "https://user:pw@example.com/", "http://example.com:99999/", "hook"],
)
async def test_malformed_targets_are_refused_even_when_private_is_allowed(url: str) -> None:
    with pytest.raises(TargetRefused):
        await check_target(url, allow_private=True)


async def test_public_and_allowed_targets_pass(no_connections: list[Any]) -> None:
    async def public(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]

    async def mixed(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.1.2.3"]  # one private answer is enough to refuse

    await check_target("https://receiver.example/hook", allow_private=False, resolve=public)
    with pytest.raises(TargetRefused, match=r"10\.1\.2\.3"):
        await check_target("https://receiver.example/hook", allow_private=False, resolve=mixed)
    await check_target("https://8.8.8.8/hook", allow_private=False)
    await check_target("http://127.0.0.1:8080/hook", allow_private=True)
    assert no_connections == []


async def test_the_delivery_session_refuses_a_name_that_resolves_to_loopback(no_connections: list[Any]) -> None:
    """The connector's resolver re-checks what it connects to (DNS can change after the check)."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(False), use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(TargetRefused, match="loopback"):
            await session.post("http://localhost:9/hook", data=b"{}")
    assert no_connections == []

"""How the pages write numbers, prices, token counts and times (Jinja filters)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def price(value: Any) -> str:
    """USD per 1M tokens: `$3.00`, `$0.075`, `$1,250`; a dash when there is no price."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    if value == 0:
        return "$0"
    if abs(value) < 0.01:
        return f"${value:.3g}"
    text = f"{value:,.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def money(value: Any) -> str:
    """A cost estimate in USD, to the cent, or finer below a cent."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    if value == 0:
        return "$0.00"
    if abs(value) < 0.01:
        return f"${value:.4g}"
    return f"${value:,.2f}"


def tokens(value: Any) -> str:
    """A token count, short: `128K`, `1M`, `1.05M`."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    for size, suffix in ((1_000_000, "M"), (1_000, "K")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:g}"


def number(value: Any) -> str:
    """A whole number with thousands separators."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:,g}"


def when(instant: Any) -> str:
    """An instant (datetime or RFC 3339 text) as `2026-07-02 14:03 UTC`."""
    if instant is None:
        return "—"
    if isinstance(instant, str):
        try:
            instant = datetime.fromisoformat(instant.replace("Z", "+00:00"))
        except ValueError:
            return str(instant)
    if not isinstance(instant, datetime):
        return str(instant)
    moment: datetime = instant.astimezone(UTC) if instant.tzinfo is not None else instant
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def value(v: Any) -> str:
    """Any field value of a model, readable: lists joined, booleans as yes/no, objects as k: v."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list):
        return ", ".join(value(x) for x in v) if v else "none"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {value(x)}" for k, x in v.items()) if v else "—"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def duration(seconds: Any) -> str:
    """A length of time: `45 s`, `12 min`, `1 h`, `1 h 30 min`."""
    if seconds is None or not isinstance(seconds, int | float):
        return "—"
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    minutes = s // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h" + (f" {rest} min" if rest else "")


FILTERS = {
    "price": price,
    "money": money,
    "tokens": tokens,
    "number": number,
    "when": when,
    "value": value,
    "duration": duration,
}

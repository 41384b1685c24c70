"""A model's prices over time, from its change log, and the chart of them drawn as inline SVG.

The change log holds each update as `{"cost.input": [old, new], ...}`, newest first. Walking it
back from the current prices gives each price as steps: the value it had from each change on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.api.pages.formatting import price
from shared.enums import ChangeKind

#: The prices drawn, in legend order: (cost field, label).
SERIES = (("input", "Input"), ("output", "Output"), ("cache_read", "Cache read"))
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 80, 16, 16, 40


@dataclass
class Steps:
    """One price as steps: `values[i]` holds from `starts[i]` until the next start (or the end)."""

    key: str
    label: str
    starts: list[datetime] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)


def _cost_change(fields: dict[str, Any] | None, key: str) -> tuple[Any, Any] | None:
    """(old, new) of cost.<key> in one update, whether the leaf or the whole cost object changed."""
    if not fields:
        return None
    if f"cost.{key}" in fields:
        old, new = fields[f"cost.{key}"]
        return old, new
    if "cost" in fields:  # the whole object appeared, went, or was replaced by a non-object
        old, new = fields["cost"]
        return _get(old, key), _get(new, key)
    return None


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def price_steps(cost: dict[str, Any] | None, changes: list[dict[str, Any]], start: datetime) -> list[Steps]:
    """Each drawn price of a model as steps from `start` (when it was first seen) to now.

    changes: the model's change log, newest first, as GET .../history answers it.
    """
    out = []
    for key, label in SERIES:
        current = _number((cost or {}).get(key))
        steps = Steps(key, label)
        for change in changes:  # newest first: each update says what the price was before it
            pair = _cost_change(change.get("fields"), key) if change["kind"] == ChangeKind.UPDATED else None
            if pair is None:
                continue
            steps.starts.insert(0, change["at"])
            steps.values.insert(0, _number(pair[1]))
            current = _number(pair[0])
        steps.starts.insert(0, start)
        steps.values.insert(0, current)
        if any(v is not None for v in steps.values):
            out.append(steps)
    return out


@dataclass
class Chart:
    width: int
    height: int
    lines: list[dict[str, Any]]  # {key, label, d, last}
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    description: str
    x0: int = LEFT
    x1: int = WIDTH - RIGHT


def _y_ticks(top: float) -> list[float]:
    """Four round steps from 0 to at least `top`."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * i for i in range(5)]


def chart(steps: list[Steps], end: datetime) -> Chart | None:
    """The price lines in SVG coordinates, or None when there is no price to draw."""
    if not steps:
        return None
    start = min(s.starts[0] for s in steps)
    if end <= start:
        end = start + timedelta(days=1)
    span = (end - start).total_seconds()
    ticks = _y_ticks(max(v for s in steps for v in s.values if v is not None))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: datetime) -> float:
        return round(LEFT + (t - start).total_seconds() / span * plot_w, 1)

    def y(v: float) -> float:
        return round(TOP + plot_h - v / ticks[-1] * plot_h, 1)

    lines = []
    for s in steps:
        d: list[str] = []
        bounds = [*s.starts[1:], end]
        previous: float | None = None
        for t0, t1, v in zip(s.starts, bounds, s.values, strict=True):
            if v is not None:  # a step joins the one before it; a gap (no price) breaks the line
                d.append(f"{'V' if previous is not None else f'M{x(t0)} '}{y(v)}H{x(t1)}")
            previous = v
        points = [(x(t), y(v)) for t, v in zip(s.starts[1:], s.values[1:], strict=True) if v is not None]
        lines.append({"key": s.key, "label": s.label, "d": "".join(d), "last": s.values[-1], "points": points})
    middle = start + (end - start) / 2
    x_ticks = [(x(t), t.strftime("%Y-%m-%d")) for t in (start, middle, end)]
    summary = "; ".join(
        f"{s.label}: " + ", ".join(f"{price(v)} from {t:%Y-%m-%d}" for t, v in zip(s.starts, s.values, strict=True))
        for s in steps
    )
    return Chart(WIDTH, HEIGHT, lines, [(y(v), price(v)) for v in ticks], x_ticks, summary)

"""Which changes a subscription wants: by provider, by kind, and for updates by field pattern.

Filters combine with AND. `fields` narrows `updated` changes to those touching a listed field;
`added` and `removed` changes carry no fields and pass it (narrow them with `kinds`). A pattern is
a dotted name whose segments may hold `*`, a wildcard within one segment (`cost.*`, `*.input`); it
matches a field path segment by segment over the shorter of the two, so `cost.*` covers
`cost.context_over_200k.input` and `limit.context` covers `limit` replaced as a whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

#: A field pattern as accepted by the API: dotted, no empty segment, no whitespace.
FIELD_PATTERN = r"^[^.\s\x00]+(\.[^.\s\x00]+)*$"


@cache
def _segment(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern)))


def field_matches(pattern: str, path: str) -> bool:
    """Whether a field pattern covers a changed field's dotted path."""
    pats, parts = pattern.split("."), path.split(".")
    return all(_segment(p).fullmatch(s) is not None for p, s in zip(pats, parts, strict=False))


@dataclass(frozen=True, slots=True)
class Filters:
    """A subscription's filters; None means any."""

    providers: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    fields: tuple[str, ...] | None = None

    @classmethod
    def of(cls, providers: Sequence[str] | None, kinds: Sequence[str] | None, fields: Sequence[str] | None) -> Filters:
        return cls(
            frozenset(providers) if providers else None,
            frozenset(kinds) if kinds else None,
            tuple(fields) if fields else None,
        )

    def matches(self, provider_id: str, kind: str, fields: Mapping[str, Any] | None) -> bool:
        """Whether a change (its provider, kind and changed fields) passes every filter."""
        if self.providers is not None and provider_id not in self.providers:
            return False
        if self.kinds is not None and kind not in self.kinds:
            return False
        if self.fields is None or kind != "updated":
            return True
        return any(field_matches(p, f) for p in self.fields for f in fields or ())

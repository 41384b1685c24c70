"""Fuzz the upstream decoder with mutated models.dev documents: a clean MalformedDocument or a
valid result, never any other exception."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.catalog import decode_provider_slice, parse_document
from shared.errors import MalformedDocument
from tests.support import SAMPLE

SAMPLE_DOC = json.loads(SAMPLE.read_bytes())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


PATHS = [p for p in _paths(SAMPLE_DOC) if p]


@st.composite
def mutated_documents(draw: st.DrawFn) -> bytes:
    doc = json.loads(json.dumps(SAMPLE_DOC))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            action = draw(st.sampled_from(["replace", "delete", "rename"]))
            if action == "replace":
                parent[path[-1]] = draw(json_values)
            elif action == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, dict) and path[-1] in parent:
                parent[draw(st.text(max_size=6))] = parent.pop(path[-1])
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    body = json.dumps(doc).encode()
    cut = draw(st.one_of(st.none(), st.integers(0, len(body))))
    return body if cut is None else body[:cut]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents())
def test_mutated_documents_fail_cleanly_or_decode_fully(body: bytes) -> None:
    try:
        parsed = parse_document(body)
    except MalformedDocument:
        return
    # What the plan accepts, every provider's sync can decode (no failure half-way through a run).
    for pid, data in parsed.slices.items():
        provider, models = decode_provider_slice(pid, data)
        assert provider.id == pid
        assert sum(1 for _ in models) == len(json.loads(data)["models"])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_fail_cleanly(body: bytes) -> None:
    with contextlib.suppress(MalformedDocument):
        parse_document(body)


def test_deeply_nested_input_is_a_clean_error() -> None:
    deep = b'{"a": {"id": "a", "name": "A", "models": {"m": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}}"
    with pytest.raises(MalformedDocument, match=r"not a models\.dev document"):
        parse_document(deep)

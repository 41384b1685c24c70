"""Canonical models: models.dev's `/models.json` (the models behind the providers' offerings, each
with its card and benchmark results). Pure: validate the document, hash it and its cards, diff
them against the stored hashes. The SQL is in shared/db/canonical_writes.py; the refresh syncs the
document as the pseudo-provider CANONICAL_PROVIDER (shared/refresh.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from shared.catalog import content_hash, sha256_hex
from shared.errors import MalformedDocument

#: The provider-run, and the `provider_id` of change-log entries, of the models document: not a
#: provider id models.dev can have (its ids are lower-case slugs), so it never collides with one.
CANONICAL_PROVIDER = "@models"

#: The fields of a model object that name its canonical model upstream, in the order they are taken.
UPSTREAM_LINK_FIELDS = ("canonical_id", "canonical_model_id", "base_model")


class BenchmarkResult(msgspec.Struct, frozen=True):
    """What a card's benchmark result must hold; its other fields (harness, variant, dataset,
    version, ...) are kept as received."""

    name: str
    score: float | None = None
    metric: str | None = None
    source: str | None = None
    date: str | None = None


class Card(msgspec.Struct, frozen=True):
    """The fields of a card this service reads; the card itself is kept exactly as received."""

    name: str
    family: str | None = None
    benchmarks: list[BenchmarkResult] = []


_cards_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_card_decoder = msgspec.json.Decoder(Card)
_generic_decoder = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class CanonicalRecord:
    """One card: its id, the object as received and the hash that says whether it changed."""

    id: str
    raw: dict[str, Any]
    content_hash: str


def parse_models_document(body: bytes) -> dict[str, bytes]:
    """Validate a models.dev `/models.json` (an object of canonical id -> card): each card's bytes
    by id. MalformedDocument says where it is wrong."""
    try:
        cards = _cards_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as e:
        raise MalformedDocument(f"not a models.dev models document: {e}") from None
    out: dict[str, bytes] = {}
    for cid, raw in cards.items():
        if "/" not in cid.strip("/"):
            raise MalformedDocument(f"models document: {cid!r} is not a canonical id (`lab/model`)")
        try:
            _card_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as e:
            raise MalformedDocument(f"models document: card {cid!r}: {e}") from None
        out[cid] = bytes(raw)
    return out


def lists_no_cards(body: bytes) -> bool:
    """True for a models document that is an empty object (a source with no card to offer)."""
    try:
        return not _cards_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return False


def models_document_hash(body: bytes) -> str:
    """The hash a stored canonical set is compared with: of the document's bytes."""
    return sha256_hex(body)


def decode_cards(cards: Mapping[str, bytes]) -> dict[str, CanonicalRecord]:
    """Every card decoded, with the hash of its canonical JSON (a few hundred cards: no byte-level
    shortcut is needed, unlike the offerings)."""
    out: dict[str, CanonicalRecord] = {}
    for cid, data in cards.items():
        raw = _generic_decoder.decode(data)
        out[cid] = CanonicalRecord(cid, raw, content_hash(raw))
    return out


def card_segment(canonical_id: str) -> str:
    """What an offering's id is matched on to infer its card: the last path segment, lower-cased
    (migration 0012's canonical_models.segment)."""
    return canonical_id.rsplit("/", 1)[-1].lower()

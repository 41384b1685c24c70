"""Canonical models: models.dev's `/models.json` (the models behind the providers' offerings, each
with its card and benchmark results). Pure: validate the document, hash it and its cards, diff
them against the stored hashes. The SQL is in shared/db/canonical_writes.py; the refresh syncs the
document as the pseudo-provider CANONICAL_PROVIDER (shared/refresh.py)."""

from __future__ import annotations

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


_cards_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_generic_decoder = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class CanonicalRecord:
    """One card: its id, the object as received and the hash that says whether it changed."""

    id: str
    raw: dict[str, Any]
    content_hash: str


def parse_models_document(body: bytes) -> tuple[dict[str, CanonicalRecord], list[str]]:
    """Validate and decode a models.dev `/models.json` (an object of canonical id -> card): each
    card with the hash of its canonical JSON, and the ids of the entries left out (not an object,
    a number out of range, or an id that is not `lab/model`), which do not stop the others. A card
    is kept as received; its odd fields (a score that is not a number, `benchmarks` that is not a
    list) are only left out of what is computed from it (benchmark rows, filters). MalformedDocument
    when the body is not such an object at all."""
    try:
        entries = _cards_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as e:
        raise MalformedDocument(f"not a models.dev models document: {e}") from None
    cards: dict[str, CanonicalRecord] = {}
    skipped: list[str] = []
    for cid, data in entries.items():
        try:
            raw = _generic_decoder.decode(data) if "/" in cid.strip("/") else None
        except (msgspec.DecodeError, RecursionError):
            raw = None
        if not isinstance(raw, dict):
            skipped.append(cid)
            continue
        cards[cid] = CanonicalRecord(cid, raw, content_hash(raw))
    return cards, skipped


def lists_no_cards(body: bytes) -> bool:
    """True for a models document that is an empty object (a source with no card to offer)."""
    try:
        return not _cards_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return False


def models_document_hash(body: bytes) -> str:
    """The hash a stored canonical set is compared with: of the document's bytes."""
    return sha256_hex(body)


def change_view(card: dict[str, Any]) -> dict[str, Any]:
    """A card as its changes are recorded: its benchmark results by position, so that a changed
    score is one field (`benchmarks.2.score`) rather than the whole list."""
    results = card.get("benchmarks")
    if not isinstance(results, list):
        return card
    return {**card, "benchmarks": {str(i): r for i, r in enumerate(results)}}


def card_segment(canonical_id: str) -> str:
    """What an offering's id is matched on to infer its card: the last path segment, lower-cased
    (migration 0012's canonical_models.segment)."""
    return canonical_id.rsplit("/", 1)[-1].lower()

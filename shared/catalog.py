"""The models.dev document: validate it, split it per provider, hash and flatten its models."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from shared.errors import MalformedDocument
from shared.schemas.catalog import Document, Model, Provider

_slices_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_document_decoder = msgspec.json.Decoder(Document)
_model_decoder = msgspec.json.Decoder(Model)
_generic_decoder = msgspec.json.Decoder()
_canonical = msgspec.json.Encoder(order="sorted").encode

#: Columns of `models` that sync_provider writes, in the order model_row() gives them.
MODEL_COLUMNS = (
    "provider_id",
    "model_id",
    "provider_name",
    "name",
    "family",
    "attachment",
    "reasoning",
    "tool_call",
    "temperature",
    "structured_output",
    "open_weights",
    "interleaved",
    "knowledge",
    "release_date",
    "last_updated",
    "status",
    "input_modalities",
    "output_modalities",
    "context_limit",
    "input_limit",
    "output_limit",
    "input_cost",
    "output_cost",
    "cache_read_cost",
    "cache_write_cost",
    "raw",
    "content_hash",
    "raw_sha256",
)


def sha256_hex(data: bytes) -> str:
    """The hex sha256 of data."""
    return hashlib.sha256(data).hexdigest()


def content_hash(obj: Any) -> str:
    """A hash of a JSON value that ignores key order and formatting."""
    return sha256_hex(_canonical(obj))


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """A validated document, as raw per-provider slices with their hashes."""

    slices: dict[str, bytes]
    slice_hashes: dict[str, str]
    model_count: int


_pauses = 0  # threads within collector_paused
_paused_from_enabled = False  # whether the first of them found the collector on
_pauses_lock = threading.Lock()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector held off while a whole document is decoded: decoding makes
    objects by the million and no cycles, and the collections their count sets off took most of
    the time (parse_document at 100,000 models: 0.94-1.12 s with them, 0.38 s without). Reference counting still frees
    what is dropped. Several threads may pause it at once: the last one out leaves it as the first
    one in found it."""
    global _pauses, _paused_from_enabled
    with _pauses_lock:
        if _pauses == 0:
            _paused_from_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pauses_lock:
            _pauses -= 1
            if _pauses == 0 and _paused_from_enabled:
                gc.enable()


def parse_document(body: bytes) -> ParsedDocument:
    """Validate a whole models.dev document; MalformedDocument says where it is wrong."""
    try:
        with collector_paused():
            document = _document_decoder.decode(body)
            providers, model_count = len(document), sum(len(p.models) for p in document.values())
            del document  # freed before the collector is back (else its first pass walks all of it)
        slices = _slices_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as e:
        raise MalformedDocument(f"not a models.dev document: {e}") from None
    if not providers:
        raise MalformedDocument("not a models.dev document: it lists no providers")
    raw = {pid: bytes(s) for pid, s in slices.items()}
    return ParsedDocument(
        slices=raw,
        slice_hashes={pid: sha256_hex(s) for pid, s in raw.items()},
        model_count=model_count,
    )


@dataclass(frozen=True, slots=True)
class ProviderRecord:
    """A provider's own fields; raw is the upstream object without its models."""

    id: str
    name: str
    env: list[str]
    npm: str | None
    api: str | None
    doc: str | None
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """One upstream model: the object as received, its hash and its typed view."""

    model_id: str
    raw: dict[str, Any]
    content_hash: str
    model: Model
    raw_sha256: str = ""  # of the model's bytes as the source wrote them: unchanged bytes skip decoding


def decode_provider_slice(provider_id: str, data: bytes) -> tuple[ProviderRecord, dict[str, ModelRecord]]:
    """Decode one provider's slice of the document into its record and its models."""
    provider, models, _ = decode_changed_models(provider_id, data, lambda mid, digest: False)
    return provider, models


def decode_changed_models(
    provider_id: str, data: bytes, unchanged: Callable[[str, str], bool]
) -> tuple[ProviderRecord, dict[str, ModelRecord], list[str]]:
    """Decode one provider's slice: its record, the models that `unchanged(model_id, sha256 of the
    model's bytes)` does not vouch for, and the ids of those it does (neither decoded nor hashed
    canonically: a refresh reads and decodes little more than what changed)."""
    try:
        obj = _slices_decoder.decode(data)
        models_raw = obj.pop("models", None)
        if models_raw is None:
            raise MalformedDocument(f"provider {provider_id!r}: expected an object with `models`")
        fields = {k: _generic_decoder.decode(v) for k, v in obj.items()}
        meta = msgspec.convert({**fields, "models": {}}, Provider)
        provider = ProviderRecord(
            id=provider_id, name=meta.name, env=list(meta.env), npm=meta.npm, api=meta.api, doc=meta.doc, raw=fields
        )
        models: dict[str, ModelRecord] = {}
        kept: list[str] = []
        for mid, raw in _slices_decoder.decode(models_raw).items():
            digest = sha256_hex(raw)
            if unchanged(mid, digest):
                kept.append(mid)
                continue
            m = _generic_decoder.decode(raw)
            models[mid] = ModelRecord(mid, m, content_hash(m), msgspec.convert(m, Model), digest)
    except msgspec.ValidationError as e:
        raise MalformedDocument(f"provider {provider_id!r}: {e}") from None
    except (msgspec.DecodeError, RecursionError) as e:
        raise MalformedDocument(f"provider {provider_id!r}: {e}") from None
    return provider, models, kept


class Hashed(Protocol):
    """A decoded upstream object with the hash of its canonical JSON."""

    @property
    def content_hash(self) -> str: ...


def diff_states(
    states: Mapping[str, tuple[str, bool, str | None]], incoming: Mapping[str, Hashed], kept: Sequence[str] = ()
) -> tuple[list[str], list[str], list[str]]:
    """(added, updated, removed) ids, from the stored (content_hash, listed, _) by id, the decoded
    objects of the source and the ids of its objects known unchanged (`kept`, listed)."""
    added = [key for key in incoming if key not in states or not states[key][1]]
    updated = [
        key for key, rec in incoming.items() if key in states and states[key][1] and states[key][0] != rec.content_hash
    ]
    present = set(kept)
    removed = [key for key, (_, listed, _) in states.items() if listed and key not in incoming and key not in present]
    return added, updated, removed


def model_row(provider_id: str, provider_name: str, rec: ModelRecord) -> tuple[Any, ...]:
    """The values of MODEL_COLUMNS for one model."""
    m = rec.model
    mods, lim, cost = m.modalities, m.limit, m.cost
    return (
        provider_id,
        rec.model_id,
        provider_name,
        m.name,
        m.family,
        m.attachment,
        m.reasoning,
        m.tool_call,
        m.temperature,
        m.structured_output,
        m.open_weights,
        bool(m.interleaved) if m.interleaved is not None else None,
        m.knowledge,
        m.release_date,
        m.last_updated,
        m.status,
        mods.input if mods else [],
        mods.output if mods else [],
        lim.context if lim else None,
        lim.input if lim else None,
        lim.output if lim else None,
        cost.input if cost else None,
        cost.output if cost else None,
        cost.cache_read if cost else None,
        cost.cache_write if cost else None,
        rec.raw,
        rec.content_hash,
        rec.raw_sha256 or None,
    )


def field_changes(old: Any, new: Any, prefix: str = "") -> dict[str, list[Any]]:
    """Field-level differences as {"cost.input": [old, new]}; objects recurse, lists are values."""
    out: dict[str, list[Any]] = {}
    if isinstance(old, dict) or isinstance(new, dict):
        o = old if isinstance(old, dict) else {}
        n = new if isinstance(new, dict) else {}
        if (old is not None and not isinstance(old, dict)) or (new is not None and not isinstance(new, dict)):
            # An object replaced by a scalar (or the other way round): one change at this path.
            return {prefix: [old, new]} if old != new else {}
        for key in o.keys() | n.keys():
            out.update(field_changes(o.get(key), n.get(key), f"{prefix}.{key}" if prefix else key))
        return out
    if old != new or (type(old) is not type(new) and not _same_number(old, new)):
        out[prefix] = [old, new]
    return out


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )

"""msgspec Structs of the models.dev document: every provider and model field models.dev serves.

They validate an upstream document and give typed values for the columns the API filters and
sorts on. The upstream object itself is kept separately, as received, so a field models.dev adds
tomorrow is kept even though no Struct here names it (unknown fields are allowed, not dropped).
"""

from __future__ import annotations

from typing import Any

import msgspec


class TierSpec(msgspec.Struct, frozen=True):
    """When a price tier applies: for `type: context`, beyond `size` tokens of context."""

    type: str
    size: int | None = None


class CostBase(msgspec.Struct, frozen=True):
    """USD per 1M tokens for each kind of token; absent when models.dev gives no price."""

    input: float | None = None
    output: float | None = None
    reasoning: float | None = None
    cache_read: float | None = None
    cache_write: float | None = None
    input_audio: float | None = None
    output_audio: float | None = None


class CostTier(CostBase, frozen=True):
    """A price tier, such as the one for prompts over 200k tokens."""

    tier: TierSpec | None = None


class Cost(CostBase, frozen=True):
    """A model's prices, with optional tiers and the older `context_over_200k` form."""

    tiers: list[CostTier] | None = None
    context_over_200k: CostBase | None = None


class Limit(msgspec.Struct, frozen=True):
    """Token limits."""

    context: int | None = None
    input: int | None = None
    output: int | None = None


class Modalities(msgspec.Struct, frozen=True):
    """What a model accepts and produces: text, image, audio, video, pdf."""

    input: list[str] = []
    output: list[str] = []


class Model(msgspec.Struct, frozen=True):
    """A models.dev model object."""

    id: str
    name: str
    family: str | None = None
    attachment: bool | None = None
    reasoning: bool | None = None
    tool_call: bool | None = None
    temperature: bool | None = None
    structured_output: bool | None = None
    knowledge: str | None = None
    release_date: str | None = None
    last_updated: str | None = None
    modalities: Modalities | None = None
    open_weights: bool | None = None
    limit: Limit | None = None
    cost: Cost | None = None
    status: str | None = None
    interleaved: bool | dict[str, Any] | None = None
    reasoning_options: list[dict[str, Any]] | None = None
    provider: dict[str, Any] | None = None
    experimental: dict[str, Any] | None = None


class Provider(msgspec.Struct, frozen=True):
    """A models.dev provider object with its models, keyed by model id."""

    id: str
    name: str
    models: dict[str, Model]
    env: list[str] = []
    npm: str | None = None
    api: str | None = None
    doc: str | None = None


#: The whole document: providers keyed by provider id.
Document = dict[str, Provider]

"""Every schema of the REST API in one place (API.md): the objects it answers, the query and path
parameters and the bodies it accepts, as msgspec Structs.

The same Structs validate requests (services/api/params.py decodes every request through them)
and describe them in the OpenAPI document, so the two cannot disagree. A list-typed query field
is a comma-separated list (`capability=tool_call,vision`).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

import msgspec

from shared.enums import ChangeKind, DeliveryStatus, ProviderRunStatus, RunStatus, Trigger
from shared.schemas.catalog import Cost, Limit, Model
from shared.webhooks.filters import FIELD_PATTERN
from shared.webhooks.targets import MAX_URL_LENGTH

T = TypeVar("T")

# -- value types ------------------------------------------------------------------------------

#: The largest number a numeric filter accepts (it has to fit a PostgreSQL bigint or float8).
MAX_NUMBER = 10**12
#: A canonical model id (provider_id/model_id), as a regular expression.
MODEL_ID_PATTERN = r"[^/,\x00]+/[^,\x00]+"
#: A provider id or any other short name: no NUL, which PostgreSQL cannot store.
Name = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]+$", title="1 to 200 characters, no NUL")
]
#: Free text without NUL (a filter value: anything may be asked for, and match nothing).
Text = Annotated[str, msgspec.Meta(pattern=r"^[^\x00]*$", title="text without NUL")]
ModelId = Annotated[
    str, msgspec.Meta(pattern=f"^{MODEL_ID_PATTERN}$", max_length=400, title="a canonical id provider_id/model_id")
]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_NUMBER)]
#: The text of a search (`q=`): 1 to 200 characters, not only spaces.
SearchText = Annotated[
    str,
    msgspec.Meta(max_length=200, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$", title="1 to 200 characters, not only spaces"),
]
Price = Annotated[float, msgspec.Meta(ge=0, le=MAX_NUMBER)]
TokenCount = Annotated[int, msgspec.Meta(ge=0, le=10**9)]
#: A change-log sequence number: the change feed's and a model history's cursor.
Seq = Annotated[int, msgspec.Meta(ge=0, le=10**18 - 1)]
PageSize = Annotated[int, msgspec.Meta(ge=1, le=500, description="page size")]
#: An opaque cursor (base64url of the position after the previous page).
OpaqueCursor = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9_-]{0,800}$",
        title="next_cursor of the previous page",
        description="next_cursor of the previous page (opaque)",
    ),
]
Since = Annotated[datetime, msgspec.Meta(tz=True)]


class Capability(StrEnum):
    """A capability a model list can be filtered on (API.md, "Filters on model lists")."""

    TOOL_CALL = "tool_call"
    REASONING = "reasoning"
    ATTACHMENT = "attachment"
    TEMPERATURE = "temperature"
    STRUCTURED_OUTPUT = "structured_output"
    OPEN_WEIGHTS = "open_weights"
    INTERLEAVED = "interleaved"
    VISION = "vision"
    AUDIO_INPUT = "audio_input"
    PDF_INPUT = "pdf_input"
    VIDEO_INPUT = "video_input"
    IMAGE_OUTPUT = "image_output"
    AUDIO_OUTPUT = "audio_output"


class Modality(StrEnum):
    """An input or output modality."""

    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    PDF = "pdf"


class ModelStatus(StrEnum):
    """A model's status filter; `active` is a model without a status."""

    ALPHA = "alpha"
    BETA = "beta"
    DEPRECATED = "deprecated"
    ACTIVE = "active"


class ModelType(StrEnum):
    """models.dev's classification of a model (its `type`); a model without one is `chat`."""

    CHAT = "chat"
    IMAGE = "image"
    VIDEO = "video"
    EMBEDDING = "embedding"
    RERANKING = "reranking"
    DECISION = "decision"
    TRANSCRIPTION = "transcription"
    SPEECH = "speech"
    REALTIME = "realtime"


class TypeChoice(StrEnum):
    """A `type=` value: a model type, or `all` for every type."""

    ALL = "all"
    CHAT = "chat"
    IMAGE = "image"
    VIDEO = "video"
    EMBEDDING = "embedding"
    RERANKING = "reranking"
    DECISION = "decision"
    TRANSCRIPTION = "transcription"
    SPEECH = "speech"
    REALTIME = "realtime"


class Sort(StrEnum):
    """A model list's order; `-` sorts descending. Models without the value come last."""

    NAME = "name"
    NAME_DESC = "-name"
    RELEASE_DATE = "release_date"
    RELEASE_DATE_DESC = "-release_date"
    INPUT_COST = "input_cost"
    INPUT_COST_DESC = "-input_cost"
    OUTPUT_COST = "output_cost"
    OUTPUT_COST_DESC = "-output_cost"
    CONTEXT = "context"
    CONTEXT_DESC = "-context"

    @property
    def key(self) -> str:
        """The sort key without its direction."""
        return self.value.removeprefix("-")

    @property
    def descending(self) -> bool:
        return self.value.startswith("-")


#: The prefix of a sort by a benchmark's score (`sort=-benchmark:SWE-Bench Verified`).
BENCHMARK_SORT = "benchmark:"
#: The longest benchmark name a sort or a filter takes.
MAX_BENCHMARK_NAME = 200
#: A model list's `sort=`: a Sort, or a benchmark's score by its name (case-insensitive).
SortText = Annotated[
    str,
    msgspec.Meta(
        pattern="^-?(?:"
        + "|".join(s.key for s in Sort if not s.descending)
        + "|"
        + BENCHMARK_SORT
        + r"[^\x00]*[^\s\x00][^\x00]*)$",
        max_length=len(BENCHMARK_SORT) + MAX_BENCHMARK_NAME + 1,
        title="one of " + ", ".join(s.value for s in Sort) + f", {BENCHMARK_SORT}<name>, -{BENCHMARK_SORT}<name>",
        description="order (default provider_id, model_id): "
        + ", ".join(s.key for s in Sort if not s.descending)
        + ", or `benchmark:<name>` (a model's best score of that benchmark, name case-insensitive); "
        "`-` for descending; models without the value come last either way",
    ),
]
BenchmarkName = Annotated[
    str,
    msgspec.Meta(
        max_length=MAX_BENCHMARK_NAME,
        pattern=r"^[^\x00]*[^\s\x00][^\x00]*$",
        title=f"a benchmark name of 1 to {MAX_BENCHMARK_NAME} characters, not only spaces",
    ),
]


def parse_sort(text: str) -> tuple[str, bool, str | None]:
    """(sort key, descending, benchmark name or None) of a `sort=` value the pattern admitted; the
    key of a benchmark's score is `benchmark`."""
    descending = text.startswith("-")
    key = text.removeprefix("-")
    if key.startswith(BENCHMARK_SORT):
        return "benchmark", descending, key.removeprefix(BENCHMARK_SORT).strip()
    return key, descending, None


# -- query parameters -------------------------------------------------------------------------


#: `at=` (the catalog in time, issue 13): the catalog as it stood then. Decoded as text; the one
#: helper services/api/history.point_in_time reads it as an instant (shared.history.parse_at).
At = Annotated[
    str,
    msgspec.Meta(
        max_length=64,
        extra_json_schema={"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]},
        description="the catalog as it stood then: an RFC 3339 time, or a date (the end of that day, UTC); "
        "a time in the future answers as now, one before the first data as an empty catalog",
    ),
]


class Query(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every route's query parameters (a route without any declares Query itself)."""


class Paging(Query, kw_only=True):
    """`limit` of every list."""

    limit: PageSize = 50


class _ModelFilters(Paging, kw_only=True):
    """The filters every model list takes (API.md, "Filters on model lists")."""

    input_modalities: Annotated[list[Modality], msgspec.Meta(description="accepts all of these")] = []
    output_modalities: Annotated[list[Modality], msgspec.Meta(description="produces all of these")] = []
    family: Annotated[list[Text], msgspec.Meta(description="exact family (any of)")] = []
    status: Annotated[list[ModelStatus], msgspec.Meta(description="any of (active: no status)")] = []
    min_context: Annotated[Count, msgspec.Meta(description="context limit at least")] | None = None
    min_output: Annotated[Count, msgspec.Meta(description="output limit at least")] | None = None
    max_input_cost: Annotated[Price, msgspec.Meta(description="input price at most (USD per 1M)")] | None = None
    max_output_cost: Annotated[Price, msgspec.Meta(description="output price at most (USD per 1M)")] | None = None
    released_after: Annotated[date, msgspec.Meta(description="release date on or after")] | None = None
    released_before: Annotated[date, msgspec.Meta(description="release date on or before")] | None = None
    q: Annotated[SearchText, msgspec.Meta(description="text search, best match first")] | None = None
    include_removed: Annotated[bool, msgspec.Meta(description="also models that left the catalog")] = False
    type: Annotated[
        list[TypeChoice],
        msgspec.Meta(description="models of any of these types (a model without `type` is chat); default all"),
    ] = []
    sort: SortText | None = None
    has_benchmark: (
        Annotated[BenchmarkName, msgspec.Meta(description="has a result of this benchmark (name case-insensitive)")]
        | None
    ) = None
    cursor: OpaqueCursor | None = None
    at: At | None = None


_PROVIDERS = msgspec.Meta(description="any of these provider ids")
_CAPABILITIES = msgspec.Meta(description="has all of these")


class ModelListQuery(_ModelFilters, kw_only=True):
    """GET /api/v1/models."""

    provider: Annotated[list[Text], _PROVIDERS] = []
    capability: Annotated[list[Capability], _CAPABILITIES] = []


class CapabilityModelsQuery(_ModelFilters, kw_only=True):
    """GET /api/v1/models/capability/{capability}: the capability is given by the path."""

    provider: Annotated[list[Text], _PROVIDERS] = []


class ProviderModelsQuery(_ModelFilters, kw_only=True):
    """GET /api/v1/providers/{provider_id}/models: the provider is given by the path."""

    capability: Annotated[list[Capability], _CAPABILITIES] = []


class DocumentQuery(msgspec.Struct, kw_only=True):
    """GET /api.json and /model-schema.json: models.dev's parameters. Any other parameter a
    models.dev client sends is ignored, as models.dev ignores it."""

    provider: Annotated[list[Text], msgspec.Meta(description="just these providers (an unknown one: none)")] = []
    type: Annotated[
        list[TypeChoice],
        msgspec.Meta(description="models of these types, or `all`; default chat (a model without `type` is chat)"),
    ] = []
    at: At | None = None


class LiteLLMQuery(DocumentQuery, kw_only=True):
    """GET /exports/litellm.json: every type by default (LiteLLM prices each by its `mode`)."""

    type: Annotated[list[TypeChoice], msgspec.Meta(description="models of these types, or `all`; default all")] = []


class CompareQuery(Query, kw_only=True):
    """GET /api/v1/models/compare."""

    ids: Annotated[list[ModelId], msgspec.Meta(min_length=2, max_length=10, description="2 to 10 canonical ids")]
    input_tokens: Annotated[TokenCount, msgspec.Meta(description="for a cost estimate")] | None = None
    output_tokens: Annotated[TokenCount, msgspec.Meta(description="for a cost estimate")] | None = None
    cached_tokens: Annotated[TokenCount, msgspec.Meta(description="cached input tokens")] | None = None
    #: Compare the models as they stood then, at the prices in force then (benchmarks are today's).
    at: At | None = None


class OneModelQuery(Query, kw_only=True):
    """GET /api/v1/models/{provider_id}/{model_id} (and by bare id)."""

    at: At | None = None


class ProvidersQuery(Paging, kw_only=True):
    """GET /api/v1/providers (by id)."""

    include_removed: Annotated[bool, msgspec.Meta(description="also providers that left the catalog")] = False
    cursor: Annotated[Name, msgspec.Meta(description="next_cursor of the previous page")] | None = None


class CapabilitiesQuery(Paging, kw_only=True):
    """GET /api/v1/capabilities."""

    cursor: Annotated[Capability, msgspec.Meta(description="next_cursor of the previous page")] | None = None


class HistoryQuery(Paging, kw_only=True):
    """GET /api/v1/models/{provider_id}/{model_id}/history (newest first)."""

    cursor: Annotated[Seq, msgspec.Meta(description="next_cursor of the previous page")] | None = None


class ChangeFilters(Query, kw_only=True):
    """The change log's filters: GET /api/v1/changes/stream takes these alone."""

    since: Annotated[Seq | Since, msgspec.Meta(description="a cursor or an RFC 3339 time")] | None = None
    provider: Annotated[list[Text], _PROVIDERS] = []
    kind: Annotated[list[ChangeKind], msgspec.Meta(description="any of these kinds")] = []


class ChangesQuery(ChangeFilters, kw_only=True):
    """GET /api/v1/changes and /api/v1/changes.atom (in sequence order)."""

    limit: PageSize = 50
    cursor: Annotated[Seq, msgspec.Meta(description="next_cursor of the previous page")] | None = None


class WebhooksQuery(Paging, kw_only=True):
    """GET /api/v1/webhooks."""

    cursor: Annotated[Seq, msgspec.Meta(description="next_cursor of the previous page")] | None = None


class DeliveriesQuery(WebhooksQuery, kw_only=True):
    """GET /api/v1/webhooks/{id}/deliveries (newest first)."""

    status: Annotated[DeliveryStatus, msgspec.Meta(description="only deliveries in this status")] | None = None


class ModelBenchmarksQuery(Paging, kw_only=True):
    """GET /api/v1/models/{provider_id}/{model_id}/benchmarks."""

    cursor: OpaqueCursor | None = None


class BenchmarksQuery(ModelBenchmarksQuery, kw_only=True):
    """GET /api/v1/benchmarks."""

    ids: Annotated[list[ModelId], msgspec.Meta(description="only these models (canonical ids)")] = []


class CanonicalModelsQuery(Paging, kw_only=True):
    """GET /api/v1/canonical-models (by id)."""

    q: (
        Annotated[SearchText, msgspec.Meta(description="every word a substring of id, name or family (any case)")]
        | None
    ) = None
    family: Annotated[list[Text], msgspec.Meta(description="exact family (any of)")] = []
    has_benchmarks: Annotated[bool, msgspec.Meta(description="with (true) or without (false) benchmark results")] | (
        None
    ) = None
    include_removed: Annotated[bool, msgspec.Meta(description="also models that left the catalog")] = False
    cursor: Annotated[Name, msgspec.Meta(description="next_cursor of the previous page")] | None = None


class ModelsDocumentQuery(msgspec.Struct, kw_only=True):
    """GET /models.json: models.dev's model cards. Any other parameter is ignored, as models.dev does."""

    at: At | None = None


# -- path parameters --------------------------------------------------------------------------


class ModelPath(msgspec.Struct, kw_only=True):
    """A model's canonical path: /models/{provider_id}/{model_id} (model ids may hold `/`)."""

    provider_id: Name
    model_id: Name


class BareModelPath(msgspec.Struct, kw_only=True):
    """/models/{model_id}: a model id without its provider (the seed's form)."""

    model_id: Name


class CanonicalPath(msgspec.Struct, kw_only=True):
    """/canonical-models/{lab}/{id}: a canonical model's id (the part after the lab may hold `/`)."""

    lab: Name
    id: Name


class CapabilityPath(msgspec.Struct, kw_only=True):
    capability: Capability


class ProviderPath(msgspec.Struct, kw_only=True):
    provider_id: Name


class RunPath(msgspec.Struct, kw_only=True):
    run_id: Annotated[int, msgspec.Meta(ge=0, le=10**18 - 1)]


class WebhookPath(msgspec.Struct, kw_only=True):
    """/api/v1/webhooks/{id}: a subscription's number."""

    id: Annotated[int, msgspec.Meta(ge=0, le=10**18 - 1)]


# -- headers ----------------------------------------------------------------------------------


class RefreshHeaders(msgspec.Struct, kw_only=True):
    """POST /api/v1/refresh: a retried request with the same key answers the same run."""

    idempotency_key: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="the same key, the same run")] | None
    ) = msgspec.field(default=None, name="Idempotency-Key")


class StreamHeaders(msgspec.Struct, kw_only=True):
    """GET /api/v1/changes/stream: a reconnecting client resumes after the last event it saw."""

    last_event_id: Annotated[Seq, msgspec.Meta(description="the id of the last event received")] | None = msgspec.field(
        default=None, name="Last-Event-ID"
    )


# -- bodies -----------------------------------------------------------------------------------


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /api/v1/refresh."""

    providers: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=1000)] | None = None
    force: bool = False


FieldPattern = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=FIELD_PATTERN)]
Description = Annotated[str, msgspec.Meta(max_length=500, pattern=r"^[^\x00]*$")]


class SubscriptionCreate(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /api/v1/webhooks."""

    url: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL_LENGTH)]
    providers: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=1000)] | None = None
    kinds: Annotated[list[ChangeKind], msgspec.Meta(min_length=1, max_length=3)] | None = None
    fields: Annotated[list[FieldPattern], msgspec.Meta(min_length=1, max_length=100)] | None = None
    description: Description | None = None


class ReplayRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /api/v1/webhooks/{id}/replay."""

    since_seq: Annotated[int, msgspec.Meta(ge=0, le=2**62)]


#: The most benchmark results one import takes.
MAX_BENCHMARK_RESULTS = 10_000


class BenchmarkIn(msgspec.Struct, forbid_unknown_fields=True):
    """One benchmark result to import."""

    model: ModelId
    benchmark: Name
    score: float
    metric: Name | None = None
    source: Name | None = None
    date: date | None = None


BenchmarkList = Annotated[list[BenchmarkIn], msgspec.Meta(min_length=1, max_length=MAX_BENCHMARK_RESULTS)]


# -- answers ----------------------------------------------------------------------------------


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of a list; next_cursor is null on the last page."""

    data: list[T]
    total: int
    next_cursor: str | None


class ModelObject(Model, frozen=True, kw_only=True):
    """The models.dev model object (`id` canonical) with modelmeta's fields."""

    provider_id: str
    model_id: str
    first_seen_at: datetime
    updated_at: datetime
    removed_at: datetime | None


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem; `choices` lists the canonical ids a bare model id may mean (300)."""

    type: str
    title: str
    status: int
    detail: str
    invalid_params: list[dict[str, str]] | None = None
    choices: list[str] | None = None
    request_id: str | None = None


class RunSource(msgspec.Struct, kw_only=True):
    """Where a run's document came from."""

    url: str | None
    etag: str | None
    sha256: str | None
    fallback_reason: str | None


class RunCounts(msgspec.Struct, kw_only=True):
    """Progress and changes of a run."""

    providers_total: int
    providers_done: int
    providers_failed: int
    added: int
    updated: int
    removed: int
    unchanged: int


class ProviderRun(msgspec.Struct, kw_only=True):
    """One provider's part of a run."""

    provider_id: str
    status: ProviderRunStatus
    attempts: int
    added: int
    updated: int
    removed: int
    duration_ms: int | None
    error: str | None


class Run(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A refresh run."""

    id: int
    status: RunStatus
    trigger: Trigger
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    scope: list[str] | None
    force: bool
    error: str | None
    catalog_version: int | None
    source: RunSource
    counts: RunCounts
    coalesced: bool | None = None
    providers: list[ProviderRun] | None = None


class Provider(msgspec.Struct, kw_only=True):
    """A provider: the upstream provider object as received (fields models.dev adds later
    included), with its count of listed models and a hash that changes with any of its data."""

    id: str
    name: str
    env: list[str] = []
    npm: str | None = None
    api: str | None = None
    doc: str | None = None
    model_count: int
    content_hash: str
    first_seen_at: datetime
    updated_at: datetime
    removed_at: datetime | None


class Change(msgspec.Struct, kw_only=True):
    """One entry of the change log; `fields` maps a dotted path to [old, new] for updates."""

    seq: int
    at: datetime
    run_id: int | None
    id: str
    provider_id: str
    model_id: str
    kind: ChangeKind
    fields: dict[str, list[Any]] | None


class BenchmarkOrigin(StrEnum):
    """Where a model's benchmark result comes from: an admin import, or its model card."""

    IMPORT = "import"
    MODELS_DEV = "models.dev"


class Benchmark(msgspec.Struct, kw_only=True):
    """A benchmark result of a model: imported, or its canonical model's card's (`canonical_id`,
    with the entry's harness, variant, dataset and version)."""

    model: str
    benchmark: str
    score: float
    metric: str | None
    source: str | None
    date: date | None
    origin: BenchmarkOrigin
    canonical_id: str | None
    harness: str | None
    variant: str | None
    dataset: str | None
    version: str | None


class CardBenchmark(msgspec.Struct, kw_only=True):
    """A benchmark result on a model card, as models.dev gives it: these fields checked, the
    others (harness, variant, dataset, version, ...) kept as received."""

    name: str
    score: float | None = None
    metric: str | None = None
    source: str | None = None
    date: str | None = None


class CanonicalModel(msgspec.Struct, kw_only=True):
    """A canonical model: its card as models.dev's /models.json gives it (every field, those not
    named here included), with `id` and modelmeta's fields."""

    id: str
    name: str
    family: str | None = None
    benchmarks: list[CardBenchmark] | None = None
    content_hash: str
    first_seen_at: datetime
    updated_at: datetime
    removed_at: datetime | None


class CatalogDocument(msgspec.Struct, kw_only=True):
    """GET /catalog.json: models.dev's cards and its catalog together."""

    models: dict[str, Any]
    providers: dict[str, Any]


class CanonicalLink(StrEnum):
    """How an offering is linked to its canonical model."""

    UPSTREAM = "upstream"
    INFERRED = "inferred"


class Offering(msgspec.Struct, kw_only=True):
    """A provider's model linked to a canonical model, with its price and limits."""

    id: str
    provider_id: str
    model_id: str
    name: str
    canonical_link: CanonicalLink
    cost: Cost | None
    limit: Limit | None


class CanonicalModelDetail(CanonicalModel, kw_only=True):
    """A canonical model with every listed offering linked to it."""

    offerings: list[Offering]


class CapabilityCount(msgspec.Struct, kw_only=True):
    """A capability with the number of listed models that have it."""

    name: Capability
    count: int


class Comparison(msgspec.Struct, kw_only=True):
    """2 to 10 models side by side (`data` holds model objects, in the order asked)."""

    data: list[msgspec.Raw]
    differences: dict[str, list[Any]]
    cheapest: str | None
    largest_context: str | None
    cost_estimates: dict[str, float | None] | None
    benchmarks: dict[str, dict[str, float]]


class Schedule(msgspec.Struct, kw_only=True):
    """The scheduler's plan, as the leading scheduler last published it."""

    interval: float
    next_run_at: datetime | None
    leader: str | None


class Source(msgspec.Struct, kw_only=True):
    """The upstream in use."""

    url: str


class RefreshStatus(msgspec.Struct, kw_only=True):
    """Recent runs, newest first, with the schedule and the source."""

    data: list[Run]
    schedule: Schedule
    source: Source


class Imported(msgspec.Struct, kw_only=True):
    """How many benchmark results an import stored."""

    imported: int


class Health(msgspec.Struct, kw_only=True):
    """GET /healthz."""

    status: str


class Readiness(msgspec.Struct, kw_only=True):
    """GET /readyz: each dependency's check (`ok`, or why not)."""

    ready: bool
    checks: dict[str, str]


# -- answers from database rows ---------------------------------------------------------------


def run_object(r: Any, *, coalesced: bool | None = None, providers: list[Any] | None = None) -> Run:
    """A Run from a row of shared.db.runs (RUN_COLUMNS)."""
    return Run(
        id=r["id"],
        status=r["status"],
        trigger=r["trigger"],
        requested_at=r["requested_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        scope=r["scope"],
        force=r["force"],
        error=r["error"],
        catalog_version=r["catalog_version"],
        source=RunSource(url=r["source_url"], etag=r["etag"], sha256=r["sha256"], fallback_reason=r["fallback_reason"]),
        counts=RunCounts(
            providers_total=r["providers_total"],
            providers_done=r["providers_done"],
            providers_failed=r["providers_failed"],
            added=r["added"],
            updated=r["updated"],
            removed=r["removed"],
            unchanged=r["unchanged"],
        ),
        coalesced=coalesced,
        providers=[provider_run_object(p) for p in providers] if providers is not None else None,
    )


def provider_run_object(p: Any) -> ProviderRun:
    """A ProviderRun from a row of shared.db.runs.provider_runs."""
    return ProviderRun(
        provider_id=p["provider_id"],
        status=p["status"],
        attempts=p["attempts"],
        added=p["added"],
        updated=p["updated"],
        removed=p["removed"],
        duration_ms=p["duration_ms"],
        error=p["error"],
    )


def change_object(r: Any) -> Change:
    """A Change from a row of model_changes."""
    return Change(
        seq=r["seq"],
        at=r["at"],
        run_id=r["run_id"],
        id=f"{r['provider_id']}/{r['model_id']}",
        provider_id=r["provider_id"],
        model_id=r["model_id"],
        kind=r["kind"],
        fields=r["fields"],
    )


def benchmark_object(r: Any) -> Benchmark:
    """A Benchmark from a row of shared.db.scores (the view model_benchmark_results)."""
    return Benchmark(
        model=f"{r['provider_id']}/{r['model_id']}",
        benchmark=r["benchmark"],
        score=r["score"],
        metric=r["metric"] or None,
        source=r["source"] or None,
        date=r["measured_at"],
        origin=r["origin"],
        canonical_id=r["canonical_id"],
        harness=r["harness"],
        variant=r["variant"],
        dataset=r["dataset"],
        version=r["version"],
    )


class PricePeriod(msgspec.Struct, kw_only=True):
    """An interval in which a model was listed with the same `cost` object (issue 13)."""

    from_: datetime = msgspec.field(name="from")
    to: datetime | None  # None while it is current
    cost: dict[str, Any] | None  # the models.dev cost object; None when the model had no price

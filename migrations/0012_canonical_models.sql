-- Canonical models (models.dev's /models.json): the models behind the providers' offerings, each
-- with its card (name, family, dates, modalities, limits, license, links, weights, benchmark
-- results). Stored with the upstream object exactly (`raw`, its `id` included), diffed by content
-- hash, soft-removed, versioned like models (the catalog in time), and their changes are in the
-- change log under the pseudo-provider `@models` (model_id = the canonical id), so that a changed
-- benchmark score is a field-level change in the feed and the webhooks.
CREATE TABLE canonical_models (
    id             text PRIMARY KEY,           -- 'alibaba/qwen3-32b', as the upstream keys it
    raw            jsonb NOT NULL,             -- the card exactly as received
    content_hash   text NOT NULL,              -- sha256 of the canonical JSON of raw
    name           text GENERATED ALWAYS AS (
        CASE WHEN jsonb_typeof(raw -> 'name') = 'string' THEN raw ->> 'name' ELSE '' END) STORED,
    family         text GENERATED ALWAYS AS (
        CASE WHEN jsonb_typeof(raw -> 'family') = 'string' THEN raw ->> 'family' END) STORED,
    -- the last path segment of the id, lower-cased: what an offering's id is matched on (inferred links)
    segment        text GENERATED ALWAYS AS (lower(regexp_replace(id, '^.*/', ''))) STORED,
    -- a result with a name and a numeric score (what the offerings' benchmark lists show)
    has_benchmarks boolean GENERATED ALWAYS AS (
        CASE WHEN jsonb_typeof(raw -> 'benchmarks') = 'array'
             THEN jsonb_path_exists(raw -> 'benchmarks', '$[*] ? (@.name.type() == "string" && @.score.type() == "number")')
             ELSE false END) STORED,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    removed_at     timestamptz
);
CREATE INDEX canonical_models_segment_idx ON canonical_models (segment) WHERE removed_at IS NULL;
CREATE INDEX canonical_models_family_idx ON canonical_models (family);
CREATE INDEX canonical_models_search_idx ON canonical_models
    USING gin (lower(id || ' ' || name || ' ' || coalesce(family, '')) gin_trgm_ops);

-- Every version of each card with the interval in which it was current (migration 0009's shape).
CREATE TABLE canonical_model_versions (
    id            text NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz,
    removed_at    timestamptz CHECK (removed_at = valid_from),
    first_seen_at timestamptz NOT NULL,
    raw           jsonb NOT NULL,
    PRIMARY KEY (id, valid_from),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);

-- The benchmark results of the cards, one row per entry of a card's `benchmarks` (in its order),
-- rebuilt from raw for every card a sync writes: what model lists sort and filter on.
CREATE TABLE canonical_benchmarks (
    canonical_id text NOT NULL REFERENCES canonical_models (id) ON DELETE CASCADE,
    ordinal      integer NOT NULL,
    benchmark    text NOT NULL,
    score        double precision,
    metric       text NOT NULL DEFAULT '',
    source       text NOT NULL DEFAULT '',
    measured_at  date,
    result       jsonb NOT NULL,               -- the entry as the card holds it (harness, variant, ...)
    PRIMARY KEY (canonical_id, ordinal)
);
CREATE INDEX canonical_benchmarks_name_idx ON canonical_benchmarks (lower(benchmark), canonical_id);

-- A date of an upstream text, NULL unless it is a valid YYYY-MM-DD.
CREATE FUNCTION jsonb_as_date(j jsonb) RETURNS date LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF jsonb_typeof(j) = 'string' AND (j #>> '{}') ~ '^\d{4}-\d{2}-\d{2}$' THEN
        RETURN (j #>> '{}')::date;
    END IF;
    RETURN NULL;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;

-- Each offering's link to its canonical model: `upstream` when its object names one (the first of
-- canonical_id, canonical_model_id, base_model present as a text), `inferred` when the last path
-- segment of its id equals exactly one listed canonical model's, case-insensitively.
ALTER TABLE models ADD COLUMN canonical_id text, ADD COLUMN canonical_link text
    CHECK (canonical_link IN ('upstream', 'inferred'));
CREATE INDEX models_canonical_idx ON models (canonical_id) WHERE canonical_id IS NOT NULL;

-- (Self-contained: it does not use migration 0009's jsonb_as_* functions.)
CREATE FUNCTION model_upstream_canonical(p_raw jsonb) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(
        CASE WHEN jsonb_typeof(p_raw -> 'canonical_id') = 'string' THEN nullif(p_raw ->> 'canonical_id', '') END,
        CASE WHEN jsonb_typeof(p_raw -> 'canonical_model_id') = 'string'
             THEN nullif(p_raw ->> 'canonical_model_id', '') END,
        CASE WHEN jsonb_typeof(p_raw -> 'base_model') = 'string' THEN nullif(p_raw ->> 'base_model', '') END)
$$;

-- The API's model object with its link (migration 0003's, plus canonical_id and canonical_link when linked).
CREATE FUNCTION model_api_doc(
    p_provider_id text, p_model_id text, p_raw jsonb,
    p_first_seen_at timestamptz, p_updated_at timestamptz, p_removed_at timestamptz,
    p_canonical_id text, p_canonical_link text
) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (p_raw
        || CASE WHEN p_raw ? 'id' AND p_raw->'id' IS DISTINCT FROM to_jsonb(p_model_id)
                THEN jsonb_build_object('source_id', p_raw->'id') ELSE '{}'::jsonb END
        || CASE WHEN p_canonical_id IS NOT NULL
                THEN jsonb_build_object('canonical_id', p_canonical_id, 'canonical_link', p_canonical_link)
                ELSE '{}'::jsonb END
        || jsonb_build_object(
            'id', p_provider_id || '/' || p_model_id,
            'provider_id', p_provider_id,
            'model_id', p_model_id,
            'first_seen_at', api_time(p_first_seen_at),
            'updated_at', api_time(p_updated_at),
            'removed_at', api_time(p_removed_at)))::text
$$;

-- The six-argument form (migrations 0002, 0003) is this one without a link: one body for both.
CREATE OR REPLACE FUNCTION model_api_doc(
    p_provider_id text, p_model_id text, p_raw jsonb,
    p_first_seen_at timestamptz, p_updated_at timestamptz, p_removed_at timestamptz
) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT model_api_doc(p_provider_id, p_model_id, p_raw, p_first_seen_at, p_updated_at, p_removed_at, NULL, NULL)
$$;

-- The one-row state of the canonical set: the hash of the models document last synced ('' when
-- none is stored), so that a refresh whose models document is unchanged skips it.
CREATE TABLE canonical_state (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    content_hash text NOT NULL DEFAULT ''
);
INSERT INTO canonical_state DEFAULT VALUES;

-- Every benchmark result of each offering: the imported ones and its linked card's.
CREATE VIEW model_benchmark_results AS
SELECT b.provider_id, b.model_id, b.benchmark, b.score, b.metric, b.source, b.measured_at,
       'import'::text AS origin, NULL::text AS canonical_id, 0 AS ordinal, NULL::jsonb AS result
FROM model_benchmarks b
UNION ALL
SELECT m.provider_id, m.model_id, c.benchmark, c.score, c.metric, c.source, c.measured_at,
       'models.dev'::text, c.canonical_id, c.ordinal, c.result
FROM models m JOIN canonical_benchmarks c ON c.canonical_id = m.canonical_id
WHERE c.score IS NOT NULL;

-- The link of an offering (its model id and upstream object) as the rules above give it.
CREATE FUNCTION model_canonical_link(p_model_id text, p_raw jsonb, OUT canonical_id text, OUT canonical_link text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(u.cid, i.cid),
           CASE WHEN u.cid IS NOT NULL THEN 'upstream' WHEN i.cid IS NOT NULL THEN 'inferred' END
    FROM (SELECT model_upstream_canonical(p_raw) AS cid) u
    LEFT JOIN LATERAL (
        SELECT min(c.id) AS cid FROM canonical_models c
        WHERE c.removed_at IS NULL AND c.segment = lower(regexp_replace(p_model_id, '^.*/', ''))
        HAVING count(*) = 1
    ) i ON u.cid IS NULL
$$;

-- Where the models document last synced came from and its ETag: a conditional GET asks for it again.
ALTER TABLE canonical_state ADD COLUMN source_url text, ADD COLUMN etag text;
-- The models document a run loaded beside the catalog (synced by its `@models` provider-run).
ALTER TABLE refresh_runs ADD COLUMN models_url text, ADD COLUMN models_etag text;

-- Offerings stored before this migration whose objects name their canonical model: linked now
-- (no card is stored yet, so no link is inferred; the first sync of a models document infers them).
UPDATE models m SET canonical_id = l.canonical_id, canonical_link = l.canonical_link,
    api_doc = model_api_doc(m.provider_id, m.model_id, m.raw, m.first_seen_at, m.updated_at, m.removed_at,
                            l.canonical_id, l.canonical_link)
FROM models n CROSS JOIN LATERAL model_canonical_link(n.model_id, n.raw) l
WHERE (n.provider_id, n.model_id) = (m.provider_id, m.model_id) AND l.canonical_id IS NOT NULL;

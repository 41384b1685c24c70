-- The catalog, its change log, the refresh runs that write it, and the snapshots they loaded.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- One row: the catalog version that every committed change bumps (ETags, cache checks).
-- A row rather than a sequence so that versions are gapless and follow commit order.
CREATE TABLE catalog_state (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    version    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO catalog_state DEFAULT VALUES;

CREATE TABLE providers (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    env           text[] NOT NULL DEFAULT '{}',
    npm           text,
    api           text,
    doc           text,
    raw           jsonb NOT NULL,          -- the provider object as received, without its models
    content_hash  text NOT NULL,           -- sha256 of the provider's slice of the source
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    removed_at    timestamptz
);

CREATE TABLE models (
    provider_id       text NOT NULL REFERENCES providers (id),
    model_id          text NOT NULL,
    provider_name     text NOT NULL,       -- copied for search; kept in step by sync_provider
    name              text NOT NULL,
    family            text,
    attachment        boolean,
    reasoning         boolean,
    tool_call         boolean,
    temperature       boolean,
    structured_output boolean,
    open_weights      boolean,
    interleaved       boolean,
    knowledge         text,
    release_date      text,                -- YYYY-MM-DD or YYYY-MM as upstream writes it
    last_updated      text,
    status            text,
    input_modalities  text[] NOT NULL DEFAULT '{}',
    output_modalities text[] NOT NULL DEFAULT '{}',
    context_limit     bigint,
    input_limit       bigint,
    output_limit      bigint,
    input_cost        double precision,
    output_cost       double precision,
    cache_read_cost   double precision,
    cache_write_cost  double precision,
    raw               jsonb NOT NULL,      -- the model object exactly as received
    content_hash      text NOT NULL,       -- sha256 of the canonical JSON of raw
    first_seen_at     timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    removed_at        timestamptz,
    search_text       text GENERATED ALWAYS AS (
        lower(provider_id || '/' || model_id || ' ' || name || ' ' || coalesce(family, '') || ' ' || provider_name)
    ) STORED,
    search            tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple'::regconfig, coalesce(name, '')), 'A')
        || setweight(to_tsvector('simple'::regconfig, replace(model_id, '/', ' ')), 'A')
        || setweight(to_tsvector('simple'::regconfig, coalesce(family, '')), 'B')
        || setweight(to_tsvector('simple'::regconfig, provider_id || ' ' || provider_name), 'C')
    ) STORED,
    PRIMARY KEY (provider_id, model_id)
);

-- Listed models are what every list query reads; removed ones only with include_removed.
CREATE INDEX models_listed_idx ON models (provider_id, model_id) WHERE removed_at IS NULL;
CREATE INDEX models_search_idx ON models USING gin (search);
CREATE INDEX models_search_trgm_idx ON models USING gin (search_text gin_trgm_ops);
CREATE INDEX models_input_modalities_idx ON models USING gin (input_modalities);
CREATE INDEX models_output_modalities_idx ON models USING gin (output_modalities);
CREATE INDEX models_name_sort_idx ON models (lower(name), provider_id, model_id);
CREATE INDEX models_release_sort_idx ON models (release_date, provider_id, model_id);
CREATE INDEX models_input_cost_sort_idx ON models (input_cost, provider_id, model_id);
CREATE INDEX models_output_cost_sort_idx ON models (output_cost, provider_id, model_id);
CREATE INDEX models_context_sort_idx ON models (context_limit, provider_id, model_id);
CREATE INDEX models_family_idx ON models (family);

CREATE TABLE snapshots (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256     text NOT NULL UNIQUE,
    source_url text NOT NULL,
    etag       text,
    fetched_at timestamptz NOT NULL DEFAULT now(),
    size       integer NOT NULL,
    body       bytea NOT NULL
);

CREATE TABLE refresh_runs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status            text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'partial', 'failed', 'unchanged')),
    trigger           text NOT NULL CHECK (trigger IN ('api', 'scheduler', 'cli')),
    scope             text[],              -- provider ids, or NULL for the whole catalog
    scope_key         text NOT NULL,       -- '*' or the sorted provider ids: what coalesces
    force             boolean NOT NULL DEFAULT false,
    idempotency_key   text UNIQUE,
    requested_at      timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    source_url        text,
    etag              text,
    sha256            text,
    snapshot_id       bigint REFERENCES snapshots (id),
    fallback_reason   text,
    error             text,
    providers_total   integer NOT NULL DEFAULT 0,
    providers_pending integer NOT NULL DEFAULT 0,
    catalog_version   bigint
);
-- At most one open run per scope: a trigger that finds one joins it.
CREATE UNIQUE INDEX refresh_runs_open_scope_idx ON refresh_runs (scope_key)
    WHERE status IN ('queued', 'running');
CREATE INDEX refresh_runs_requested_idx ON refresh_runs (requested_at DESC);

CREATE TABLE refresh_provider_runs (
    run_id      bigint NOT NULL REFERENCES refresh_runs (id) ON DELETE CASCADE,
    provider_id text NOT NULL,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    slice       bytea,                     -- the provider's slice of the document; NULL once done
    slice_hash  text,                      -- NULL when the provider vanished from the source
    added       integer NOT NULL DEFAULT 0,
    updated     integer NOT NULL DEFAULT 0,
    removed     integer NOT NULL DEFAULT 0,
    unchanged   integer NOT NULL DEFAULT 0,
    duration_ms integer,
    error       text,
    started_at  timestamptz,
    finished_at timestamptz,
    PRIMARY KEY (run_id, provider_id)
);

CREATE TABLE model_changes (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          bigint REFERENCES refresh_runs (id) ON DELETE SET NULL,
    provider_id     text NOT NULL,
    model_id        text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('added', 'updated', 'removed')),
    fields          jsonb,
    catalog_version bigint NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_changes_model_idx ON model_changes (provider_id, model_id, seq DESC);
CREATE INDEX model_changes_at_idx ON model_changes (at, seq);

CREATE TABLE model_benchmarks (
    provider_id text NOT NULL,
    model_id    text NOT NULL,
    benchmark   text NOT NULL,
    metric      text NOT NULL DEFAULT '',
    source      text NOT NULL DEFAULT '',
    score       double precision NOT NULL,
    measured_at date,
    imported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider_id, model_id, benchmark, metric, source)
);

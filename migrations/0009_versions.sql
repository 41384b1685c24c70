-- The catalog in time (ARCHITECTURE.md): every version of each model and provider with the interval
-- [valid_from, valid_to) in which it was current (valid_to NULL while it is), so that the catalog at
-- an instant is a range query and a price timeline is a scan of one model's versions. A model or
-- provider that left the catalog has a version from then on with removed_at set (to its valid_from)
-- and its last object.
-- The change log stays the record of what changed. This migration also builds the versions of the
-- data already stored, from the current rows, the change log and the loaded snapshots.

-- import-history's runs, and the time of a run's changes when it is not the time it ran (a
-- document's date): every sync of the run, retried or resent, writes its changes at that time.
ALTER TABLE refresh_runs DROP CONSTRAINT IF EXISTS refresh_runs_trigger_check;
ALTER TABLE refresh_runs ADD CONSTRAINT refresh_runs_trigger_check
    CHECK (trigger IN ('api', 'scheduler', 'cli', 'import'));
ALTER TABLE refresh_runs ADD COLUMN changes_at timestamptz;

-- When each catalog version that changed models or providers was committed. Times never decrease
-- with the version, so the catalog at an instant is the one of the newest version at or before it.
CREATE TABLE catalog_versions (
    version bigint PRIMARY KEY,
    at      timestamptz NOT NULL
);
CREATE INDEX catalog_versions_at_idx ON catalog_versions (at, version);

-- Typed values of an upstream JSON value, NULL when it is absent or of another type; the typed
-- columns of model_versions are these, as shared.catalog.model_row gives them for `models` (the
-- tests hold the two equal on the real catalogs).
CREATE FUNCTION jsonb_as_bool(j jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN jsonb_typeof(j) = 'boolean' THEN j::boolean END $$;
CREATE FUNCTION jsonb_as_text(j jsonb) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN jsonb_typeof(j) = 'string' THEN j #>> '{}' END $$;
CREATE FUNCTION jsonb_as_float8(j jsonb) RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN jsonb_typeof(j) = 'number' THEN j::float8 END $$;
CREATE FUNCTION jsonb_as_bigint(j jsonb) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN jsonb_typeof(j) = 'number' THEN j::numeric::bigint END $$;
CREATE FUNCTION jsonb_as_text_array(j jsonb) RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN jsonb_typeof(j) = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(j))
                      ELSE '{}'::text[] END $$;

CREATE TABLE model_versions (
    provider_id       text NOT NULL,
    model_id          text NOT NULL,
    valid_from        timestamptz NOT NULL,
    valid_to          timestamptz,
    removed_at        timestamptz CHECK (removed_at = valid_from),  -- set on the version it is removed in
    first_seen_at     timestamptz NOT NULL,
    provider_name     text NOT NULL,
    raw               jsonb NOT NULL,
    -- The columns the API filters and sorts on, computed from raw (migration 0001 has them on models).
    name              text GENERATED ALWAYS AS (coalesce(jsonb_as_text(raw -> 'name'), '')) STORED,
    family            text GENERATED ALWAYS AS (jsonb_as_text(raw -> 'family')) STORED,
    attachment        boolean GENERATED ALWAYS AS (jsonb_as_bool(raw -> 'attachment')) STORED,
    reasoning         boolean GENERATED ALWAYS AS (jsonb_as_bool(raw -> 'reasoning')) STORED,
    tool_call         boolean GENERATED ALWAYS AS (jsonb_as_bool(raw -> 'tool_call')) STORED,
    temperature       boolean GENERATED ALWAYS AS (jsonb_as_bool(raw -> 'temperature')) STORED,
    structured_output boolean GENERATED ALWAYS AS (jsonb_as_bool(raw -> 'structured_output')) STORED,
    open_weights      boolean GENERATED ALWAYS AS (jsonb_as_bool(raw -> 'open_weights')) STORED,
    -- true, false, or an object (true unless empty), as Python's bool() of the decoded value
    interleaved       boolean GENERATED ALWAYS AS (CASE jsonb_typeof(raw -> 'interleaved')
                          WHEN 'boolean' THEN (raw -> 'interleaved')::boolean
                          WHEN 'object' THEN raw -> 'interleaved' <> '{}'::jsonb END) STORED,
    knowledge         text GENERATED ALWAYS AS (jsonb_as_text(raw -> 'knowledge')) STORED,
    release_date      text GENERATED ALWAYS AS (jsonb_as_text(raw -> 'release_date')) STORED,
    last_updated      text GENERATED ALWAYS AS (jsonb_as_text(raw -> 'last_updated')) STORED,
    status            text GENERATED ALWAYS AS (jsonb_as_text(raw -> 'status')) STORED,
    input_modalities  text[] GENERATED ALWAYS AS (jsonb_as_text_array(raw -> 'modalities' -> 'input')) STORED,
    output_modalities text[] GENERATED ALWAYS AS (jsonb_as_text_array(raw -> 'modalities' -> 'output')) STORED,
    context_limit     bigint GENERATED ALWAYS AS (jsonb_as_bigint(raw -> 'limit' -> 'context')) STORED,
    input_limit       bigint GENERATED ALWAYS AS (jsonb_as_bigint(raw -> 'limit' -> 'input')) STORED,
    output_limit      bigint GENERATED ALWAYS AS (jsonb_as_bigint(raw -> 'limit' -> 'output')) STORED,
    input_cost        double precision GENERATED ALWAYS AS (jsonb_as_float8(raw -> 'cost' -> 'input')) STORED,
    output_cost       double precision GENERATED ALWAYS AS (jsonb_as_float8(raw -> 'cost' -> 'output')) STORED,
    cache_read_cost   double precision GENERATED ALWAYS AS (jsonb_as_float8(raw -> 'cost' -> 'cache_read')) STORED,
    cache_write_cost  double precision GENERATED ALWAYS AS (jsonb_as_float8(raw -> 'cost' -> 'cache_write')) STORED,
    PRIMARY KEY (provider_id, model_id, valid_from),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE TABLE provider_versions (
    id            text NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz,
    removed_at    timestamptz CHECK (removed_at = valid_from),
    first_seen_at timestamptz NOT NULL,
    content_hash  text NOT NULL,          -- the provider's slice hash when this version began
    raw           jsonb NOT NULL,         -- the provider object without its models
    PRIMARY KEY (id, valid_from),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);

-- ---------------------------------------------------------------------------------------------
-- The versions of the data already stored.

-- The time of each catalog version: its changes' time, made never to decrease with the version.
INSERT INTO catalog_versions (version, at)
SELECT catalog_version, max(max(at)) OVER (ORDER BY catalog_version)
FROM model_changes GROUP BY catalog_version;
ANALYZE catalog_versions;

-- jsonb_set that creates the objects on the way (jsonb_set itself creates only the last key).
CREATE FUNCTION pg_temp.jsonb_set_deep(target jsonb, path text[], value jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(path, 1), 1) - 1 LOOP
        IF jsonb_typeof(target #> path[1:i]) IS DISTINCT FROM 'object' THEN
            target := jsonb_set(target, path[1:i], '{}'::jsonb, true);
        END IF;
    END LOOP;
    RETURN jsonb_set(target, path, value, true);
END $$;

-- A model object as it was before an `updated` change: each field back to its old value; a field
-- whose old value is null was absent, and an object its removal leaves empty was absent too.
CREATE FUNCTION pg_temp.before_change(raw jsonb, fields jsonb) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    f record;
    path text[];
BEGIN
    FOR f IN SELECT key, value FROM jsonb_each(coalesce(fields, '{}'::jsonb)) LOOP
        path := string_to_array(f.key, '.');
        IF f.value -> 0 = 'null'::jsonb THEN
            raw := raw #- path;
            FOR i IN REVERSE coalesce(array_length(path, 1), 1) - 1 .. 1 LOOP
                EXIT WHEN (raw #> path[1:i]) IS DISTINCT FROM '{}'::jsonb;
                raw := raw #- path[1:i];
            END LOOP;
        ELSE
            raw := pg_temp.jsonb_set_deep(raw, path, f.value -> 0);
        END IF;
    END LOOP;
    RETURN raw;
END $$;

-- A loaded document, or NULL when its body is not a JSON object that PostgreSQL can hold.
CREATE FUNCTION pg_temp.document(body bytea) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    doc jsonb;
BEGIN
    doc := convert_from(body, 'UTF8')::jsonb;
    RETURN CASE WHEN jsonb_typeof(doc) = 'object' THEN doc END;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;

-- Each provider of each document a run loaded (snapshots), parsed once: its object without its
-- models, and its models when the walk below may look one up (the run of the change before a
-- removal: the model's last object).
CREATE TEMP TABLE loaded_providers ON COMMIT DROP AS
    WITH before_removal AS (
        SELECT DISTINCT b.run_id FROM model_changes r
        CROSS JOIN LATERAL (
            SELECT run_id FROM model_changes p WHERE p.provider_id = r.provider_id AND p.model_id = r.model_id
            AND p.seq < r.seq ORDER BY p.seq DESC LIMIT 1
        ) b
        WHERE r.kind = 'removed'
    )
    SELECT d.run_id, p.key AS provider_id, p.value - 'models' AS raw,
           CASE WHEN d.run_id IN (SELECT run_id FROM before_removal) THEN p.value -> 'models' END AS models
    FROM (SELECT r.id AS run_id, pg_temp.document(s.body) AS doc
          FROM refresh_runs r JOIN snapshots s ON s.id = r.snapshot_id
          WHERE r.source_kind = 'document' AND r.status IN ('succeeded', 'partial')) d,
         LATERAL jsonb_each(d.doc) p
    WHERE jsonb_typeof(p.value) = 'object';
CREATE INDEX ON loaded_providers (provider_id, run_id);
ANALYZE loaded_providers;

-- A model's object in the document that a run loaded (NULL when the run kept no document).
CREATE FUNCTION pg_temp.model_in_run(p_run_id bigint, p_provider_id text, p_model_id text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT models -> p_model_id FROM loaded_providers WHERE run_id = p_run_id AND provider_id = p_provider_id
$$;

CREATE FUNCTION pg_temp.add_model_version(
    m models, p_from timestamptz, p_to timestamptz, p_removed boolean, p_raw jsonb
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_to IS NULL OR p_from < p_to THEN
        INSERT INTO model_versions (provider_id, model_id, valid_from, valid_to, removed_at, first_seen_at,
                                    provider_name, raw)
        VALUES (m.provider_id, m.model_id, p_from, p_to, CASE WHEN p_removed THEN p_from END, m.first_seen_at,
                m.provider_name, p_raw);
    END IF;
END $$;

-- The common case at once: a model listed since it was added, unchanged since.
INSERT INTO model_versions (provider_id, model_id, valid_from, first_seen_at, provider_name, raw)
SELECT m.provider_id, m.model_id, cv.at, m.first_seen_at, m.provider_name, m.raw
FROM models m
JOIN model_changes mc ON mc.provider_id = m.provider_id AND mc.model_id = m.model_id AND mc.kind = 'added'
JOIN catalog_versions cv ON cv.version = mc.catalog_version
WHERE m.removed_at IS NULL AND NOT EXISTS (
    SELECT 1 FROM model_changes o WHERE o.provider_id = m.provider_id AND o.model_id = m.model_id AND o.seq <> mc.seq);

-- Each other model's versions, walking its changes backwards from the current row. The object a
-- model had before it was added again (after leaving) is not in the change log: it is taken from
-- the document loaded by the run of its change before that, or else assumed unchanged.
DO $$
DECLARE
    m models;
    c record;
    raw jsonb;
    upto timestamptz;
    readded boolean;
    oldest text;
BEGIN
    FOR m IN SELECT * FROM models mm WHERE NOT EXISTS (
        SELECT 1 FROM model_versions v WHERE v.provider_id = mm.provider_id AND v.model_id = mm.model_id
    ) LOOP
        raw := m.raw;
        upto := NULL;
        readded := false;
        oldest := NULL;
        FOR c IN
            SELECT mc.seq, mc.run_id, mc.kind, mc.fields, cv.at FROM model_changes mc
            JOIN catalog_versions cv ON cv.version = mc.catalog_version
            WHERE mc.provider_id = m.provider_id AND mc.model_id = m.model_id ORDER BY mc.seq DESC
        LOOP
            IF c.kind = 'removed' THEN
                IF readded THEN
                    raw := coalesce(pg_temp.model_in_run((
                        SELECT run_id FROM model_changes WHERE provider_id = m.provider_id
                        AND model_id = m.model_id AND seq < c.seq ORDER BY seq DESC LIMIT 1
                    ), m.provider_id, m.model_id), raw);
                    readded := false;
                END IF;
                PERFORM pg_temp.add_model_version(m, c.at, upto, true, raw);
            ELSE
                PERFORM pg_temp.add_model_version(m, c.at, upto, false, raw);
                IF c.kind = 'updated' THEN
                    raw := pg_temp.before_change(raw, c.fields);
                ELSE
                    readded := true;
                END IF;
            END IF;
            upto := least(upto, c.at);
            oldest := c.kind;
        END LOOP;
        IF oldest IS NULL THEN
            -- No change recorded: listed since it was first seen, and removed since it left.
            IF m.removed_at IS NOT NULL THEN
                PERFORM pg_temp.add_model_version(m, m.removed_at, NULL, true, raw);
                upto := m.removed_at;
            END IF;
            PERFORM pg_temp.add_model_version(m, m.first_seen_at, upto, false, raw);
        ELSIF oldest <> 'added' AND m.first_seen_at < upto THEN
            PERFORM pg_temp.add_model_version(m, m.first_seen_at, upto, false, raw);
        END IF;
    END LOOP;
END $$;

-- Providers: their objects as the documents loaded by each run had them (snapshots), reconciled
-- with the current row; a provider without a loaded document has one version since it was first seen.

CREATE FUNCTION pg_temp.add_provider_version(
    p providers, p_from timestamptz, p_to timestamptz, p_removed boolean, p_hash text, p_raw jsonb
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_to IS NULL OR p_from < p_to THEN
        INSERT INTO provider_versions (id, valid_from, valid_to, removed_at, first_seen_at, content_hash, raw)
        VALUES (p.id, p_from, p_to, CASE WHEN p_removed THEN p_from END, p.first_seen_at, coalesce(p_hash, ''), p_raw);
    END IF;
END $$;

DO $$
DECLARE
    p providers;
    o record;
    cur_from timestamptz;
    cur_removed boolean;
    cur_hash text;
    cur_raw jsonb;
    now_removed boolean;
    since timestamptz;
BEGIN
    FOR p IN SELECT * FROM providers LOOP
        cur_from := NULL;
        FOR o IN
            SELECT pr.finished_at AS at, pr.slice_hash IS NULL AS removed, pr.slice_hash, lp.raw
            FROM refresh_provider_runs pr
            LEFT JOIN loaded_providers lp ON lp.provider_id = pr.provider_id AND lp.run_id = pr.run_id
            WHERE pr.provider_id = p.id AND pr.status = 'succeeded' AND pr.finished_at IS NOT NULL
              AND (pr.slice_hash IS NULL OR lp.raw IS NOT NULL)
            ORDER BY pr.finished_at, pr.run_id
        LOOP
            IF cur_from IS NULL THEN
                cur_from := least(p.first_seen_at, o.at);
            ELSIF o.removed = cur_removed AND (o.removed OR o.raw = cur_raw) THEN
                CONTINUE;
            ELSE
                PERFORM pg_temp.add_provider_version(p, cur_from, o.at, cur_removed, cur_hash, cur_raw);
                cur_from := o.at;
            END IF;
            cur_removed := o.removed;
            cur_hash := o.slice_hash;
            cur_raw := coalesce(o.raw, cur_raw, p.raw);
        END LOOP;
        now_removed := p.removed_at IS NOT NULL;
        IF cur_from IS NULL THEN
            cur_from := p.first_seen_at;
            cur_removed := false;
            cur_raw := p.raw;
            cur_hash := p.content_hash;
        END IF;
        IF cur_removed IS DISTINCT FROM now_removed OR (NOT now_removed AND cur_raw <> p.raw) THEN
            -- Changed by a run whose document was not kept: from its last update (or removal).
            since := CASE WHEN now_removed THEN p.removed_at ELSE p.updated_at END;
            IF since > cur_from THEN
                PERFORM pg_temp.add_provider_version(p, cur_from, since, cur_removed, cur_hash, cur_raw);
                cur_from := since;
            END IF;
            cur_removed := now_removed;
            cur_raw := p.raw;
            cur_hash := p.content_hash;
        END IF;
        PERFORM pg_temp.add_provider_version(p, cur_from, NULL, cur_removed, cur_hash, cur_raw);
    END LOOP;
END $$;

DROP FUNCTION pg_temp.add_provider_version, pg_temp.add_model_version, pg_temp.model_in_run,
    pg_temp.document, pg_temp.before_change, pg_temp.jsonb_set_deep;

-- The sorts of the model lists (migration 0006's indexes on `models`), for lists at an instant: a
-- sorted page walks its index in order, skipping the versions not current then. (Built after the
-- versions above, at once.)
CREATE INDEX model_versions_sort_name_idx ON model_versions (lower(name), provider_id, model_id)
    WHERE removed_at IS NULL;
CREATE INDEX model_versions_sort_name_desc_idx ON model_versions (lower(name) DESC, provider_id, model_id)
    WHERE removed_at IS NULL;
CREATE INDEX model_versions_sort_release_idx
    ON model_versions (coalesce(release_date, '9999-99-99'), provider_id, model_id) WHERE removed_at IS NULL;
CREATE INDEX model_versions_sort_release_desc_idx
    ON model_versions (coalesce(release_date, '') DESC, provider_id, model_id) WHERE removed_at IS NULL;
CREATE INDEX model_versions_sort_input_cost_idx
    ON model_versions (coalesce(input_cost, 'Infinity'::float8), provider_id, model_id) WHERE removed_at IS NULL;
CREATE INDEX model_versions_sort_input_cost_desc_idx
    ON model_versions (coalesce(input_cost, '-Infinity'::float8) DESC, provider_id, model_id) WHERE removed_at IS NULL;
CREATE INDEX model_versions_sort_output_cost_idx
    ON model_versions (coalesce(output_cost, 'Infinity'::float8), provider_id, model_id) WHERE removed_at IS NULL;
CREATE INDEX model_versions_sort_output_cost_desc_idx
    ON model_versions (coalesce(output_cost, '-Infinity'::float8) DESC, provider_id, model_id) WHERE removed_at IS NULL;
CREATE INDEX model_versions_sort_context_idx
    ON model_versions (coalesce(context_limit, 9223372036854775807), provider_id, model_id) WHERE removed_at IS NULL;
CREATE INDEX model_versions_sort_context_desc_idx
    ON model_versions (coalesce(context_limit, -1) DESC, provider_id, model_id) WHERE removed_at IS NULL;
ANALYZE model_versions, provider_versions;

-- A narrow search table beside `models`: the id, the search inputs and the rank inputs only, so that
-- a broad text search reads short rows and ranks them through indexes, and only its page is joined
-- back to the wide rows (raw, api_doc). Kept in step with `models` by statement-level triggers in
-- the same transaction as every catalog write.
CREATE TABLE model_search (
    provider_id text NOT NULL,
    model_id    text NOT NULL,
    listed      boolean NOT NULL,            -- removed_at IS NULL
    haystack    text NOT NULL,               -- models.search_text: every query word is a substring
    lexemes     text[] NOT NULL,             -- the words of models.search: a whole-word match
    name_l      text NOT NULL,               -- lower(name)
    model_l     text NOT NULL,               -- lower(model_id)
    name_len    integer NOT NULL,            -- length(name), at most 999: shorter names rank first
    PRIMARY KEY (provider_id, model_id)
);

-- Filled before its indexes are built (a GIN index built at once has no pending list).
INSERT INTO model_search (provider_id, model_id, listed, haystack, lexemes, name_l, model_l, name_len)
SELECT provider_id, model_id, removed_at IS NULL, search_text, tsvector_to_array(search),
       lower(name), lower(model_id), least(length(name), 999)
FROM models;

CREATE INDEX model_search_trgm_idx ON model_search USING gin (haystack gin_trgm_ops);
CREATE INDEX model_search_lexemes_idx ON model_search USING gin (lexemes);
CREATE INDEX model_search_name_idx ON model_search (name_len, name_l text_pattern_ops);
CREATE INDEX model_search_model_idx ON model_search (name_len, model_l text_pattern_ops);
CREATE INDEX model_search_len_idx ON model_search (name_len, provider_id, model_id);
ANALYZE model_search;

CREATE FUNCTION model_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO model_search AS s (provider_id, model_id, listed, haystack, lexemes, name_l, model_l, name_len)
    SELECT provider_id, model_id, removed_at IS NULL, search_text, tsvector_to_array(search),
           lower(name), lower(model_id), least(length(name), 999)
    FROM changed_models
    ON CONFLICT (provider_id, model_id) DO UPDATE SET
        listed = EXCLUDED.listed, haystack = EXCLUDED.haystack, lexemes = EXCLUDED.lexemes,
        name_l = EXCLUDED.name_l, model_l = EXCLUDED.model_l, name_len = EXCLUDED.name_len
    WHERE (s.listed, s.haystack, s.lexemes, s.name_l, s.model_l, s.name_len)
        IS DISTINCT FROM (EXCLUDED.listed, EXCLUDED.haystack, EXCLUDED.lexemes,
                          EXCLUDED.name_l, EXCLUDED.model_l, EXCLUDED.name_len);
    RETURN NULL;
END $$;

CREATE FUNCTION model_search_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM model_search s USING gone_models g
    WHERE s.provider_id = g.provider_id AND s.model_id = g.model_id;
    RETURN NULL;
END $$;

CREATE TRIGGER models_search_insert AFTER INSERT ON models
    REFERENCING NEW TABLE AS changed_models FOR EACH STATEMENT EXECUTE FUNCTION model_search_sync();
CREATE TRIGGER models_search_update AFTER UPDATE ON models
    REFERENCING NEW TABLE AS changed_models FOR EACH STATEMENT EXECUTE FUNCTION model_search_sync();
CREATE TRIGGER models_search_delete AFTER DELETE ON models
    REFERENCING OLD TABLE AS gone_models FOR EACH STATEMENT EXECUTE FUNCTION model_search_forget();

-- Also for refreshes that cost what changed: the sha256 of each model's bytes as last received, so
-- that a model whose bytes are unchanged is neither decoded nor compared (NULL: compare canonically).
ALTER TABLE models ADD COLUMN raw_sha256 text;

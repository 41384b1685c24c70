-- Text search matches every word of the query as a substring of search_text (a trigram index
-- serves that), on listed models; full-text matching of whole words only ranks the results.
DROP INDEX models_search_trgm_idx;
DROP INDEX models_search_idx;
CREATE INDEX models_search_trgm_idx ON models USING gin (search_text gin_trgm_ops) WHERE removed_at IS NULL;

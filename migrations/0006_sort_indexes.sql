-- Indexes that match the list sorts exactly (the expressions of shared.listing.SORTS, NULLs last
-- in either direction, ties by id), on listed models only: a sorted page reads its rows in order
-- instead of sorting the whole table. They replace the plain column indexes of 0001.
DROP INDEX models_name_sort_idx;
DROP INDEX models_release_sort_idx;
DROP INDEX models_input_cost_sort_idx;
DROP INDEX models_output_cost_sort_idx;
DROP INDEX models_context_sort_idx;

CREATE INDEX models_sort_name_idx ON models (lower(name), provider_id, model_id)
    WHERE removed_at IS NULL;
CREATE INDEX models_sort_name_desc_idx ON models (lower(name) DESC, provider_id, model_id)
    WHERE removed_at IS NULL;
CREATE INDEX models_sort_release_idx ON models (coalesce(release_date, '9999-99-99'), provider_id, model_id)
    WHERE removed_at IS NULL;
CREATE INDEX models_sort_release_desc_idx ON models (coalesce(release_date, '') DESC, provider_id, model_id)
    WHERE removed_at IS NULL;
CREATE INDEX models_sort_input_cost_idx ON models (coalesce(input_cost, 'Infinity'::float8), provider_id, model_id)
    WHERE removed_at IS NULL;
CREATE INDEX models_sort_input_cost_desc_idx
    ON models (coalesce(input_cost, '-Infinity'::float8) DESC, provider_id, model_id) WHERE removed_at IS NULL;
CREATE INDEX models_sort_output_cost_idx
    ON models (coalesce(output_cost, 'Infinity'::float8), provider_id, model_id) WHERE removed_at IS NULL;
CREATE INDEX models_sort_output_cost_desc_idx
    ON models (coalesce(output_cost, '-Infinity'::float8) DESC, provider_id, model_id) WHERE removed_at IS NULL;
CREATE INDEX models_sort_context_idx
    ON models (coalesce(context_limit, 9223372036854775807), provider_id, model_id) WHERE removed_at IS NULL;
CREATE INDEX models_sort_context_desc_idx
    ON models (coalesce(context_limit, -1) DESC, provider_id, model_id) WHERE removed_at IS NULL;

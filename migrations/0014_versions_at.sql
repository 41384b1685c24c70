-- Lists at an instant (`at=`) count their total over the versions current then: valid_from <= t
-- and (valid_to IS NULL OR valid_to > t), with the list's filters. Without an index that holds both
-- the interval and the filtered columns, that count reads the whole heap of model_versions (96 MB
-- at 100,000 models, each row carrying its raw object). This index holds the interval and every
-- column a list filters on (shared/db/api_reads.py, `_filters`, but the model type and search
-- text, which are expressions over raw) in a quarter of that (23 MB), so a total at an instant is
-- an index-only scan: 45-65 ms -> 25-41 ms with the heap in memory, and far fewer pages to read
-- when it is not. model_id is included because the catalog at an instant (shared/db/history.py,
-- `_relations`) joins each version to today's row by its key: the join is removed from a count,
-- but the planner still asks the scan for the key.
CREATE INDEX model_versions_at_idx ON model_versions (valid_from) INCLUDE (
    valid_to, removed_at, provider_id, model_id, family, status, tool_call, reasoning, attachment, temperature,
    structured_output, open_weights, interleaved, input_modalities, output_modalities, context_limit,
    output_limit, input_cost, output_cost, release_date
);

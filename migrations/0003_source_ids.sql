-- One format for timestamps in API documents, and the upstream `id` of a model kept when it is
-- not the model's key (the API's `id` is the canonical provider/model id), so that a mirror of
-- this modelmeta can restore every model object exactly.
CREATE FUNCTION api_time(p timestamptz) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(p AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE OR REPLACE FUNCTION model_api_doc(
    p_provider_id text, p_model_id text, p_raw jsonb,
    p_first_seen_at timestamptz, p_updated_at timestamptz, p_removed_at timestamptz
) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (p_raw
        || CASE WHEN p_raw ? 'id' AND p_raw->'id' IS DISTINCT FROM to_jsonb(p_model_id)
                THEN jsonb_build_object('source_id', p_raw->'id') ELSE '{}'::jsonb END
        || jsonb_build_object(
            'id', p_provider_id || '/' || p_model_id,
            'provider_id', p_provider_id,
            'model_id', p_model_id,
            'first_seen_at', api_time(p_first_seen_at),
            'updated_at', api_time(p_updated_at),
            'removed_at', api_time(p_removed_at)))::text
$$;

UPDATE models SET api_doc = model_api_doc(provider_id, model_id, raw, first_seen_at, updated_at, removed_at);

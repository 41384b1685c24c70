-- The API's model object, kept as JSON text beside each row so that reads only splice it.
-- Writers call model_api_doc() whenever raw or a timestamp changes; nothing else builds it.
CREATE FUNCTION model_api_doc(
    p_provider_id text, p_model_id text, p_raw jsonb,
    p_first_seen_at timestamptz, p_updated_at timestamptz, p_removed_at timestamptz
) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (p_raw || jsonb_build_object(
        'id', p_provider_id || '/' || p_model_id,
        'provider_id', p_provider_id,
        'model_id', p_model_id,
        'first_seen_at', to_char(p_first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'updated_at', to_char(p_updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'removed_at', to_char(p_removed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    ))::text
$$;

ALTER TABLE models ADD COLUMN api_doc text;
UPDATE models SET api_doc = model_api_doc(provider_id, model_id, raw, first_seen_at, updated_at, removed_at);
ALTER TABLE models ALTER COLUMN api_doc SET NOT NULL;

-- Which kind of source a run read: a whole models.dev document, or another modelmeta provider by
-- provider (whose provider-runs hold only the provider object; sync_provider fetches the models).
ALTER TABLE refresh_runs ADD COLUMN source_kind text NOT NULL DEFAULT 'document'
    CHECK (source_kind IN ('document', 'modelmeta'));

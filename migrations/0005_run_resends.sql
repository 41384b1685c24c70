-- A run that stops making progress (its messages lost with a Redis restart, say) has its pending
-- work sent again from PostgreSQL, a few times, before it is closed as failed.
ALTER TABLE refresh_runs ADD COLUMN resends integer NOT NULL DEFAULT 0;
ALTER TABLE refresh_runs ADD COLUMN resent_at timestamptz;
CREATE INDEX refresh_runs_open_idx ON refresh_runs (id) WHERE status IN ('queued', 'running');

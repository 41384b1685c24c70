-- Idempotency-Key of POST /api/v1/refresh is bounded: a key matches its run for 24 hours and at
-- most 10,000 keys are held (shared/db/runs.py forget_idempotency_keys, run before each keyed
-- request). This index serves that pruning: it holds only the rows that still carry a key.
CREATE INDEX refresh_runs_idempotency_idx ON refresh_runs (id) WHERE idempotency_key IS NOT NULL;

-- Change notifications: webhook subscriptions and their deliveries. The change log (model_changes)
-- is the outbox: each subscription's cursor_seq is the last change already planned into deliveries.
CREATE TABLE webhook_subscriptions (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url                  text NOT NULL,
    description          text,
    providers            text[],              -- NULL: every provider
    kinds                text[],              -- NULL: every kind
    fields               text[],              -- NULL: every updated change; else dotted patterns
    secret               text NOT NULL,       -- whsec_...
    previous_secret      text,                -- still signing beside the new one until it expires
    previous_expires_at  timestamptz,
    status               text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    disabled_reason      text,
    disabled_at          timestamptz,
    failing_since        timestamptz,         -- the first failure since the last success
    cursor_seq           bigint NOT NULL,     -- changes up to here are planned into deliveries
    replays              integer NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_subscriptions_active_idx ON webhook_subscriptions (cursor_seq) WHERE status = 'active';

CREATE TABLE webhook_deliveries (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id   bigint NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    generation        integer NOT NULL DEFAULT 0,  -- 0 as planned after a commit, N for the Nth replay
    event_type        text NOT NULL CHECK (event_type IN ('catalog.changed', 'webhook.test')),
    first_seq         bigint,                      -- the change range (NULL for a test event)
    last_seq          bigint,
    run_id            bigint,
    provider_id       text,
    catalog_version   bigint,
    change_count      integer NOT NULL DEFAULT 0,
    committed_at      timestamptz,                 -- when its changes were committed
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    last_status_code  integer,
    last_error        text,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    lease_until       timestamptz,                 -- a worker is attempting it until then
    sent_at           timestamptz NOT NULL DEFAULT now(),  -- its last message to the workers
    created_at        timestamptz NOT NULL DEFAULT now(),
    first_attempt_at  timestamptz,
    last_attempt_at   timestamptz,
    delivered_at      timestamptz,
    -- A redelivered message or a second planner finds this row instead of writing another.
    UNIQUE (subscription_id, generation, first_seq, last_seq)
);
CREATE INDEX webhook_deliveries_recent_idx ON webhook_deliveries (subscription_id, id DESC);
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';


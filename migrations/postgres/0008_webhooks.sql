-- Signed webhooks out (issue 13): creators' endpoints, the durable outbox of
-- events (written in the same transaction as the settled gift or tip), and
-- the recent delivery attempts (pruned to `webhooks.deliveries_per_endpoint_max`).

-- One row per registered endpoint. `events` is the subscribed types joined
-- with commas and framed by them (`,gift,tip,`). `done_id` is the last outbox
-- id this endpoint is done with (delivered or finally failed): the next event
-- is the first subscribed one after it. `attempts`/`first_try_ms` describe
-- the event after `done_id`; `lease_*` is the claim of the node delivering.
CREATE TABLE webhook_endpoints (
    id               TEXT PRIMARY KEY,
    creator          TEXT NOT NULL,
    url              TEXT NOT NULL,
    secret           TEXT NOT NULL,
    events           TEXT NOT NULL,
    created_ms       BIGINT NOT NULL,
    disabled_ms      BIGINT,
    disabled_reason  TEXT,
    failing_since_ms BIGINT,
    done_id          BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    first_try_ms     BIGINT,
    next_try_ms      BIGINT NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_until_ms   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX webhook_endpoints_creator ON webhook_endpoints (creator);

-- The outbox: `id` orders a creator's events; `event_id` is what receivers
-- dedupe on; `payload` is the event's `data` (JSON text).
CREATE TABLE webhook_outbox (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   TEXT NOT NULL UNIQUE,
    creator    TEXT NOT NULL,
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX webhook_outbox_creator ON webhook_outbox (creator, id);
CREATE INDEX webhook_outbox_created ON webhook_outbox (created_ms);

-- Recent attempts, newest last; `status` is the HTTP status answered, or
-- NULL with `error` when there was no answer.
CREATE TABLE webhook_deliveries (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    status      BIGINT,
    error       TEXT,
    at_ms       BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

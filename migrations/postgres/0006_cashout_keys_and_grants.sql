-- Cash-outs (issue 11): operation keys unambiguous by construction, Transfer
-- attempts with their own Idempotency-Keys, per-item recovery backoff, and a
-- `flagged` end for a Transfer that does not match its cash-out.
-- Rows written before keep their Idempotency-Key (`transfer_key` = the
-- cash-out id, as sent) and have no transfer_group (''): recovery looks those
-- up by destination and metadata instead. Their ledger operations
-- (`cashout:ID`, `cashout:ID:done|reversed`) stay as written; new ones are
-- `cashout.begin:` / `cashout.end:` (see `OpKey`), a namespace the old ids
-- cannot reach.
ALTER TABLE cashouts DROP CONSTRAINT IF EXISTS cashouts_status_check;
ALTER TABLE cashouts ADD CONSTRAINT cashouts_status_check
    CHECK (status IN ('pending', 'completed', 'reversed', 'flagged'));
ALTER TABLE cashouts ADD COLUMN transfer_key TEXT;
UPDATE cashouts SET transfer_key = cashout_id;
ALTER TABLE cashouts ALTER COLUMN transfer_key SET NOT NULL;
ALTER TABLE cashouts ADD CONSTRAINT cashouts_transfer_key_key UNIQUE (transfer_key);
ALTER TABLE cashouts ADD COLUMN transfer_group TEXT NOT NULL DEFAULT '';
ALTER TABLE cashouts ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1 CHECK (attempt >= 1);
ALTER TABLE cashouts ADD COLUMN attempt_ms BIGINT;
UPDATE cashouts SET attempt_ms = created_ms;
ALTER TABLE cashouts ALTER COLUMN attempt_ms SET NOT NULL;
ALTER TABLE cashouts ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cashouts ADD COLUMN next_try_ms BIGINT NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS cashouts_status;
CREATE INDEX cashouts_status ON cashouts (status, next_try_ms);

-- Admin grants: who granted, for the per-admin daily cap and the audit.
CREATE TABLE grants (
    op_id      TEXT PRIMARY KEY REFERENCES operations(op_id),
    admin      TEXT NOT NULL,
    grantee    TEXT NOT NULL,
    coins      BIGINT NOT NULL CHECK (coins > 0),
    created_ms BIGINT NOT NULL
);
CREATE INDEX grants_admin ON grants (admin, created_ms);

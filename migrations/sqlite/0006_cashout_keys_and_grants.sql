-- Cash-outs (issue 11): operation keys unambiguous by construction, Transfer
-- attempts with their own Idempotency-Keys, per-item recovery backoff, and a
-- `flagged` end for a Transfer that does not match its cash-out.
-- SQLite cannot alter a CHECK, so the table is rebuilt. Rows written before
-- keep their Idempotency-Key (`transfer_key` = the cash-out id, as sent) and
-- have no transfer_group (''): recovery looks those up by destination and
-- metadata instead. Their ledger operations (`cashout:ID`,
-- `cashout:ID:done|reversed`) stay as written; new ones are `cashout.begin:`
-- / `cashout.end:` (see `OpKey`), a namespace the old ids cannot reach.
CREATE TABLE cashouts_new (
    cashout_id     TEXT PRIMARY KEY,
    creator        TEXT NOT NULL,
    diamonds       INTEGER NOT NULL CHECK (diamonds > 0),
    amount_cents   INTEGER NOT NULL CHECK (amount_cents > 0),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'reversed', 'flagged')),
    transfer       TEXT,
    created_ms     INTEGER NOT NULL,
    finished_ms    INTEGER,
    transfer_key   TEXT NOT NULL UNIQUE,       -- Idempotency-Key of the current attempt
    transfer_group TEXT NOT NULL DEFAULT '',   -- '' for cash-outs made before this migration
    attempt        INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    attempt_ms     INTEGER NOT NULL,           -- when the current attempt's key was first sent
    failures       INTEGER NOT NULL DEFAULT 0, -- recovery passes that failed in a row
    next_try_ms    INTEGER NOT NULL DEFAULT 0  -- recovery leaves it alone until then
);
INSERT INTO cashouts_new (cashout_id, creator, diamonds, amount_cents, status, transfer, created_ms, finished_ms, transfer_key, attempt_ms)
    SELECT cashout_id, creator, diamonds, amount_cents, status, transfer, created_ms, finished_ms, cashout_id, created_ms FROM cashouts;
DROP TABLE cashouts;
ALTER TABLE cashouts_new RENAME TO cashouts;
CREATE INDEX cashouts_status ON cashouts (status, next_try_ms);

-- Admin grants: who granted, for the per-admin daily cap and the audit.
CREATE TABLE grants (
    op_id      TEXT PRIMARY KEY REFERENCES operations(op_id),
    admin      TEXT NOT NULL,
    grantee    TEXT NOT NULL,
    coins      INTEGER NOT NULL CHECK (coins > 0),
    created_ms INTEGER NOT NULL
);
CREATE INDEX grants_admin ON grants (admin, created_ms);

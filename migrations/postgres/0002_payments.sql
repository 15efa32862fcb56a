-- Payments (Stripe): the same model as migrations/sqlite/0002_payments.sql.
-- Currency may be USD (cents); only mint-like accounts (mint, external
-- counterparties, debts owed to us) may go below zero.
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT conrelid::regclass::text AS tbl, conname FROM pg_constraint
             WHERE conrelid IN ('entries'::regclass, 'balances'::regclass) AND contype = 'c'
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', r.tbl, r.conname);
    END LOOP;
END $$;
ALTER TABLE entries ADD CONSTRAINT entries_currency_check
    CHECK (currency IN ('COIN', 'DIAMOND', 'USD'));
ALTER TABLE balances ADD CONSTRAINT balances_kind_amount_check
    CHECK (kind IN ('mint', 'external', 'debt') OR amount >= 0);

-- Each Stripe event id is applied once: the row is written in the same
-- transaction as the event's effect.
CREATE TABLE stripe_events (
    event_id   TEXT PRIMARY KEY,
    type       TEXT NOT NULL,
    applied_ms BIGINT NOT NULL
);

CREATE TABLE purchases (
    payment_intent TEXT PRIMARY KEY,
    buyer          TEXT NOT NULL,
    coins          BIGINT NOT NULL CHECK (coins > 0),
    amount_cents   BIGINT NOT NULL CHECK (amount_cents > 0),
    coins_reversed BIGINT NOT NULL DEFAULT 0 CHECK (coins_reversed >= 0 AND coins_reversed <= coins),
    paid           BOOLEAN NOT NULL DEFAULT FALSE,  -- set by payment_intent.succeeded
    cents_refunded BIGINT NOT NULL DEFAULT 0 CHECK (cents_refunded >= 0 AND cents_refunded <= amount_cents),
    created_ms     BIGINT NOT NULL
);

CREATE TABLE payout_accounts (
    creator         TEXT PRIMARY KEY,
    account         TEXT NOT NULL UNIQUE,
    payouts_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    updated_ms      BIGINT NOT NULL
);

CREATE TABLE tips (
    payment_intent TEXT PRIMARY KEY,
    tip_key        TEXT NOT NULL UNIQUE,
    sender         TEXT NOT NULL,
    creator        TEXT NOT NULL,
    target         TEXT NOT NULL,
    amount_cents   BIGINT NOT NULL CHECK (amount_cents > 0),
    message        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'succeeded')),
    created_ms     BIGINT NOT NULL
);

CREATE TABLE cashouts (
    cashout_id   TEXT PRIMARY KEY,
    creator      TEXT NOT NULL,
    diamonds     BIGINT NOT NULL CHECK (diamonds > 0),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    status       TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'reversed')),
    transfer     TEXT,
    created_ms   BIGINT NOT NULL,
    finished_ms  BIGINT
);
CREATE INDEX cashouts_status ON cashouts (status);

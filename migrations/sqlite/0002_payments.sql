-- Payments (Stripe): real money in USD cents beside coins and diamonds.
-- SQLite cannot alter a CHECK, so `entries` and `balances` are rebuilt with
-- the new rules: currency may be USD, and only mint-like accounts (mint,
-- external counterparties, debts owed to us) may go below zero.
CREATE TABLE entries_new (
    op_id    TEXT NOT NULL REFERENCES operations(op_id),
    account  TEXT NOT NULL,
    currency TEXT NOT NULL CHECK (currency IN ('COIN', 'DIAMOND', 'USD')),
    amount   INTEGER NOT NULL,
    PRIMARY KEY (op_id, account, currency)
);
INSERT INTO entries_new SELECT op_id, account, currency, amount FROM entries;
DROP TABLE entries;
ALTER TABLE entries_new RENAME TO entries;

CREATE TABLE balances_new (
    account  TEXT NOT NULL,
    currency TEXT NOT NULL,
    kind     TEXT NOT NULL,              -- mint | external | debt | wallet | spent | earnings | ...
    amount   INTEGER NOT NULL,
    PRIMARY KEY (account, currency),
    CHECK (kind IN ('mint', 'external', 'debt') OR amount >= 0)
);
INSERT INTO balances_new SELECT account, currency, kind, amount FROM balances;
DROP TABLE balances;
ALTER TABLE balances_new RENAME TO balances;

-- Each Stripe event id is applied once: the row is written in the same
-- transaction as the event's effect.
CREATE TABLE stripe_events (
    event_id   TEXT PRIMARY KEY,
    type       TEXT NOT NULL,
    applied_ms INTEGER NOT NULL
);

-- A coin purchase: recorded when its PaymentIntent is created (only those
-- are credited: an event for a PaymentIntent this deployment did not create
-- is ignored), paid by `payment_intent.succeeded`, and what refunds took back.
CREATE TABLE purchases (
    payment_intent TEXT PRIMARY KEY,
    buyer          TEXT NOT NULL,
    coins          INTEGER NOT NULL CHECK (coins > 0),
    amount_cents   INTEGER NOT NULL CHECK (amount_cents > 0),
    coins_reversed INTEGER NOT NULL DEFAULT 0 CHECK (coins_reversed >= 0 AND coins_reversed <= coins),
    paid           INTEGER NOT NULL DEFAULT 0,  -- set by payment_intent.succeeded
    cents_refunded INTEGER NOT NULL DEFAULT 0 CHECK (cents_refunded >= 0 AND cents_refunded <= amount_cents),
    created_ms     INTEGER NOT NULL
);

-- A creator's Stripe Connect account.
CREATE TABLE payout_accounts (
    creator         TEXT PRIMARY KEY,
    account         TEXT NOT NULL UNIQUE,
    payouts_enabled INTEGER NOT NULL DEFAULT 0,
    updated_ms      INTEGER NOT NULL
);

-- A tip: created with its PaymentIntent, succeeded on the webhook.
CREATE TABLE tips (
    payment_intent TEXT PRIMARY KEY,
    tip_key        TEXT NOT NULL UNIQUE,  -- sender:client id
    sender         TEXT NOT NULL,
    creator        TEXT NOT NULL,
    target         TEXT NOT NULL,         -- room:ID | video:ID
    amount_cents   INTEGER NOT NULL CHECK (amount_cents > 0),
    message        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'succeeded')),
    created_ms     INTEGER NOT NULL
);

-- A cash-out: diamonds wait in cashout_pending:{creator} until the
-- Transfer's outcome completes or reverses it (exactly one of the two).
CREATE TABLE cashouts (
    cashout_id   TEXT PRIMARY KEY,
    creator      TEXT NOT NULL,
    diamonds     INTEGER NOT NULL CHECK (diamonds > 0),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    status       TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'reversed')),
    transfer     TEXT,
    created_ms   INTEGER NOT NULL,
    finished_ms  INTEGER
);
CREATE INDEX cashouts_status ON cashouts (status);

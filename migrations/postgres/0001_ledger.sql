-- The double-entry ledger (PostgreSQL engine): the same model as
-- migrations/sqlite/0001_ledger.sql. Amounts are BIGINT in the currency's
-- unit. Every write is keyed by an operation id; the primary key makes a
-- replay of the same operation (a retried batch, a repeated grant) a no-op.
CREATE TABLE operations (
    op_id      TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,            -- grant | purchase | batch | ...
    detail     TEXT NOT NULL,            -- JSON of the request, for replays
    created_ms BIGINT NOT NULL
);
CREATE INDEX operations_kind ON operations (kind);

CREATE TABLE entries (
    op_id    TEXT NOT NULL REFERENCES operations(op_id),
    account  TEXT NOT NULL,
    currency TEXT NOT NULL CHECK (currency IN ('COIN', 'DIAMOND')),
    amount   BIGINT NOT NULL,
    PRIMARY KEY (op_id, account, currency)
);

-- Running balance per account, updated in the same transaction as entries.
CREATE TABLE balances (
    account  TEXT NOT NULL,
    currency TEXT NOT NULL,
    kind     TEXT NOT NULL,              -- mint | wallet | spent | earnings
    amount   BIGINT NOT NULL,
    PRIMARY KEY (account, currency),
    CHECK (kind = 'mint' OR amount >= 0)
);
CREATE INDEX balances_kind ON balances (kind, currency);

-- One row per accepted gift: the sub-ledger behind each batch's postings.
CREATE TABLE gifts (
    target        TEXT NOT NULL,         -- room:ID | video:ID
    seq           BIGINT NOT NULL,
    op_id         TEXT NOT NULL REFERENCES operations(op_id),
    sender        TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    creator       TEXT NOT NULL,
    gift          TEXT NOT NULL,
    count         BIGINT NOT NULL CHECK (count > 0),
    coins         BIGINT NOT NULL CHECK (coins >= 0),
    diamonds      BIGINT NOT NULL CHECK (diamonds >= 0),
    balance_after BIGINT NOT NULL CHECK (balance_after >= 0),
    ts_ms         BIGINT NOT NULL,
    PRIMARY KEY (target, seq)
);
CREATE INDEX gifts_ts ON gifts (ts_ms);
CREATE INDEX gifts_sender ON gifts (sender, client_id);

CREATE TABLE rooms (
    room      TEXT PRIMARY KEY,
    creator   TEXT NOT NULL,
    live      BOOLEAN NOT NULL,
    opened_ms BIGINT NOT NULL,
    ended_ms  BIGINT
);

CREATE TABLE videos (
    video      TEXT PRIMARY KEY,
    creator    TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Currencies: fiat money in USD or EUR cents. Each currency has its own
-- accounts (an entry's currency is part of its key), so entries still sum
-- to zero per currency. Coins and diamonds are unchanged.
-- SQLite cannot alter a CHECK, so `entries` is rebuilt (as 0002 did) with
-- the wider one. Purchases, tips and cash-outs record their currency; rows
-- written before this migration were all USD.
CREATE TABLE entries_new (
    op_id    TEXT NOT NULL REFERENCES operations(op_id),
    account  TEXT NOT NULL,
    currency TEXT NOT NULL CHECK (currency IN ('COIN', 'DIAMOND', 'USD', 'EUR')),
    amount   INTEGER NOT NULL,
    PRIMARY KEY (op_id, account, currency)
);
INSERT INTO entries_new SELECT op_id, account, currency, amount FROM entries;
DROP TABLE entries;
ALTER TABLE entries_new RENAME TO entries;

ALTER TABLE purchases ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD' CHECK (currency IN ('USD', 'EUR'));
ALTER TABLE tips ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD' CHECK (currency IN ('USD', 'EUR'));
ALTER TABLE cashouts ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD' CHECK (currency IN ('USD', 'EUR'));

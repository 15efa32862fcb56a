-- Currencies: the same model as migrations/sqlite/0013_currencies.sql.
-- Fiat money may be USD or EUR cents, each currency in its own accounts
-- (entries sum to zero per currency); purchases, tips and cash-outs
-- record their currency (rows written before were all USD).
ALTER TABLE entries DROP CONSTRAINT IF EXISTS entries_currency_check;
ALTER TABLE entries ADD CONSTRAINT entries_currency_check
    CHECK (currency IN ('COIN', 'DIAMOND', 'USD', 'EUR'));

ALTER TABLE purchases ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD' CHECK (currency IN ('USD', 'EUR'));
ALTER TABLE tips ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD' CHECK (currency IN ('USD', 'EUR'));
ALTER TABLE cashouts ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD' CHECK (currency IN ('USD', 'EUR'));

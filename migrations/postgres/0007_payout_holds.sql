-- Money safety (issue 11): the hold on settled diamonds, clawbacks of gifts
-- paid with refunded or disputed coins, reversals of tips, reversals that
-- arrive before their purchase, and the order of `account.updated`.

-- One row per settlement batch per creator: when the diamonds settled, so
-- "held" (settled less than `payouts.hold_s` ago) and "available" are
-- computed in SQL; `clawed` is what refunds and disputes took back from it.
-- Diamonds settled before this migration have no row: they are available.
CREATE TABLE settlements (
    op_id      TEXT NOT NULL REFERENCES operations(op_id),
    creator    TEXT NOT NULL,
    diamonds   BIGINT NOT NULL CHECK (diamonds >= 0),
    clawed     BIGINT NOT NULL DEFAULT 0 CHECK (clawed >= 0 AND clawed <= diamonds),
    settled_ms BIGINT NOT NULL,
    PRIMARY KEY (op_id, creator)
);
CREATE INDEX settlements_creator ON settlements (creator, settled_ms);

-- Coins of a gift already reversed by a refund or dispute of its sender's
-- purchase (a gift is never clawed back for more than its coins).
CREATE TABLE gift_clawbacks (
    target TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    coins  BIGINT NOT NULL CHECK (coins >= 0),
    PRIMARY KEY (target, seq)
);

-- A refund or dispute that arrived before its purchase's
-- `payment_intent.succeeded` (Stripe does not order events): applied when
-- the purchase is paid.
CREATE TABLE early_reversals (
    event_id       TEXT PRIMARY KEY,
    payment_intent TEXT NOT NULL,
    type           TEXT NOT NULL,
    facts          TEXT NOT NULL,        -- JSON of what the event said
    created_ms     BIGINT NOT NULL
);
CREATE INDEX early_reversals_pi ON early_reversals (payment_intent);

-- `account.updated` is applied only when newer (its event's `created`)
-- than the last one applied for the account.
ALTER TABLE payout_accounts ADD COLUMN event_created BIGINT NOT NULL DEFAULT 0;

-- Tips refunded or disputed: the platform paid them back; what the
-- transfer reversal recovered from the creator's account.
ALTER TABLE tips ADD COLUMN transfer TEXT;
ALTER TABLE tips ADD COLUMN cents_reversed BIGINT NOT NULL DEFAULT 0 CHECK (cents_reversed >= 0);
ALTER TABLE tips ADD COLUMN cents_recovered BIGINT NOT NULL DEFAULT 0 CHECK (cents_recovered >= 0);

-- Issue 14 item 5: escrow and payout of marketplace contracts
-- (docs/MARKETPLACE.md). A contract's PaymentIntent, the time it was paid,
-- its deliverable, the review deadline, whether a dispute holds it, and the
-- reason of a rejection; one payout row per contract (the Transfer to the
-- creator on approval, or the Refund to the brand on reject / cancel after
-- payment) driven through attempts like a cash-out (Idempotency-Key of the
-- current attempt, transfer_group looked up at Stripe, backoff of a
-- recovery that failed). The money is in the ledger's entries
-- (escrow:contract:<id> and friends, src/ledger/postings.rs).
ALTER TABLE contracts ADD COLUMN payment_intent TEXT;
ALTER TABLE contracts ADD COLUMN paid_ms INTEGER;
ALTER TABLE contracts ADD COLUMN deliverable_url TEXT;
ALTER TABLE contracts ADD COLUMN deliverable_note TEXT;
ALTER TABLE contracts ADD COLUMN submitted_ms INTEGER;
ALTER TABLE contracts ADD COLUMN review_due_ms INTEGER;
ALTER TABLE contracts ADD COLUMN disputed BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE contracts ADD COLUMN reason TEXT;
CREATE UNIQUE INDEX contracts_payment_intent ON contracts (payment_intent);
-- The automatic approval's sweep: submitted contracts by review deadline.
CREATE INDEX contracts_review_due ON contracts (state, review_due_ms);

CREATE TABLE contract_payouts (
    contract       TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,          -- transfer | refund
    creator        TEXT NOT NULL,
    payment_intent TEXT NOT NULL,
    amount_cents   INTEGER NOT NULL CHECK (amount_cents >= 0),
    fee_cents      INTEGER NOT NULL CHECK (fee_cents >= 0),
    currency       TEXT NOT NULL,
    status         TEXT NOT NULL,          -- pending | completed | failed | flagged
    stripe_id      TEXT,
    idem_key       TEXT NOT NULL,
    transfer_group TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    attempt_ms     INTEGER NOT NULL,
    failures       INTEGER NOT NULL DEFAULT 0,
    next_try_ms    INTEGER NOT NULL DEFAULT 0,
    created_ms     INTEGER NOT NULL,
    finished_ms    INTEGER
);
CREATE INDEX contract_payouts_pending ON contract_payouts (status, next_try_ms, created_ms);

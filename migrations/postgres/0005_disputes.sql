-- Chargebacks of coin purchases. `charge.dispute.funds_withdrawn` reverses
-- the disputed share of the coins (what the wallet holds, the rest a debt,
-- as a refund does); `charge.dispute.funds_reinstated` (the platform won)
-- gives them back, repaying a debt first.
CREATE TABLE disputes (
    dispute_id     TEXT PRIMARY KEY,
    payment_intent TEXT NOT NULL REFERENCES purchases(payment_intent),
    cents          BIGINT NOT NULL CHECK (cents >= 0),
    coins_reversed BIGINT NOT NULL CHECK (coins_reversed >= 0),
    coins_taken    BIGINT NOT NULL CHECK (coins_taken >= 0 AND coins_taken <= coins_reversed),
    status         TEXT NOT NULL CHECK (status IN ('withdrawn', 'reinstated')),
    coins_to_debt  BIGINT NOT NULL DEFAULT 0 CHECK (coins_to_debt >= 0 AND coins_to_debt <= coins_reversed),
    created_ms     BIGINT NOT NULL
);

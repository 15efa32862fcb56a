-- A purchase first repays the buyer's debt (coins refunded after they were
-- spent); the wallet gets the rest. Recorded with the purchase so that a
-- redelivered webhook credits the wallet the same amount.
ALTER TABLE purchases ADD COLUMN coins_to_debt INTEGER NOT NULL DEFAULT 0 CHECK (coins_to_debt >= 0);

-- Issue 15: the creator studio pages through a creator's gifts, tips and
-- cash-outs newest first and sums their days (ledger/sql/reads.rs); without
-- these every studio read would scan the whole table.
CREATE INDEX gifts_creator_ts ON gifts (creator, ts_ms);
CREATE INDEX tips_creator_created ON tips (creator, created_ms);
CREATE INDEX cashouts_creator_created ON cashouts (creator, created_ms);

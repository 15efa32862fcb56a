-- Issue 14 item 1: who follows which creator. One row per edge (the
-- primary key makes the pair unique, so a follow twice is one row and
-- INSERT ... ON CONFLICT DO NOTHING tells whether it was added). Counts
-- live in the counters engine and are rebuilt from this table
-- (SELECT creator, COUNT(*) ... GROUP BY creator) at start and by reconcile.
CREATE TABLE follows (
    creator    TEXT NOT NULL,
    follower   TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (creator, follower)
);
-- A creator's followers newest first (GET /v1/creators/{creator}/followers).
CREATE INDEX follows_creator_created ON follows (creator, created_ms, follower);
-- A user's follows newest first (GET /v1/users/me/following).
CREATE INDEX follows_follower_created ON follows (follower, created_ms, creator);

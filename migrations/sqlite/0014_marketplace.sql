-- Issue 14 items 2-4: the Creator Marketplace (docs/MARKETPLACE.md).
-- Brands' profiles, creators' marketplace profiles (joined_ms set once the
-- creator joined: eligible then; listed for good), campaigns with their
-- niches, applications (a creator's, or a brand's invitation) and the
-- contract an accepted application becomes. States are TEXT, moved only by
-- conditional UPDATEs (... WHERE state = <the state read>) so two racing
-- transitions of one row end with exactly one winner; the allowed moves
-- are src/ledger/market_states.rs. Lists (niches, languages, rate card,
-- samples, deliverables) are JSON text, written and read whole.
CREATE TABLE brands (
    brand      TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    website    TEXT NOT NULL,
    industry   TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);

CREATE TABLE market_creators (
    creator    TEXT PRIMARY KEY,
    bio        TEXT NOT NULL,
    niches     TEXT NOT NULL,
    languages  TEXT NOT NULL,
    rate_card  TEXT NOT NULL,
    samples    TEXT NOT NULL,
    joined_ms  INTEGER,
    updated_ms INTEGER NOT NULL
);

CREATE TABLE campaigns (
    campaign      TEXT PRIMARY KEY,
    brand         TEXT NOT NULL,
    title         TEXT NOT NULL,
    brief         TEXT NOT NULL,
    deliverables  TEXT NOT NULL,
    budget_cents  INTEGER NOT NULL CHECK (budget_cents > 0),
    currency      TEXT NOT NULL,
    deadline_ms   INTEGER NOT NULL,
    followers_min INTEGER NOT NULL,
    niches        TEXT NOT NULL,
    state         TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    published_ms  INTEGER
);
-- A brand's campaigns newest first.
CREATE INDEX campaigns_brand ON campaigns (brand, created_ms, campaign);
-- Open campaigns newest first (the creators' list).
CREATE INDEX campaigns_state_published ON campaigns (state, published_ms, campaign);

-- One row per (campaign, niche): the creators' niche filter.
CREATE TABLE campaign_niches (
    niche    TEXT NOT NULL,
    campaign TEXT NOT NULL,
    PRIMARY KEY (niche, campaign)
);

CREATE TABLE applications (
    application TEXT PRIMARY KEY,
    campaign    TEXT NOT NULL,
    creator     TEXT NOT NULL,
    origin      TEXT NOT NULL,          -- applied | invited
    pitch       TEXT,
    price_cents INTEGER,
    state       TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    UNIQUE (campaign, creator)
);
CREATE INDEX applications_campaign ON applications (campaign, created_ms, application);
CREATE INDEX applications_creator ON applications (creator, created_ms, application);

-- An accepted application's contract (one per application). Escrow and
-- payout (issue 14 item 5) move it on from awaiting_payment.
CREATE TABLE contracts (
    contract    TEXT PRIMARY KEY,
    application TEXT NOT NULL UNIQUE,
    campaign    TEXT NOT NULL,
    brand       TEXT NOT NULL,
    creator     TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents > 0),
    currency    TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);
CREATE INDEX contracts_brand ON contracts (brand, created_ms);
CREATE INDEX contracts_creator ON contracts (creator, created_ms);

-- One row per ended live: its viewers, for the marketplace stats (average
-- and peak viewers of the last 30 days). Viewer counts are otherwise only
-- live (the hub and the relay), never durable.
CREATE TABLE live_viewers (
    room         TEXT NOT NULL,
    opened_ms    INTEGER NOT NULL,
    creator      TEXT NOT NULL,
    ended_ms     INTEGER NOT NULL,
    peak_viewers INTEGER NOT NULL CHECK (peak_viewers >= 0),
    avg_viewers  INTEGER NOT NULL CHECK (avg_viewers >= 0),
    PRIMARY KEY (room, opened_ms)
);
CREATE INDEX live_viewers_creator ON live_viewers (creator, ended_ms);

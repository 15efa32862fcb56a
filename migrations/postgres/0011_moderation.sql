-- Issue 17: what a creator controls on their stream. Blocks and moderators
-- (cached in the counters engine on every node), muted words and review
-- rules (read through a short per-node cache), the messages the filter or
-- the review rules kept back, and the audit of every moderation action.

-- A user the creator (or one of their moderators) blocked: refused on the
-- creator's rooms, videos and inbox, and from gifting or tipping them.
CREATE TABLE creator_blocks (
    creator    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    blocked_by TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (creator, user_id)
);

-- A user who moderates the creator's rooms: may block, unblock, and decide
-- held messages.
CREATE TABLE creator_moderators (
    creator    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    added_by   TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (creator, user_id)
);

-- Every moderation action: who (actor), what (action: block, unblock,
-- moderator_add, moderator_remove, words_set, settings_set, approve,
-- reject, ...), on what (target: a user, a message id, ...), when.
CREATE TABLE moderation_audit (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    creator TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT '',
    at_ms   BIGINT NOT NULL
);
CREATE INDEX moderation_audit_creator ON moderation_audit (creator, id);

-- A creator's message rules. builtin_langs: the built-in word lists switched
-- on, joined with commas (e.g. 'en,fr'). Review: hold messages from accounts
-- younger than review_account_age_days, or on gifts/tips under
-- review_coins_below coins (NULL: rule off). message_interval_ms: at most
-- one message per viewer per room in this interval (0: platform default).
CREATE TABLE creator_moderation_settings (
    creator                 TEXT PRIMARY KEY,
    builtin_langs           TEXT NOT NULL DEFAULT '',
    review_account_age_days BIGINT,
    review_coins_below      BIGINT,
    message_interval_ms     BIGINT NOT NULL DEFAULT 0,
    updated_ms              BIGINT NOT NULL
);

-- A creator's muted words and phrases. normalised: the match key (see
-- docs/MODERATION.md); mode: 'word' (whole words) or 'substring'.
CREATE TABLE creator_muted_words (
    creator    TEXT NOT NULL,
    normalised TEXT NOT NULL,
    mode       TEXT NOT NULL,
    original   TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (creator, normalised, mode)
);

-- A gift or tip message kept back: state 'filtered' (a muted word matched;
-- others saw a placeholder), 'held' (waiting for review), 'approved' or
-- 'rejected'. target/seq name the gift (room:ID or video:ID and its seq) or
-- the tip (its payment intent in ref). The original text stays here for
-- review.
CREATE TABLE moderated_messages (
    id         TEXT PRIMARY KEY,
    creator    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    target     TEXT NOT NULL,
    seq        BIGINT,
    ref        TEXT,
    sender     TEXT NOT NULL,
    message    TEXT NOT NULL,
    state      TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL,
    decided_by TEXT,
    decided_ms BIGINT
);
CREATE INDEX moderated_messages_creator ON moderated_messages (creator, state, created_ms);

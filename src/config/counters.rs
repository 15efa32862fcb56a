//! `[counters]`: the counters engine (memory or Redis) and its limits.
//!
//! Owns: [`CountersConfig`], its defaults and a `Debug` that hides the
//! URL's password.
//! Must not: connect to anything.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::redact::redacted_debug;

impl fmt::Debug for CountersConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted_debug(f, "CountersConfig", self, &[], &["url"])
    }
}

/// `[counters]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CountersConfig {
    /// `memory` or `redis://host:port/db`.
    pub url: String,
    /// How long a gift's client id is remembered, seconds (Stripe: 24 h).
    pub idempotency_ttl_s: u64,
    /// Client ids remembered per wallet at most (oldest forgotten first).
    pub idempotency_keys_per_wallet_max: usize,
    /// Accepted gifts waiting for settlement at most; beyond, gifts are
    /// refused with `rate_limited` until the settlement worker catches up.
    pub pending_len_max: usize,
    /// Combo streak window, ms (TikTok's streaks: about 3 s).
    pub combo_window_ms: u64,
    /// Redis: connect and reply timeout, ms. A gift whose reply is late
    /// fails with `internal` and is never re-sent by the engine (the
    /// client retries with the same id, which is idempotent).
    pub redis_timeout_ms: u64,
    /// Redis: longest pause between pub/sub reconnect attempts, ms.
    pub redis_reconnect_ms_max: u64,
    /// Redis: wallets `giftstream reconcile` compares at most.
    pub reconcile_wallets_max: usize,
    /// Redis: room messages received and not yet handed to the hub, at
    /// most; past it a message is dropped and every subscribed room is
    /// caught up from its history stream (no event is lost to viewers).
    pub relay_queue_len_max: usize,
    /// Redis: a node's viewer count of a room counts for this long after
    /// the node last refreshed it (every `hub.stats_interval_ms`), ms; a
    /// dead node's viewers age out after it.
    pub viewers_ttl_ms: u64,
    /// Every node's streak reaper ends due combo streaks (`combo_end`)
    /// this often, ms.
    pub combo_reap_interval_ms: u64,
    /// Streaks one reaper run ends at most.
    pub combo_reap_batch_max: usize,
    /// Redis: a streak not ended this long past its due time (no node ran
    /// its reaper) expires without a `combo_end`, ms (bounds its keys).
    pub combo_end_late_ms_max: u64,
    /// Streak ends queued for `combo_end` webhooks (in process: a queue;
    /// Redis: the `{gs}:whq` stream's MAXLEN), at most; beyond, the oldest
    /// are dropped and counted.
    pub streak_end_queue_len_max: usize,
    /// Redis: while a node or `reconcile --repair` loads Redis from the
    /// ledger after Redis lost its data, coin credits wait (they are
    /// refused, retryably, so none lands between the ledger snapshot and
    /// the load); the fence lifts at the end of the load, or after this
    /// long if the loader died, ms.
    pub load_fence_ms: u64,
    /// Redis: gifts sent in one script call at most (issue 16: the gifts
    /// waiting while earlier calls are in flight leave together; a lone
    /// gift never waits). 1: one call per gift.
    pub gift_batch_len_max: usize,
    /// Redis: gift script calls (batches) in flight at once per node, at
    /// most; the gifts arriving meanwhile form the next batch.
    pub gift_batches_in_flight_max: usize,
}

impl Default for CountersConfig {
    fn default() -> Self {
        CountersConfig {
            url: "memory".into(),
            idempotency_ttl_s: 24 * 3600,
            idempotency_keys_per_wallet_max: 100_000,
            pending_len_max: 200_000,
            combo_window_ms: 3000,
            redis_timeout_ms: 5000,
            redis_reconnect_ms_max: 5000,
            reconcile_wallets_max: 10_000_000,
            relay_queue_len_max: 65_536,
            viewers_ttl_ms: 5000,
            combo_reap_interval_ms: 100,
            combo_reap_batch_max: 256,
            combo_end_late_ms_max: 600_000,
            streak_end_queue_len_max: 100_000,
            load_fence_ms: 300_000,
            gift_batch_len_max: 64,
            gift_batches_in_flight_max: 2,
        }
    }
}

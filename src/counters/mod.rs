//! The counters engine: wallets, idempotency, room seq, pending credits.
//!
//! Owns: the [`Counters`] trait — the one atomic gift operation (idempotency
//! check on (sender, id) → balance check → debit coins → credit the
//! creator's pending diamonds → next room seq), coin credits after a ledger
//! commit, creators' follower counts (changed by what the ledger really
//! added or removed, rebuilt from its counts), refund debits that never go below zero (`debit_up_to`), and the
//! pending queue the settlement worker drains — plus its
//! engines: [`memory::MemoryCounters`] (in-process, the embedded default)
//! and [`redis::RedisCounters`] (Redis, shared by several nodes), and their
//! Lua scripts (`lua/`). The shared types they take and answer are
//! [`crate::model`]'s.
//! Must not: write the ledger (the settlement worker does), encode frames
//! (the hub does), or import the hub, the ledger or the app (it reads the
//! ledger through [`crate::model::GiftRecords`]). It hands accepted gifts
//! to the hub through [`crate::model::EventSink`] in seq order.

pub mod blocks;
pub mod combo;
#[cfg(test)]
mod combo_tests;
mod error;
pub mod followers;
pub mod memory;
pub mod redis;
mod streak_queue;

use crate::error::ErrorCode;
use crate::model::{Batch, GiftOutcome, GiftRequest, Snapshot, StreakEnd, Target, TargetInfo};

use async_trait::async_trait;
pub use blocks::BlockCache;
pub use error::CountersError;

/// [`Counters::gift_group`] one gift at a time, for an engine where a
/// group costs what its gifts do: each gift after one refused with
/// `rate_limited` answers `PendingFull` without being tried.
pub(crate) async fn gift_one_by_one<C: Counters + ?Sized>(
    counters: &C,
    reqs: Vec<GiftRequest>,
) -> Vec<Result<GiftOutcome>> {
    let mut answers = Vec::with_capacity(reqs.len());
    let mut full = false;
    for req in reqs {
        if full {
            answers.push(Err(CountersError::PendingFull));
            continue;
        }
        let answer = counters.gift(req).await;
        full = matches!(&answer, Err(e) if e.code() == ErrorCode::RateLimited);
        answers.push(answer);
    }
    answers
}

/// The refusal of a gift from a user the creator blocked (`forbidden`).
pub const BLOCKED: &str = "the creator blocked you";

/// What a counters engine answers.
pub type Result<T, E = CountersError> = std::result::Result<T, E>;

/// The counters engine. Every method is atomic on its own (its block
/// cache: [`BlockCache`]).
#[async_trait]
pub trait Counters: BlockCache + Send + Sync + 'static {
    /// Open (or re-open) a room, or register a video, for `creator`.
    /// The target's seq never goes below `seq_floor`.
    async fn open_target(&self, target: &Target, creator: &str, seq_floor: u64) -> Result<()>;

    /// Stop accepting gifts for a room.
    async fn end_room(&self, room: &str) -> Result<()>;

    /// What the engine knows of a target.
    async fn target(&self, target: &Target) -> Result<Option<TargetInfo>>;

    /// The atomic gift operation. Refusals ([`CountersError`]): unknown
    /// target, not live, forbidden (gift to oneself, or from a user the
    /// creator blocked: [`BlockCache`]), insufficient funds,
    /// pending queue full, or the room's queue full (passed from the sink).
    /// On a refusal nothing changed.
    async fn gift(&self, req: GiftRequest) -> Result<GiftOutcome>;

    /// Gifts [`Counters::gift_group`] takes at once to some gain: 1 (the
    /// default) where a group costs what its gifts cost one at a time (in
    /// process), `counters.gift_batch_len_max` where a group shares one
    /// script call (Redis).
    fn gift_group_len_max(&self) -> usize {
        1
    }

    /// Apply `reqs` in order, as [`Counters::gift`] one after another
    /// would, and answer each, in order. Once one is refused with
    /// `rate_limited` (a full pending queue), none after it is applied:
    /// each of those answers a refusal or, for a duplicate, its first
    /// answer. So a caller that gives the refused one and every later one
    /// again, one at a time and in order, keeps the order they were sent in
    /// (`app::ops::gift_group`). Redis runs a group in one script call,
    /// where the pending count only grows.
    async fn gift_group(&self, reqs: Vec<GiftRequest>) -> Vec<Result<GiftOutcome>> {
        gift_one_by_one(self, reqs).await
    }

    /// Add coins committed in the ledger under `op_id`; applied once per
    /// op id. Answers the new balance.
    async fn credit(&self, user: &str, coins: i64, op_id: &str) -> Result<i64>;

    /// Take up to `coins` from `user`'s wallet (a refund), once per op id:
    /// answers the coins taken, never more than the wallet holds, and the
    /// first answer again on a replay. The caller records the rest as a
    /// debt in the ledger, so a wallet never goes below zero.
    async fn debit_up_to(&self, user: &str, coins: i64, op_id: &str) -> Result<i64>;

    /// Coins in `user`'s wallet.
    async fn balance(&self, user: &str) -> Result<i64>;

    /// Count one event under `key` (e.g. `rooms:USER`) in the current fixed
    /// window of `window_ms` (windows start at multiples of it since the
    /// epoch): true while the window's count, this one included, is at
    /// most `max`. Shared by every node using the same engine (Redis).
    async fn count_in_window(&self, key: &str, window_ms: u64, max: u64) -> Result<bool>;

    /// Claim the message slot `key` (issue 17: a viewer's messages in one
    /// room or video) for `interval_ms`: true when it was free (and is now
    /// taken until `interval_ms` from now), false while an earlier claim
    /// holds. Shared by every node using the same engine (Redis: `SET NX
    /// PX`; in process: a bounded map).
    async fn message_slot(&self, key: &str, interval_ms: u64) -> Result<bool>;

    /// Publish an approved held message into `target` as a `gift_message`
    /// with the target's next seq (after every event before it, kept in
    /// its history, and in its creator's inbox); answers that seq.
    async fn gift_message(
        &self,
        target: &Target,
        message_id: &str,
        ref_seq: Option<u64>,
        message: &str,
    ) -> Result<u64>;

    /// Diamonds accepted for `creator` but not yet settled.
    async fn pending_diamonds(&self, creator: &str) -> Result<i64>;

    /// Gifts waiting for settlement (not yet drained by a worker).
    async fn pending_len(&self) -> Result<usize>;

    /// Gifts this process remembers for idempotency (the embedded engine's
    /// largest memory under sustained gifting: about 50 bytes each), or
    /// None where the engine keeps them outside the process (Redis).
    /// Visits every wallet: for `/metrics`, not for a hot path.
    async fn remembered_len(&self) -> Result<Option<usize>> {
        Ok(None)
    }

    /// Gifts accepted and not yet acknowledged as settled: those waiting
    /// and those drained into a batch the ledger has not committed yet
    /// (0 means every accepted gift is in the ledger).
    async fn unsettled_len(&self) -> Result<usize>;

    /// Take up to `len_max` pending gifts as one batch (None when empty).
    async fn drain(&self, len_max: usize) -> Result<Option<Batch>>;

    /// The ledger committed `batch`: drop its pending credits.
    async fn settled(&self, batch: &Batch) -> Result<()>;

    /// Load balances, credits, idempotency memory and targets from the ledger.
    async fn restore(&self, snapshot: Snapshot) -> Result<()>;

    /// Streak ends waiting to become `combo_end` webhook events, oldest
    /// first, at most `len_max`. Each engine keeps at most
    /// `counters.streak_end_queue_len_max` of them (beyond, the oldest are
    /// dropped and counted in `giftstream_streak_ends_dropped_total`).
    /// Taken ones come back until [`Counters::streak_ends_done`] (Redis: a
    /// consumer group, so a node that died leaves them to another).
    async fn streak_ends(&self, len_max: usize) -> Result<Vec<StreakEnd>>;

    /// The webhook outbox holds these streak ends (by [`StreakEnd::id`]).
    async fn streak_ends_done(&self, ids: &[String]) -> Result<()>;

    /// `creator`'s follower count (0 when none).
    async fn followers(&self, creator: &str) -> Result<i64>;

    /// Add `delta` to `creator`'s follower count (called once per edge the
    /// ledger really added or removed, so concurrent follows end exact);
    /// answers the new count.
    async fn adjust_followers(&self, creator: &str, delta: i64) -> Result<i64>;

    /// Replace every follower count by `counts` (the ledger's; creators
    /// left out are at 0): `reconcile --repair` and the memory engine's
    /// start.
    async fn set_followers(&self, counts: &[(String, i64)]) -> Result<()>;

    /// Load follower counts from the ledger at start: the memory engine
    /// always; Redis only when it does not hold them already (another
    /// node may be changing them: a drift is `reconcile`'s). Answers
    /// whether they were loaded.
    async fn restore_followers(&self, counts: &[(String, i64)]) -> Result<bool>;
}

//! The counters engine: wallets, idempotency, room seq, pending credits.
//!
//! Owns: the [`Counters`] trait — the one atomic gift operation (idempotency
//! check on (sender, id) → balance check → debit coins → credit the
//! creator's pending diamonds → next room seq), coin credits after a ledger
//! commit, refund debits that never go below zero (`debit_up_to`), and the
//! pending queue the settlement worker drains — plus its
//! engines: [`memory::MemoryCounters`] (in-process, the embedded default)
//! and [`redis::RedisCounters`] (Redis, shared by several nodes).
//! Must not: write the ledger (the settlement worker does), or encode frames
//! (the hub does). It hands accepted gifts to the hub through
//! [`crate::hub::EventSink`] in seq order.

pub mod memory;
pub mod redis;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::catalog::Gift;
use crate::error::Result;
use crate::protocol::GiftEvent;

/// What a gift is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A live room.
    Room,
    /// An ordinary (non-live) video.
    Video,
}

/// A room or a video, by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Room or video.
    pub kind: TargetKind,
    /// Its id.
    pub id: String,
}

impl Target {
    /// A room target.
    pub fn room(id: impl Into<String>) -> Target {
        Target {
            kind: TargetKind::Room,
            id: id.into(),
        }
    }

    /// A video target.
    pub fn video(id: impl Into<String>) -> Target {
        Target {
            kind: TargetKind::Video,
            id: id.into(),
        }
    }

    /// The key used in storage: `room:ID` or `video:ID`.
    pub fn key(&self) -> String {
        match self.kind {
            TargetKind::Room => format!("room:{}", self.id),
            TargetKind::Video => format!("video:{}", self.id),
        }
    }

    /// Inverse of [`Target::key`].
    pub fn from_key(key: &str) -> Option<Target> {
        if let Some(id) = key.strip_prefix("room:") {
            Some(Target::room(id))
        } else {
            key.strip_prefix("video:").map(Target::video)
        }
    }
}

/// What the engine knows of a room or video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInfo {
    /// Who earns its gifts.
    pub creator: String,
    /// Whether gifts are accepted (a video is always live).
    pub live: bool,
    /// Last seq handed out.
    pub seq: u64,
}

/// One gift to apply atomically.
#[derive(Debug, Clone)]
pub struct GiftRequest {
    /// Sender's user id.
    pub sender: String,
    /// Where it goes.
    pub target: Target,
    /// The catalog entry.
    pub gift: Gift,
    /// How many (1..=99, checked by the protocol layer).
    pub count: u32,
    /// Client idempotency key.
    pub client_id: String,
    /// Server time of acceptance, ms.
    pub ts: i64,
}

/// The answer to an accepted gift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GiftAck {
    /// Client id.
    pub id: String,
    /// Target seq.
    pub seq: u64,
    /// Sender's coins after the gift.
    pub balance: i64,
}

/// What [`Counters::gift`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiftOutcome {
    /// The answer (the first one, for a repeated id).
    pub ack: GiftAck,
    /// True when the id was seen before and nothing was charged.
    pub duplicate: bool,
    /// Position in the pending queue; settled once the settlement worker's
    /// committed mark reaches it (used by `gift.ack = "ledger"`).
    pub ticket: u64,
}

/// An accepted gift waiting for settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingGift {
    /// `room:ID` or `video:ID`.
    pub target: String,
    /// Target seq (with `target`, the gift's identity in the ledger).
    pub seq: u64,
    /// Sender.
    pub sender: String,
    /// Client id.
    pub client_id: String,
    /// Creator credited.
    pub creator: String,
    /// Catalog gift id.
    pub gift: String,
    /// Units.
    pub count: u32,
    /// Coins debited.
    pub coins: i64,
    /// Diamonds credited.
    pub diamonds: i64,
    /// Sender's balance right after (the ack's `balance`).
    pub balance_after: i64,
    /// Acceptance time, ms.
    pub ts: i64,
}

/// Gifts drained together; committed to the ledger in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Unique id; the ledger applies a batch id once.
    pub id: String,
    /// The gifts, in acceptance order.
    pub gifts: Vec<PendingGift>,
    /// Highest ticket in the batch.
    pub ticket_max: u64,
}

/// Balances and memory rebuilt from the ledger at start.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Coins per wallet.
    pub wallets: Vec<(String, i64)>,
    /// Ids of every credit operation already in the ledger.
    pub credit_ops: Vec<String>,
    /// Gifts recent enough to be remembered for idempotency.
    pub recent_gifts: Vec<PendingGift>,
    /// Rooms and videos with their creator, live flag and first free seq.
    pub targets: Vec<(Target, TargetInfo)>,
}

/// The counters engine. Every method is atomic on its own.
#[async_trait]
pub trait Counters: Send + Sync + 'static {
    /// Open (or re-open) a room, or register a video, for `creator`.
    /// The target's seq never goes below `seq_floor`.
    async fn open_target(&self, target: &Target, creator: &str, seq_floor: u64) -> Result<()>;

    /// Stop accepting gifts for a room.
    async fn end_room(&self, room: &str) -> Result<()>;

    /// What the engine knows of a target.
    async fn target(&self, target: &Target) -> Result<Option<TargetInfo>>;

    /// The atomic gift operation. Errors: `unknown_room`/`unknown_video`,
    /// `room_not_live`, `forbidden` (gift to oneself), `insufficient_funds`,
    /// `rate_limited` (pending or room queue full). On error nothing changed.
    async fn gift(&self, req: GiftRequest) -> Result<GiftOutcome>;

    /// Add coins committed in the ledger under `op_id`; applied once per
    /// op id. Answers the new balance.
    async fn credit(&self, user: &str, coins: i64, op_id: &str) -> Result<i64>;

    /// Take up to `coins` from `user`'s wallet (a refund), once per op id:
    /// answers the coins taken, never more than the wallet holds, and the
    /// first answer again on a replay. The caller records the rest as a
    /// debt in the ledger, so a wallet never goes below zero.
    async fn debit_up_to(&self, user: &str, coins: i64, op_id: &str) -> Result<i64>;

    /// Publish a room message other than a gift (a `tip_event`) to every
    /// node's hub. False when this engine does not relay room events; the
    /// caller then delivers it to this node's hub itself.
    async fn publish_room_msg(
        &self,
        _room: &str,
        _msg: &crate::protocol::ServerMsg,
    ) -> Result<bool> {
        Ok(false)
    }

    /// Coins in `user`'s wallet.
    async fn balance(&self, user: &str) -> Result<i64>;

    /// Count one event under `key` (e.g. `rooms:USER`) in the current fixed
    /// window of `window_ms` (windows start at multiples of it since the
    /// epoch): true while the window's count, this one included, is at
    /// most `max`. Shared by every node using the same engine (Redis).
    async fn count_in_window(&self, key: &str, window_ms: u64, max: u64) -> Result<bool>;

    /// Diamonds accepted for `creator` but not yet settled.
    async fn pending_diamonds(&self, creator: &str) -> Result<i64>;

    /// Gifts waiting for settlement.
    async fn pending_len(&self) -> Result<usize>;

    /// Take up to `len_max` pending gifts as one batch (None when empty).
    async fn drain(&self, len_max: usize) -> Result<Option<Batch>>;

    /// The ledger committed `batch`: drop its pending credits.
    async fn settled(&self, batch: &Batch) -> Result<()>;

    /// Load balances, credits, idempotency memory and targets from the ledger.
    async fn restore(&self, snapshot: Snapshot) -> Result<()>;

    /// True when this process's settlement worker drains every gift this
    /// engine accepts in ticket order, so `Settlement::wait_settled(ticket)`
    /// tells when a gift is in the ledger (the in-process engine). False
    /// when another process's worker may settle it (Redis): then the
    /// ledger itself must be asked (`Ledger::has_gift`).
    fn settles_by_ticket(&self) -> bool {
        true
    }

    /// True when drained but unsettled gifts survive this process (Redis:
    /// they stay in the stream and are re-claimed). Then a batch the ledger
    /// keeps refusing can be let go and retried later; otherwise (in-process
    /// engine) the worker must stop the process rather than let counters
    /// and ledger drift apart.
    fn pending_survives_process(&self) -> bool {
        false
    }

    /// True when room events (gifts and `room_ended`) reach every node's hub
    /// through the engine (Redis pub/sub), including this node's: then the
    /// caller must not end a local room directly, or `room_ended` could
    /// overtake gift events still in flight.
    fn relays_room_events(&self) -> bool {
        false
    }

    /// Viewers of `room` on every other node, as they last reported them
    /// (Redis: each node refreshes its count every `hub.stats_interval_ms`
    /// and a dead node's count ages out after `counters.viewers_ttl_ms`);
    /// 0 when this engine serves one node.
    async fn other_nodes_viewers(&self, room: &str) -> Result<u64> {
        let _ = room;
        Ok(0)
    }

    /// The room's events with seq > `since`, in order, from the engine's
    /// own history (Redis: the room's history stream, bounded by
    /// `hub.history_len_max` and `hub.history_age_ms_max`), or None when
    /// the engine keeps none (in process: the room task's ring serves
    /// `resume`). Errors with `history_gone` when the history no longer
    /// reaches back to `since`.
    async fn history(&self, room: &str, since: u64) -> Result<Option<Vec<GiftEvent>>> {
        let _ = (room, since);
        Ok(None)
    }
}

/// The diamonds of a gift request (unit x count).
pub fn gift_value(gift: &Gift, count: u32) -> (i64, i64) {
    (gift.coins * count as i64, gift.diamonds * count as i64)
}

//! Shared types: what a gift is sent to, the gift request and its answer,
//! pending gifts and batches, and the snapshot rebuilt from the ledger.
//!
//! Owns: plain data every layer passes around (the counters engines, the
//! ledger, settlement, the hub, the HTTP and WebSocket edges), and the narrow
//! handles the engines publish through ([`EventSink`]) and read the ledger
//! through ([`GiftRecords`]).
//! Must not: import any other giftstream module but `catalog`, `config`,
//! `error` and `protocol` (everyone imports this one).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::catalog::Gift;
use crate::error::Result;
use crate::protocol::SeqEvent;

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

    /// The hub's name of its event feed: a room's id as is, `video:ID`
    /// for a video (see [`crate::protocol::Topic::hub_key`]).
    pub fn hub_key(&self) -> String {
        self.topic().hub_key()
    }

    /// The wire's name of it (`room` or `video` in client messages).
    pub fn topic(&self) -> crate::protocol::Topic {
        match self.kind {
            TargetKind::Room => crate::protocol::Topic::Room(self.id.clone()),
            TargetKind::Video => crate::protocol::Topic::Video(self.id.clone()),
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
    /// The sender's message (checked by the protocol layer), if any.
    pub message: Option<String>,
    /// Set when the creator's rules kept `message` back (issue 17): the
    /// target's event carries no message but this state and id, the
    /// creator's inbox gets the original, the ledger's gift row none.
    pub kept: Option<KeptBack>,
}

/// A gift message kept back by the creator's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptBack {
    /// The message's id (`moderated_messages.id`, the wire's `message_id`).
    pub id: String,
    /// `filtered` or `held` (the wire's `message_state`).
    pub state: String,
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

/// A gift as a socket sent it, without a message: what one socket's gifts
/// read together are made of (`app::ops::gift_group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainGift {
    /// Where it goes.
    pub target: Target,
    /// Catalog gift id.
    pub gift: String,
    /// Units (1..=99, checked by the protocol layer).
    pub count: u32,
    /// Client idempotency key.
    pub id: String,
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

/// A streak end on its way to the creator's `combo_end` webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreakEnd {
    /// The engine's id of this queue entry (acknowledged by it).
    pub id: String,
    /// The target's creator.
    pub creator: String,
    /// The streak end, as viewers got it.
    pub end: crate::protocol::ComboEnd,
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
    /// The sender's message, if any (stored on the ledger's gift row).
    #[serde(default)]
    pub message: Option<String>,
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

/// The diamonds of a gift request (unit x count).
pub fn gift_value(gift: &Gift, count: u32) -> (i64, i64) {
    (gift.coins * count as i64, gift.diamonds * count as i64)
}

/// Where the counters engine publishes accepted gifts (the hub implements
/// it). Reserving first and sending after the commit point keeps a refused
/// gift free of side effects and keeps room order equal to seq order.
pub trait EventSink: Send + Sync + 'static {
    /// A slot in the event queue of `target` (of `creator`, whose seq is
    /// `last_seq` before this event), or `rate_limited` if it is full. A
    /// room must be open; a video's feed is opened on demand.
    fn reserve(&self, target: &Target, creator: &str, last_seq: u64) -> Result<EventPermit>;
}

/// A reserved slot in one room's or video's queue: sending into it cannot fail.
pub struct EventPermit(Box<dyn FnOnce(SeqEvent) + Send>);

impl EventPermit {
    /// A slot that hands the event to `send`.
    pub fn new(send: impl FnOnce(SeqEvent) + Send + 'static) -> EventPermit {
        EventPermit(Box::new(send))
    }

    /// Publish the event (a gift or a streak end) into the reserved slot.
    pub fn send(self, event: impl Into<SeqEvent>) {
        (self.0)(event.into())
    }
}

/// What the counters engines read from the ledger (restore and reconcile);
/// every `Ledger` provides it.
#[async_trait]
pub trait GiftRecords: Send + Sync {
    /// Balances, credit op ids, gifts newer than `recent_ms`, and targets
    /// with their first safe seq (`seq_gap` added after an unclean stop).
    async fn snapshot(&self, recent_ms: i64, seq_gap: u64) -> Result<Snapshot>;

    /// Whether the gift `(target key, seq)` is in the ledger (settled).
    async fn has_gift(&self, target: &str, seq: u64) -> Result<bool>;

    /// Followers per creator (those without any left out): what the
    /// counters engine's follower counts are rebuilt from.
    async fn follower_counts(&self) -> Result<Vec<(String, i64)>>;
}

/// Limits the ledger enforces on cash-outs, in the cash-out's own
/// transaction (so they hold across nodes), and the hold that clawbacks
/// respect. The default (no hold, no daily caps) is the ledger's behaviour
/// before limits are set; `server::start` sets them from `[payouts]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayoutLimits {
    /// Diamonds become cashable this long after they settled, ms.
    pub hold_ms: i64,
    /// Cash-outs per creator in the last 24 hours, at most.
    pub cashouts_per_day_max: i64,
    /// Cents cashed out per creator in the last 24 hours, at most, in
    /// each currency (its minor unit) without its own cap below.
    pub cashout_cents_per_day_max: i64,
    /// Per currency (indexed by [`Fiat::index`]), a cap replacing
    /// `cashout_cents_per_day_max` for cash-outs in that currency.
    pub fiat_cents_per_day_max: [Option<i64>; Fiat::ALL.len()],
}

impl PayoutLimits {
    /// Cents a creator may cash out in `fiat` in any 24 hours.
    pub fn cents_per_day_max(&self, fiat: Fiat) -> i64 {
        self.fiat_cents_per_day_max[fiat.index()].unwrap_or(self.cashout_cents_per_day_max)
    }
}

impl Default for PayoutLimits {
    fn default() -> Self {
        PayoutLimits {
            hold_ms: 0,
            cashouts_per_day_max: i64::MAX,
            cashout_cents_per_day_max: i64::MAX,
            fiat_cents_per_day_max: [None; Fiat::ALL.len()],
        }
    }
}

/// A fiat currency money moves in (coin purchases, tips, cash-outs): one
/// of those the ledger keeps accounts in (its `currency` CHECK, migration
/// 0013). Coins and diamonds are not fiat: coins bought in any currency
/// are the same coins. The ledger names it in upper case (`USD`), Stripe
/// and the config in lower case (`usd`); JSON carries the lower case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fiat {
    /// US dollars, in cents.
    #[default]
    Usd,
    /// Euros, in cents.
    Eur,
}

impl Fiat {
    /// Every fiat currency the ledger keeps accounts in.
    pub const ALL: [Fiat; 2] = [Fiat::Usd, Fiat::Eur];

    /// The ledger's code (`USD`), as in `entries.currency`.
    pub fn code(self) -> &'static str {
        match self {
            Fiat::Usd => "USD",
            Fiat::Eur => "EUR",
        }
    }

    /// Stripe's and the config's code (`usd`).
    pub fn lower(self) -> &'static str {
        match self {
            Fiat::Usd => "usd",
            Fiat::Eur => "eur",
        }
    }

    /// Its position in [`Fiat::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The currency named `s` (`usd` or `USD`), if the ledger keeps it.
    pub fn parse(s: &str) -> Option<Fiat> {
        Fiat::ALL
            .into_iter()
            .find(|f| s == f.code() || s == f.lower())
    }
}

impl std::fmt::Display for Fiat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.lower())
    }
}

impl TryFrom<String> for Fiat {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Fiat, String> {
        Fiat::parse(&s).ok_or_else(|| format!("unknown currency `{s}`"))
    }
}

impl Serialize for Fiat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.lower())
    }
}

impl<'de> Deserialize<'de> for Fiat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Fiat, D::Error> {
        let s = String::deserialize(d)?;
        Fiat::try_from(s).map_err(serde::de::Error::custom)
    }
}

//! What the chaos load did, as its clients know it: the books the checker
//! compares with the ledger, and the gate that pauses the load.
//!
//! Owns: [`Books`] (gifts by client id with their outcome, grants,
//! purchases delivered or not, cash-outs, viewer violations, counts),
//! [`Gate`] (run / pause, in-flight operations) and [`Nodes`] (which
//! nodes clients may pick).
//! Must not: talk to the servers.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;
use serde::Serialize;
use tokio::sync::watch;

/// A gift's fate as its sender knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// `gift_ack` came.
    Acked,
    /// No answer, `outcome_unknown`, or the connection went: 0 or 1 times.
    Unknown,
    /// Acked, then lost whole with a fault allowed to lose it.
    Lost,
}

/// One gift a sender tried.
#[derive(Debug, Clone)]
pub struct GiftRec {
    /// Sender.
    pub sender: String,
    /// `room:ID` or `video:ID`.
    pub target: String,
    /// Catalog gift.
    pub gift: String,
    /// Units.
    pub count: u32,
    /// Coins it costs.
    pub coins: i64,
    /// Outcome.
    pub fate: Fate,
    /// The fault window it was last answered in (the fault number that
    /// came next).
    pub window: u64,
    /// When it was last answered.
    pub at: std::time::Instant,
}

/// A payment: a coin purchase or a tip (a signed
/// `payment_intent.succeeded`).
#[derive(Debug, Clone)]
pub struct Purchase {
    /// Buyer (or tipper).
    pub user: String,
    /// Coins (0 for a tip).
    pub coins: i64,
    /// A tip: the creator tipped and the cents (all of them theirs).
    pub tip: Option<(String, i64)>,
    /// The event body, as delivered every time.
    pub body: String,
    /// Answered 200 by some node.
    pub delivered: bool,
}

/// Counts for the report.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    /// Gifts acked (rooms, over WebSocket).
    pub room_gifts_acked: u64,
    /// Gifts acked (videos, over HTTP).
    pub video_gifts_acked: u64,
    /// Gifts refused with a typed error (funds, unknown room after a flush).
    pub gifts_refused: u64,
    /// Gift answers that were unknown (retried with the same id).
    pub gifts_unknown: u64,
    /// Acked gifts lost whole by a fault allowed to lose them.
    pub gifts_lost_allowed: u64,
    /// Purchases credited.
    pub purchases: u64,
    /// Tips paid (their event taken).
    pub tips: u64,
    /// Purchases and tips given up: no PaymentIntent after 10 tries.
    pub payment_intents_failed: u64,
    /// Webhook deliveries (every attempt).
    pub webhook_deliveries: u64,
    /// Deliveries of an event already delivered.
    pub webhook_duplicates: u64,
    /// Events delivered after a later one.
    pub webhook_reordered: u64,
    /// Cash-outs answered `completed`.
    pub cashouts_completed: u64,
    /// Cash-outs answered `pending` (Stripe did not answer in time).
    pub cashouts_pending: u64,
    /// Cash-outs answered `reversed` (Stripe refused).
    pub cashouts_reversed: u64,
    /// Cash-out requests with no answer (retried with the same id).
    pub cashouts_unknown: u64,
    /// Viewer (re)connections.
    pub viewer_connects: u64,
    /// `resume`s answered `resumed`.
    pub resumes: u64,
    /// `resume`s answered `history_gone`.
    pub history_gone: u64,
    /// `skipped` notes.
    pub skipped: u64,
    /// Seq gaps that spanned a fault that loses Redis's data (the room's
    /// seqs jump by design; README).
    pub gaps_across_data_loss: u64,
    /// A room's seq jump after Redis lost its data, seen on a socket made
    /// after the repair (`joined.seq` from before the jump).
    pub stale_joined_seq_jumps: u64,
    /// Events viewers received.
    pub viewer_events: u64,
    /// Node starts after a node exited on its own (fail-stop).
    pub node_self_exits: u64,
    /// Refused gifts by error code.
    pub refused_by_code: BTreeMap<String, u64>,
}

/// Everything the clients know.
#[derive(Default)]
pub struct BooksInner {
    /// Gifts by client id.
    pub gifts: HashMap<String, GiftRec>,
    /// Coins granted by the admin, per user.
    pub granted: BTreeMap<String, i64>,
    /// Purchases and tips by PaymentIntent id.
    pub purchases: BTreeMap<String, Purchase>,
    /// Cash-outs by id: (creator, diamonds, last status).
    pub cashouts: BTreeMap<String, (String, i64, String)>,
    /// Viewer violations (first ones kept).
    pub violations: Vec<String>,
    /// Counts.
    pub counts: Counts,
}

/// The books, shared by every load task.
#[derive(Default)]
pub struct Books {
    /// The books.
    pub inner: Mutex<BooksInner>,
    /// The fault window now (the number of the next fault).
    pub window: AtomicU64,
    /// Bumped by every fault that loses Redis's data.
    pub data_loss_epoch: AtomicU64,
    /// Webhooks are delivered twice and out of order while set.
    pub webhook_chaos: AtomicBool,
}

impl Books {
    /// Record a viewer violation.
    pub fn violation(&self, v: String) {
        let mut b = self.inner.lock();
        if b.violations.len() < 100 {
            b.violations.push(v);
        }
    }
}

/// Run / pause for the load, and the operations in flight.
pub struct Gate {
    tx: watch::Sender<bool>,
    inflight: AtomicU64,
    stop: AtomicBool,
}

/// An operation in flight (counted until dropped).
pub struct InFlight<'a>(&'a Gate);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            tx: watch::channel(false).0,
            inflight: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }
}

impl Gate {
    /// Let the load run (true) or pause it.
    pub fn set(&self, run: bool) {
        self.tx.send_replace(run);
    }

    /// End the load for good.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.tx.send_replace(true);
    }

    /// Whether the load is over.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Wait until the load may run; `None` once it is over. The answer
    /// counts as an operation in flight until dropped.
    pub async fn enter(&self) -> Option<InFlight<'_>> {
        let mut rx = self.tx.subscribe();
        loop {
            if self.stopped() {
                return None;
            }
            if *rx.borrow_and_update() {
                self.inflight.fetch_add(1, Ordering::AcqRel);
                // Paused meanwhile: step back.
                if *self.tx.borrow() || self.stopped() {
                    return Some(InFlight(self));
                }
                self.inflight.fetch_sub(1, Ordering::AcqRel);
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    }

    /// Whether the load is paused now.
    pub fn paused(&self) -> bool {
        !*self.tx.borrow()
    }

    /// Pause and wait (bounded) until nothing is in flight.
    pub async fn quiesce(&self, bound: Duration) -> bool {
        self.set(false);
        let t0 = std::time::Instant::now();
        while self.inflight.load(Ordering::Acquire) > 0 {
            if t0.elapsed() > bound {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

/// The nodes' URLs and which are up.
pub struct Nodes {
    /// Base URLs, by node index.
    pub urls: Vec<String>,
    /// Whether each runs (it may be paused: clients do not know).
    pub up: Vec<AtomicBool>,
}

impl Nodes {
    /// A node that runs, at random (any, when none runs).
    pub fn pick(&self, rng: &mut impl Rng) -> (usize, &str) {
        let up: Vec<usize> = (0..self.urls.len())
            .filter(|&i| self.up[i].load(Ordering::Acquire))
            .collect();
        let i = if up.is_empty() {
            rng.gen_range(0..self.urls.len())
        } else {
            up[rng.gen_range(0..up.len())]
        };
        (i, &self.urls[i])
    }
}

//! The fault schedule: which fault, when, and with what parameters, from a
//! seed alone.
//!
//! Owns: [`Kind`] (the fault model), [`Fault`] (one scheduled fault) and
//! [`fault`], which derives fault number `i` from `(seed, i)` only, so a
//! run can start again at any fault number (`--from-fault`) and see the
//! same faults from there on.
//! Must not: touch a process (see [`super::cluster`]).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// SIGKILL of a hub node, restarted after a random delay.
    NodeKill,
    /// SIGSTOP of a node for longer than the claim timeout, then SIGCONT.
    NodePause,
    /// SIGKILL of Redis, restarted from its AOF.
    RedisKill,
    /// Redis loses all its data (FLUSHALL); then `reconcile --repair`.
    RedisFlush,
    /// `pg_ctl stop -m immediate` of PostgreSQL, restarted after a delay.
    PgKill,
    /// Stripe answers the next Transfers with HTTP 500.
    Stripe500,
    /// Stripe makes the Transfer, then answers too late (a timeout).
    StripeTimeout,
    /// Stripe delivers the next webhooks twice and out of order.
    WebhookChaos,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 8] = [
        Kind::NodeKill,
        Kind::NodePause,
        Kind::RedisKill,
        Kind::RedisFlush,
        Kind::PgKill,
        Kind::Stripe500,
        Kind::StripeTimeout,
        Kind::WebhookChaos,
    ];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::NodeKill => "node-kill",
            Kind::NodePause => "node-pause",
            Kind::RedisKill => "redis-kill",
            Kind::RedisFlush => "redis-flush",
            Kind::PgKill => "pg-kill",
            Kind::Stripe500 => "stripe500",
            Kind::StripeTimeout => "stripe-timeout",
            Kind::WebhookChaos => "webhook-chaos",
        }
    }

    /// Whether this fault may lose acknowledged gifts in `gift.ack =
    /// "counter"` mode (README, "What each failure loses").
    pub fn may_lose_acked(self, fsync_always: bool) -> bool {
        match self {
            Kind::RedisFlush => true,
            Kind::RedisKill => !fsync_always,
            _ => false,
        }
    }
}

/// One scheduled fault.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    /// Its number in the schedule.
    pub n: u64,
    /// What.
    pub kind: Kind,
    /// Load before it, ms.
    pub after_ms: u64,
    /// Which node (node faults).
    pub node: usize,
    /// How long the part stays down or paused (or how many Transfers fail), ms.
    pub down_ms: u64,
}

/// Fault number `n` of the schedule of `seed` over `kinds` with `nodes` nodes.
pub fn fault(seed: u64, n: u64, kinds: &[Kind], nodes: usize) -> Fault {
    let mut rng = StdRng::seed_from_u64(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let kind = kinds[rng.gen_range(0..kinds.len())];
    let after_ms = rng.gen_range(800..2500);
    let node = rng.gen_range(0..nodes.max(1));
    let down_ms = match kind {
        // Longer than the claim timeout: another node claims its batch.
        Kind::NodePause => super::cluster::CLAIM_IDLE_MS + rng.gen_range(300..1500),
        Kind::NodeKill => rng.gen_range(0..1500),
        Kind::RedisKill | Kind::RedisFlush => rng.gen_range(0..800),
        Kind::PgKill => rng.gen_range(100..1500),
        // Transfers answered 500 (a count, not ms).
        Kind::Stripe500 => rng.gen_range(1..4),
        // How late the answer comes.
        Kind::StripeTimeout => rng.gen_range(1500..3000),
        Kind::WebhookChaos => rng.gen_range(1000..3000),
    };
    Fault {
        n,
        kind,
        after_ms,
        node,
        down_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_depends_on_the_seed_and_its_number_only() {
        let a = fault(7, 12, &Kind::ALL, 3);
        let b = fault(7, 12, &Kind::ALL, 3);
        assert_eq!(
            (a.kind, a.after_ms, a.node, a.down_ms),
            (b.kind, b.after_ms, b.node, b.down_ms)
        );
        let kinds: std::collections::BTreeSet<Kind> =
            (0..200).map(|n| fault(7, n, &Kind::ALL, 3).kind).collect();
        assert_eq!(kinds.len(), Kind::ALL.len(), "every kind is drawn");
    }
}

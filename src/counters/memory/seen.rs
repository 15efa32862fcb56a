//! The memory engine's idempotency memory: which client ids a wallet has
//! already spent on, and the answer each got.
//!
//! Owns: [`Seen`] (one per wallet) and [`IdKeys`] (one per engine: how a
//! client id becomes a key, and the engine's clock in seconds).
//! Must not: keep a client id's text, or grow past its bounds
//! (`counters.idempotency_ttl_s`, `counters.idempotency_keys_per_wallet_max`).
//!
//! Why keys and not ids: the memory is kept for a day, so at ingest rates it
//! holds millions of gifts. Keeping the id (three copies: the map's key, the
//! ack's `id`, the expiry queue) and an `Instant` cost about 250 bytes per
//! gift, which is what made the server's RSS reach 339 MB in a 20 s ingest
//! run (issue 16). A key is 128 bits of two independently and randomly
//! seeded hashes of the id (a new seed per process, so no client can aim
//! for a collision; two of a wallet's 100,000 remembered ids collide with
//! a probability near 10⁻²⁸), and an entry costs about 70 bytes. The
//! duplicate's answer is rebuilt with the id the client sent again, which
//! is the same id by definition.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::Instant;

use super::FastMap;

/// A client id's key: two 64-bit hashes.
pub(super) type IdKey = [u64; 2];

/// How client ids become keys, and the clock of the expiry queues.
pub(super) struct IdKeys {
    a: foldhash::quality::RandomState,
    b: foldhash::quality::RandomState,
    epoch: Instant,
}

impl IdKeys {
    /// Fresh random seeds, and the clock starting now.
    pub(super) fn new() -> IdKeys {
        IdKeys {
            a: foldhash::quality::RandomState::default(),
            b: foldhash::quality::RandomState::default(),
            epoch: Instant::now(),
        }
    }

    /// The key of `id`.
    pub(super) fn key(&self, id: &str) -> IdKey {
        [self.a.hash_one(id), self.b.hash_one(id)]
    }

    /// Seconds since the engine started (the expiry queues' clock).
    pub(super) fn now_s(&self) -> u32 {
        u32::try_from(self.epoch.elapsed().as_secs()).unwrap_or(u32::MAX)
    }
}

/// The answer a gift got: what its duplicate answers again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Answer {
    /// The target's seq it took.
    pub seq: u64,
    /// The sender's coins after it.
    pub balance: i64,
    /// Its place in the pending queue.
    pub ticket: u64,
}

/// One wallet's remembered gifts, oldest first in the expiry queue.
#[derive(Default)]
pub(super) struct Seen {
    answers: FastMap<IdKey, Answer>,
    order: VecDeque<(u32, IdKey)>,
}

impl Seen {
    /// Forget the gifts older than `ttl_s` (at `now_s`), and the oldest
    /// beyond `keys_max - 1` so that one more fits. The clock counts whole
    /// seconds, so a gift is forgotten only when its age in them is above
    /// `ttl_s`: it is always remembered for at least `ttl_s` seconds.
    pub(super) fn forget_old(&mut self, now_s: u32, ttl_s: u64, keys_max: usize) {
        while let Some(&(at, key)) = self.order.front() {
            let fresh = u64::from(now_s.saturating_sub(at)) <= ttl_s;
            if fresh && self.order.len() < keys_max {
                break;
            }
            self.order.pop_front();
            self.answers.remove(&key);
        }
    }

    /// The answer of a remembered gift.
    pub(super) fn get(&self, key: &IdKey) -> Option<Answer> {
        self.answers.get(key).copied()
    }

    /// Remember a gift's answer (at `now_s`).
    pub(super) fn remember(&mut self, key: IdKey, now_s: u32, answer: Answer) {
        debug_assert!(
            !self.answers.contains_key(&key),
            "a gift is remembered once"
        );
        self.order.push_back((now_s, key));
        self.answers.insert(key, answer);
        debug_assert_eq!(self.order.len(), self.answers.len());
    }

    /// Gifts remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.answers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(seq: u64) -> Answer {
        Answer {
            seq,
            balance: 100 - seq as i64,
            ticket: seq * 10,
        }
    }

    #[test]
    fn a_remembered_gift_answers_the_same_and_others_are_unknown() {
        let ids = IdKeys::new();
        let mut s = Seen::default();
        s.remember(ids.key("g1"), 0, answer(1));
        s.remember(ids.key("g2"), 0, answer(2));
        assert_eq!(s.get(&ids.key("g1")), Some(answer(1)));
        assert_eq!(s.get(&ids.key("g2")), Some(answer(2)));
        assert_eq!(s.get(&ids.key("g3")), None);
        assert_ne!(ids.key("g1"), ids.key("g2"));
        // Another engine (process) keys the same id differently: seeds are
        // random, so keys are not guessable from outside.
        assert_ne!(IdKeys::new().key("g1"), ids.key("g1"));
    }

    #[test]
    fn the_oldest_go_first_by_age_and_by_count() {
        let ids = IdKeys::new();
        let mut s = Seen::default();
        for (i, at) in [(1u64, 0u32), (2, 5), (3, 10)] {
            s.remember(ids.key(&format!("g{i}")), at, answer(i));
        }
        // ttl 10 s at t = 12: g1 (remembered at 0) is 12 s old and goes;
        // g2 (at 5) and g3 (at 10) stay.
        s.forget_old(10, 10, 100);
        assert_eq!(s.len(), 3, "10 s old is not older than 10 s");
        s.forget_old(12, 10, 100);
        assert_eq!(s.get(&ids.key("g1")), None);
        assert_eq!(s.get(&ids.key("g2")), Some(answer(2)));
        assert_eq!(s.len(), 2);
        // At most 2 kept: one goes so that one more fits.
        s.forget_old(12, 10, 2);
        assert_eq!(s.len(), 1);
        assert_eq!(s.get(&ids.key("g2")), None);
        assert_eq!(s.get(&ids.key("g3")), Some(answer(3)));
    }

    #[test]
    fn an_entry_is_small() {
        // The point of keys: an entry of the expiry queue and of the map
        // stay this small (hashbrown adds one control byte per slot).
        assert_eq!(std::mem::size_of::<(u32, IdKey)>(), 24);
        assert_eq!(std::mem::size_of::<(IdKey, Answer)>(), 40);
    }
}

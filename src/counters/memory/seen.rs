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
//! a probability near 10⁻²⁸). The duplicate's answer is rebuilt with the id
//! the client sent again, which is the same id by definition.
//!
//! Why one queue and an index of positions: a map of key to answer beside
//! an expiry queue of keys kept each key twice, and both grew by doubling,
//! so a wallet just past 4,096 gifts held room for 8,192 in each: 113
//! bytes per gift, 150 MB of a 20 s ingest run at 60k gifts/s. Now a
//! wallet's gifts are one queue of 40-byte entries in acceptance order
//! (grown by a quarter at a time, so at most a fifth of it is slack), their
//! seconds run-length coded beside it, and the index a table of 4-byte
//! positions hashed by the key's first half (already a random hash, so it
//! is not hashed again): about 50 bytes per gift.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::Instant;

use hashbrown::HashTable;

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

/// One remembered gift.
#[derive(Clone, Copy)]
struct Entry {
    key: IdKey,
    answer: Answer,
}

/// Positions are `u32` (wrapping): a wallet remembers at most this many.
const KEYS_MAX: usize = u32::MAX as usize;

/// Entries the queue grows by at least (then by a quarter of its length).
const GROW_LEN_MIN: usize = 4;

/// Where the entry at `pos` is in a queue whose first entry is at `head`.
fn slot(head: u32, pos: u32) -> usize {
    pos.wrapping_sub(head) as usize
}

/// The index's hash of the position it holds (the entry's key's first
/// half), for when the index moves its positions around.
fn rehash(entries: &VecDeque<Entry>, head: u32) -> impl Fn(&u32) -> u64 + '_ {
    move |&p| entries[slot(head, p)].key[0]
}

/// One wallet's remembered gifts, oldest first.
#[derive(Default)]
pub(super) struct Seen {
    /// The gifts in the order they were remembered.
    entries: VecDeque<Entry>,
    /// The seconds they were remembered at, run-length coded: (second,
    /// entries), oldest first; the counts sum to `entries.len()`.
    times: VecDeque<(u32, u32)>,
    /// Each entry's position, hashed by its key's first half.
    index: HashTable<u32>,
    /// The position of `entries[0]`; a gift's position is fixed when it
    /// is remembered (the head's plus its index then, wrapping).
    head: u32,
}

impl Seen {
    /// Forget the gifts older than `ttl_s` (at `now_s`), and the oldest
    /// beyond `keys_max - 1` so that one more fits. The clock counts whole
    /// seconds, so a gift is forgotten only when its age in them is above
    /// `ttl_s`: it is always remembered for at least `ttl_s` seconds.
    pub(super) fn forget_old(&mut self, now_s: u32, ttl_s: u64, keys_max: usize) {
        let keys_max = keys_max.min(KEYS_MAX);
        let mut forgot = false;
        while let Some(&(at, _)) = self.times.front() {
            let fresh = u64::from(now_s.saturating_sub(at)) <= ttl_s;
            if fresh && self.entries.len() < keys_max {
                break;
            }
            self.forget_oldest();
            forgot = true;
        }
        if forgot {
            self.shrink();
        }
    }

    /// The answer of a remembered gift.
    pub(super) fn get(&self, key: &IdKey) -> Option<Answer> {
        self.find(key).map(|i| self.entries[i].answer)
    }

    /// Remember a gift's answer (at `now_s`).
    pub(super) fn remember(&mut self, key: IdKey, now_s: u32, answer: Answer) {
        debug_assert!(self.find(&key).is_none(), "a gift is remembered once");
        let len = self.entries.len();
        assert!(len < KEYS_MAX, "forget_old keeps a wallet under KEYS_MAX");
        if len == self.entries.capacity() {
            self.entries.reserve_exact((len / 4).max(GROW_LEN_MIN));
        }
        let pos = self.head.wrapping_add(len as u32);
        self.entries.push_back(Entry { key, answer });
        self.index
            .insert_unique(key[0], pos, rehash(&self.entries, self.head));
        // The clock never goes back; a caller's older second joins the
        // newest run, which keeps the runs in order.
        match self.times.back_mut() {
            Some((at, n)) if now_s <= *at => *n += 1,
            _ => self.times.push_back((now_s, 1)),
        }
        debug_assert_eq!(self.index.len(), self.entries.len());
    }

    /// Where `key`'s entry is in `entries`.
    fn find(&self, key: &IdKey) -> Option<usize> {
        let head = self.head;
        self.index
            .find(key[0], |&p| self.entries[slot(head, p)].key == *key)
            .map(|&p| slot(head, p))
    }

    /// Forget the oldest gift (there is one).
    fn forget_oldest(&mut self) {
        let Some(old) = self.entries.pop_front() else {
            debug_assert!(false, "times counts an entry that is not there");
            return;
        };
        let head = self.head;
        match self.index.find_entry(old.key[0], |&p| p == head) {
            Ok(at) => {
                at.remove();
            }
            Err(_) => debug_assert!(false, "an entry not in the index"),
        }
        self.head = head.wrapping_add(1);
        if let Some((_, n)) = self.times.front_mut() {
            *n -= 1;
            if *n == 0 {
                self.times.pop_front();
            }
        }
    }

    /// Give back room a wallet no longer needs (after a burst expired).
    fn shrink(&mut self) {
        let len = self.entries.len();
        if self.entries.capacity() > 4 * len + 64 {
            self.entries.shrink_to(2 * len);
            self.index.shrink_to(len, rehash(&self.entries, self.head));
        }
    }

    /// Gifts remembered.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Room held, in entries of the queue and slots of the index.
    #[cfg(test)]
    fn capacity(&self) -> (usize, usize) {
        (self.entries.capacity(), self.index.capacity())
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
        // The point of keys and positions: a queue entry and an index slot
        // stay this small (hashbrown adds one control byte per slot).
        assert_eq!(std::mem::size_of::<Entry>(), 40);
        assert_eq!(std::mem::size_of::<u32>(), 4);
    }

    #[test]
    fn many_gifts_keep_little_slack_and_every_answer() {
        let ids = IdKeys::new();
        let mut s = Seen::default();
        let n = 5_000u64;
        for i in 0..n {
            let key = ids.key(&format!("g{i}"));
            s.forget_old(0, 10, 100_000);
            assert_eq!(s.get(&key), None, "g{i} is new");
            s.remember(key, 0, answer(i));
        }
        for i in 0..n {
            assert_eq!(s.get(&ids.key(&format!("g{i}"))), Some(answer(i)));
        }
        // Grown by a quarter at a time: not doubled past 5,000 to 8,192.
        let (queue, index) = s.capacity();
        assert!((5_000..=6_250).contains(&queue), "queue room {queue}");
        assert!((5_000..=8_192).contains(&index), "index room {index}");
    }

    #[test]
    fn positions_stay_right_while_old_gifts_go_and_new_ones_come() {
        // A wallet at its cap for many rounds: every position moves past
        // the head many times over, and the index must follow.
        let ids = IdKeys::new();
        let mut s = Seen::default();
        let keys_max = 50;
        for i in 0..1_000u64 {
            s.forget_old(i as u32 / 10, 1_000, keys_max);
            s.remember(ids.key(&format!("g{i}")), i as u32 / 10, answer(i));
            assert!(s.len() <= keys_max);
        }
        for i in 0..950u64 {
            assert_eq!(s.get(&ids.key(&format!("g{i}"))), None, "g{i} went");
        }
        for i in 950..1_000u64 {
            assert_eq!(s.get(&ids.key(&format!("g{i}"))), Some(answer(i)));
        }
        // Then all of it ages out at once, and the room goes with it.
        s.forget_old(10_000, 10, keys_max);
        assert_eq!(s.len(), 0);
        assert_eq!(s.get(&ids.key("g999")), None);
        s.remember(ids.key("g999"), 10_000, answer(7));
        assert_eq!(s.get(&ids.key("g999")), Some(answer(7)));
    }

    #[test]
    fn a_burst_that_expired_gives_its_room_back() {
        let ids = IdKeys::new();
        let mut s = Seen::default();
        for i in 0..10_000u64 {
            s.remember(ids.key(&format!("g{i}")), 0, answer(i));
        }
        s.remember(ids.key("late"), 100, answer(1));
        s.forget_old(105, 10, 100_000);
        assert_eq!(s.len(), 1);
        assert_eq!(s.get(&ids.key("late")), Some(answer(1)));
        let (queue, index) = s.capacity();
        assert!(queue < 100 && index < 100, "room kept: {queue}, {index}");
    }
}

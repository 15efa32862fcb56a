//! The in-process engine's queue of streak ends for `combo_end` webhooks.
//!
//! Owns: [`StreakQueue`], bounded by `counters.streak_end_queue_len_max`
//! (beyond, the oldest entry is dropped and counted). An entry taken by
//! the webhook pump stays until it is acknowledged, so a failed outbox
//! write retries it; a crash of the process loses what is queued, like
//! every other in-process state that is not in the ledger.
//! Must not: decide who is subscribed (the pump asks the ledger).

use std::collections::VecDeque;

use parking_lot::Mutex;

use crate::model::StreakEnd;
use crate::protocol::ComboEnd;

/// Streak ends waiting for the webhook pump (in process).
pub(super) struct StreakQueue {
    inner: Mutex<Inner>,
    len_max: usize,
}

struct Inner {
    q: VecDeque<StreakEnd>,
    next_id: u64,
}

impl StreakQueue {
    /// An empty queue of at most `len_max` entries.
    pub(super) fn new(len_max: usize) -> StreakQueue {
        StreakQueue {
            inner: Mutex::new(Inner {
                q: VecDeque::new(),
                next_id: 1,
            }),
            len_max: len_max.max(1),
        }
    }

    /// Queue `end` of a target of `creator`.
    pub(super) fn push(&self, creator: &str, end: &ComboEnd) {
        let mut inner = self.inner.lock();
        if inner.q.len() >= self.len_max {
            inner.q.pop_front();
            metrics::counter!("giftstream_streak_ends_dropped_total").increment(1);
        }
        let id = inner.next_id.to_string();
        inner.next_id += 1;
        inner.q.push_back(StreakEnd {
            id,
            creator: creator.to_string(),
            end: end.clone(),
        });
    }

    /// The oldest `len_max` entries (they stay until [`Self::done`]).
    pub(super) fn peek(&self, len_max: usize) -> Vec<StreakEnd> {
        self.inner.lock().q.iter().take(len_max).cloned().collect()
    }

    /// Drop the entries `ids`.
    pub(super) fn done(&self, ids: &[String]) {
        self.inner.lock().q.retain(|e| !ids.contains(&e.id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(seq: u64) -> ComboEnd {
        ComboEnd {
            room: "r".into(),
            video: None,
            seq,
            sender: "s".into(),
            gift: "rose".into(),
            count: 1,
            coins: 1,
            diamonds: 1,
            seq_first: seq - 1,
            seq_last: seq - 1,
            ts: 0,
        }
    }

    #[test]
    fn entries_stay_until_done_and_the_oldest_go_past_the_bound() {
        let q = StreakQueue::new(2);
        q.push("c", &end(2));
        q.push("c", &end(4));
        let taken = q.peek(10);
        assert_eq!(
            taken.iter().map(|e| e.end.seq).collect::<Vec<_>>(),
            vec![2, 4]
        );
        assert_eq!(q.peek(10).len(), 2, "taken ones stay until done");
        q.push("c", &end(6));
        assert_eq!(
            q.peek(10).iter().map(|e| e.end.seq).collect::<Vec<_>>(),
            vec![4, 6],
            "the oldest is dropped past len_max"
        );
        q.done(&[taken[1].id.clone()]);
        assert_eq!(
            q.peek(10).iter().map(|e| e.end.seq).collect::<Vec<_>>(),
            vec![6]
        );
    }
}

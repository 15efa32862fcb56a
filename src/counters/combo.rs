//! Combo streaks and their explicit end (`combo_end`), shared by both
//! engines.
//!
//! Owns: what a streak is ([`Streak`]: one sender, one gift, one target),
//! when a gift extends it ([`Streak::extends`]), when it is due to end
//! ([`Streak::due_ms`]), the `combo_end` event it becomes
//! ([`Streak::end`]), the one decision whether a target's events are
//! published at all ([`publishes_events`]), and how many seqs streak ends
//! may have taken past a target's last ledger gift ([`restore_seq_slack`]).
//! Must not: take locks, talk to Redis or publish (the engines do: the
//! in-process one in `memory`, Redis in `lua/gift.lua`, `lua/combo_lib.lua`
//! and `redis::combo`).
//!
//! Rule (both engines): a gift of the same gift from the same sender on the
//! same target within `counters.combo_window_ms` of the streak's last gift
//! extends it; a different gift from that sender on that target, or one
//! after the window, first ends the old streak (its `combo_end` takes the
//! seq before the new gift's), then starts a new one; a streak with no gift
//! for the window is ended by a reaper (`counters.combo_reap_interval_ms`)
//! with `ts` = its last gift's time plus the window; ending a room ends all
//! its streaks before `room_ended`. A streak end takes a seq only where it
//! is published ([`publishes_events`]), so targets without an event channel
//! keep gift-only seqs.

use std::collections::HashMap;

use crate::model::{Snapshot, Target, TargetKind};
use crate::protocol::ComboEnd;

/// Whether events of a target of this kind (gifts and streak ends) are
/// published to viewers: rooms and videos both have a feed. The one place
/// this is decided for streak ends; a streak of a target without one
/// would be tracked and ended silently, taking no seq.
pub fn publishes_events(kind: TargetKind) -> bool {
    matches!(kind, TargetKind::Room | TargetKind::Video)
}

/// One sender's running streak of one gift on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streak {
    /// Catalog gift id.
    pub gift: String,
    /// Gifts in it (sum of counts).
    pub count: u32,
    /// Coins it cost.
    pub coins: i64,
    /// Diamonds it earned.
    pub diamonds: i64,
    /// Seq of its first gift.
    pub seq_first: u64,
    /// Seq of its last gift.
    pub seq_last: u64,
    /// Time of its last gift, ms since the epoch.
    pub last_ts: i64,
}

impl Streak {
    /// A streak of one gift message.
    pub fn start(gift: &str, count: u32, coins: i64, diamonds: i64, seq: u64, ts: i64) -> Streak {
        Streak {
            gift: gift.to_string(),
            count,
            coins,
            diamonds,
            seq_first: seq,
            seq_last: seq,
            last_ts: ts,
        }
    }

    /// True when a gift of `gift` at `ts` extends this streak (same gift,
    /// at most `window_ms` after its last one).
    pub fn extends(&self, gift: &str, ts: i64, window_ms: u64) -> bool {
        self.gift == gift
            && ts.saturating_sub(self.last_ts) <= window_ms.min(i64::MAX as u64) as i64
    }

    /// Add one gift message (the caller checked [`Streak::extends`]).
    pub fn add(&mut self, count: u32, coins: i64, diamonds: i64, seq: u64, ts: i64) {
        self.count = self.count.saturating_add(count);
        self.coins = self.coins.saturating_add(coins);
        self.diamonds = self.diamonds.saturating_add(diamonds);
        self.seq_last = seq;
        self.last_ts = ts;
    }

    /// When it ends unless extended: it ends once the time is past this.
    pub fn due_ms(&self, window_ms: u64) -> i64 {
        self.last_ts
            .saturating_add(window_ms.min(i64::MAX as u64) as i64)
    }

    /// Its `combo_end` on `target`, with its own `seq`, ended at `ts`.
    pub fn end(&self, target: &Target, sender: &str, seq: u64, ts: i64) -> ComboEnd {
        let (room, video) = target.topic().fields();
        ComboEnd {
            room,
            video,
            seq,
            sender: sender.to_string(),
            gift: self.gift.clone(),
            count: self.count,
            coins: self.coins,
            diamonds: self.diamonds,
            seq_first: self.seq_first,
            seq_last: self.seq_last,
            ts,
        }
    }
}

/// Per target key: seqs that streak ends may have taken after the
/// target's last gift in the ledger (the ledger keeps gifts only, so its
/// `MAX(seq)` is not the next free seq once streak ends take seqs).
///
/// Each sender has at most one streak open on a target, and each open
/// streak ends once, so at most one seq per distinct sender of the
/// target's recent gifts (the snapshot's, `counters.idempotency_ttl_s`
/// back). A target with gifts but none that recent gets `fallback`.
/// Streak ends of gifts lost with their process (not in the ledger) are
/// the caller's: at most one per lost gift.
pub fn restore_seq_slack(snapshot: &Snapshot, fallback: u64) -> HashMap<String, u64> {
    let mut senders: HashMap<&str, std::collections::HashSet<&str>> = HashMap::new();
    for g in &snapshot.recent_gifts {
        senders
            .entry(g.target.as_str())
            .or_default()
            .insert(g.sender.as_str());
    }
    snapshot
        .targets
        .iter()
        .filter(|(t, info)| info.seq > 0 && publishes_events(t.kind))
        .map(|(t, _)| {
            let key = t.key();
            let n = senders
                .get(key.as_str())
                .map_or(fallback, |s| s.len() as u64);
            (key, n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PendingGift, Target, TargetInfo};

    #[test]
    fn a_streak_extends_within_the_window_with_the_same_gift_only() {
        let mut s = Streak::start("rose", 1, 1, 1, 5, 1000);
        assert!(s.extends("rose", 4000, 3000), "at the edge");
        assert!(!s.extends("rose", 4001, 3000), "past the window");
        assert!(!s.extends("lion", 1001, 3000), "another gift");
        s.add(2, 2, 2, 7, 2000);
        assert_eq!((s.count, s.coins, s.seq_first, s.seq_last), (3, 3, 5, 7));
        assert_eq!(s.due_ms(3000), 5000);
        let end = s.end(&Target::room("r"), "v", 8, 5000);
        assert_eq!((end.seq, end.count, end.seq_last), (8, 3, 7));
    }

    #[test]
    fn slack_is_one_seq_per_recent_sender_or_the_fallback() {
        let gift = |target: &str, sender: &str| PendingGift {
            target: target.into(),
            seq: 1,
            sender: sender.into(),
            client_id: "c".into(),
            creator: "a".into(),
            gift: "rose".into(),
            count: 1,
            coins: 1,
            diamonds: 1,
            balance_after: 0,
            ts: 0,
            message: None,
        };
        let info = |seq| TargetInfo {
            creator: "a".into(),
            live: true,
            seq,
        };
        let snap = Snapshot {
            recent_gifts: vec![
                gift("room:r", "x"),
                gift("room:r", "y"),
                gift("room:r", "x"),
            ],
            targets: vec![
                (Target::room("r"), info(9)),
                (Target::room("old"), info(4)),
                (Target::room("empty"), info(0)),
                (Target::video("v"), info(3)),
            ],
            ..Snapshot::default()
        };
        let slack = restore_seq_slack(&snap, 100);
        assert_eq!(slack.get("room:r"), Some(&2));
        assert_eq!(slack.get("room:old"), Some(&100));
        assert_eq!(slack.get("room:empty"), None);
        assert_eq!(
            slack.get("video:v"),
            Some(&100),
            "a video's streak ends take seqs too"
        );
    }
}

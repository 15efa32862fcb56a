//! The in-process engine's streak ends, driven with explicit times: the
//! reaper ends a streak once, only past its due time, re-checks an
//! extended one, takes at most its batch, and a video's streak ends
//! with a seq of the video's.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::catalog::Gift;
use crate::config::CountersConfig;
use crate::counters::memory::MemoryCounters;
use crate::counters::Counters;
use crate::error::Result;
use crate::model::{EventPermit, EventSink, GiftRequest, Target};
use crate::protocol::SeqEvent;

/// Every published event, in order.
#[derive(Default)]
pub(crate) struct Recorder(pub(crate) Arc<Mutex<Vec<SeqEvent>>>);

impl EventSink for Recorder {
    fn reserve(&self, _target: &Target, _creator: &str, _last_seq: u64) -> Result<EventPermit> {
        let seen = self.0.clone();
        Ok(EventPermit::new(move |ev| seen.lock().push(ev)))
    }
}

pub(crate) fn rose() -> Gift {
    Gift {
        id: "rose".into(),
        name: "Rose".into(),
        coins: 1,
        diamonds: 1,
        animation: "rose.webp".into(),
    }
}

pub(crate) fn req(sender: &str, target: Target, gift: Gift, id: &str, ts: i64) -> GiftRequest {
    GiftRequest {
        sender: sender.into(),
        target,
        gift,
        count: 1,
        client_id: id.into(),
        ts,
        message: None,
        kept: None,
    }
}

async fn engine(batch_max: usize) -> (MemoryCounters, Arc<Mutex<Vec<SeqEvent>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let cfg = CountersConfig {
        combo_window_ms: 3000,
        combo_reap_batch_max: batch_max,
        ..CountersConfig::default()
    };
    let c = MemoryCounters::new(cfg, Arc::new(Recorder(seen.clone())));
    c.open_target(&Target::room("r"), "cr", 0).await.unwrap();
    c.open_target(&Target::video("v"), "cr", 0).await.unwrap();
    for u in ["a", "b"] {
        c.credit(u, 100, &format!("grant:{u}")).await.unwrap();
    }
    (c, seen)
}

/// (seq, count, seq_first, seq_last, ts) of each streak end seen.
fn ends(seen: &Mutex<Vec<SeqEvent>>) -> Vec<(u64, u32, u64, u64, i64)> {
    seen.lock()
        .iter()
        .filter_map(|e| match e {
            SeqEvent::ComboEnd(c) => Some((c.seq, c.count, c.seq_first, c.seq_last, c.ts)),
            SeqEvent::Gift(_) | SeqEvent::Inbox(_) | SeqEvent::Message(_) => None,
        })
        .collect()
}

#[tokio::test]
async fn the_reaper_ends_a_streak_once_past_its_due_time_and_rechecks_extensions() {
    let (c, seen) = engine(256).await;
    c.gift(req("a", Target::room("r"), rose(), "1", 1000))
        .await
        .unwrap();
    c.gift(req("a", Target::room("r"), rose(), "2", 3000))
        .await
        .unwrap();
    assert_eq!(c.reap_combos(4001), 0, "extended: due at 6000");
    assert_eq!(c.reap_combos(6000), 0, "not past its due time");
    assert_eq!(c.reap_combos(6001), 1);
    assert_eq!(c.reap_combos(60_000), 0, "once");
    assert_eq!(ends(&seen), vec![(3, 2, 1, 2, 6000)]);
    // The next gift takes the seq after the end's.
    let next = c
        .gift(req("a", Target::room("r"), rose(), "3", 70_000))
        .await
        .unwrap();
    assert_eq!(next.ack.seq, 4);
}

#[tokio::test]
async fn the_reaper_takes_at_most_its_batch_and_video_streaks_end_too() {
    let (c, seen) = engine(1).await;
    c.gift(req("a", Target::room("r"), rose(), "1", 1000))
        .await
        .unwrap();
    c.gift(req("b", Target::room("r"), rose(), "2", 1001))
        .await
        .unwrap();
    let v = c
        .gift(req("a", Target::video("v"), rose(), "3", 1002))
        .await
        .unwrap();
    assert_eq!(v.ack.seq, 1);
    assert_eq!(c.reap_combos(10_000), 1);
    assert_eq!(c.reap_combos(10_000), 1);
    assert_eq!(c.reap_combos(10_000), 1, "the video's");
    assert_eq!(c.reap_combos(10_000), 0);
    assert_eq!(
        ends(&seen),
        vec![(3, 1, 1, 1, 4000), (4, 1, 2, 2, 4001), (2, 1, 1, 1, 4002)]
    );
    let t = c.target(&Target::video("v")).await.unwrap().unwrap();
    assert_eq!(t.seq, 2, "a video's streak end takes the video's next seq");
}

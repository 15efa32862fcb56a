//! The memory engine's pending queue: its room stays within
//! `counters.pending_len_max`, and a drained batch carries every field the
//! gift was accepted with; what its idempotency memory reports.

use std::sync::Arc;

use crate::config::CountersConfig;
use crate::counters::combo_tests::{req, rose, Recorder};
use crate::counters::memory::MemoryCounters;
use crate::counters::{Counters, CountersError};
use crate::model::{PendingGift, Target};

#[tokio::test]
async fn the_pending_queue_holds_no_more_room_than_its_cap_and_drains_every_field() {
    let cap = 1_000;
    let cfg = CountersConfig {
        pending_len_max: cap,
        ..CountersConfig::default()
    };
    let c = MemoryCounters::new(cfg, Arc::new(Recorder::default()));
    c.open_target(&Target::room("r"), "cr", 0).await.unwrap();
    c.credit("a", 5_000, "grant:a").await.unwrap();
    for i in 0..cap {
        let mut r = req(
            "a",
            Target::room("r"),
            rose(),
            &format!("g{i}"),
            1_000 + i as i64,
        );
        r.message = (i == 7).then(|| "hi".to_string());
        c.gift(r).await.unwrap();
    }
    // Grown toward the cap, not doubled past it (1,024 with doubling).
    assert_eq!(c.pending.lock().gifts.capacity(), cap);
    let full = c
        .gift(req("a", Target::room("r"), rose(), "over", 9_999))
        .await;
    assert!(matches!(full, Err(CountersError::PendingFull)), "{full:?}");

    let batch = c.drain(cap).await.unwrap().expect("a batch");
    assert_eq!(batch.gifts.len(), cap);
    assert_eq!(batch.ticket_max, cap as u64);
    assert_eq!(
        batch.gifts[7],
        PendingGift {
            target: "room:r".into(),
            seq: 8,
            sender: "a".into(),
            client_id: "g7".into(),
            creator: "cr".into(),
            gift: "rose".into(),
            count: 1,
            coins: 1,
            diamonds: 1,
            balance_after: 5_000 - 8,
            ts: 1_007,
            message: Some("hi".into()),
        }
    );
    assert_eq!(batch.gifts[8].message, None);
    assert_eq!(batch.gifts[cap - 1].client_id, format!("g{}", cap - 1));
}

#[tokio::test]
async fn remembered_gifts_are_counted_over_wallets_once_each_and_forgotten_past_the_cap() {
    let cfg = CountersConfig {
        idempotency_keys_per_wallet_max: 3,
        ..CountersConfig::default()
    };
    let c = MemoryCounters::new(cfg, Arc::new(Recorder::default()));
    c.open_target(&Target::room("r"), "cr", 0).await.unwrap();
    assert_eq!(c.remembered_len().await.unwrap(), Some(0));
    for u in ["a", "b"] {
        c.credit(u, 100, &format!("grant:{u}")).await.unwrap();
    }
    for (i, u) in ["a", "a", "b"].into_iter().enumerate() {
        c.gift(req(u, Target::room("r"), rose(), &format!("g{i}"), 1_000))
            .await
            .unwrap();
    }
    assert_eq!(c.remembered_len().await.unwrap(), Some(3));
    // A duplicate is answered from memory, not remembered again.
    let again = c
        .gift(req("a", Target::room("r"), rose(), "g0", 1_001))
        .await;
    assert!(again.unwrap().duplicate);
    assert_eq!(c.remembered_len().await.unwrap(), Some(3));
    // Past a wallet's cap (3), its oldest go so that the new one fits.
    for i in 3..6 {
        c.gift(req("a", Target::room("r"), rose(), &format!("g{i}"), 1_002))
            .await
            .unwrap();
    }
    assert_eq!(c.remembered_len().await.unwrap(), Some(3 + 1));
}

/// A group of gifts in process (`Counters::gift_group`'s default): applied
/// one after another, and once one is refused for a full pending queue,
/// none after it is tried: each answers `PendingFull`, unapplied.
#[tokio::test]
async fn a_group_applies_in_order_and_nothing_after_a_full_queue() {
    let cfg = CountersConfig {
        pending_len_max: 3,
        ..CountersConfig::default()
    };
    let c = MemoryCounters::new(cfg, Arc::new(Recorder::default()));
    assert_eq!(
        c.gift_group_len_max(),
        1,
        "one at a time costs the same here"
    );
    c.open_target(&Target::room("r"), "cr", 0).await.unwrap();
    c.credit("a", 100, "grant:a").await.unwrap();
    let group = (1..=6)
        .map(|i| req("a", Target::room("r"), rose(), &format!("q{i}"), i))
        .collect();
    let answers = c.gift_group(group).await;
    let seqs: Vec<Option<u64>> = answers
        .iter()
        .map(|a| a.as_ref().ok().map(|o| o.ack.seq))
        .collect();
    assert_eq!(seqs, [Some(1), Some(2), Some(3), None, None, None]);
    assert!(answers[3..]
        .iter()
        .all(|a| matches!(a, Err(CountersError::PendingFull))));
    assert_eq!(c.balance("a").await.unwrap(), 97, "three applied");
    assert_eq!(c.pending_len().await.unwrap(), 3);
}

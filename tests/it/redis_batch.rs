//! The Redis engine's gift batches (issue 16): many concurrent gifts go to
//! Redis in few script calls, and every gift keeps its own guarantees
//! (idempotency, no overdraft, seq order) inside a batch. The answers of
//! single gifts are compared with the in-process engine by the conformance
//! suite (`counters_conformance.rs`), which runs with batching on (the
//! default).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use giftstream::catalog::Gift;
use giftstream::config::{CountersConfig, HubConfig};
use giftstream::counters::redis::RedisCounters;
use giftstream::counters::{Counters, CountersError};
use giftstream::model::{GiftRequest, Target};
use giftstream::protocol::now_ms;

fn rose() -> Gift {
    Gift {
        id: "rose".into(),
        name: "rose".into(),
        coins: 2,
        diamonds: 1,
        animation: "rose.webp".into(),
    }
}

fn req(sender: &str, room: &str, client_id: &str) -> GiftRequest {
    GiftRequest {
        sender: sender.into(),
        target: Target::room(room),
        gift: rose(),
        count: 1,
        client_id: client_id.into(),
        ts: now_ms(),
        message: None,
        kept: None,
    }
}

/// 8 senders with 30 coins each send 20 different gifts of 2 coins at
/// once, each id twice: at most 16 gifts per script call, one call in
/// flight, so the gifts meet in batches. Each sender gets exactly 15 gifts
/// (no overdraft, balance 0), both answers of one id are the same (one
/// charged, the other its duplicate, or both refused), and the room's seqs
/// are exactly 1..=120, each once.
#[tokio::test]
async fn concurrent_gifts_go_in_batches_and_keep_every_guarantee() {
    let Some((url, db)) = common::services::fresh_redis_db().await else {
        return;
    };
    let room = format!("batch{db}");
    let cfg = CountersConfig {
        url: "redis://unused".into(),
        gift_batch_len_max: 16,
        gift_batches_in_flight_max: 1,
        ..CountersConfig::default()
    };
    let red = Arc::new(
        RedisCounters::connect(&url, cfg, HubConfig::default())
            .await
            .expect("connect RedisCounters"),
    );
    red.open_target(&Target::room(&room), "cr", 0)
        .await
        .unwrap();
    let (senders, ids, held) = (8usize, 20usize, 30i64);
    for s in 0..senders {
        red.credit(&format!("u{s}"), held, &format!("g{s}"))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for copy in 0..2 {
        for i in 0..ids {
            for s in 0..senders {
                let red = red.clone();
                let room = room.clone();
                tasks.push(tokio::spawn(async move {
                    let id = format!("{s}-{i}");
                    let answer = red.gift(req(&format!("u{s}"), &room, &id)).await;
                    (s, id, copy, answer)
                }));
            }
        }
    }
    let mut by_id: BTreeMap<String, Vec<Option<(u64, i64)>>> = BTreeMap::new();
    let mut charged = vec![0usize; senders];
    let mut seqs = BTreeSet::new();
    for t in tasks {
        let (s, id, _copy, answer) = t.await.unwrap();
        let seen = match answer {
            Ok(out) => {
                if !out.duplicate {
                    charged[s] += 1;
                    assert!(
                        seqs.insert(out.ack.seq),
                        "seq {} handed out twice",
                        out.ack.seq
                    );
                }
                assert!(out.ack.balance >= 0, "{id}: overdraft");
                Some((out.ack.seq, out.ack.balance))
            }
            Err(CountersError::InsufficientFunds { cost, held }) => {
                assert_eq!((cost, held), (2, 0), "{id}: refused with coins left");
                None
            }
            Err(e) => panic!("{id}: {e}"),
        };
        by_id.entry(id).or_default().push(seen);
    }
    for (id, answers) in &by_id {
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[0], answers[1], "{id}: its two answers differ");
    }
    assert_eq!(charged, vec![15; senders], "gifts charged per sender");
    for s in 0..senders {
        assert_eq!(red.balance(&format!("u{s}")).await.unwrap(), 0);
    }
    assert_eq!(seqs, (1..=120).collect::<BTreeSet<u64>>());
    assert_eq!(
        red.target(&Target::room(&room)).await.unwrap().unwrap().seq,
        120
    );
    assert_eq!(red.pending_len().await.unwrap(), 120);
    let (calls, gifts) = red.gift_batch_stats();
    assert_eq!(
        gifts,
        (2 * ids * senders) as u64,
        "every gift went through the batcher"
    );
    assert!(
        calls < gifts,
        "{gifts} concurrent gifts took {calls} script calls: no batch formed"
    );
}

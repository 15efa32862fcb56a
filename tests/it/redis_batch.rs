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
use giftstream::relay::Relay;

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

/// Raw commands on the engine's Redis database.
async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The `e` fields of each entry of a history stream, by entry id.
async fn history_entries(url: &str, key: &str) -> Vec<(u64, Vec<giftstream::protocol::SeqEvent>)> {
    let rows: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut raw(url).await)
        .await
        .unwrap();
    rows.into_iter()
        .map(|(id, fields)| {
            let seq: u64 = id.strip_suffix("-0").unwrap().parse().unwrap();
            let evs = fields
                .into_iter()
                .filter(|(k, _)| k == "e")
                .map(|(_, e)| serde_json::from_str(&e).unwrap())
                .collect();
            (seq, evs)
        })
        .collect()
}

/// Issue 16, the batch stored as a batch: a script call's gifts are one
/// settlement entry, and each room's events of the call one history entry
/// (id = its last seq, its events' seqs consecutive); a resume from any seq,
/// inside an entry too, reads exactly the events after it; settlement takes
/// them all once.
#[tokio::test]
async fn a_gift_call_is_one_settlement_entry_and_one_history_entry_per_room() {
    let Some((url, db)) = common::services::fresh_redis_db().await else {
        return;
    };
    let rooms = [format!("bs{db}a"), format!("bs{db}b")];
    let cfg = CountersConfig {
        url: "redis://unused".into(),
        gift_batch_len_max: 16,
        gift_batches_in_flight_max: 1,
        ..CountersConfig::default()
    };
    let hub = giftstream::hub::Hub::new(HubConfig::default());
    let red = Arc::new(
        RedisCounters::connect(&url, cfg, hub.config().clone())
            .await
            .expect("connect RedisCounters"),
    );
    let relay = giftstream::relay::redis::RedisRelay::connect(&red, hub.clone())
        .await
        .expect("connect RedisRelay");
    for r in &rooms {
        red.open_target(&Target::room(r), "cr", 0).await.unwrap();
    }
    let senders = 8usize;
    for s in 0..senders {
        red.credit(&format!("u{s}"), 100, &format!("g{s}"))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..12 {
        for s in 0..senders {
            let red = red.clone();
            let room = rooms[(i + s) % 2].clone();
            tasks.push(tokio::spawn(async move {
                red.gift(req(&format!("u{s}"), &room, &format!("{s}-{i}")))
                    .await
            }));
        }
    }
    for t in tasks {
        assert!(!t.await.unwrap().unwrap().duplicate);
    }
    let gifts = 12 * senders;
    let (calls, sent) = red.gift_batch_stats();
    assert_eq!(sent, gifts as u64);
    assert!(calls < sent, "no batch formed: {calls} calls");
    let mut c = raw(&url).await;
    let entries: u64 = redis::cmd("XLEN")
        .arg("{gs}:pending")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(entries, calls, "one settlement entry per script call");
    assert_eq!(red.pending_len().await.unwrap(), gifts);

    for room in &rooms {
        let seq = red.target(&Target::room(room)).await.unwrap().unwrap().seq;
        // Every gift to a room ends the sender's streak or extends it; the
        // rose streaks here never end, so the room's seqs are its gifts.
        assert_eq!(seq, (gifts / 2) as u64);
        let hist = history_entries(&url, &format!("{{gs}}:h:room:{room}")).await;
        assert!(
            (hist.len() as u64) < seq,
            "{room}: {} history entries for {seq} events: not one per call",
            hist.len()
        );
        let mut next = 1;
        for (last, evs) in &hist {
            for ev in evs {
                assert_eq!(ev.seq(), next, "{room}: events in seq order, each once");
                next += 1;
            }
            assert_eq!(*last, next - 1, "{room}: an entry's id is its last seq");
        }
        assert_eq!(next - 1, seq);
        let topic = giftstream::relay::Topic::room(room);
        for since in 0..=seq {
            let got: Vec<u64> = relay
                .history(&topic, since)
                .await
                .unwrap()
                .expect("kept")
                .iter()
                .map(|e| e.seq())
                .collect();
            assert_eq!(got, (since + 1..=seq).collect::<Vec<_>>(), "since {since}");
        }
    }

    // Settlement: whole entries, every gift once, and the counts go to 0.
    let mut seen = BTreeSet::new();
    while let Some(b) = red.drain(10).await.unwrap() {
        for g in &b.gifts {
            assert!(seen.insert((g.target.clone(), g.seq)), "drained twice");
        }
        red.settled(&b).await.unwrap();
    }
    assert_eq!(seen.len(), gifts);
    assert_eq!(red.pending_len().await.unwrap(), 0);
    assert_eq!(red.pending_diamonds("cr").await.unwrap(), 0);
    let left: (u64, Option<i64>, Option<i64>) = redis::pipe()
        .cmd("XLEN")
        .arg("{gs}:pending")
        .cmd("GET")
        .arg("{gs}:pending:n")
        .cmd("GET")
        .arg("{gs}:pending:d")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(left, (0, Some(0), Some(0)));
}

/// The rows of a settlement entry as `gift.lua` writes it (MessagePack).
fn entry_rows(first_seq: u64, n: u64, room: &str) -> Vec<u8> {
    let rows: Vec<Vec<String>> = (first_seq..first_seq + n)
        .map(|s| {
            [
                &format!("room:{room}"),
                &s.to_string(),
                "u",
                &format!("c{s}"),
                "cr",
                "rose",
                "1",
                "2",
                "1",
                "50",
                "1000",
                &s.to_string(),
                "",
            ]
            .map(String::from)
            .to_vec()
        })
        .collect();
    rmp_serde::to_vec(&rows).unwrap()
}

/// Drain takes whole entries and at most `len_max` gifts (one entry alone
/// when it holds more); an entry written before batches were stored as
/// one (one gift, its fields) still drains and settles; `settled` takes
/// each entry's gifts and diamonds off once.
#[tokio::test]
async fn drain_takes_whole_entries_up_to_len_max_and_reads_old_entries() {
    let Some((url, db)) = common::services::fresh_redis_db().await else {
        return;
    };
    let room = format!("de{db}");
    let red = RedisCounters::connect(
        &url,
        CountersConfig {
            url: "redis://unused".into(),
            ..CountersConfig::default()
        },
        HubConfig::default(),
    )
    .await
    .unwrap();
    // Entries of 3, 1 and 4 gifts, then an old single-gift entry.
    let mut c = raw(&url).await;
    let mut seq = 1;
    for n in [3u64, 1, 4] {
        let _: String = redis::cmd("XADD")
            .arg("{gs}:pending")
            .arg("*")
            .arg("len")
            .arg(n)
            .arg("rows")
            .arg(entry_rows(seq, n, &room))
            .query_async(&mut c)
            .await
            .unwrap();
        seq += n;
    }
    let _: String = redis::cmd("XADD")
        .arg("{gs}:pending")
        .arg("*")
        .arg(&[
            ("t", format!("room:{room}").as_str()),
            ("s", "9"),
            ("u", "u"),
            ("c", "old"),
            ("r", "cr"),
            ("g", "rose"),
            ("n", "1"),
            ("co", "2"),
            ("d", "1"),
            ("b", "48"),
            ("ts", "1000"),
            ("k", "9"),
        ])
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::pipe()
        .cmd("SET")
        .arg("{gs}:pending:n")
        .arg(8)
        .cmd("SET")
        .arg("{gs}:pd:cr")
        .arg(9)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(red.pending_len().await.unwrap(), 8);

    let seqs = |b: &giftstream::model::Batch| b.gifts.iter().map(|g| g.seq).collect::<Vec<_>>();
    let b1 = red.drain(4).await.unwrap().unwrap();
    assert_eq!(seqs(&b1), vec![1, 2, 3, 4], "3 + 1 gifts fit in 4");
    assert_eq!(b1.ticket_max, 4);
    assert_eq!(red.pending_len().await.unwrap(), 4);
    let b2 = red.drain(2).await.unwrap().unwrap();
    assert_eq!(seqs(&b2), vec![5, 6, 7, 8], "an entry of 4 alone");
    let b3 = red.drain(10).await.unwrap().unwrap();
    assert_eq!(seqs(&b3), vec![9], "the old entry");
    assert_eq!(b3.gifts[0].client_id, "old");
    assert_eq!(b3.gifts[0].balance_after, 48);
    assert!(red.drain(10).await.unwrap().is_none());
    red.settled(&b1).await.unwrap();
    assert_eq!(red.pending_diamonds("cr").await.unwrap(), 5);
    red.settled(&b2).await.unwrap();
    red.settled(&b3).await.unwrap();
    assert_eq!(red.pending_diamonds("cr").await.unwrap(), 0);
    assert_eq!(red.pending_len().await.unwrap(), 0);
    let n: Option<i64> = redis::cmd("GET")
        .arg("{gs}:pending:n")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, Some(0), "clamped: the old entry was not counted");
}

/// A group of gifts (one socket's, read together: `Counters::gift_group`)
/// leaves whole in one script call, even past the batch length, and once
/// one of it is refused for a full pending queue none after it is applied:
/// the caller gives those again one at a time, in order.
#[tokio::test]
async fn a_group_leaves_in_one_call_and_nothing_after_a_full_queue_applies() {
    let Some((url, db)) = common::services::fresh_redis_db().await else {
        return;
    };
    let room = format!("group{db}");
    let cfg = CountersConfig {
        url: "redis://unused".into(),
        gift_batch_len_max: 8,
        gift_batches_in_flight_max: 1,
        pending_len_max: 5,
        ..CountersConfig::default()
    };
    let red = RedisCounters::connect(&url, cfg, HubConfig::default())
        .await
        .expect("connect RedisCounters");
    assert_eq!(red.gift_group_len_max(), 8);
    red.open_target(&Target::room(&room), "cr", 0)
        .await
        .unwrap();
    red.credit("u", 100, "g-u").await.unwrap();
    let group: Vec<GiftRequest> = (1..=10)
        .map(|i| req("u", &room, &format!("q{i}")))
        .collect();
    let answers = red.gift_group(group).await;
    assert_eq!(answers.len(), 10);
    for (i, a) in answers.iter().enumerate().take(5) {
        let a = a.as_ref().expect("within the pending bound");
        assert_eq!(
            (a.ack.seq, a.ack.balance, a.duplicate),
            (i as u64 + 1, 100 - 2 * (i as i64 + 1), false)
        );
    }
    for (i, a) in answers.iter().enumerate().skip(5) {
        assert!(
            matches!(a, Err(CountersError::PendingFull)),
            "gift {}: {a:?}",
            i + 1
        );
    }
    assert_eq!(red.balance("u").await.unwrap(), 90, "five applied, no more");
    assert_eq!(
        red.target(&Target::room(&room)).await.unwrap().unwrap().seq,
        5
    );
    assert_eq!(
        red.gift_batch_stats(),
        (1, 10),
        "ten gifts of one group, over the batch length of 8, in one call"
    );
}

/// One socket's gifts on the Redis engine go to Redis together (issue 16):
/// the reader takes every gift already read as one group, so 64 gifts sent
/// back to back leave in a few script calls (settlement entries, one per
/// call, counted before any settles) instead of 64, and still apply in the
/// order sent (seqs 1..=64, balances falling by 1) with their acks in that
/// order. One gift at a time made one call per gift here.
#[tokio::test]
async fn one_sockets_gifts_go_together_in_order() {
    let Some(engine) = common::server::engines()
        .await
        .into_iter()
        .find(|e| e.name == "redis+sqlite")
    else {
        return;
    };
    let redis_url = engine.counters_url.clone();
    let s = common::server::TestServer::start(&engine, |c| {
        c.settlement.flush_interval_ms = 600_000;
        c.counters.gift_batches_in_flight_max = 1;
    })
    .await;
    s.open_room("cr", "together").await;
    s.grant("v", 1000, "g-together").await;
    let mut ws = s.ws("v", giftstream::auth::Role::Viewer).await;
    let n = 64;
    for i in 0..n {
        ws.send(serde_json::json!({
            "type": "gift", "room": "together", "gift": "rose", "count": 1, "id": format!("t{i}")
        }))
        .await;
    }
    for i in 0..n {
        let v = ws.recv().await;
        assert_eq!(v["type"], "gift_ack", "{v}");
        assert_eq!(v["id"], format!("t{i}"), "acks in the order sent");
        assert_eq!(v["seq"], i + 1, "applied in the order sent");
        assert_eq!(v["balance"], 1000 - (i + 1), "a rose is 1 coin");
    }
    let entries: u64 = redis::cmd("XLEN")
        .arg("{gs}:pending")
        .query_async(&mut raw(&redis_url).await)
        .await
        .unwrap();
    assert!(
        (1..=n as u64 / 4).contains(&entries),
        "{n} gifts from one socket took {entries} script calls: not grouped"
    );
    s.stop().await;
}

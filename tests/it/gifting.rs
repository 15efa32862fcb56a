//! End-to-end gifting over real sockets, against every engine pair
//! available (memory+SQLite always; Redis+PostgreSQL and Redis+SQLite under
//! scripts/test). These are the invariant tests of DESIGN.md: conservation,
//! no overdraft, idempotency, settlement, restart, feed order.

use crate::common;

use common::server::{engines, TestServer};
use futures_util::future::join_all;
use giftstream::auth::Role;
use giftstream::protocol::Encoding;
use serde_json::json;

/// Run `case` once per available engine pair, naming the pair on failure.
macro_rules! each_engine {
    ($case:ident) => {
        for engine in engines().await {
            eprintln!("-- engines: {}", engine.name);
            $case(&engine).await;
        }
    };
}

async fn happy_path(engine: &common::server::EngineSpec, enc: Encoding) {
    let s = TestServer::start(engine, |_| {}).await;
    s.open_room("alice", "live1").await;
    s.grant("v1", 1000, "g-v1").await;
    let mut a = s.ws_enc("v1", Role::Viewer, enc).await;
    let mut b = s.ws_enc("v2", Role::Viewer, enc).await;
    let mut creator = s.ws_enc("alice", Role::Creator, enc).await;
    let j = a.join("live1").await;
    assert_eq!(
        (j["room"].as_str(), j["seq"].as_u64(), j["viewers"].as_u64()),
        (Some("live1"), Some(0), Some(1))
    );
    assert_eq!(b.join("live1").await["viewers"], 2);
    assert_eq!(creator.join("live1").await["viewers"], 3);

    // The sender's own event may arrive before its ack (it goes through
    // the room, and with Redis through pub/sub): read both.
    let (ack, own) = a.gift_and_event("live1", "perfume", 3, "gift-1").await;
    assert_eq!(
        ack,
        json!({ "type": "gift_ack", "id": "gift-1", "seq": 1, "balance": 1000 - 60 })
    );
    let events = [
        own,
        b.expect("gift_event").await,
        creator.expect("gift_event").await,
    ];
    for ev in events {
        assert_eq!(ev["room"], "live1");
        assert_eq!(ev["seq"], 1);
        assert_eq!(ev["id"], "gift-1");
        assert_eq!(ev["sender"], "v1");
        assert_eq!(ev["gift"], "perfume");
        assert_eq!(ev["count"], 3);
        assert_eq!(ev["combo"], 3);
        assert_eq!(ev["coins"], 60);
        assert_eq!(ev["diamonds"], 30);
        assert_eq!(ev["animation"], "perfume.webp");
        assert!(ev["ts"].as_i64().unwrap() > 1_700_000_000_000);
    }
    let ack2 = a.gift("live1", "rose", 1, "gift-2").await;
    assert_eq!(ack2["seq"], 3, "the perfume streak's combo_end took seq 2");
    let end = b.expect("combo_end").await;
    assert_eq!(
        (end["seq"].as_u64(), end["count"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(
        b.expect("gift_event").await["combo"],
        1,
        "a different gift starts its own streak"
    );

    s.settled().await;
    let e = s.earnings("alice").await;
    assert_eq!(e["diamonds_pending"], 0);
    assert_eq!(e["diamonds_settled"], 31);
    assert_eq!(s.wallet("v1").await, 1000 - 61);
    let totals = s.state().ledger.totals().await.unwrap();
    assert_eq!(totals.gifts, 2);
    assert_eq!(totals.coins_spent, 61);
    s.stop().await;
}

#[tokio::test]
async fn happy_path_json_two_viewers() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        happy_path(&engine, Encoding::Json).await;
    }
}

#[tokio::test]
async fn happy_path_msgpack_two_viewers() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        happy_path(&engine, Encoding::MsgPack).await;
    }
}

async fn idempotent_gift_and_grant(engine: &common::server::EngineSpec) {
    let s = TestServer::start(engine, |_| {}).await;
    s.open_room("alice", "r").await;
    let first = s.grant("v", 100, "grant-1").await;
    assert_eq!(
        (first["balance"].as_i64(), first["replayed"].as_bool()),
        (Some(100), Some(false))
    );
    let again = s.grant("v", 100, "grant-1").await;
    assert_eq!(
        (again["balance"].as_i64(), again["replayed"].as_bool()),
        (Some(100), Some(true))
    );
    let (status, v) = s
        .post(
            "/v1/admin/grants",
            &s.token("root", Role::Admin),
            json!({ "user": "v", "coins": 5, "id": "grant-1" }),
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("bad_request")),
        "same id, other coins: {v}"
    );

    let mut ws = s.ws("v", Role::Viewer).await;
    let a1 = ws.gift("r", "hand_hearts", 1, "same-id").await;
    assert_eq!(a1["balance"], 0);
    // Same id again, even with other fields: the first answer, nothing charged.
    let a2 = ws.gift("r", "hand_hearts", 1, "same-id").await;
    assert_eq!(a1, a2);
    s.grant("v", 100, "grant-2").await;
    let a3 = ws.gift("r", "hand_hearts", 1, "same-id").await;
    assert_eq!(a3, a1, "still the first answer after a top-up");
    assert_eq!(s.wallet("v").await, 100, "charged once");
    s.settled().await;
    assert_eq!(s.earnings("alice").await["diamonds_settled"], 50);
    assert_eq!(s.state().ledger.totals().await.unwrap().gifts, 1);
    s.stop().await;
}

#[tokio::test]
async fn idempotent_gift_and_grant_every_engine() {
    each_engine!(idempotent_gift_and_grant);
}

async fn no_overdraft(engine: &common::server::EngineSpec) {
    let s = TestServer::start(engine, |_| {}).await;
    s.open_room("alice", "r").await;
    // 10 Doughnuts' worth of coins, 50 Doughnuts sent at once over 5 sockets.
    s.grant("rich", 300, "g").await;
    let mut sockets = Vec::new();
    for _ in 0..5 {
        sockets.push(s.ws("rich", Role::Viewer).await);
    }
    let results = join_all(sockets.into_iter().enumerate().map(|(k, mut ws)| async move {
        for i in 0..10 {
            ws.send(json!({ "type": "gift", "room": "r", "gift": "doughnut", "count": 1, "id": format!("s{k}-{i}") })).await;
        }
        let mut answers = Vec::new();
        for i in 0..10 {
            answers.push(ws.until_id(&format!("s{k}-{i}")).await);
        }
        answers
    }))
    .await;
    let answers: Vec<_> = results.into_iter().flatten().collect();
    let acks = answers.iter().filter(|a| a["type"] == "gift_ack").count();
    let broke = answers
        .iter()
        .filter(|a| a["code"] == "insufficient_funds")
        .count();
    assert_eq!((acks, broke), (10, 40), "{answers:?}");
    let mut seqs: Vec<u64> = answers.iter().filter_map(|a| a["seq"].as_u64()).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=10).collect::<Vec<_>>(),
        "seqs are 1..=10 without gaps"
    );
    assert_eq!(s.wallet("rich").await, 0);
    s.settled().await;
    assert_eq!(s.earnings("alice").await["diamonds_settled"], 150);
    s.stop().await;
}

#[tokio::test]
async fn no_overdraft_under_concurrency() {
    each_engine!(no_overdraft);
}

async fn conservation(engine: &common::server::EngineSpec) {
    use rand::{Rng, SeedableRng};
    let s = TestServer::start(engine, |c| c.settlement.batch_len_max = 7).await;
    s.open_room("alice", "a").await;
    s.open_room("bob", "b").await;
    let seed: u64 = rand::random();
    eprintln!("conservation seed {seed}");
    let mut granted = 0;
    for u in 0..6 {
        let coins = 50 + 37 * u;
        s.grant(&format!("u{u}"), coins, &format!("g{u}")).await;
        granted += coins;
    }
    let tasks = (0..6).map(|u| {
        let gifts: Vec<(String, String, u32)> = {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ u);
            (0..40)
                .map(|_| {
                    let room = if rng.gen_bool(0.5) { "a" } else { "b" };
                    let gift = ["rose", "finger_heart", "perfume", "doughnut"][rng.gen_range(0..4)];
                    (room.to_string(), gift.to_string(), rng.gen_range(1..=5))
                })
                .collect()
        };
        let url = s.addr;
        let token = s.token(&format!("u{u}"), Role::Viewer);
        async move {
            let mut ws = common::server::Ws::connect(
                &format!("ws://{url}/v1/ws?token={token}"),
                Encoding::Json,
            )
            .await
            .unwrap();
            let (mut coins, mut diamonds) = (0i64, 0i64);
            for (i, (room, gift, count)) in gifts.iter().enumerate() {
                let a = ws.gift(room, gift, *count, &format!("x{i}")).await;
                if a["type"] == "gift_ack" {
                    let unit = match gift.as_str() {
                        "rose" => (1, 1),
                        "finger_heart" => (5, 2),
                        "perfume" => (20, 10),
                        _ => (30, 15),
                    };
                    coins += unit.0 * *count as i64;
                    diamonds += unit.1 * *count as i64;
                } else {
                    assert_eq!(a["code"], "insufficient_funds", "{a}");
                }
            }
            (coins, diamonds)
        }
    });
    let (acked_coins, acked_diamonds) = join_all(tasks)
        .await
        .into_iter()
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    s.settled().await;
    let t = s.state().ledger.totals().await.unwrap();
    assert_eq!(
        t.entry_sums.values().copied().collect::<Vec<_>>(),
        vec![0, 0],
        "entries sum to zero per currency"
    );
    assert_eq!(t.coins_minted, granted);
    assert_eq!(
        t.coins_minted,
        t.coins_in_wallets + t.coins_spent,
        "coins bought = in wallets + spent"
    );
    assert_eq!(t.coins_spent, acked_coins);
    assert_eq!(
        t.diamonds_credited, acked_diamonds,
        "diamonds credited = sum of accepted gifts"
    );
    let (ea, eb) = (s.earnings("alice").await, s.earnings("bob").await);
    assert_eq!(
        ea["diamonds_settled"].as_i64().unwrap() + eb["diamonds_settled"].as_i64().unwrap(),
        acked_diamonds
    );
    let mut wallets = 0;
    for u in 0..6 {
        wallets += s.wallet(&format!("u{u}")).await;
    }
    assert_eq!(
        wallets, t.coins_in_wallets,
        "counters agree with the ledger"
    );
    s.stop().await;
}

#[tokio::test]
async fn conservation_after_a_random_burst() {
    each_engine!(conservation);
}

async fn restart_keeps_everything(engine: &common::server::EngineSpec) {
    let s = TestServer::start(engine, |_| {}).await;
    s.open_room("alice", "r").await;
    s.grant("v", 500, "g").await;
    let mut ws = s.ws("v", Role::Viewer).await;
    let first = ws.gift("r", "corgi", 1, "before-restart").await;
    assert_eq!(first["seq"], 1);
    drop(ws);
    let s = s.restart().await;
    assert_eq!(s.wallet("v").await, 201);
    let e = s.earnings("alice").await;
    assert_eq!(
        (
            e["diamonds_settled"].as_i64(),
            e["diamonds_pending"].as_i64()
        ),
        (Some(149), Some(0))
    );
    let mut ws = s.ws("v", Role::Viewer).await;
    assert_eq!(
        ws.gift("r", "corgi", 1, "before-restart").await,
        first,
        "a replayed id after restart gets the first answer"
    );
    let ack = ws.gift("r", "rose", 1, "after-restart").await;
    assert_eq!(
        (ack["seq"].as_u64(), ack["balance"].as_i64()),
        (Some(3), Some(200)),
        "seq continues after a clean restart (seq 2: the corgi streak's combo_end, \
         or a seq it may have taken)"
    );
    let grant = s.grant("v", 500, "g").await;
    assert_eq!(
        grant["replayed"], true,
        "a grant replayed after restart is not applied twice"
    );
    assert_eq!(s.wallet("v").await, 200);
    s.stop().await;
}

#[tokio::test]
async fn restart_on_the_same_ledger_keeps_balances_and_earnings() {
    each_engine!(restart_keeps_everything);
}

async fn ledger_ack(engine: &common::server::EngineSpec) {
    let s = TestServer::start(engine, |c| {
        c.gift.ack = giftstream::config::AckMode::Ledger;
        c.settlement.flush_interval_ms = 200;
    })
    .await;
    s.open_room("alice", "r").await;
    s.grant("v", 100, "g").await;
    let mut ws = s.ws("v", Role::Viewer).await;
    for i in 0..3 {
        ws.send(json!({ "type": "gift", "room": "r", "gift": "rose", "count": 1, "id": format!("l{i}") })).await;
    }
    // Ledger acks are sent as their commits land: any order, each carries its id.
    let mut acked = std::collections::BTreeSet::new();
    while acked.len() < 3 {
        let a = ws.recv().await;
        assert_eq!(a["type"], "gift_ack", "{a}");
        let seq = a["seq"].as_u64().unwrap();
        assert!(
            s.state().ledger.has_gift("room:r", seq).await.unwrap(),
            "acked gift {seq} is already in the ledger"
        );
        acked.insert(a["id"].as_str().unwrap().to_string());
    }
    assert_eq!(
        acked.into_iter().collect::<Vec<_>>(),
        vec!["l0", "l1", "l2"]
    );
    s.stop().await;
}

#[tokio::test]
async fn ledger_ack_waits_for_the_commit() {
    each_engine!(ledger_ack);
}

async fn creator_feed_in_order(engine: &common::server::EngineSpec) {
    let s = TestServer::start(engine, |_| {}).await;
    s.open_room("alice", "r").await;
    let mut feed = s.ws("alice", Role::Creator).await;
    feed.join("r").await;
    let senders = 4;
    for u in 0..senders {
        s.grant(&format!("f{u}"), 1000, &format!("g{u}")).await;
    }
    join_all((0..senders).map(|u| {
        let token = s.token(&format!("f{u}"), Role::Viewer);
        let addr = s.addr;
        async move {
            let mut ws = common::server::Ws::connect(
                &format!("ws://{addr}/v1/ws?token={token}"),
                Encoding::Json,
            )
            .await
            .unwrap();
            for i in 0..50 {
                assert_eq!(
                    ws.gift("r", "rose", 1, &format!("{u}-{i}")).await["type"],
                    "gift_ack"
                );
            }
        }
    }))
    .await;
    for expected in 1..=(senders * 50) as u64 {
        assert_eq!(
            feed.expect("gift_event").await["seq"],
            expected,
            "the creator's feed is complete and in seq order"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn creator_feed_sees_every_gift_in_seq_order() {
    each_engine!(creator_feed_in_order);
}

/// A crash before the flush loses unsettled gifts whole (debit and credit
/// together), keeps everything settled, and never reuses a seq. With
/// `gift.ack = "ledger"`, an acknowledged gift survives the crash.
#[tokio::test]
async fn a_crash_loses_unsettled_gifts_whole_and_never_reuses_a_seq() {
    let engine = common::server::embedded();
    let s = TestServer::start(&engine, |c| {
        c.settlement.flush_interval_ms = 60_000;
        c.counters.pending_len_max = 5000;
    })
    .await;
    s.open_room("alice", "r").await;
    s.grant("v", 1000, "g").await;
    let mut ws = s.ws("v", Role::Viewer).await;
    assert_eq!(ws.gift("r", "perfume", 1, "settled").await["seq"], 1);
    s.state().settlement.wake();
    for _ in 0..200 {
        if s.state().ledger.has_gift("room:r", 1).await.unwrap() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        s.state().ledger.has_gift("room:r", 1).await.unwrap(),
        "first gift settled"
    );
    // Two more gifts accepted and acknowledged, never flushed.
    assert_eq!(ws.gift("r", "perfume", 1, "lost-1").await["balance"], 960);
    assert_eq!(ws.gift("r", "perfume", 1, "lost-2").await["seq"], 3);
    drop(ws);
    let s = s.crash_and_restart().await;
    assert_eq!(
        s.wallet("v").await,
        980,
        "the lost gifts' debits are gone with them"
    );
    let e = s.earnings("alice").await;
    assert_eq!(
        (
            e["diamonds_settled"].as_i64(),
            e["diamonds_pending"].as_i64()
        ),
        (Some(10), Some(0))
    );
    let t = s.state().ledger.totals().await.unwrap();
    assert_eq!(
        (t.gifts, t.coins_minted, t.coins_in_wallets + t.coins_spent),
        (1, 1000, 1000)
    );
    let mut ws = s.ws("v", Role::Viewer).await;
    let next = ws.gift("r", "rose", 1, "after-crash").await;
    assert_eq!(
        next["seq"],
        1 + 2 * 5000 + 1 + 1,
        "seqs jump past every seq the lost gifts and streak ends could have used \
         (two per lost gift, one per recent sender)"
    );
    // A lost gift's id is not remembered: the client may send it again.
    assert_eq!(
        ws.gift("r", "perfume", 1, "lost-1").await["type"],
        "gift_ack"
    );
    s.stop().await;

    // Ledger acks survive a crash.
    let engine = common::server::embedded();
    let s = TestServer::start(&engine, |c| {
        c.gift.ack = giftstream::config::AckMode::Ledger
    })
    .await;
    s.open_room("alice", "r").await;
    s.grant("v", 100, "g").await;
    let mut ws = s.ws("v", Role::Viewer).await;
    let ack = ws.gift("r", "rose", 1, "durable").await;
    assert_eq!(ack["type"], "gift_ack");
    drop(ws);
    let s = s.crash_and_restart().await;
    assert_eq!(
        s.wallet("v").await,
        99,
        "an acknowledged gift survived the crash"
    );
    let mut ws = s.ws("v", Role::Viewer).await;
    assert_eq!(
        ws.gift("r", "rose", 1, "durable").await,
        ack,
        "and its id still answers the first ack"
    );
    s.stop().await;
}

/// Gifts that find the pending queue full wait (bounded by
/// `gift.busy_wait_ms_max`) for settlement to make room instead of being
/// refused: twelve gifts pipelined on one socket through a pending queue of
/// four are all accepted, in order, and all reach the ledger.
async fn full_pending_queue_waits(engine: &common::server::EngineSpec) {
    let s = TestServer::start(engine, |c| {
        c.settlement.flush_interval_ms = 60_000;
        c.settlement.batch_len_max = 4;
        c.counters.pending_len_max = 4;
        c.gift.busy_wait_ms_max = 30_000;
    })
    .await;
    s.open_room("alice", "r").await;
    s.grant("v", 1200, "g").await;
    let mut ws = s.ws("v", Role::Viewer).await;
    // All twelve frames leave before the first answer is read, so gifts 5
    // and 9 reach the server while the pending queue is still full.
    for i in 1..=12 {
        ws.send(json!({ "type": "gift", "room": "r", "gift": "perfume", "count": 1, "id": format!("p{i}") }))
            .await;
    }
    for i in 1..=12u64 {
        let a = ws.recv().await;
        assert_eq!(
            (a["type"].as_str(), a["seq"].as_u64(), a["balance"].as_i64()),
            (Some("gift_ack"), Some(i), Some(1200 - 20 * i as i64)),
            "gift {i}: {a}"
        );
    }
    let mut t = Default::default();
    for _ in 0..500 {
        s.state().settlement.wake();
        t = s.state().ledger.totals().await.unwrap();
        if t.gifts == 12 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let t: giftstream::ledger::Totals = t;
    assert_eq!((t.gifts, t.gift_coins), (12, 240));
    s.stop().await;
}

#[tokio::test]
async fn a_full_pending_queue_makes_gifts_wait_not_fail() {
    each_engine!(full_pending_queue_waits);
}

/// Two deployments on different databases of one redis-server keep their
/// rooms apart even when the room names match: pub/sub channels span
/// databases, so the database is part of each channel's name. (Before it
/// was, a concurrent test's gifts on its own "live1" showed up here.)
#[tokio::test]
async fn same_room_name_on_two_redis_databases_stays_apart() {
    let redis: Vec<_> = engines()
        .await
        .into_iter()
        .filter(|e| e.name.starts_with("redis"))
        .collect();
    let [one, two] = &redis[..] else {
        eprintln!("skipped: needs the two Redis engine pairs (scripts/test)");
        return;
    };
    assert_ne!(one.counters_url, two.counters_url, "two databases");
    let (a, b) = tokio::join!(
        TestServer::start(one, |_| {}),
        TestServer::start(two, |_| {})
    );
    for s in [&a, &b] {
        s.open_room("alice", "same").await;
        s.grant("v", 100, "g-v").await;
    }
    let mut viewer_a = a.ws("w", Role::Viewer).await;
    let mut viewer_b = b.ws("w", Role::Viewer).await;
    viewer_a.join("same").await;
    viewer_b.join("same").await;
    let mut sender_a = a.ws("v", Role::Viewer).await;
    let mut sender_b = b.ws("v", Role::Viewer).await;

    assert_eq!(sender_a.gift("same", "rose", 1, "from-a").await["seq"], 1);
    let ev = viewer_a.expect("gift_event").await;
    assert_eq!(
        (ev["id"].as_str(), ev["seq"].as_u64()),
        (Some("from-a"), Some(1))
    );
    assert_eq!(sender_b.gift("same", "rose", 1, "from-b").await["seq"], 1);
    let ev = viewer_b.expect("gift_event").await;
    assert_eq!(
        (ev["id"].as_str(), ev["seq"].as_u64()),
        (Some("from-b"), Some(1)),
        "the other database's gift must not reach this room"
    );
    viewer_a.send(json!({ "type": "ping" })).await;
    let (_, between) = viewer_a.until("pong").await;
    assert!(
        between.iter().all(|f| f["type"] != "gift_event"),
        "B's gift reached A's room: {between:?}"
    );
    a.stop().await;
    b.stop().await;
}

//! The explicit streak end (`combo_end`, issue #13 item 2), on every engine
//! pair: exactly one per streak and viewer (coalescing or not), its own
//! seq in order with gifts, ended by silence, by a different gift and by
//! the room's end, kept in history for `resume`, and, with two nodes on
//! one Redis, emitted once whichever node took the gifts. (The node killed
//! with SIGKILL after the gifts is in `multiprocess.rs`.)

use std::time::Duration;

use crate::common;

use common::server::{engines, test_config, EngineSpec, TestServer, Ws};
use giftstream::auth::Role;
use giftstream::protocol::Encoding;
use serde_json::{json, Value};

/// Run `case` once per available engine pair, naming the pair on failure.
macro_rules! each_engine {
    ($case:ident) => {
        for engine in engines().await {
            eprintln!("-- engines: {}", engine.name);
            $case(&engine).await;
        }
    };
}

/// A short streak window, so silence ends a streak quickly.
const WINDOW_MS: u64 = 300;

async fn join_coalesced(ws: &mut Ws, room: &str) {
    ws.send(json!({ "type": "join", "room": room, "coalesce": true }))
        .await;
    ws.expect("joined").await;
}

/// Frames up to and including the first `combo_end`: (gift events, the end).
async fn until_combo_end(ws: &mut Ws) -> (Vec<Value>, Value) {
    let (end, before) = ws.until("combo_end").await;
    for v in &before {
        assert_eq!(v["type"], "gift_event", "only gifts before the end: {v}");
    }
    (before, end)
}

/// No further `combo_end` (nor anything else) arrives within twice the
/// window plus a few reaper runs: a ping is answered first.
async fn no_second_end(ws: &mut Ws) {
    tokio::time::sleep(Duration::from_millis(WINDOW_MS * 2 + 500)).await;
    ws.send(json!({ "type": "ping" })).await;
    let v = ws.recv().await;
    assert_eq!(v["type"], "pong", "nothing after the end: {v}");
}

fn assert_end_of_12_roses(end: &Value, room: &str) {
    assert_eq!(end["type"], "combo_end");
    assert_eq!(end["room"], room);
    assert_eq!(end["sender"], "v");
    assert_eq!(end["gift"], "rose");
    assert_eq!(
        (
            end["seq"].as_u64(),
            end["count"].as_u64(),
            end["coins"].as_i64(),
            end["diamonds"].as_i64(),
            end["seq_first"].as_u64(),
            end["seq_last"].as_u64(),
        ),
        (Some(13), Some(12), Some(12), Some(12), Some(1), Some(12)),
        "{end}"
    );
    assert!(end["ts"].as_i64().unwrap_or(0) > 0, "{end}");
}

/// The viewer that gets every gift: 1..=12 in order, then the end.
async fn full_viewer_sees_12_then_the_end(ws: &mut Ws, room: &str) {
    let (gifts, end) = until_combo_end(ws).await;
    let seqs: Vec<u64> = gifts.iter().filter_map(|g| g["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
    assert_end_of_12_roses(&end, room);
    no_second_end(ws).await;
}

/// The coalescing viewer: fewer steps, rising, the last one the streak's
/// latest (seq 12, combo 12), then the end.
async fn coalesced_viewer_sees_steps_then_the_end(ws: &mut Ws, room: &str) {
    let (steps, end) = until_combo_end(ws).await;
    let combos: Vec<u64> = steps.iter().filter_map(|g| g["combo"].as_u64()).collect();
    assert!(!combos.is_empty() && combos.len() <= 12, "{combos:?}");
    assert!(combos.windows(2).all(|w| w[0] < w[1]), "{combos:?}");
    let last = steps.last().unwrap();
    assert_eq!(
        (last["seq"].as_u64(), last["combo"].as_u64()),
        (Some(12), Some(12)),
        "the pending step is flushed before the end"
    );
    assert_end_of_12_roses(&end, room);
    no_second_end(ws).await;
}

async fn twelve_roses(sender: &mut Ws, room: &str) {
    for i in 0..12u64 {
        let ack = sender.gift(room, "rose", 1, &format!("r{i}")).await;
        assert_eq!(
            (ack["type"].as_str(), ack["seq"].as_u64()),
            (Some("gift_ack"), Some(i + 1)),
            "{ack}"
        );
    }
}

async fn silence_ends_a_streak_once(engine: &EngineSpec) {
    let s = TestServer::start(engine, |c| c.counters.combo_window_ms = WINDOW_MS).await;
    s.open_room("alice", "c12").await;
    s.grant("v", 1000, "g").await;
    let mut full = s.ws("f", Role::Viewer).await;
    full.join("c12").await;
    let mut packed = s.ws_enc("p", Role::Viewer, Encoding::MsgPack).await;
    packed.join("c12").await;
    let mut coalesced = s.ws("c", Role::Viewer).await;
    join_coalesced(&mut coalesced, "c12").await;
    let mut sender = s.ws("v", Role::Viewer).await;
    twelve_roses(&mut sender, "c12").await;
    full_viewer_sees_12_then_the_end(&mut full, "c12").await;
    full_viewer_sees_12_then_the_end(&mut packed, "c12").await;
    coalesced_viewer_sees_steps_then_the_end(&mut coalesced, "c12").await;
    // The next gift takes the seq after the end's.
    let ack = sender.gift("c12", "rose", 1, "after").await;
    assert_eq!(ack["seq"], 14, "{ack}");
    s.stop().await;
}

#[tokio::test]
async fn twelve_roses_then_silence_give_one_combo_end_per_viewer() {
    each_engine!(silence_ends_a_streak_once);
}

/// (type, seq) of a frame.
fn kind(v: &Value) -> (String, u64) {
    (
        v["type"].as_str().unwrap_or("").to_string(),
        v["seq"].as_u64().unwrap_or(0),
    )
}

async fn gift_and_room_end_end_streaks(engine: &EngineSpec) {
    // A window no test outlasts: only a different gift and the room's end
    // end these streaks.
    let s = TestServer::start(engine, |c| c.counters.combo_window_ms = 600_000).await;
    s.open_room("alice", "mix").await;
    s.grant("v", 1000, "gv").await;
    s.grant("w", 1000, "gw").await;
    let mut full = s.ws("f", Role::Viewer).await;
    full.join("mix").await;
    let mut coalesced = s.ws("c", Role::Viewer).await;
    join_coalesced(&mut coalesced, "mix").await;
    let mut v = s.ws("v", Role::Viewer).await;
    let mut w = s.ws("w", Role::Viewer).await;
    for i in 0..3 {
        v.gift("mix", "rose", 1, &format!("v{i}")).await;
    }
    let ack = v.gift("mix", "perfume", 2, "vp").await;
    assert_eq!(ack["seq"], 5, "the rose streak's end took seq 4: {ack}");
    w.gift("mix", "rose", 1, "w0").await;
    w.gift("mix", "rose", 2, "w1").await;
    let (st, _) = s
        .request(
            reqwest::Method::DELETE,
            "/v1/rooms/mix",
            Some(&s.token("alice", Role::Creator)),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let (_, frames) = full.until("room_ended").await;
    let got: Vec<(String, u64)> = frames.iter().map(kind).collect();
    let want: Vec<(String, u64)> = [
        ("gift_event", 1),
        ("gift_event", 2),
        ("gift_event", 3),
        ("combo_end", 4),
        ("gift_event", 5),
        ("gift_event", 6),
        ("gift_event", 7),
        ("combo_end", 8),
        ("combo_end", 9),
    ]
    .iter()
    .map(|(t, s)| (t.to_string(), *s))
    .collect();
    assert_eq!(got, want);
    let ends: Vec<(&str, &str, u64, i64, u64, u64)> = frames
        .iter()
        .filter(|f| f["type"] == "combo_end")
        .map(|e| {
            (
                e["sender"].as_str().unwrap(),
                e["gift"].as_str().unwrap(),
                e["count"].as_u64().unwrap(),
                e["coins"].as_i64().unwrap(),
                e["seq_first"].as_u64().unwrap(),
                e["seq_last"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ends,
        vec![
            ("v", "rose", 3, 3, 1, 3),
            ("v", "perfume", 2, 40, 5, 5),
            ("w", "rose", 3, 3, 6, 7),
        ]
    );
    // The coalescing viewer gets every end too, each after its streak's
    // latest step, and all before room_ended.
    let (_, frames) = coalesced.until("room_ended").await;
    let ends: Vec<u64> = frames
        .iter()
        .filter(|f| f["type"] == "combo_end")
        .filter_map(|f| f["seq"].as_u64())
        .collect();
    assert_eq!(ends, vec![4, 8, 9]);
    let seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|p| p[0] < p[1]), "seq order: {seqs:?}");
    let before_first_end: Vec<&Value> = frames.iter().take_while(|f| f["seq"] != 4).collect();
    assert_eq!(
        before_first_end
            .last()
            .map(|f| (f["seq"].as_u64(), f["combo"].as_u64())),
        Some((Some(3), Some(3))),
        "the rose streak's latest step before its end"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_different_gift_and_the_room_end_end_streaks_in_seq_order() {
    each_engine!(gift_and_room_end_end_streaks);
}

async fn resume_gets_the_end_once(engine: &EngineSpec) {
    let s = TestServer::start(engine, |c| c.counters.combo_window_ms = WINDOW_MS).await;
    s.open_room("alice", "res").await;
    s.grant("v", 1000, "g").await;
    let mut gone = s.ws("r", Role::Viewer).await;
    gone.join("res").await;
    let mut watcher = s.ws("f", Role::Viewer).await;
    watcher.join("res").await;
    let mut sender = s.ws("v", Role::Viewer).await;
    twelve_roses(&mut sender, "res").await;
    // This viewer saw up to seq 12 and went away before the streak ended.
    for seq in 1..=12u64 {
        assert_eq!(gone.expect("gift_event").await["seq"], seq);
    }
    drop(gone);
    let (_, end) = until_combo_end(&mut watcher).await;
    assert_eq!(end["seq"], 13);
    // Resume across the end: it comes once, then `resumed`, then live.
    let mut back = s.ws("r", Role::Viewer).await;
    back.send(json!({ "type": "resume", "room": "res", "since": 12 }))
        .await;
    let replayed = back.expect("combo_end").await;
    assert_eq!(replayed, end, "the same end, from history");
    assert_eq!(back.expect("resumed").await["seq"], 13);
    // From further back: the gifts, the end once, then `resumed`.
    let mut early = s.ws("e", Role::Viewer).await;
    early
        .send(json!({ "type": "resume", "room": "res", "since": 10 }))
        .await;
    let (resumed, frames) = early.until("resumed").await;
    assert_eq!(resumed["seq"], 13);
    let got: Vec<(String, u64)> = frames.iter().map(kind).collect();
    assert_eq!(
        got,
        vec![
            ("gift_event".to_string(), 11),
            ("gift_event".to_string(), 12),
            ("combo_end".to_string(), 13),
        ]
    );
    // Then live, after the end.
    sender.gift("res", "perfume", 1, "next").await;
    for ws in [&mut back, &mut early] {
        assert_eq!(ws.expect("gift_event").await["seq"], 14);
    }
    s.stop().await;
}

#[tokio::test]
async fn a_viewer_resuming_across_a_streak_end_gets_it_once() {
    each_engine!(resume_gets_the_end_once);
}

/// Two nodes on one Redis + PostgreSQL, with the short window.
async fn two_nodes() -> Option<(TestServer, TestServer)> {
    let engine = engines()
        .await
        .into_iter()
        .find(|e| e.name == "redis+postgres")?;
    let mut cfg = test_config(&engine);
    cfg.counters.combo_window_ms = WINDOW_MS;
    let a = TestServer::start_with(engine.clone(), cfg.clone()).await;
    let b = TestServer::start_with(engine, cfg).await;
    Some((a, b))
}

#[tokio::test]
async fn two_nodes_give_each_viewer_one_combo_end() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    a.open_room("alice", "both").await;
    a.grant("v", 1000, "g").await;
    let mut full_a = a.ws("fa", Role::Viewer).await;
    full_a.join("both").await;
    let mut full_b = b.ws("fb", Role::Viewer).await;
    full_b.join("both").await;
    let mut co_a = a.ws("ca", Role::Viewer).await;
    join_coalesced(&mut co_a, "both").await;
    let mut co_b = b.ws("cb", Role::Viewer).await;
    join_coalesced(&mut co_b, "both").await;
    let mut sender = b.ws("v", Role::Viewer).await;
    twelve_roses(&mut sender, "both").await;
    full_viewer_sees_12_then_the_end(&mut full_a, "both").await;
    full_viewer_sees_12_then_the_end(&mut full_b, "both").await;
    coalesced_viewer_sees_steps_then_the_end(&mut co_a, "both").await;
    coalesced_viewer_sees_steps_then_the_end(&mut co_b, "both").await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_viewer_resuming_on_the_other_node_gets_the_end_once() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    a.open_room("alice", "hop").await;
    a.grant("v", 1000, "g").await;
    let mut on_a = a.ws("r", Role::Viewer).await;
    on_a.join("hop").await;
    let mut sender = a.ws("v", Role::Viewer).await;
    twelve_roses(&mut sender, "hop").await;
    for seq in 1..=12u64 {
        assert_eq!(on_a.expect("gift_event").await["seq"], seq);
    }
    drop(on_a);
    // The streak ends meanwhile (whichever node's reaper runs first).
    let mut watcher = b.ws("w", Role::Viewer).await;
    watcher
        .send(json!({ "type": "resume", "room": "hop", "since": 0 }))
        .await;
    let (end, _) = watcher.until("combo_end").await;
    let mut on_b = b.ws("r", Role::Viewer).await;
    on_b.send(json!({ "type": "resume", "room": "hop", "since": 12 }))
        .await;
    assert_eq!(on_b.expect("combo_end").await, end);
    assert_eq!(on_b.expect("resumed").await["seq"], 13);
    no_second_end(&mut on_b).await;
    b.stop().await;
    a.stop().await;
}

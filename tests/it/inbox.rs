//! The creator's inbox (issue #13 item 3), on every engine pair: every
//! gift of every room and video of a creator, and every streak end, as an
//! `inbox_event` with the inbox's own consecutive seq; only an unscoped
//! creator token opens its own inbox; `resume` replays what was missed
//! exactly once; with two nodes on one Redis, a gift on one node reaches
//! the inbox watched on the other once. (A tip in the inbox: the tip test
//! in `payments.rs`.)

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

/// A short streak window, so silence ends streaks quickly.
const WINDOW_MS: u64 = 300;

/// Join the token's own inbox; the `joined` answer.
async fn join_inbox(ws: &mut Ws) -> Value {
    ws.send(json!({ "type": "join", "inbox": true })).await;
    ws.expect("joined").await
}

async fn register_video(s: &TestServer, creator: &str, video: &str) {
    let (st, v) = s
        .post(
            "/v1/videos",
            &s.token(creator, Role::Creator),
            json!({ "video": video }),
        )
        .await;
    assert_eq!(st, 201, "register {video}: {v}");
}

/// A gift over the socket to a room or video (`at` names it); the ack.
async fn gift_at(ws: &mut Ws, at: Value, gift: &str, id: &str) -> Value {
    let mut m = json!({ "type": "gift", "gift": gift, "count": 1, "id": id });
    for (k, v) in at.as_object().unwrap() {
        m[k] = v.clone();
    }
    ws.send(m).await;
    let ack = ws.until_id(id).await;
    assert_eq!(ack["type"], "gift_ack", "{ack}");
    ack
}

/// The next `n` inbox events (nothing else may come in between).
async fn inbox_events(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(ws.expect("inbox_event").await);
    }
    out
}

/// Nothing more arrives (a ping is answered first) after a few reaper
/// runs past the window.
async fn nothing_more(ws: &mut Ws) {
    tokio::time::sleep(Duration::from_millis(WINDOW_MS * 2 + 300)).await;
    ws.send(json!({ "type": "ping" })).await;
    let v = ws.recv().await;
    assert_eq!(v["type"], "pong", "nothing more: {v}");
}

/// (inner type, its room or video, its target seq) of an inbox event.
fn inner(e: &Value) -> (String, String, u64) {
    let ev = &e["event"];
    let at = ev["room"].as_str().or(ev["video"].as_str()).unwrap_or("");
    (
        ev["type"].as_str().unwrap_or("").to_string(),
        at.to_string(),
        ev["seq"].as_u64().unwrap_or(0),
    )
}

async fn inbox_gets_all_of_a_creators_targets(engine: &EngineSpec) {
    let s = TestServer::start(engine, |c| c.counters.combo_window_ms = WINDOW_MS).await;
    s.open_room("alice", "ra").await;
    s.open_room("alice", "rb").await;
    register_video(&s, "alice", "va").await;
    s.open_room("bob", "rbob").await;
    s.grant("v", 1000, "g").await;
    let mut inbox = s.ws("alice", Role::Creator).await;
    let joined = join_inbox(&mut inbox).await;
    assert_eq!(
        (joined["inbox"].as_str(), joined["seq"].as_u64()),
        (Some("alice"), Some(0)),
        "{joined}"
    );
    assert!(joined.get("room").is_none(), "{joined}");
    let mut packed = s.ws_enc("alice", Role::Creator, Encoding::MsgPack).await;
    join_inbox(&mut packed).await;
    let mut bob = s.ws("bob", Role::Creator).await;
    assert_eq!(join_inbox(&mut bob).await["inbox"], "bob");
    let mut viewer = s.ws("w", Role::Viewer).await;
    viewer.join("ra").await;
    let mut sender = s.ws("v", Role::Viewer).await;
    gift_at(&mut sender, json!({ "room": "ra" }), "rose", "a1").await;
    gift_at(&mut sender, json!({ "room": "ra" }), "rose", "a2").await;
    gift_at(&mut sender, json!({ "room": "rb" }), "perfume", "b1").await;
    gift_at(&mut sender, json!({ "video": "va" }), "rose", "v1").await;
    gift_at(&mut sender, json!({ "room": "rbob" }), "rose", "x1").await;
    // 4 gifts, then the 3 streaks' ends (silence), in any order of ends.
    for ws in [&mut inbox, &mut packed] {
        let got = inbox_events(ws, 7).await;
        let seqs: Vec<u64> = got.iter().filter_map(|e| e["seq"].as_u64()).collect();
        assert_eq!(seqs, (1..=7).collect::<Vec<_>>(), "consecutive inbox seqs");
        assert!(got.iter().all(|e| e["creator"] == "alice"));
        let gifts: Vec<(String, String, u64)> = got[..4].iter().map(inner).collect();
        let want = [
            ("gift_event", "ra", 1),
            ("gift_event", "ra", 2),
            ("gift_event", "rb", 1),
            ("gift_event", "va", 1),
        ];
        let want: Vec<(String, String, u64)> = want
            .iter()
            .map(|(t, a, n)| (t.to_string(), a.to_string(), *n))
            .collect();
        assert_eq!(gifts, want);
        assert_eq!(
            got[3]["event"]["video"], "va",
            "a video's gift names the video"
        );
        let mut ends: Vec<(String, String, u64)> = got[4..].iter().map(inner).collect();
        ends.sort();
        let want = [
            ("combo_end", "ra", 3),
            ("combo_end", "rb", 2),
            ("combo_end", "va", 2),
        ];
        let want: Vec<(String, String, u64)> = want
            .iter()
            .map(|(t, a, n)| (t.to_string(), a.to_string(), *n))
            .collect();
        assert_eq!(ends, want);
        let ra_end = got[4..]
            .iter()
            .find(|e| e["event"]["room"] == "ra")
            .unwrap();
        assert_eq!(
            (
                ra_end["event"]["count"].as_u64(),
                ra_end["event"]["seq_last"].as_u64()
            ),
            (Some(2), Some(2)),
            "{ra_end}"
        );
        nothing_more(ws).await;
    }
    // Exactly what a viewer of the room saw.
    let first = viewer.expect("gift_event").await;
    let again = s.ws("alice", Role::Creator).await;
    drop(again);
    let mut check = s.ws("alice", Role::Creator).await;
    check
        .send(json!({ "type": "resume", "inbox": true, "since": 0 }))
        .await;
    let replay = inbox_events(&mut check, 7).await;
    assert_eq!(
        replay[0]["event"], first,
        "the inbox holds the viewer's message"
    );
    assert_eq!(check.expect("resumed").await["inbox"], "alice");
    // Bob's inbox: only his room's gift and its end.
    let got = inbox_events(&mut bob, 2).await;
    let kinds: Vec<(String, String, u64)> = got.iter().map(inner).collect();
    assert_eq!(
        kinds,
        vec![
            ("gift_event".to_string(), "rbob".to_string(), 1),
            ("combo_end".to_string(), "rbob".to_string(), 2)
        ]
    );
    assert_eq!(
        (got[0]["seq"].as_u64(), got[1]["seq"].as_u64()),
        (Some(1), Some(2))
    );
    nothing_more(&mut bob).await;
    // Leave: `left` names the inbox, and nothing follows.
    inbox.send(json!({ "type": "leave", "inbox": true })).await;
    let left = inbox.expect("left").await;
    assert_eq!(left["inbox"], "alice", "{left}");
    gift_at(&mut sender, json!({ "room": "ra" }), "perfume", "a3").await;
    nothing_more(&mut inbox).await;
    s.stop().await;
}

#[tokio::test]
async fn a_creators_inbox_gets_every_gift_and_streak_end_of_their_rooms_and_videos() {
    each_engine!(inbox_gets_all_of_a_creators_targets);
}

async fn only_own_inbox(engine: &EngineSpec) {
    let s = TestServer::start(engine, |_| {}).await;
    s.open_room("alice", "live").await;
    let mut viewer = s.ws("alice", Role::Viewer).await;
    viewer.send(json!({ "type": "join", "inbox": true })).await;
    assert_eq!(
        viewer.expect("error").await["code"],
        "forbidden",
        "a viewer token"
    );
    viewer
        .send(json!({ "type": "resume", "inbox": true, "since": 0 }))
        .await;
    assert_eq!(viewer.expect("error").await["code"], "forbidden");
    let (st, v) = s
        .post(
            "/v1/creators/me/overlay-tokens",
            &s.token("alice", Role::Creator),
            json!({ "room": "live" }),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let url = format!(
        "ws://{}/v1/ws?token={}",
        s.addr,
        v["token"].as_str().unwrap()
    );
    let mut overlay = Ws::connect(&url, Encoding::Json).await.unwrap();
    overlay.send(json!({ "type": "join", "inbox": true })).await;
    assert_eq!(
        overlay.expect("error").await["code"],
        "forbidden",
        "an overlay token"
    );
    // Exactly one of room / video / inbox; no gift to an inbox.
    let mut creator = s.ws("alice", Role::Creator).await;
    for bad in [
        json!({ "type": "join", "inbox": true, "room": "live" }),
        json!({ "type": "join", "inbox": true, "video": "v" }),
        json!({ "type": "join", "inbox": false }),
        json!({ "type": "join", "inbox": "bob" }),
        json!({ "type": "gift", "inbox": true, "gift": "rose", "count": 1, "id": "i" }),
    ] {
        creator.send(bad.clone()).await;
        assert_eq!(
            creator.expect("error").await["code"],
            "bad_request",
            "{bad}"
        );
    }
    // Another creator's inbox cannot be named: `inbox` is the token's own.
    let mut bob = s.ws("bob", Role::Creator).await;
    bob.send(json!({ "type": "join", "inbox": true, "creator": "alice" }))
        .await;
    assert_eq!(bob.expect("joined").await["inbox"], "bob");
    s.open_room("bob", "bobs").await;
    s.grant("v", 100, "g").await;
    let mut sender = s.ws("v", Role::Viewer).await;
    gift_at(&mut sender, json!({ "room": "live" }), "rose", "1").await;
    gift_at(&mut sender, json!({ "room": "bobs" }), "perfume", "2").await;
    let ev = bob.expect("inbox_event").await;
    assert_eq!(
        (ev["creator"].as_str(), ev["event"]["room"].as_str()),
        (Some("bob"), Some("bobs"))
    );
    s.stop().await;
}

#[tokio::test]
async fn only_an_unscoped_creator_token_opens_its_own_inbox() {
    each_engine!(only_own_inbox);
}

async fn resume_once(engine: &EngineSpec) {
    // A window no test outlasts: no streak end interleaves.
    let s = TestServer::start(engine, |c| c.counters.combo_window_ms = 600_000).await;
    s.open_room("alice", "r1").await;
    register_video(&s, "alice", "v1").await;
    s.grant("v", 1000, "g").await;
    let mut sender = s.ws("v", Role::Viewer).await;
    let mut first = s.ws("alice", Role::Creator).await;
    join_inbox(&mut first).await;
    gift_at(&mut sender, json!({ "room": "r1" }), "rose", "1").await;
    assert_eq!(first.expect("inbox_event").await["seq"], 1);
    drop(first);
    gift_at(&mut sender, json!({ "video": "v1" }), "rose", "2").await;
    gift_at(&mut sender, json!({ "room": "r1" }), "perfume", "3").await;
    let mut back = s.ws("alice", Role::Creator).await;
    back.send(json!({ "type": "resume", "inbox": true, "since": 1 }))
        .await;
    let (resumed, frames) = back.until("resumed").await;
    assert_eq!(
        (resumed["inbox"].as_str(), resumed["seq"].as_u64()),
        (Some("alice"), Some(4)),
        "{resumed}"
    );
    // The perfume ended the rose streak of r1 first (its own inbox event).
    let got: Vec<(u64, (String, String, u64))> = frames
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap(), inner(e)))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, ("gift_event".into(), "v1".into(), 1)),
            (3, ("combo_end".into(), "r1".into(), 2)),
            (4, ("gift_event".into(), "r1".into(), 3)),
        ]
    );
    gift_at(&mut sender, json!({ "video": "v1" }), "rose", "4").await;
    assert_eq!(back.expect("inbox_event").await["seq"], 5);
    back.send(json!({ "type": "ping" })).await;
    assert_eq!(back.recv().await["type"], "pong", "each once");
    s.stop().await;
}

#[tokio::test]
async fn resume_on_the_inbox_gets_what_was_missed_exactly_once() {
    each_engine!(resume_once);
}

#[tokio::test]
async fn a_gift_on_one_node_reaches_the_inbox_watched_on_the_other_once() {
    let Some(engine) = engines()
        .await
        .into_iter()
        .find(|e| e.name == "redis+postgres")
    else {
        return;
    };
    let mut cfg = test_config(&engine);
    cfg.counters.combo_window_ms = WINDOW_MS;
    let a = TestServer::start_with(engine.clone(), cfg.clone()).await;
    let b = TestServer::start_with(engine, cfg).await;
    a.open_room("alice", "nr").await;
    register_video(&a, "alice", "nv").await;
    a.grant("v", 1000, "g").await;
    let mut on_b = b.ws("alice", Role::Creator).await;
    join_inbox(&mut on_b).await;
    let mut sender = a.ws("v", Role::Viewer).await;
    gift_at(&mut sender, json!({ "room": "nr" }), "rose", "1").await;
    gift_at(&mut sender, json!({ "video": "nv" }), "rose", "2").await;
    gift_at(&mut sender, json!({ "room": "nr" }), "rose", "3").await;
    let got = inbox_events(&mut on_b, 5).await;
    let seqs: Vec<u64> = got.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    let mut kinds: Vec<(String, String, u64)> = got.iter().map(inner).collect();
    kinds[3..].sort();
    assert_eq!(
        kinds,
        vec![
            ("gift_event".into(), "nr".into(), 1),
            ("gift_event".into(), "nv".into(), 1),
            ("gift_event".into(), "nr".into(), 2),
            ("combo_end".into(), "nr".into(), 3),
            ("combo_end".into(), "nv".into(), 2),
        ]
    );
    nothing_more(&mut on_b).await;
    // A resume on node A from the start: the same five, once.
    let mut on_a = a.ws("alice", Role::Creator).await;
    on_a.send(json!({ "type": "resume", "inbox": true, "since": 0 }))
        .await;
    let (resumed, frames) = on_a.until("resumed").await;
    assert_eq!(resumed["seq"], 5);
    assert_eq!(frames, got);
    b.stop().await;
    a.stop().await;
}

/// Two server processes on one Redis: gifts taken by node A reach the
/// creator's inbox watched on node B, in inbox seq order, once each.
#[tokio::test]
async fn two_processes_a_gift_on_node_a_reaches_the_inbox_on_node_b_once() {
    let window = [("GIFTSTREAM_COUNTERS__COMBO_WINDOW_MS", "600000")];
    let Some((_s, a, b)) = crate::multiprocess::two_nodes(&window).await else {
        return;
    };
    let (st, v) = a
        .post(
            "/v1/rooms",
            &a.token("alice", Role::Creator),
            json!({ "room": "pr" }),
        )
        .await;
    assert!(st == 200 || st == 201, "open room: {st} {v}");
    a.grant("v", 1000, "g").await;
    let mut inbox = b.ws("alice", Role::Creator).await;
    assert_eq!(join_inbox(&mut inbox).await["inbox"], "alice");
    let mut sender = a.ws("v", Role::Viewer).await;
    for i in 0..20 {
        let ack = sender.gift("pr", "rose", 1, &format!("p{i}")).await;
        assert_eq!(ack["type"], "gift_ack", "{ack}");
    }
    for seq in 1..=20u64 {
        let ev = inbox.expect("inbox_event").await;
        assert_eq!(
            (ev["seq"].as_u64(), inner(&ev)),
            (Some(seq), ("gift_event".into(), "pr".into(), seq)),
            "{ev}"
        );
    }
    inbox.send(json!({ "type": "ping" })).await;
    assert_eq!(inbox.recv().await["type"], "pong", "no duplicate");
}

/// Inbox seqs never go back: after a restart (the embedded engine keeps
/// no inbox seq: a restarted process starts its inboxes above the last
/// one's), and on Redis after Redis lost its data (the restore sets a
/// floor). A client's `since` stays meaningful either way.
async fn inbox_seqs_never_go_back(engine: &EngineSpec) {
    let window = |c: &mut giftstream::config::Config| c.counters.combo_window_ms = 600_000;
    let s = TestServer::start(engine, window).await;
    s.open_room("alice", "r1").await;
    s.grant("v", 1000, "g").await;
    let mut sender = s.ws("v", Role::Viewer).await;
    let mut inbox = s.ws("alice", Role::Creator).await;
    join_inbox(&mut inbox).await;
    gift_at(&mut sender, json!({ "room": "r1" }), "rose", "1").await;
    let before = inbox.expect("inbox_event").await["seq"].as_u64().unwrap();
    drop((sender, inbox));
    s.stop().await;
    if engine.counters_url.starts_with("redis") {
        let client = redis::Client::open(engine.counters_url.as_str()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("FLUSHDB").query_async(&mut c).await.unwrap();
    }
    let s = TestServer::start(engine, window).await;
    let mut sender = s.ws("v", Role::Viewer).await;
    let mut inbox = s.ws("alice", Role::Creator).await;
    let joined = join_inbox(&mut inbox).await;
    gift_at(&mut sender, json!({ "room": "r1" }), "rose", "2").await;
    // After Redis lost its data the inbox's seqs start above a floor, past
    // the `joined.seq` this node answered: the gap is announced (`skipped`
    // up to just below the event) rather than left for the client to find.
    let (ev, before_it) = inbox.until("inbox_event").await;
    let after = ev["seq"].as_u64().unwrap();
    for note in &before_it {
        assert_eq!(note["type"], "skipped", "{note}");
        assert_eq!(note["to_seq"].as_u64(), Some(after - 1), "{note}");
    }
    assert!(
        joined["seq"].as_u64() == Some(after - 1) || !before_it.is_empty(),
        "{}: joined at {joined}, next event {after}: a gap nobody announced",
        engine.name
    );
    assert!(
        after > before,
        "{}: inbox seq {after} after the restart, {before} before (joined {joined})",
        engine.name
    );
    s.stop().await;
}

#[tokio::test]
async fn inbox_seqs_never_go_back_after_a_restart_or_a_redis_wipe() {
    each_engine!(inbox_seqs_never_go_back);
}

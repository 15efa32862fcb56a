//! Two giftstream server PROCESSES (the real binary) sharing one Redis and
//! one PostgreSQL: cross-node delivery, a SIGKILLed node's viewers resuming
//! on the other node, room stats across nodes, coalesced combos, history
//! gone, and sharded subscriptions only where a room has local viewers.
//!
//! Needs `GIFTSTREAM_TEST_REDIS_URL` and `GIFTSTREAM_TEST_POSTGRES_URL`
//! (scripts/test starts both); skipped without them unless
//! `GIFTSTREAM_TEST_REQUIRE_SERVICES=1`. Every wait is for a condition with
//! a generous bound; nothing asserts on a duration.

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::server::{Ws, SECRET};
use giftstream::auth::{Auth, Role};
use giftstream::protocol::Encoding;
use serde_json::{json, Value};

/// How long a node may take to start (cold caches on a loaded machine).
const START_WAIT: Duration = Duration::from_secs(60);
/// How long a condition may take to become true.
const COND_WAIT: Duration = Duration::from_secs(30);

/// Shared services of one test: a fresh Redis database and a fresh
/// PostgreSQL database.
#[derive(Clone)]
pub(crate) struct Services {
    redis: String,
    /// The Redis database number (it is part of every channel name).
    redis_db: u64,
    postgres: String,
}

async fn services() -> Option<Services> {
    let (redis, redis_db) = common::services::fresh_redis_db().await?;
    let postgres = common::services::fresh_postgres_url().await?;
    Some(Services {
        redis,
        redis_db,
        postgres,
    })
}

/// One `giftstream serve` process; SIGKILLed and reaped on drop (also
/// used by `videos.rs`).
pub(crate) struct Node {
    child: Option<Child>,
    pub(crate) addr: String,
    auth: Auth,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Start the binary on a free loopback port with config from the
    /// environment (`GIFTSTREAM_<SECTION>__<KEY>`), plus `extra`.
    async fn start(s: &Services, extra: &[(&str, &str)]) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let ready: PathBuf = dir.path().join("ready");
        let log = std::fs::File::create(dir.path().join("node.log")).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_giftstream"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--ready-file"])
            .arg(&ready)
            .env("GIFTSTREAM_COUNTERS__URL", &s.redis)
            .env("GIFTSTREAM_LEDGER__URL", &s.postgres)
            .env("GIFTSTREAM_AUTH__JWT_SECRET", SECRET)
            .env("GIFTSTREAM_SETTLEMENT__FLUSH_INTERVAL_MS", "20")
            .env("GIFTSTREAM_SETTLEMENT__CLAIM_IDLE_MS", "1000")
            .env("GIFTSTREAM_HUB__STATS_INTERVAL_MS", "200")
            .env("GIFTSTREAM_HUB__ROOM_LINGER_MS", "300")
            .env("GIFTSTREAM_HTTP__METRICS_LISTEN", "127.0.0.1:0")
            .env("GIFTSTREAM_COUNTERS__VIEWERS_TTL_MS", "2000")
            .env("RUST_LOG", "giftstream=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn giftstream");
        let mut node = Node {
            child: Some(child),
            addr: String::new(),
            auth: Auth::new(SECRET, 5),
            http: reqwest::Client::new(),
            _dir: dir,
        };
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                node.addr = text.trim().to_string();
                break;
            }
            if let Some(Ok(Some(status))) = node.child.as_mut().map(|c| c.try_wait()) {
                panic!("giftstream exited early ({status}): {}", node.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node not ready: {}",
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        node
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("node.log")).unwrap_or_default()
    }

    /// SIGKILL: no graceful shutdown, no final flush.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn token(&self, user: &str, role: Role) -> String {
        self.auth.issue(user, role, 3600).expect("token")
    }

    pub(crate) async fn ws(&self, user: &str, role: Role) -> Ws {
        let url = format!("ws://{}/v1/ws?token={}", self.addr, self.token(user, role));
        Ws::connect(&url, Encoding::Json)
            .await
            .expect("ws connects")
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("http://{}{path}", self.addr))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("http");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `GET /v1/rooms/{room}`'s `viewers`.
    async fn room_viewers(&self, room: &str) -> u64 {
        let v: Value = self
            .http
            .get(format!("http://{}/v1/rooms/{room}", self.addr))
            .bearer_auth(self.token("anyone", Role::Viewer))
            .send()
            .await
            .expect("http")
            .json()
            .await
            .expect("room json");
        v["viewers"]
            .as_u64()
            .unwrap_or_else(|| panic!("viewers in {v}"))
    }

    async fn open_room(&self, creator: &str, room: &str) {
        let (s, v) = self
            .post(
                "/v1/rooms",
                &self.token(creator, Role::Creator),
                json!({ "room": room }),
            )
            .await;
        assert!(s == 200 || s == 201, "open room: {s} {v}");
    }

    pub(crate) async fn grant(&self, user: &str, coins: i64, id: &str) {
        let (s, v) = self
            .post(
                "/v1/admin/grants",
                &self.token("admin", Role::Admin),
                json!({ "user": user, "coins": coins, "id": id }),
            )
            .await;
        assert_eq!(s, 200, "grant: {v}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) async fn two_nodes(extra: &[(&str, &str)]) -> Option<(Services, Node, Node)> {
    let s = services().await?;
    let a = Node::start(&s, extra).await;
    let b = Node::start(&s, extra).await;
    Some((s, a, b))
}

/// Subscribers of a room's sharded channel (`PUBSUB SHARDNUMSUB`).
async fn shard_subscribers(s: &Services, room: &str) -> i64 {
    let mut c = redis::Client::open(s.redis.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(format!("{{gs}}:ev:{}:{room}", s.redis_db))
        .query_async(&mut c)
        .await
        .expect("pubsub shardnumsub");
    n
}

/// Wait until `f` answers true (bounded by COND_WAIT).
pub(crate) async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + COND_WAIT;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Read frames until a `room_stats` satisfying `ok` arrives.
async fn stats_until(ws: &mut Ws, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + COND_WAIT;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no matching room_stats; seen {:?}",
            ws.stats.last()
        );
        let v = ws.recv_any().await;
        if v["type"] == "room_stats" && ok(&v) {
            return v;
        }
    }
}

#[tokio::test]
async fn a_gift_on_node_b_reaches_a_viewer_on_node_a_in_seq_order_once() {
    let Some((_s, a, b)) = two_nodes(&[]).await else {
        return;
    };
    a.open_room("alice", "cross").await;
    a.grant("v", 1000, "g").await;
    let mut watcher = a.ws("watcher", Role::Viewer).await;
    watcher.join("cross").await;
    let mut sender = b.ws("v", Role::Viewer).await;
    for i in 0..30 {
        let ack = sender.gift("cross", "rose", 1, &format!("x{i}")).await;
        assert_eq!(ack["type"], "gift_ack", "{ack}");
    }
    for seq in 1..=30u64 {
        let ev = watcher.expect("gift_event").await;
        assert_eq!(ev["seq"].as_u64(), Some(seq), "{ev}");
    }
    watcher.ping().await; // no duplicate came before the pong
}

#[tokio::test]
async fn viewers_of_a_killed_node_resume_on_the_other_without_gap_or_duplicate() {
    let Some((_s, a, mut b)) = two_nodes(&[]).await else {
        return;
    };
    const GIFTS: u64 = 80;
    a.open_room("alice", "failover").await;
    a.grant("v", 10_000, "g").await;
    let mut feed = b.ws("alice", Role::Creator).await;
    feed.join("failover").await;
    let mut viewer = b.ws("bob", Role::Viewer).await;
    viewer.join("failover").await;
    // A stream of gifts through node A, while node B dies.
    let mut sender = a.ws("v", Role::Viewer).await;
    let gifts = tokio::spawn(async move {
        for i in 0..GIFTS {
            let ack = sender.gift("failover", "rose", 1, &format!("f{i}")).await;
            assert_eq!(ack["type"], "gift_ack", "{ack}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let mut last_feed = 0;
    while last_feed < 20 {
        let ev = feed.expect("gift_event").await;
        assert_eq!(ev["seq"].as_u64(), Some(last_feed + 1));
        last_feed += 1;
    }
    let mut last_viewer = 0;
    while last_viewer < 10 {
        let ev = viewer.expect("gift_event").await;
        assert_eq!(ev["seq"].as_u64(), Some(last_viewer + 1));
        last_viewer += 1;
    }
    b.kill();
    // Both reconnect to node A and resume from the last seq each saw.
    for (user, role, since) in [
        ("alice", Role::Creator, last_feed),
        ("bob", Role::Viewer, last_viewer),
    ] {
        let mut ws = a.ws(user, role).await;
        ws.send(json!({ "type": "resume", "room": "failover", "since": since }))
            .await;
        let mut seqs = Vec::new();
        let mut resumed = false;
        while seqs.last() != Some(&GIFTS) || !resumed {
            let v = ws.recv().await;
            match v["type"].as_str() {
                Some("gift_event") => seqs.push(v["seq"].as_u64().unwrap()),
                Some("resumed") => resumed = true,
                other => panic!("{user}: unexpected {other:?}: {v}"),
            }
        }
        assert_eq!(
            seqs,
            (since + 1..=GIFTS).collect::<Vec<u64>>(),
            "{user}: every seq after {since} once, in order"
        );
    }
    gifts.await.expect("sender");
}

#[tokio::test]
async fn room_stats_count_viewers_on_both_nodes() {
    let Some((_s, a, b)) = two_nodes(&[]).await else {
        return;
    };
    a.open_room("alice", "counted").await;
    a.grant("v", 1000, "g").await;
    let mut a1 = a.ws("a1", Role::Viewer).await;
    a1.join("counted").await;
    let mut a2 = a.ws("a2", Role::Viewer).await;
    a2.join("counted").await;
    let mut b1 = b.ws("b1", Role::Viewer).await;
    b1.join("counted").await;
    for ws in [&mut a1, &mut b1] {
        stats_until(ws, |v| v["viewers"] == 3).await;
    }
    let mut sender = b.ws("v", Role::Viewer).await;
    sender.gift("counted", "rose", 1, "s1").await;
    sender.gift("counted", "rose", 2, "s2").await;
    for ws in [&mut a1, &mut b1] {
        let v = stats_until(ws, |v| {
            v["diamonds"].as_i64() > Some(0) && v["viewers"] == 3
        })
        .await;
        assert_eq!(v["top"][0]["user"], "v", "{v}");
        assert_eq!(v["top"][0]["diamonds"], v["diamonds"], "{v}");
    }
    // The HTTP view agrees on either node (others' counts as last
    // reported, at most hub.stats_interval_ms old: they are in already).
    assert_eq!(
        (
            a.room_viewers("counted").await,
            b.room_viewers("counted").await
        ),
        (3, 3)
    );
    drop(a2);
    stats_until(&mut b1, |v| v["viewers"] == 2).await;
    eventually("both nodes report 2 viewers over HTTP", || async {
        a.room_viewers("counted").await == 2 && b.room_viewers("counted").await == 2
    })
    .await;
}

#[tokio::test]
async fn a_combo_of_12_roses_gives_12_ledger_gifts_and_one_coalesced_stream() {
    let Some((s, a, b)) = two_nodes(&[]).await else {
        return;
    };
    a.open_room("alice", "combo").await;
    a.grant("v", 1000, "g").await;
    let mut coalesced = a.ws("c", Role::Viewer).await;
    coalesced
        .send(json!({ "type": "join", "room": "combo", "coalesce": true }))
        .await;
    coalesced.expect("joined").await;
    let mut full = a.ws("f", Role::Viewer).await;
    full.join("combo").await;
    let mut sender = b.ws("v", Role::Viewer).await;
    for i in 0..12 {
        let ack = sender.gift("combo", "rose", 1, &format!("r{i}")).await;
        assert_eq!(ack["type"], "gift_ack", "{ack}");
    }
    for seq in 1..=12u64 {
        let ev = full.expect("gift_event").await;
        assert_eq!(
            (ev["seq"].as_u64(), ev["combo"].as_u64()),
            (Some(seq), Some(seq))
        );
    }
    // The coalesced viewer: at most one update per step, seqs rising,
    // ending on the streak's latest (seq 12, combo 12).
    let mut seen = Vec::new();
    while seen.last() != Some(&12) {
        let ev = coalesced.expect("gift_event").await;
        seen.push(ev["combo"].as_u64().unwrap());
        assert_eq!(ev["seq"], ev["combo"], "the latest seq of the streak");
    }
    assert!(seen.len() < 12, "coalesced, not one per gift: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    // Every gift is in the ledger.
    let pool = sqlx::PgPool::connect(&s.postgres).await.expect("postgres");
    eventually("12 gifts in the ledger", || {
        let pool = pool.clone();
        async move {
            let c: i64 =
                sqlx::query_scalar("SELECT count(*) FROM gifts WHERE target = 'room:combo'")
                    .fetch_one(&pool)
                    .await
                    .unwrap_or(0);
            c == 12
        }
    })
    .await;
}

#[tokio::test]
async fn resume_after_history_is_gone_answers_history_gone_on_either_node() {
    let Some((_s, a, b)) = two_nodes(&[("GIFTSTREAM_HUB__HISTORY_AGE_MS_MAX", "1500")]).await
    else {
        return;
    };
    a.open_room("alice", "old").await;
    a.grant("v", 1000, "g").await;
    let mut sender = a.ws("v", Role::Viewer).await;
    for i in 0..3 {
        sender.gift("old", "rose", 1, &format!("o{i}")).await;
    }
    // Within the age bound, node B replays from the shared stream.
    let mut ws = b.ws("late", Role::Viewer).await;
    ws.send(json!({ "type": "resume", "room": "old", "since": 1 }))
        .await;
    assert_eq!(ws.expect("gift_event").await["seq"], 2);
    assert_eq!(ws.expect("gift_event").await["seq"], 3);
    assert_eq!(ws.expect("resumed").await["seq"], 3);
    // Past it, history is gone on both nodes.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for node in [&a, &b] {
        let mut ws = node.ws("later", Role::Viewer).await;
        ws.send(json!({ "type": "resume", "room": "old", "since": 1 }))
            .await;
        let v = ws.expect("error").await;
        assert_eq!(v["code"], "history_gone", "{v}");
    }
}

#[tokio::test]
async fn a_node_subscribes_only_to_rooms_with_local_viewers() {
    let Some((s, a, b)) = two_nodes(&[]).await else {
        return;
    };
    a.open_room("alice", "sharded").await;
    let mut on_a = a.ws("va", Role::Viewer).await;
    on_a.join("sharded").await;
    eventually("node A subscribed", || async {
        shard_subscribers(&s, "sharded").await == 1
    })
    .await;
    let mut on_b = b.ws("vb", Role::Viewer).await;
    on_b.join("sharded").await;
    eventually("both nodes subscribed", || async {
        shard_subscribers(&s, "sharded").await == 2
    })
    .await;
    on_b.send(json!({ "type": "leave", "room": "sharded" }))
        .await;
    on_b.expect("left").await;
    eventually("node B unsubscribed after the room lingered", || async {
        shard_subscribers(&s, "sharded").await == 1
    })
    .await;
    // A room nobody watches on either node is subscribed nowhere.
    on_a.send(json!({ "type": "leave", "room": "sharded" }))
        .await;
    eventually("no node subscribed", || async {
        shard_subscribers(&s, "sharded").await == 0
    })
    .await;
    // And joining again on B subscribes B alone, with the live seq.
    a.grant("v", 100, "g").await;
    let mut sender = a.ws("v", Role::Viewer).await;
    sender.gift("sharded", "rose", 1, "s1").await;
    let joined = on_b.join("sharded").await;
    assert_eq!(joined["seq"], 1);
    sender.gift("sharded", "rose", 1, "s2").await;
    assert_eq!(on_b.expect("gift_event").await["seq"], 2);
    assert_eq!(shard_subscribers(&s, "sharded").await, 1);
}

/// Webhooks (issue 13): node A takes a gift whose webhook its receiver
/// refuses, and is SIGKILLed with the event undelivered; node B (same
/// PostgreSQL) delivers it, with the same event id, once the receiver heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undelivered_webhook_of_a_killed_node_is_delivered_by_the_next() {
    let Some(s) = services().await else { return };
    let rx = crate::webhooks::Receiver::start(usize::MAX).await;
    let env = [
        ("GIFTSTREAM_WEBHOOKS__ALLOW_PRIVATE", "true"),
        ("GIFTSTREAM_WEBHOOKS__POLL_INTERVAL_MS", "50"),
        ("GIFTSTREAM_WEBHOOKS__RETRY_BASE_MS", "200"),
        ("GIFTSTREAM_WEBHOOKS__CONNECT_TIMEOUT_MS", "500"),
        ("GIFTSTREAM_WEBHOOKS__RESPONSE_TIMEOUT_MS", "500"),
    ];
    let mut a = Node::start(&s, &env).await;
    a.open_room("mp-wh-creator", "mp-wh-room").await;
    a.grant("mp-wh-viewer", 100, "mp-wh-grant").await;
    let (st, reg) = a
        .post(
            "/v1/creators/me/webhooks",
            &a.token("mp-wh-creator", Role::Creator),
            json!({ "url": rx.url, "events": ["gift"] }),
        )
        .await;
    assert_eq!(st, 201, "{reg}");
    let mut ws = a.ws("mp-wh-viewer", Role::Viewer).await;
    ws.join("mp-wh-room").await;
    let ack = ws.gift("mp-wh-room", "rose", 1, "mp-wh-1").await;
    assert_eq!(ack["type"], "gift_ack", "{ack}");
    let refused = rx.wait(1, COND_WAIT).await;
    a.kill();
    rx.fail.store(0, std::sync::atomic::Ordering::SeqCst);
    let before = rx.got.lock().len();
    let _b = Node::start(&s, &env).await;
    let got = rx.wait(before + 1, COND_WAIT).await;
    let delivered = &got[before];
    assert_eq!(delivered.event_id, refused[0].event_id, "the same event");
    crate::webhooks::verify(reg["secret"].as_str().unwrap(), delivered);
    let v: Value = serde_json::from_str(&delivered.body).unwrap();
    assert_eq!(v["data"]["room"], "mp-wh-room");
}

/// Streak ends (issue 13): the node that took a streak's gifts dies right
/// after the last one; the other node's reaper ends it, once.
#[tokio::test]
async fn combo_end_comes_once_from_the_other_node_when_the_node_with_the_gifts_is_killed() {
    let window = [("GIFTSTREAM_COUNTERS__COMBO_WINDOW_MS", "1000")];
    let Some((s, mut a, b)) = two_nodes(&window).await else {
        return;
    };
    a.open_room("alice", "orphan").await;
    a.grant("v", 1000, "g").await;
    let mut full = b.ws("f", Role::Viewer).await;
    full.join("orphan").await;
    let mut coalesced = b.ws("c", Role::Viewer).await;
    coalesced
        .send(json!({ "type": "join", "room": "orphan", "coalesce": true }))
        .await;
    coalesced.expect("joined").await;
    let mut sender = a.ws("v", Role::Viewer).await;
    for i in 0..12u64 {
        let ack = sender.gift("orphan", "rose", 1, &format!("o{i}")).await;
        assert_eq!(ack["seq"], i + 1, "{ack}");
    }
    // The node that took every gift (and whose reaper would have ended
    // the streak) dies before the window is over.
    a.kill();
    let (end, before) = full.until("combo_end").await;
    let seqs: Vec<u64> = before.iter().filter_map(|v| v["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
    let fields = |e: &Value| {
        (
            e["seq"].as_u64(),
            e["count"].as_u64(),
            e["coins"].as_i64(),
            e["diamonds"].as_i64(),
            e["seq_first"].as_u64(),
            e["seq_last"].as_u64(),
        )
    };
    assert_eq!(
        fields(&end),
        (Some(13), Some(12), Some(12), Some(12), Some(1), Some(12)),
        "{end}"
    );
    let (co_end, steps) = coalesced.until("combo_end").await;
    assert_eq!(co_end, end);
    assert_eq!(
        steps
            .last()
            .map(|v| (v["seq"].as_u64(), v["combo"].as_u64())),
        Some((Some(12), Some(12)))
    );
    // Exactly once: nothing else comes, and no streak is left in Redis.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for ws in [&mut full, &mut coalesced] {
        ws.send(json!({ "type": "ping" })).await;
        let v = ws.recv().await;
        assert_eq!(v["type"], "pong", "nothing after the end: {v}");
    }
    let mut c = redis::Client::open(s.redis.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let (streak, due): (i64, i64) = redis::pipe()
        .cmd("EXISTS")
        .arg("{gs}:cs:room:orphan:v")
        .cmd("ZCARD")
        .arg("{gs}:cdue")
        .query_async(&mut c)
        .await
        .expect("redis");
    assert_eq!((streak, due), (0, 0), "the streak and its timer are gone");
}

//! Relay conformance: publish, history since a seq, room end and other
//! nodes' viewer counts, written once against `dyn Relay` and run on the
//! local relay (one node) and the Redis relay (a fresh database per test).
//! Where the two differ by design (the local relay keeps no history and
//! knows no other node), the fixture says what to expect.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use giftstream::catalog::Gift;
use giftstream::config::{CountersConfig, HubConfig};
use giftstream::counters::memory::MemoryCounters;
use giftstream::counters::redis::RedisCounters;
use giftstream::counters::Counters;
use giftstream::hub::conn::ConnCtl;
use giftstream::hub::room::Subscriber;
use giftstream::hub::{Hub, RoomCmd};
use giftstream::model::{GiftRequest, Target};
use giftstream::protocol::{now_ms, Encoding, SeqEvent, ServerMsg};
use giftstream::relay::local::LocalRelay;
use giftstream::relay::redis::RedisRelay;
use giftstream::relay::{Relay, Topic};

enum Factory {
    Local,
    Redis { url: String, db: u64 },
}

/// One node: its hub, counters engine and relay.
struct Node {
    hub: Arc<Hub>,
    c: Arc<dyn Counters>,
    relay: Arc<dyn Relay>,
}

fn hub_cfg() -> HubConfig {
    HubConfig {
        stats_interval_ms: 50,
        ..HubConfig::default()
    }
}

impl Factory {
    fn name(&self, base: &str) -> String {
        match self {
            Factory::Local => base.to_string(),
            Factory::Redis { db, .. } => format!("{base}{db}"),
        }
    }

    /// Whether this relay keeps a history of its own (Redis) or leaves
    /// `resume` to the room's ring (local).
    fn keeps_history(&self) -> bool {
        matches!(self, Factory::Redis { .. })
    }

    async fn node(&self) -> Node {
        let hub = Hub::new(hub_cfg());
        let cfg = CountersConfig {
            url: "redis://unused".into(),
            ..CountersConfig::default()
        };
        match self {
            Factory::Local => Node {
                c: Arc::new(MemoryCounters::new(cfg, hub.clone())),
                relay: Arc::new(LocalRelay::new(hub.clone())),
                hub,
            },
            Factory::Redis { url, .. } => {
                let engine = RedisCounters::connect(url, cfg, hub.config().clone())
                    .await
                    .expect("connect RedisCounters");
                let relay = RedisRelay::connect(&engine, hub.clone())
                    .await
                    .expect("connect RedisRelay");
                Node {
                    c: Arc::new(engine),
                    relay: Arc::new(relay),
                    hub,
                }
            }
        }
    }
}

async fn local() -> Option<Factory> {
    Some(Factory::Local)
}

async fn redis() -> Option<Factory> {
    let (url, db) = common::services::fresh_redis_db().await?;
    Some(Factory::Redis { url, db })
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        conformance!(@engine local: $($test),*);
        conformance!(@engine redis: $($test),*);
    };
    (@engine $engine:ident: $($test:ident),*) => {
        mod $engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(f) = super::$engine().await else { return };
                    super::$test(f).await;
                }
            )*
        }
    };
}

conformance!(
    publish_reaches_the_rooms_subscribers_after_earlier_gifts,
    history_since_a_seq_answers_the_events_after_it,
    ended_room_ends_for_its_subscribers_after_its_gifts,
    other_nodes_viewers_counts_only_other_nodes,
);

/// Open `room` live on the node and subscribe a viewer; the frames'
/// receiver.
async fn open_and_watch(n: &Node, room: &str) -> giftstream::hub::outbox::OutboxRx {
    n.c.open_target(&Target::room(room), "cr", 0).await.unwrap();
    n.hub.open_room(room, "cr", 0);
    let (tx, rx) = giftstream::hub::outbox::outbox(10_000);
    let sub = Subscriber {
        conn_id: n.hub.next_conn_id(),
        user: "viewer".into(),
        encoding: Encoding::Json,
        tx,
        ctl: Arc::new(ConnCtl::default()),
        coalesce: false,
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let h = n.hub.room(room).expect("room open");
    h.tx.send(RoomCmd::Join { sub, reply }).await.expect("join");
    answer.await.expect("joined").expect("join ok");
    rx
}

async fn send_gifts(n: &Node, room: &str, len: usize) {
    let rose = Gift {
        id: "rose".into(),
        name: "rose".into(),
        coins: 1,
        diamonds: 1,
        animation: "rose.webp".into(),
    };
    n.c.credit("v", 1000, "grant:v").await.unwrap();
    for i in 0..len {
        n.c.gift(GiftRequest {
            sender: "v".into(),
            target: Target::room(room),
            gift: rose.clone(),
            count: 1,
            client_id: format!("g{i}"),
            ts: now_ms(),
            message: None,
            kept: None,
        })
        .await
        .unwrap();
    }
}

/// The messages received (gift events as `gift:<seq>`, others by type)
/// until `last` matches or `wait` passes.
async fn frames(
    rx: &mut giftstream::hub::outbox::OutboxRx,
    last: impl Fn(&str) -> bool,
    wait: Duration,
) -> Vec<String> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        let axum::extract::ws::Message::Text(t) = msg else {
            continue;
        };
        let name = match serde_json::from_str::<ServerMsg>(t.as_str()) {
            Ok(ServerMsg::GiftEvent(ev)) => format!("gift:{}", ev.seq),
            Ok(ServerMsg::TipEvent { amount_cents, .. }) => format!("tip:{amount_cents}"),
            Ok(ServerMsg::RoomEnded { .. }) => "room_ended".to_string(),
            _ => continue,
        };
        let done = last(&name);
        out.push(name);
        if done {
            break;
        }
    }
    out
}

fn tip(room: &str) -> ServerMsg {
    ServerMsg::TipEvent {
        room: room.into(),
        sender: "v".into(),
        amount_cents: 500,
        currency: "usd".into(),
        message: Some("hi".into()),
        ts: now_ms(),
        message_state: None,
        message_id: None,
    }
}

async fn publish_reaches_the_rooms_subscribers_after_earlier_gifts(f: Factory) {
    let room = f.name("pub");
    let n = f.node().await;
    let mut rx = open_and_watch(&n, &room).await;
    send_gifts(&n, &room, 2).await;
    n.relay
        .publish(&Topic::room(&room), &tip(&room))
        .await
        .unwrap();
    let got = frames(&mut rx, |m| m.starts_with("tip:"), Duration::from_secs(5)).await;
    assert_eq!(got, vec!["gift:1", "gift:2", "tip:500"]);
}

async fn history_since_a_seq_answers_the_events_after_it(f: Factory) {
    let room = f.name("his");
    let n = f.node().await;
    let _rx = open_and_watch(&n, &room).await;
    send_gifts(&n, &room, 3).await;
    let h = n.relay.history(&Topic::room(&room), 1).await.unwrap();
    if !f.keeps_history() {
        assert!(h.is_none(), "the room's ring serves resume");
        return;
    }
    let h = h.expect("a history");
    assert_eq!(h.iter().map(|e| e.seq()).collect::<Vec<_>>(), vec![2, 3]);
    assert!(h
        .iter()
        .all(|e| matches!(e, SeqEvent::Gift(g) if g.room == room && g.gift == "rose")));
    let none = n.relay.history(&Topic::room(&room), 3).await.unwrap();
    assert_eq!(none.map(|h| h.len()), Some(0), "nothing after the last seq");
}

async fn ended_room_ends_for_its_subscribers_after_its_gifts(f: Factory) {
    let room = f.name("end");
    let n = f.node().await;
    let mut rx = open_and_watch(&n, &room).await;
    send_gifts(&n, &room, 2).await;
    n.c.end_room(&room).await.unwrap();
    n.relay.ended(&Topic::room(&room)).await.unwrap();
    let got = frames(&mut rx, |m| m == "room_ended", Duration::from_secs(5)).await;
    assert_eq!(got, vec!["gift:1", "gift:2", "room_ended"]);
}

async fn other_nodes_viewers_counts_only_other_nodes(f: Factory) {
    let room = f.name("vw");
    let a = f.node().await;
    let b = f.node().await;
    let _ra = open_and_watch(&a, &room).await;
    let _rb = open_and_watch(&b, &room).await;
    let topic = Topic::room(&room);
    let want = if f.keeps_history() { 1 } else { 0 };
    // Counts are refreshed every `hub.stats_interval_ms` (50 ms here).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (seen_a, seen_b) = (
            a.relay.other_nodes_viewers(&topic).await.unwrap(),
            b.relay.other_nodes_viewers(&topic).await.unwrap(),
        );
        if (seen_a, seen_b) == (want, want) || tokio::time::Instant::now() >= deadline {
            assert_eq!(
                (seen_a, seen_b),
                (want, want),
                "each node sees the other's viewer, never its own"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

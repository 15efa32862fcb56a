//! The Redis engine's room-event subscription survives a dropped pub/sub
//! connection, and the feed is made whole from the room's history stream.
//! Its own test binary: it kills every client of the test server holding a
//! shard subscription (by id), which must not hit the other tests'
//! subscriptions (cargo runs test binaries one after another).
//!
//! Needs `GIFTSTREAM_TEST_REDIS_URL`; skipped without it unless
//! `GIFTSTREAM_TEST_REQUIRE_SERVICES=1`.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use giftstream::catalog::Gift;
use giftstream::config::{CountersConfig, HubConfig};
use giftstream::counters::redis::RedisCounters;
use giftstream::counters::Counters;
use giftstream::hub::conn::ConnCtl;
use giftstream::hub::room::Subscriber;
use giftstream::hub::{Hub, RoomCmd};
use giftstream::model::{GiftRequest, Target};
use giftstream::protocol::{now_ms, Encoding, ServerMsg};

/// The seq of the first gift event received within `wait`.
async fn first_gift_seq(rx: &mut giftstream::hub::outbox::OutboxRx, wait: Duration) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut seq = None;
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if let axum::extract::ws::Message::Text(t) = m {
            if let Ok(ServerMsg::GiftEvent(ev)) = serde_json::from_str::<ServerMsg>(t.as_str()) {
                seq = Some(ev.seq);
                break;
            }
        }
    }
    seq
}

#[tokio::test]
async fn pubsub_reconnects_and_delivers_again() {
    let Some((url, db)) = common::services::fresh_redis_db().await else {
        return;
    };
    let mut c = redis::Client::open(url.clone())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    let hub = Hub::new(HubConfig::default());
    let cfg = CountersConfig {
        url: url.clone(),
        redis_reconnect_ms_max: 200,
        ..CountersConfig::default()
    };
    let red = RedisCounters::connect(&url, cfg, hub.config().clone())
        .await
        .unwrap();
    let _relay = giftstream::relay::redis::RedisRelay::connect(&red, hub.clone())
        .await
        .unwrap();
    let room = format!("ps{db}");
    red.open_target(&Target::room(&room), "cr", 0)
        .await
        .unwrap();
    red.credit("v", 100, "g").await.unwrap();
    hub.open_room(&room, "cr", 0);
    let (tx, mut rx) = giftstream::hub::outbox::outbox(1000);
    let sub = Subscriber {
        conn_id: hub.next_conn_id(),
        user: "cr".into(),
        encoding: Encoding::Json,
        tx,
        ctl: Arc::new(ConnCtl::default()),
        coalesce: false,
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    hub.room(&room)
        .unwrap()
        .tx
        .send(RoomCmd::Join { sub, reply })
        .await
        .unwrap();
    answer.await.unwrap().unwrap();
    let rose = Gift {
        id: "rose".into(),
        name: "Rose".into(),
        coins: 1,
        diamonds: 1,
        animation: "rose.webp".into(),
    };
    let send = |id: &str| GiftRequest {
        sender: "v".into(),
        target: Target::room(&room),
        gift: rose.clone(),
        count: 1,
        client_id: id.into(),
        ts: now_ms(),
        message: None,
        kept: None,
    };
    red.gift(send("a")).await.unwrap();
    assert_eq!(
        first_gift_seq(&mut rx, Duration::from_secs(5)).await,
        Some(1)
    );

    // The relay is a RESP3 connection with shard subscriptions (`ssub=` in
    // CLIENT LIST; Redis does not count it as TYPE pubsub): kill it by id.
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut killed = 0;
    for line in clients.lines() {
        let field = |k: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(k))
                .map(str::to_string)
        };
        if field("ssub=").is_some_and(|n| n != "0") {
            let id = field("id=").unwrap();
            let _: () = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(&id)
                .query_async(&mut c)
                .await
                .unwrap();
            killed += 1;
        }
    }
    assert!(killed >= 1, "the subscription was dropped");
    // Keep gifting until the node has resubscribed and events flow again.
    let mut got = None;
    for i in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let o = red.gift(send(&format!("b{i}"))).await.unwrap();
        got = first_gift_seq(&mut rx, Duration::from_millis(300))
            .await
            .map(|seen| (seen, o.ack.seq));
        if got.is_some() {
            break;
        }
    }
    let (seen, sent) = got.expect("events flow again after the pub/sub connection was killed");
    // The feed is made whole: gifts sent while the node was unsubscribed
    // are caught up from the room's history stream, in order, once.
    assert_eq!(seen, 2, "the first event after the kill comes first");
    let mut next = 3;
    while next <= sent {
        let got = first_gift_seq(&mut rx, Duration::from_secs(10)).await;
        assert_eq!(got, Some(next), "no gap, no duplicate");
        next += 1;
    }
}

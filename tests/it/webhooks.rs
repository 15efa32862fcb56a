//! Signed webhooks out (issue 13 item 4), on every engine pair: a receiver
//! on 127.0.0.1 (`webhooks.allow_private = true`) gets each gift and tip
//! event once, signed, in order; a failing receiver gets the same event id
//! on the retry that succeeds; events survive a crash; private URLs, bad
//! event types and the endpoint cap are refused at registration.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use common::server::{embedded, engines, EngineSpec, TestServer};
use giftstream::auth::Role;
use giftstream::ledger::{StripeEventRef, TipRecord};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde_json::{json, Value};
use sha2::Sha256;

const CREATOR: &str = "wh-creator";
const VIEWER: &str = "wh-viewer";

/// One request received.
#[derive(Clone, Debug)]
pub(crate) struct Got {
    pub(crate) signature: String,
    pub(crate) event_id: String,
    content_type: String,
    pub(crate) body: String,
}

/// A webhook receiver on 127.0.0.1:0: answers 500 while `fail` > 0
/// (counting down), 200 after.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    pub(crate) got: Arc<Mutex<Vec<Got>>>,
    pub(crate) fail: Arc<AtomicUsize>,
}

impl Receiver {
    pub(crate) async fn start(fail: usize) -> Receiver {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let fail = Arc::new(AtomicUsize::new(fail));
        let (g, f) = (got.clone(), fail.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (g, f) = (g.clone(), f.clone());
                async move {
                    let h = |k: &str| {
                        headers
                            .get(k)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    g.lock().push(Got {
                        signature: h("giftstream-signature"),
                        event_id: h("giftstream-event-id"),
                        content_type: h("content-type"),
                        body,
                    });
                    let failing = f
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if failing {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, got, fail }
    }

    /// Wait (bounded) until `n` requests arrived; answers them.
    pub(crate) async fn wait(&self, n: usize, limit: Duration) -> Vec<Got> {
        let end = tokio::time::Instant::now() + limit;
        loop {
            let got = self.got.lock().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "{} of {n} webhook requests within {limit:?}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Check the signature header like a receiver must: HMAC-SHA256 keyed
/// with the secret over `t + "." + body`, `t` recent.
pub(crate) fn verify(secret: &str, got: &Got) {
    let mut t = None;
    let mut v1 = None;
    for part in got.signature.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = Some(x.to_string()),
            Some(("v1", x)) => v1 = Some(x.to_string()),
            _ => {}
        }
    }
    let (t, v1) = (t.expect("t="), v1.expect("v1="));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", got.body).as_bytes());
    assert_eq!(
        hex::encode(mac.finalize().into_bytes()),
        v1,
        "signature of {got:?}"
    );
    let now = giftstream::protocol::now_ms() / 1000;
    assert!((now - t.parse::<i64>().unwrap()).abs() < 300, "t is now");
    assert_eq!(got.content_type, "application/json");
}

fn fast(c: &mut giftstream::config::Config) {
    c.webhooks.allow_private = true;
    c.webhooks.poll_interval_ms = 20;
    c.webhooks.retry_base_ms = 50;
    c.webhooks.connect_timeout_ms = 1000;
    c.webhooks.response_timeout_ms = 1000;
}

async fn register(s: &TestServer, url: &str, events: Value) -> Value {
    let (st, v) = s
        .post(
            "/v1/creators/me/webhooks",
            &s.token(CREATOR, Role::Creator),
            json!({ "url": url, "events": events }),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    v
}

/// Send `n` roses from VIEWER to CREATOR's room and wait for settlement.
async fn gifts(s: &TestServer, room: &str, n: usize, tag: &str) {
    let mut ws = s.ws(VIEWER, Role::Viewer).await;
    ws.join(room).await;
    for i in 0..n {
        let ack = ws.gift(room, "rose", 1, &format!("{tag}-{i}")).await;
        assert_eq!(ack["type"], "gift_ack", "{ack}");
    }
    s.settled().await;
}

async fn each_engine<F, Fut>(f: F)
where
    F: Fn(EngineSpec) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for engine in engines().await {
        eprintln!("engine {}", engine.name);
        f(engine).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_gifts_and_tips_arrive_once_signed_in_order() {
    each_engine(|engine| async move {
        let rx = Receiver::start(0).await;
        let s = TestServer::start(&engine, fast).await;
        s.open_room(CREATOR, "wh-room").await;
        s.open_room("wh-other", "wh-other-room").await;
        s.grant(VIEWER, 1000, "wh-grant").await;
        let reg = register(&s, &rx.url, json!(["gift", "tip", "gift"])).await;
        let secret = reg["secret"].as_str().unwrap().to_string();
        assert!(secret.starts_with("whsec_"), "{reg}");
        assert_eq!(reg["events"], json!(["gift", "tip"]));
        // The list never shows the secret.
        let (st, list) = s
            .get("/v1/creators/me/webhooks", &s.token(CREATOR, Role::Creator))
            .await;
        assert_eq!(st, 200);
        assert_eq!(list["endpoints"][0]["id"], reg["id"]);
        assert!(!list.to_string().contains(&secret), "{list}");

        gifts(&s, "wh-room", 5, "g").await;
        // A gift to a creator without webhooks writes no event.
        gifts(&s, "wh-other-room", 1, "other").await;
        let tip = TipRecord {
            currency: giftstream::model::Fiat::Usd,
            payment_intent: "pi_wh".into(),
            tip_key: format!("{VIEWER}:wh-tip"),
            sender: VIEWER.into(),
            creator: CREATOR.into(),
            target: "room:wh-room".into(),
            amount_cents: 500,
            message: "gg".into(),
        };
        let ledger = s.state().ledger.clone();
        ledger.tip_created(&tip).await.unwrap();
        let ev = StripeEventRef {
            id: "evt_wh".into(),
            kind: "payment_intent.succeeded".into(),
        };
        assert!(ledger.tip_succeeded(&ev, "pi_wh").await.unwrap().is_some());

        let got = rx.wait(6, Duration::from_secs(20)).await;
        eprintln!(
            "observed webhook: Giftstream-Event-Id: {}\nGiftstream-Signature: {}\n{}",
            got[0].event_id, got[0].signature, got[0].body
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let got_all = rx.got.lock().clone();
        assert_eq!(got_all.len(), 6, "each event once: {got_all:?}");
        let mut ids = std::collections::HashSet::new();
        let mut seqs = Vec::new();
        for g in &got {
            verify(&secret, g);
            let v: Value = serde_json::from_str(&g.body).unwrap();
            assert_eq!(v["id"], g.event_id.as_str());
            assert!(ids.insert(g.event_id.clone()), "ids are unique");
            assert_eq!(v["creator"], CREATOR);
            assert!(v["created_ms"].as_i64().unwrap() > 0);
            if v["type"] == "gift" {
                assert_eq!(v["data"]["room"], "wh-room", "{v}");
                assert_eq!(v["data"]["sender"], VIEWER);
                assert_eq!(v["data"]["gift"], "rose");
                seqs.push(v["data"]["seq"].as_u64().unwrap());
            }
        }
        let types: Vec<String> = got
            .iter()
            .map(|g| {
                serde_json::from_str::<Value>(&g.body).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            types,
            ["gift", "gift", "gift", "gift", "gift", "tip"],
            "outbox order"
        );
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(seqs, sorted, "gifts in seq order");
        let tip_ev: Value = serde_json::from_str(&got[5].body).unwrap();
        assert_eq!(tip_ev["data"]["amount_cents"], 500);
        assert_eq!(tip_ev["data"]["message"], "gg");
        assert_eq!(tip_ev["data"]["room"], "wh-room");
        // The attempts are listed, newest first.
        let id = reg["id"].as_str().unwrap();
        let (st, d) = s
            .get(
                &format!("/v1/creators/me/webhooks/{id}/deliveries"),
                &s.token(CREATOR, Role::Creator),
            )
            .await;
        assert_eq!(st, 200, "{d}");
        assert_eq!(d["deliveries"].as_array().unwrap().len(), 6);
        assert_eq!(d["deliveries"][0]["event_id"], got[5].event_id.as_str());
        assert_eq!(d["deliveries"][0]["status"], 200);
        s.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retried_until_the_fourth_try_with_the_same_event_id() {
    each_engine(|engine| async move {
        let rx = Receiver::start(3).await;
        let s = TestServer::start(&engine, fast).await;
        s.open_room(CREATOR, "wh-room").await;
        s.grant(VIEWER, 1000, "wh-grant").await;
        let reg = register(&s, &rx.url, json!(["gift"])).await;
        gifts(&s, "wh-room", 1, "r").await;
        let got = rx.wait(4, Duration::from_secs(20)).await;
        assert!(got.iter().all(|g| g.event_id == got[0].event_id), "{got:?}");
        for g in &got {
            verify(reg["secret"].as_str().unwrap(), g);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(rx.got.lock().len(), 4, "no delivery after the 200");
        let id = reg["id"].as_str().unwrap();
        let (_, d) = s
            .get(
                &format!("/v1/creators/me/webhooks/{id}/deliveries"),
                &s.token(CREATOR, Role::Creator),
            )
            .await;
        let statuses: Vec<i64> = d["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["status"].as_i64().unwrap())
            .collect();
        assert_eq!(statuses, [200, 500, 500, 500], "{d}");
        let attempts: Vec<i64> = d["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["attempt"].as_i64().unwrap())
            .collect();
        assert_eq!(attempts, [4, 3, 2, 1]);
        s.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_undelivered_events_are_delivered_after_a_crash() {
    each_engine(|engine| async move {
        let rx = Receiver::start(usize::MAX).await;
        let s = TestServer::start(&engine, |c| {
            fast(c);
            c.webhooks.retry_base_ms = 200;
        })
        .await;
        s.open_room(CREATOR, "wh-room").await;
        s.grant(VIEWER, 1000, "wh-grant").await;
        let reg = register(&s, &rx.url, json!(["gift"])).await;
        gifts(&s, "wh-room", 2, "k").await;
        let failed = rx.wait(1, Duration::from_secs(20)).await;
        // Die like kill -9 with both events undelivered, then heal the
        // receiver and start again on the same data.
        let s = s.crash_and_restart().await;
        rx.fail.store(0, Ordering::SeqCst);
        let before = rx.got.lock().len();
        let got = rx.wait(before + 2, Duration::from_secs(30)).await;
        let delivered: Vec<&Got> = got[before..].iter().collect();
        assert_eq!(
            delivered[0].event_id, failed[0].event_id,
            "the failed event first"
        );
        assert_ne!(delivered[1].event_id, delivered[0].event_id);
        for g in &delivered {
            verify(reg["secret"].as_str().unwrap(), g);
        }
        s.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_registration_refuses_private_urls_bad_types_and_beyond_the_cap() {
    let s = TestServer::start(&embedded(), |_| {}).await;
    let token = s.token(CREATOR, Role::Creator);
    for (url, events, why) in [
        ("http://127.0.0.1:9/hook", json!(["gift"]), "non-public"),
        ("http://localhost:9/hook", json!(["gift"]), "non-public"),
        ("http://[::1]:9/hook", json!(["gift"]), "non-public"),
        ("http://10.0.0.1/hook", json!(["gift"]), "non-public"),
        (
            "http://169.254.169.254/latest",
            json!(["gift"]),
            "non-public",
        ),
        ("ftp://example.com/hook", json!(["gift"]), "http://"),
        ("http://u:p@8.8.8.8/hook", json!(["gift"]), "user name"),
        (
            "http://8.8.8.8/hook",
            json!(["gift", "nope"]),
            "unknown event type",
        ),
        ("http://8.8.8.8/hook", json!([]), "at least one"),
    ] {
        let (st, v) = s
            .post(
                "/v1/creators/me/webhooks",
                &token,
                json!({ "url": url, "events": events }),
            )
            .await;
        assert_eq!(st, 400, "{url}: {v}");
        assert_eq!(v["code"], "bad_request");
        assert!(v["message"].as_str().unwrap().contains(why), "{url}: {v}");
    }
    s.stop().await;

    // The cap, and deleting.
    let s = TestServer::start(&embedded(), |c| {
        c.webhooks.allow_private = true;
        c.webhooks.endpoints_per_creator_max = 2;
    })
    .await;
    let a = register(&s, "http://127.0.0.1:9/a", json!(["gift"])).await;
    register(&s, "http://127.0.0.1:9/b", json!(["tip"])).await;
    let (st, v) = s
        .post(
            "/v1/creators/me/webhooks",
            &token,
            json!({ "url": "http://127.0.0.1:9/c", "events": ["gift"] }),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("at most 2"), "{v}");
    let id = a["id"].as_str().unwrap();
    let path = format!("/v1/creators/me/webhooks/{id}");
    // Another creator cannot delete it.
    let (st, _) = s
        .request(
            reqwest::Method::DELETE,
            &path,
            Some(&s.token("wh-else", Role::Creator)),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .request(reqwest::Method::DELETE, &path, Some(&token), None)
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .request(reqwest::Method::DELETE, &path, Some(&token), None)
        .await;
    assert_eq!(st, 404);
    let (_, list) = s.get("/v1/creators/me/webhooks", &token).await;
    assert_eq!(list["endpoints"].as_array().unwrap().len(), 1);
    register(&s, "http://127.0.0.1:9/c", json!(["combo_end", "follow"])).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_event_failed_after_retry_age_then_endpoint_disabled_with_a_reason() {
    let rx = Receiver::start(usize::MAX).await;
    let s = TestServer::start(&embedded(), |c| {
        fast(c);
        c.webhooks.retry_interval_ms_max = 100;
        c.webhooks.retry_age_s_max = 1;
        c.webhooks.disable_after_s = 2;
    })
    .await;
    s.open_room(CREATOR, "wh-room").await;
    s.grant(VIEWER, 1000, "wh-grant").await;
    let reg = register(&s, &rx.url, json!(["gift"])).await;
    gifts(&s, "wh-room", 4, "d").await;
    // The first event is given up after about a second: the second is tried.
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    let first = rx.wait(1, Duration::from_secs(20)).await[0]
        .event_id
        .clone();
    while !rx.got.lock().iter().any(|g| g.event_id != first) {
        assert!(tokio::time::Instant::now() < end, "the endpoint moved on");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Failing for more than 2 s (on the third event): disabled, with why.
    let token = s.token(CREATOR, Role::Creator);
    let ep = loop {
        let (_, list) = s.get("/v1/creators/me/webhooks", &token).await;
        let ep = list["endpoints"][0].clone();
        if ep["disabled_ms"].is_i64() {
            break ep;
        }
        assert!(tokio::time::Instant::now() < end, "disabled: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ep["id"], reg["id"]);
    let reason = ep["disabled_reason"].as_str().unwrap();
    assert!(
        reason.contains("webhooks.disable_after_s") && reason.contains("500"),
        "{reason}"
    );
    assert!(ep["failing_since_ms"].is_i64());
    // Nothing more is sent.
    let n = rx.got.lock().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.got.lock().len(), n);
    s.stop().await;
}

/// `combo_end` webhooks: a streak's end reaches a receiver subscribed to
/// `combo_end` once, signed, with the streak's totals, under an event id
/// that names the streak end; a creator not subscribed to it gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_combo_end_arrives_once_per_streak() {
    each_engine(|engine| async move {
        let rx = Receiver::start(0).await;
        let s = TestServer::start(&engine, |c| {
            fast(c);
            c.counters.combo_window_ms = 300;
        })
        .await;
        s.open_room(CREATOR, "wh-streak").await;
        s.grant(VIEWER, 1000, "wh-grant").await;
        let reg = register(&s, &rx.url, json!(["combo_end"])).await;
        let secret = reg["secret"].as_str().unwrap().to_string();
        gifts(&s, "wh-streak", 3, "s").await;
        let got = rx.wait(1, Duration::from_secs(20)).await;
        verify(&secret, &got[0]);
        let v: Value = serde_json::from_str(&got[0].body).unwrap();
        assert_eq!(v["type"], "combo_end", "{v}");
        assert_eq!(v["creator"], CREATOR);
        let d = &v["data"];
        assert_eq!(
            (
                d["room"].as_str(),
                d["gift"].as_str(),
                d["count"].as_u64(),
                d["coins"].as_i64(),
                d["seq_first"].as_u64(),
                d["seq_last"].as_u64(),
                d["seq"].as_u64()
            ),
            (
                Some("wh-streak"),
                Some("rose"),
                Some(3),
                Some(3),
                Some(1),
                Some(3),
                Some(4)
            ),
            "{v}"
        );
        assert_eq!(got[0].event_id, "combo_end:room:wh-streak:4");
        // Nothing else comes: one event per streak, no gift events.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(rx.got.lock().len(), 1, "{:?}", rx.got.lock());
        s.stop().await;
    })
    .await;
}

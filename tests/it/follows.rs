//! Followers (issue 14 item 1), on every engine pair and across two nodes:
//! follows and unfollows are idempotent and exact under concurrency (100
//! concurrent follows and unfollows of one creator end at the right count,
//! on both nodes); a creator cannot follow themselves, an admin is no
//! follower; the lists page newest first; the admin's NDJSON import of
//! 10,000 edges answers imported/already and the profile counts them; a
//! malformed or oversized import writes nothing; counts are rebuilt from
//! the ledger after a restart and, on Redis, after a wipe by `reconcile`;
//! a follow reaches the creator's inbox and a webhook endpoint once, a
//! bulk import neither.

use std::time::Duration;

use crate::common;
use crate::webhooks::Receiver;

use common::server::{engines, test_config, EngineSpec, TestServer};
use futures_util::future::join_all;
use giftstream::auth::Role;
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

const STAR: &str = "fl-star";

/// `PUT` (follow) or `DELETE` (unfollow) of `creator` by `user`.
async fn call(
    s: &TestServer,
    method: reqwest::Method,
    user: &str,
    role: Role,
    creator: &str,
) -> (u16, Value) {
    s.request(
        method,
        &format!("/v1/creators/{creator}/followers/me"),
        Some(&s.token(user, role)),
        None,
    )
    .await
}

async fn follow(s: &TestServer, user: &str, creator: &str) -> Value {
    let (st, v) = call(s, reqwest::Method::PUT, user, Role::Viewer, creator).await;
    assert_eq!(st, 200, "{user} follows {creator}: {v}");
    v
}

async fn unfollow(s: &TestServer, user: &str, creator: &str) -> Value {
    let (st, v) = call(s, reqwest::Method::DELETE, user, Role::Viewer, creator).await;
    assert_eq!(st, 200, "{user} unfollows {creator}: {v}");
    v
}

/// The public profile (no token).
async fn profile(s: &TestServer, creator: &str) -> Value {
    let (st, v) = s
        .request(
            reqwest::Method::GET,
            &format!("/v1/creators/{creator}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v
}

/// An admin's NDJSON import (`POST`) or delete (`DELETE`).
async fn bulk(s: &TestServer, method: reqwest::Method, body: String) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .request(method, s.url("/v1/admin/followers/import"))
        .bearer_auth(s.token("fl-admin", Role::Admin))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("import request");
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap_or(Value::Null))
}

/// `n` lines `{follower: PREFIX<i>, creator}` from `from`.
fn lines(prefix: &str, creator: &str, from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("{{\"follower\":\"{prefix}{i}\",\"creator\":\"{creator}\"}}\n"))
        .collect()
}

/// 100 users follow concurrently (each twice at once), then 50 of them
/// unfollow (each twice at once) while 50 new ones follow, requests spread
/// over `nodes`: every node's profile says exactly 100, like the ledger.
async fn concurrent_follows(nodes: &[&TestServer]) {
    let at = |i: usize| nodes[i % nodes.len()];
    let first = (0..200).map(|i| async move { follow(at(i), &format!("fa{}", i / 2), STAR).await });
    let answers = join_all(first).await;
    let added = answers.iter().filter(|v| v["changed"] == true).count();
    assert_eq!(added, 100, "each edge added once");
    let second = (0..200).map(|i| async move {
        let u = i / 2;
        if u < 50 {
            unfollow(at(i), &format!("fa{u}"), STAR).await
        } else {
            follow(at(i), &format!("fb{u}"), STAR).await
        }
    });
    let answers = join_all(second).await;
    assert_eq!(
        answers.iter().filter(|v| v["changed"] == true).count(),
        100,
        "each of the 50 removed and 50 added once"
    );
    for node in nodes {
        assert_eq!(profile(node, STAR).await["followers"], 100);
    }
    let ledger = &nodes[0].state().ledger;
    assert_eq!(ledger.follower_count(STAR).await.unwrap(), 100);
}

async fn follows_are_exact_under_concurrency(engine: &EngineSpec) {
    let s = TestServer::start(engine, |_| {}).await;
    concurrent_follows(&[&s]).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follows_are_exact_under_concurrency_on_every_engine() {
    each_engine!(follows_are_exact_under_concurrency);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follows_are_exact_under_concurrency_across_two_nodes() {
    let Some(engine) = engines()
        .await
        .into_iter()
        .find(|e| e.name == "redis+postgres")
    else {
        return;
    };
    let a = TestServer::start_with(engine.clone(), test_config(&engine)).await;
    let b = TestServer::start_with(engine.clone(), test_config(&engine)).await;
    concurrent_follows(&[&a, &b]).await;
    // A third node starting keeps the shared counts (Redis holds them).
    let c = TestServer::start_with(engine.clone(), test_config(&engine)).await;
    assert_eq!(profile(&c, STAR).await["followers"], 100);
    follow(&c, "fc-late", STAR).await;
    assert_eq!(profile(&a, STAR).await["followers"], 101);
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

async fn follow_rules_and_pages(engine: &EngineSpec) {
    let s = TestServer::start(engine, |_| {}).await;
    s.open_room(STAR, "fl-room").await;
    // Idempotent both ways.
    let v = follow(&s, "fv", STAR).await;
    assert_eq!(
        (&v["following"], &v["changed"], &v["followers"]),
        (&json!(true), &json!(true), &json!(1))
    );
    let v = follow(&s, "fv", STAR).await;
    assert_eq!((&v["changed"], &v["followers"]), (&json!(false), &json!(1)));
    let v = unfollow(&s, "fv", STAR).await;
    assert_eq!(
        (&v["following"], &v["changed"], &v["followers"]),
        (&json!(false), &json!(true), &json!(0))
    );
    let v = unfollow(&s, "fv", STAR).await;
    assert_eq!((&v["changed"], &v["followers"]), (&json!(false), &json!(0)));
    // Not oneself (with either token), not as an admin.
    for role in [Role::Creator, Role::Viewer] {
        let (st, v) = call(&s, reqwest::Method::PUT, STAR, role, STAR).await;
        assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")), "{v}");
        assert!(v["message"].as_str().unwrap().contains("themselves"), "{v}");
    }
    let (st, v) = call(&s, reqwest::Method::PUT, "fl-admin", Role::Admin, STAR).await;
    assert_eq!((st, v["code"].as_str()), (403, Some("forbidden")), "{v}");
    let (st, _) = s
        .request(
            reqwest::Method::PUT,
            &format!("/v1/creators/{STAR}/followers/me"),
            None,
            None,
        )
        .await;
    assert_eq!(st, 401);
    // A creator follows another creator.
    let (st, v) = call(&s, reqwest::Method::PUT, "fl-other", Role::Creator, STAR).await;
    assert_eq!((st, &v["changed"]), (200, &json!(true)), "{v}");
    // Five more, a few ms apart: pages of 2, newest first.
    for i in 0..5 {
        follow(&s, &format!("fp{i}"), STAR).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let token = s.token("fp0", Role::Viewer);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => format!("/v1/creators/{STAR}/followers?limit=2"),
            Some(c) => format!("/v1/creators/{STAR}/followers?limit=2&cursor={c}"),
        };
        let (st, v) = s.get(&path, &token).await;
        assert_eq!(st, 200, "{v}");
        pages += 1;
        for r in v["followers"].as_array().unwrap() {
            seen.push(r["user"].as_str().unwrap().to_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["fp4", "fp3", "fp2", "fp1", "fp0", "fl-other"]);
    let (st, v) = s
        .get(&format!("/v1/creators/{STAR}/followers?limit=0"), &token)
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")));
    let (st, _) = s
        .get(
            &format!("/v1/creators/{STAR}/followers?cursor=%21%21"),
            &token,
        )
        .await;
    assert_eq!(st, 400);
    // A user's follows, newest first.
    for (i, c) in ["fc1", "fc2", "fc3"].iter().enumerate() {
        follow(&s, "fan", c).await;
        if i < 2 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    let (st, v) = s
        .get("/v1/users/me/following", &s.token("fan", Role::Viewer))
        .await;
    assert_eq!(st, 200, "{v}");
    let users: Vec<&str> = v["following"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["fc3", "fc2", "fc1"]);
    assert_eq!(v["next_cursor"], Value::Null);
    // The profile: name, followers, live room, videos, marketplace.
    let (st, _) = s
        .post(
            "/v1/videos",
            &s.token(STAR, Role::Creator),
            json!({ "video": "fl-video" }),
        )
        .await;
    assert_eq!(st, 201);
    let p = profile(&s, STAR).await;
    assert_eq!(
        p,
        json!({
            "creator": STAR, "name": STAR, "followers": 6, "live_room": "fl-room",
            "videos": 1, "marketplace": { "eligible": false, "followers_min": 10000 }
        })
    );
    let p = profile(&s, "fc1").await;
    assert_eq!((&p["name"], &p["followers"]), (&Value::Null, &json!(1)));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_is_idempotent_not_of_oneself_and_lists_page_newest_first() {
    each_engine!(follow_rules_and_pages);
}

async fn import_and_restore(engine: &EngineSpec) {
    let s = TestServer::start(engine, |_| {}).await;
    let big = "fl-big";
    let (st, v) = bulk(&s, reqwest::Method::POST, lines("u", big, 0, 10_000)).await;
    assert_eq!((st, &v), (200, &json!({ "imported": 10000, "already": 0 })));
    let (st, v) = bulk(&s, reqwest::Method::POST, lines("u", big, 0, 10_000)).await;
    assert_eq!((st, &v), (200, &json!({ "imported": 0, "already": 10000 })));
    let p = profile(&s, big).await;
    assert_eq!(p["followers"], 10000);
    assert_eq!(p["marketplace"]["eligible"], true);
    // Too many lines: 413, nothing written.
    let (st, v) = bulk(&s, reqwest::Method::POST, lines("w", big, 0, 10_001)).await;
    assert_eq!((st, v["code"].as_str()), (413, Some("bad_request")), "{v}");
    // A malformed 5th line: 400 naming it, nothing written (not even
    // lines 1 to 4).
    let mut body = lines("x", big, 0, 4);
    body.push_str("{\"follower\": \"x4\"}\n");
    body.push_str(&lines("x", big, 5, 3));
    let (st, v) = bulk(&s, reqwest::Method::POST, body).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")), "{v}");
    assert!(v["message"].as_str().unwrap().starts_with("line 5:"), "{v}");
    let (st, _) = bulk(
        &s,
        reqwest::Method::POST,
        "{\"follower\":\"a\",\"creator\":\"a\"}\n".into(),
    )
    .await;
    assert_eq!(st, 400, "a self-follow line");
    let (st, _) = s
        .request(
            reqwest::Method::POST,
            "/v1/admin/followers/import",
            Some(&s.token("fl-admin", Role::Admin)),
            Some(json!({ "follower": "a", "creator": "b" })),
        )
        .await;
    assert_eq!(st, 415, "JSON is not NDJSON");
    assert_eq!(profile(&s, big).await["followers"], 10000);
    // Delete 100 (with a duplicate line), then again.
    let mut body = lines("u", big, 0, 100);
    body.push_str(&lines("u", big, 0, 1));
    let (st, v) = bulk(&s, reqwest::Method::DELETE, body.clone()).await;
    assert_eq!((st, &v), (200, &json!({ "deleted": 100, "absent": 1 })));
    let (st, v) = bulk(&s, reqwest::Method::DELETE, body).await;
    assert_eq!((st, &v), (200, &json!({ "deleted": 0, "absent": 101 })));
    assert_eq!(profile(&s, big).await["followers"], 9900);
    follow(&s, "fl-one", STAR).await;
    // A clean restart and a crash: counts rebuilt from the ledger.
    let s = s.restart().await;
    assert_eq!(profile(&s, big).await["followers"], 9900);
    assert_eq!(profile(&s, STAR).await["followers"], 1);
    let s = s.crash_and_restart().await;
    assert_eq!(profile(&s, big).await["followers"], 9900);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_of_10000_edges_counts_once_and_counts_survive_restarts() {
    each_engine!(import_and_restore);
}

/// Redis loses everything while a node runs: `reconcile --repair` rebuilds
/// the counts from the ledger; a count that drifted is reported and fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_wipe_then_reconcile_rebuilds_follower_counts() {
    let Some(engine) = engines()
        .await
        .into_iter()
        .find(|e| e.name == "redis+postgres")
    else {
        return;
    };
    let s = TestServer::start(&engine, |_| {}).await;
    for i in 0..3 {
        follow(&s, &format!("rw{i}"), STAR).await;
    }
    let (st, _) = bulk(&s, reqwest::Method::POST, lines("ri", "fl-b", 0, 20)).await;
    assert_eq!(st, 200);
    let red = giftstream::app::open_redis(&s.cfg).await.unwrap();
    let ledger = s.state().ledger.clone();
    assert_eq!(
        red.reconcile(ledger.as_ref(), false).await.unwrap().drift(),
        0
    );
    let mut raw = redis::Client::open(engine.counters_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // A drifted count: found and repaired.
    let _: () = redis::cmd("HSET")
        .arg("{gs}:fl")
        .arg(STAR)
        .arg(99)
        .query_async(&mut raw)
        .await
        .unwrap();
    let r = red.reconcile(ledger.as_ref(), false).await.unwrap();
    assert_eq!(r.follower_drift, vec![(STAR.to_string(), 99, 3)]);
    red.reconcile(ledger.as_ref(), true).await.unwrap();
    assert_eq!(profile(&s, STAR).await["followers"], 3);
    // Everything lost.
    let _: () = redis::cmd("FLUSHDB").query_async(&mut raw).await.unwrap();
    assert_eq!(profile(&s, STAR).await["followers"], 0);
    let r = red.reconcile(ledger.as_ref(), true).await.unwrap();
    assert!(r.follower_drift.len() == 2 && r.repaired, "{r:?}");
    assert_eq!(profile(&s, STAR).await["followers"], 3);
    assert_eq!(profile(&s, "fl-b").await["followers"], 20);
    assert_eq!(
        red.reconcile(ledger.as_ref(), false).await.unwrap().drift(),
        0
    );
    s.stop().await;
}

async fn follow_event_reaches_inbox_and_webhook_once(engine: &EngineSpec) {
    let s = TestServer::start(engine, |c| {
        c.webhooks.allow_private = true;
        c.webhooks.poll_interval_ms = 20;
    })
    .await;
    let hook = Receiver::start(0).await;
    let (st, v) = s
        .post(
            "/v1/creators/me/webhooks",
            &s.token(STAR, Role::Creator),
            json!({ "url": hook.url, "events": ["follow"] }),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let mut inbox = s.ws(STAR, Role::Creator).await;
    inbox.send(json!({ "type": "join", "inbox": true })).await;
    inbox.expect("joined").await;
    // The same follow twice, and an unfollow: one event.
    follow(&s, "fe", STAR).await;
    follow(&s, "fe", STAR).await;
    unfollow(&s, "fe2", STAR).await;
    // A bulk import: none.
    let (st, _) = bulk(&s, reqwest::Method::POST, lines("fi", STAR, 0, 5)).await;
    assert_eq!(st, 200);
    let ev = inbox.expect("inbox_event").await;
    assert_eq!(ev["creator"], STAR);
    let inner = &ev["event"];
    assert_eq!(
        (
            inner["type"].as_str(),
            inner["creator"].as_str(),
            inner["follower"].as_str()
        ),
        (Some("follow_event"), Some(STAR), Some("fe")),
        "{ev}"
    );
    let got = hook.wait(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    inbox.ping().await; // nothing else came before the pong
    let got_now = hook.got.lock().clone();
    assert_eq!(got_now.len(), 1, "one webhook: {got_now:?}");
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(
        (
            body["type"].as_str(),
            body["creator"].as_str(),
            body["data"]["follower"].as_str()
        ),
        (Some("follow"), Some(STAR), Some("fe")),
        "{body}"
    );
    assert!(
        body["id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("follow:{STAR}:fe:")),
        "the event id names the edge: {body}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_reaches_the_inbox_and_a_webhook_once() {
    each_engine!(follow_event_reaches_inbox_and_webhook_once);
}

/// The ledger itself, on SQLite and PostgreSQL: follow and unfollow say
/// whether the edge changed; a bulk import counts a repeated pair once and
/// answers per creator; six concurrent imports of the same edges in
/// different orders all finish (rows locked in one order) and add each
/// edge once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ledger_adds_each_edge_once_even_in_concurrent_overlapping_imports() {
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![format!("sqlite://{}", dir.path().join("f.db").display())];
    if let Some(pg) = common::services::fresh_postgres_url().await {
        urls.push(pg);
    }
    for url in urls {
        let l = giftstream::ledger::open(&url, 8).await.unwrap();
        assert!(l.follow("a", "c", 1).await.unwrap());
        assert!(!l.follow("a", "c", 2).await.unwrap());
        assert!(l.unfollow("a", "c").await.unwrap());
        assert!(!l.unfollow("a", "c").await.unwrap());
        let e = |f: &str, c: &str| (f.to_string(), c.to_string());
        let o = l
            .import_follows(&[e("a", "c"), e("b", "c"), e("a", "c"), e("a", "d")], 5)
            .await
            .unwrap();
        assert_eq!((o.changed, o.unchanged), (3, 1), "{url}");
        assert_eq!(o.per_creator, vec![("c".into(), 2), ("d".into(), 1)]);
        // Six imports of the same 3000 edges at once, each in another
        // order (rotated, some reversed).
        let all: Vec<(String, String)> = (0..3000).map(|i| e(&format!("p{i}"), "e")).collect();
        let orders: Vec<Vec<(String, String)>> = (0..6)
            .map(|k| {
                let mut v = all.clone();
                v.rotate_left(k * 500);
                if k % 2 == 1 {
                    v.reverse();
                }
                v
            })
            .collect();
        let outcomes = join_all(orders.iter().map(|o| l.import_follows(o, 7))).await;
        let (mut changed, mut unchanged) = (0, 0);
        for o in outcomes {
            let o = o.unwrap_or_else(|err| panic!("{url}: {err:?}"));
            changed += o.changed;
            unchanged += o.unchanged;
        }
        assert_eq!((changed, unchanged), (3000, 15000), "{url}");
        assert_eq!(l.follower_count("e").await.unwrap(), 3000);
        let mut counts = l.follower_counts().await.unwrap();
        counts.sort();
        assert_eq!(
            counts,
            vec![("c".into(), 2), ("d".into(), 1), ("e".into(), 3000)]
        );
    }
}

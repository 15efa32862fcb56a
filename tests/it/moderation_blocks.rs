//! Blocks and moderators (issue 17), on every engine pair and, where the
//! engine is shared (Redis), on two nodes: a blocked viewer is refused on
//! join, gift (WS and HTTP) and tip, with nothing charged, and dropped at
//! once from the creator's rooms and videos on every node (their other
//! subscriptions stay); an unblock restores them; blocks survive a
//! restart (the counters engine's cache is rebuilt from the ledger); a
//! moderator may block, a stranger may not; the audit lists every action
//! with its actor.

use crate::common;

use common::server::{engines, test_config, EngineSpec, TestServer, Ws};
use common::stripe_double::StripeDouble;
use giftstream::auth::Role;
use reqwest::Method;
use serde_json::{json, Value};

const CREATOR: &str = "mod-cr";
const OTHER: &str = "mod-other";
const FAN: &str = "mod-fan";
const FAN2: &str = "mod-fan2";
const ROOM: &str = "mod-room";
const VIDEO: &str = "mod-video";
const OTHER_ROOM: &str = "mod-other-room";

/// A server of `engine` with payments on (the Stripe contract double), so
/// a tip reaches its block check.
async fn server(engine: &EngineSpec, double: &StripeDouble) -> TestServer {
    let url = double.url.clone();
    TestServer::start(engine, move |c| tweak(c, url)).await
}

fn tweak(c: &mut giftstream::config::Config, stripe_url: String) {
    c.stripe.secret_key = "sk_test_giftstream_moderation".into();
    c.stripe.webhook_secret = "whsec_giftstream_moderation".into();
    c.stripe.api_base_url = stripe_url;
}

/// A second node on the same engines (Redis only: the embedded counters
/// take the ledger's exclusive lock).
async fn second_node(engine: &EngineSpec, double: &StripeDouble) -> Option<TestServer> {
    if !engine.counters_url.starts_with("redis") {
        return None;
    }
    let mut cfg = test_config(engine);
    tweak(&mut cfg, double.url.clone());
    Some(TestServer::start_with(engine.clone(), cfg).await)
}

/// The creator's room and video, another creator's room, coins for the fans.
async fn setup(s: &TestServer) {
    s.open_room(CREATOR, ROOM).await;
    s.open_room(OTHER, OTHER_ROOM).await;
    let (st, v) = s
        .post(
            "/v1/videos",
            &s.token(CREATOR, Role::Creator),
            json!({ "video": VIDEO }),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    for u in [FAN, FAN2] {
        s.grant(u, 1000, &format!("mod-grant-{u}")).await;
    }
}

/// `method` on `path` with `token`, no body.
async fn call(s: &TestServer, method: Method, path: &str, token: &str) -> (u16, Value) {
    s.request(method, path, Some(token), None).await
}

/// `who` (a creator) blocks or unblocks `user` through `/me`.
async fn block_me(s: &TestServer, user: &str, blocked: bool) {
    let m = if blocked { Method::PUT } else { Method::DELETE };
    let tok = s.token(CREATOR, Role::Creator);
    let (st, v) = call(s, m, &format!("/v1/creators/me/blocks/{user}"), &tok).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v, json!({ "user": user, "blocked": blocked }));
}

async fn join(ws: &mut Ws, field: &str, id: &str) -> Value {
    ws.send(json!({ "type": "join", field: id })).await;
    ws.recv().await
}

async fn gift_video_http(s: &TestServer, user: &str, id: &str) -> (u16, Value) {
    s.post(
        &format!("/v1/videos/{VIDEO}/gifts"),
        &s.token(user, Role::Viewer),
        json!({ "gift": "rose", "count": 1, "id": id }),
    )
    .await
}

async fn tip(s: &TestServer, user: &str, id: &str) -> (u16, Value) {
    let cfg = &s.cfg.stripe;
    s.post(
        &format!("/v1/rooms/{ROOM}/tips"),
        &s.token(user, Role::Viewer),
        json!({ "amount_cents": cfg.tip_cents_min, "currency": cfg.currency, "message": "", "id": id }),
    )
    .await
}

/// The `error` frames dropping this socket from the room and the video
/// (in any order; other frames before them are skipped).
async fn dropped(ws: &mut Ws, want_video: bool) {
    let (mut room, mut video) = (false, !want_video);
    while !(room && video) {
        let (e, _) = ws.until("error").await;
        assert_eq!(e["code"], "forbidden", "{e}");
        assert!(e["message"].as_str().unwrap().contains("blocked"), "{e}");
        match (e["room"].as_str(), e["video"].as_str()) {
            (Some(ROOM), None) => room = true,
            (None, Some(VIDEO)) => video = true,
            _ => panic!("an error naming the room or the video: {e}"),
        }
    }
}

/// A gift to `room` by `sender` (acknowledged, and its event seen on the
/// sender's socket, which is subscribed) that `watcher` must not get: the
/// frames before its pong hold no event of that room.
async fn not_subscribed(watcher: &mut Ws, sender: &mut Ws, room: &str, id: &str) {
    sender
        .send(json!({ "type": "gift", "room": room, "gift": "rose", "count": 1, "id": id }))
        .await;
    let (mut acked, mut seen) = (false, false);
    while !(acked && seen) {
        let f = sender.recv().await;
        if f["id"] == id {
            match f["type"].as_str() {
                Some("gift_ack") => acked = true,
                Some("gift_event") => seen = true,
                _ => panic!("{f}"),
            }
        }
    }
    // The room delivered the event to every subscriber at once.
    watcher.send(json!({ "type": "ping" })).await;
    let (_, before) = watcher.until("pong").await;
    assert!(
        !before
            .iter()
            .any(|f| f["type"] == "gift_event" && f["room"] == room),
        "{before:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blocked_viewer_is_refused_and_dropped_on_every_node_until_unblocked() {
    for engine in engines().await {
        let double = StripeDouble::start(None).await;
        let a = server(&engine, &double).await;
        let b = second_node(&engine, &double).await;
        setup(&a).await;
        let name = engine.name;
        let mut fan = a.ws(FAN, Role::Viewer).await;
        assert_eq!(
            join(&mut fan, "room", ROOM).await["type"],
            "joined",
            "{name}"
        );
        assert_eq!(join(&mut fan, "video", VIDEO).await["type"], "joined");
        assert_eq!(join(&mut fan, "room", OTHER_ROOM).await["type"], "joined");
        let mut fan_b = match &b {
            Some(b) => {
                let mut w = b.ws(FAN, Role::Viewer).await;
                assert_eq!(join(&mut w, "room", ROOM).await["type"], "joined");
                assert_eq!(join(&mut w, "video", VIDEO).await["type"], "joined");
                Some(w)
            }
            None => None,
        };
        let mut fan2 = a.ws(FAN2, Role::Viewer).await;
        fan2.join(ROOM).await;
        fan2.join(OTHER_ROOM).await;

        block_me(&a, FAN, true).await;
        // Dropped at once from the creator's room and video, on both nodes.
        dropped(&mut fan, true).await;
        if let Some(w) = fan_b.as_mut() {
            dropped(w, true).await;
        }
        // Refused everywhere, nothing charged.
        let g = fan.gift(ROOM, "rose", 1, "blocked-ws").await;
        assert_eq!(
            (g["type"].as_str(), g["code"].as_str()),
            (Some("error"), Some("forbidden")),
            "{name}: {g}"
        );
        if let Some(w) = fan_b.as_mut() {
            let g = w.gift(ROOM, "rose", 1, "blocked-ws-b").await;
            assert_eq!(g["code"], "forbidden", "{g}");
        }
        let (st, v) = gift_video_http(&a, FAN, "blocked-http").await;
        assert_eq!((st, v["code"].as_str()), (403, Some("forbidden")), "{v}");
        let (st, v) = tip(&a, FAN, "blocked-tip").await;
        assert_eq!(
            (st, v["code"].as_str()),
            (403, Some("forbidden")),
            "{name}: {v}"
        );
        assert!(
            double.destination_charges().is_empty(),
            "no PaymentIntent was made"
        );
        for (field, id) in [("room", ROOM), ("video", VIDEO)] {
            let j = join(&mut fan, field, id).await;
            assert_eq!(
                (j["type"].as_str(), j["code"].as_str()),
                (Some("error"), Some("forbidden")),
                "{j}"
            );
        }
        if let Some(b) = &b {
            let mut w = b.ws(FAN, Role::Viewer).await;
            let j = join(&mut w, "room", ROOM).await;
            assert_eq!(j["code"], "forbidden", "refused on the other node too: {j}");
        }
        assert_eq!(a.wallet(FAN).await, 1000);
        // The other creator's room stays: FAN2's gift there reaches FAN.
        assert_eq!(
            fan2.gift(OTHER_ROOM, "rose", 1, "other-1").await["type"],
            "gift_ack"
        );
        let (ev, _) = fan.until("gift_event").await;
        assert_eq!(
            (ev["room"].as_str(), ev["id"].as_str()),
            (Some(OTHER_ROOM), Some("other-1"))
        );
        // Others in the creator's room are unaffected; FAN no longer hears it.
        not_subscribed(&mut fan, &mut fan2, ROOM, "room-1").await;

        let (st, v) = a
            .get("/v1/creators/me/blocks", &a.token(CREATOR, Role::Creator))
            .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["blocks"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(
            (
                v["blocks"][0]["user"].as_str(),
                v["blocks"][0]["blocked_by"].as_str()
            ),
            (Some(FAN), Some(CREATOR))
        );
        assert_eq!(v["next_cursor"], Value::Null);

        block_me(&a, FAN, false).await;
        assert_eq!(
            join(&mut fan, "room", ROOM).await["type"],
            "joined",
            "{name}"
        );
        let g = fan.gift(ROOM, "rose", 1, "blocked-ws").await;
        assert_eq!(
            g["type"], "gift_ack",
            "the refused id goes through now: {g}"
        );
        if let Some(b) = &b {
            let mut w = b.ws(FAN, Role::Viewer).await;
            assert_eq!(join(&mut w, "video", VIDEO).await["type"], "joined");
        }
        let (st, v) = gift_video_http(&a, FAN, "blocked-http").await;
        assert_eq!(st, 200, "{v}");
        let (st, v) = tip(&a, FAN, "blocked-tip").await;
        assert_ne!(v["code"], "forbidden", "{st} {v}");

        let (st, v) = a
            .get(
                "/v1/creators/me/moderation/audit",
                &a.token(CREATOR, Role::Creator),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let actions: Vec<(&str, &str, &str)> = v["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["action"].as_str().unwrap(),
                    x["actor"].as_str().unwrap(),
                    x["target"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            actions,
            vec![("unblock", CREATOR, FAN), ("block", CREATOR, FAN)],
            "{name}"
        );
        if let Some(b) = b {
            b.stop().await;
        }
        a.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blocks_survive_a_restart_rebuilt_from_the_ledger() {
    for engine in engines().await {
        let double = StripeDouble::start(None).await;
        let s = server(&engine, &double).await;
        setup(&s).await;
        block_me(&s, FAN, true).await;
        // The cache loses the block (Redis flushed, a process restarted):
        // the next start rebuilds it from the ledger.
        let counters = s.state().counters.clone();
        let generation = counters.blocks_generation().await.unwrap();
        assert!(counters
            .rebuild_blocks(CREATOR, &[], generation)
            .await
            .unwrap());
        assert!(!counters.is_blocked(CREATOR, FAN).await.unwrap());
        drop(counters);
        let s = s.restart().await;
        assert!(
            s.state().counters.is_blocked(CREATOR, FAN).await.unwrap(),
            "{}",
            engine.name
        );
        let mut fan = s.ws(FAN, Role::Viewer).await;
        let j = join(&mut fan, "room", ROOM).await;
        assert_eq!(j["code"], "forbidden", "{}: {j}", engine.name);
        let g = fan.gift(ROOM, "rose", 1, "after-restart").await;
        assert_eq!(g["code"], "forbidden", "{g}");
        assert_eq!(s.wallet(FAN).await, 1000);
        let mut fan2 = s.ws(FAN2, Role::Viewer).await;
        assert_eq!(
            fan2.gift(ROOM, "rose", 1, "fan2-ok").await["type"],
            "gift_ack"
        );
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_moderator_may_block_a_stranger_may_not_and_the_audit_names_the_actor() {
    for engine in engines().await {
        let double = StripeDouble::start(None).await;
        let s = server(&engine, &double).await;
        setup(&s).await;
        let name = engine.name;
        let cr = s.token(CREATOR, Role::Creator);
        // Moderators are any users; the creator adds them.
        for m in ["mod-1", "mod-2"] {
            let (st, v) = call(
                &s,
                Method::PUT,
                &format!("/v1/creators/me/moderators/{m}"),
                &cr,
            )
            .await;
            assert_eq!((st, &v), (200, &json!({ "user": m, "moderator": true })));
        }
        let (st, v) = s.get("/v1/creators/me/moderators", &cr).await;
        assert_eq!(st, 200, "{v}");
        let mods: Vec<(&str, &str)> = v["moderators"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["user"].as_str().unwrap(), m["added_by"].as_str().unwrap()))
            .collect();
        assert_eq!(mods, vec![("mod-1", CREATOR), ("mod-2", CREATOR)]);
        let m1 = s.token("mod-1", Role::Viewer);
        let (st, v) = s.get("/v1/users/me/moderating", &m1).await;
        assert_eq!((st, v), (200, json!({ "creators": [CREATOR] })));

        let path = |u: &str| format!("/v1/creators/{CREATOR}/blocks/{u}");
        let (st, v) = call(&s, Method::PUT, &path(FAN), &m1).await;
        assert_eq!(
            (st, &v),
            (200, &json!({ "user": FAN, "blocked": true })),
            "{name}"
        );
        let mut fan = s.ws(FAN, Role::Viewer).await;
        assert_eq!(fan.gift(ROOM, "rose", 1, "m-1").await["code"], "forbidden");
        // Strangers (another creator, an admin, a viewer) may not.
        for (who, role) in [
            (OTHER, Role::Creator),
            ("admin", Role::Admin),
            (FAN2, Role::Viewer),
        ] {
            let (st, v) = call(&s, Method::PUT, &path(FAN2), &s.token(who, role)).await;
            assert_eq!(
                (st, v["code"].as_str()),
                (403, Some("forbidden")),
                "{who}: {v}"
            );
        }
        let mut fan2 = s.ws(FAN2, Role::Viewer).await;
        assert_eq!(fan2.gift(ROOM, "rose", 1, "m-2").await["type"], "gift_ack");
        // A moderator may not block the creator or another moderator; the
        // creator may not block themself; the creator's viewer token is not
        // the creator.
        for u in [CREATOR, "mod-2"] {
            let (st, v) = call(&s, Method::PUT, &path(u), &m1).await;
            assert_eq!(
                (st, v["code"].as_str()),
                (403, Some("forbidden")),
                "{u}: {v}"
            );
        }
        let (st, v) = call(
            &s,
            Method::PUT,
            &format!("/v1/creators/me/blocks/{CREATOR}"),
            &cr,
        )
        .await;
        assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")), "{v}");
        let (st, v) = call(
            &s,
            Method::PUT,
            &path(FAN2),
            &s.token(CREATOR, Role::Viewer),
        )
        .await;
        assert_eq!((st, v["code"].as_str()), (403, Some("forbidden")), "{v}");
        // The moderator unblocks; once removed, they may not act any more.
        let (st, _) = call(&s, Method::DELETE, &path(FAN), &m1).await;
        assert_eq!(st, 200);
        assert_eq!(fan.gift(ROOM, "rose", 1, "m-3").await["type"], "gift_ack");
        let (st, _) = call(&s, Method::DELETE, "/v1/creators/me/moderators/mod-1", &cr).await;
        assert_eq!(st, 200);
        let (st, v) = call(&s, Method::PUT, &path(FAN), &m1).await;
        assert_eq!((st, v["code"].as_str()), (403, Some("forbidden")), "{v}");
        // The creator acts through their own path as well.
        let (st, _) = call(&s, Method::PUT, &path(FAN2), &cr).await;
        assert_eq!(st, 200);

        // The audit, newest first, two by two.
        let want = [
            ("block", CREATOR, FAN2),
            ("moderator_remove", CREATOR, "mod-1"),
            ("unblock", "mod-1", FAN),
            ("block", "mod-1", FAN),
            ("moderator_add", CREATOR, "mod-2"),
            ("moderator_add", CREATOR, "mod-1"),
        ];
        let mut got = Vec::new();
        let mut cursor = String::new();
        for _ in 0..4 {
            let (st, v) = s
                .get(
                    &format!("/v1/creators/me/moderation/audit?limit=2&cursor={cursor}"),
                    &cr,
                )
                .await;
            assert_eq!(st, 200, "{v}");
            for a in v["actions"].as_array().unwrap() {
                assert!(
                    a["at_ms"].as_i64().unwrap() > 0 && a["id"].as_i64().is_some(),
                    "{a}"
                );
                got.push((
                    a["action"].as_str().unwrap().to_string(),
                    a["actor"].as_str().unwrap().to_string(),
                    a["target"].as_str().unwrap().to_string(),
                ));
            }
            match v["next_cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => break,
            }
        }
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(got, want, "{name}");
        // Another creator's audit is their own (empty).
        let (st, v) = s
            .get(
                "/v1/creators/me/moderation/audit",
                &s.token(OTHER, Role::Creator),
            )
            .await;
        assert_eq!(
            (st, v),
            (200, json!({ "actions": [], "next_cursor": null }))
        );
        s.stop().await;
    }
}

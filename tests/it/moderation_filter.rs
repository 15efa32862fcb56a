//! Issue 17 items 2-4 (the message side of moderation), on every engine
//! pair, with two nodes where the engines are shared (Redis): a muted word
//! in a gift or tip message, spelled accented, spaced out or with a
//! Cyrillic look-alike, never reaches another viewer (room event, room
//! history, video feed) while the payment completes and the ledger has
//! it; the creator's inbox has the original; a held message appears once
//! as `gift_message` after approval and never after rejection; the
//! per-viewer message interval holds across nodes; settings are bounded.

use std::time::Duration;

use crate::common;

use common::server::{engines, EngineSpec, TestServer, Ws};
use giftstream::auth::Role;
use reqwest::Method;
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

/// Node A, and node B on the same engines when they are shared (Redis);
/// with the in-process engine "node B" is node A (nothing is shared
/// between processes there).
async fn nodes(engine: &EngineSpec) -> (TestServer, Option<TestServer>) {
    let tweak = |c: &mut giftstream::config::Config| {
        c.moderation.rules_cache_ms = 200;
        c.counters.combo_window_ms = 100_000;
    };
    let a = TestServer::start(engine, tweak).await;
    let b = if engine.counters_url.starts_with("redis") {
        Some(TestServer::start(engine, tweak).await)
    } else {
        None
    };
    (a, b)
}

async fn put(s: &TestServer, who: &str, path: &str, body: Value) -> (u16, Value) {
    let tok = s.token(who, Role::Creator);
    s.request(Method::PUT, path, Some(&tok), Some(body)).await
}

async fn join_inbox(ws: &mut Ws) {
    ws.send(json!({ "type": "join", "inbox": true })).await;
    ws.expect("joined").await;
}

/// A gift with a message over the socket; the ack (or error).
async fn gift_msg(ws: &mut Ws, room: &str, id: &str, message: &str) -> Value {
    ws.send(
        json!({ "type": "gift", "room": room, "gift": "rose", "count": 1,
                    "id": id, "message": message }),
    )
    .await;
    ws.until_id(id).await
}

/// The next `n` frames of type `ty`, other frames skipped.
async fn next_of(ws: &mut Ws, ty: &str, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(ws.until(ty).await.0);
    }
    out
}

/// Nothing but `pong` comes after a ping (room stats aside).
async fn nothing_more(ws: &mut Ws) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(json!({ "type": "ping" })).await;
    let v = ws.recv().await;
    assert_eq!(v["type"], "pong", "nothing more: {v}");
}

/// A kept-back event: no message, its state and an id.
fn assert_kept(ev: &Value, state: &str) -> String {
    assert!(ev.get("message").is_none(), "no message for viewers: {ev}");
    assert_eq!(ev["message_state"], state, "{ev}");
    let id = ev["message_id"].as_str().expect("message_id").to_string();
    assert!(id.starts_with('m'), "{ev}");
    id
}

const SPELLINGS: [&str; 4] = ["so BÀD!", "b a d", "b\u{0430}d", "B.A.D"];

async fn muted_words_never_reach_viewers(engine: &EngineSpec) {
    let (a, b) = nodes(engine).await;
    let other = b.as_ref().unwrap_or(&a);
    a.open_room("alice", "rm").await;
    let (st, v) = a
        .post(
            "/v1/videos",
            &a.token("alice", Role::Creator),
            json!({ "video": "vm" }),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = put(
        &a,
        "alice",
        "/v1/creators/me/moderation/words",
        json!({ "words": [{ "text": "bad", "mode": "word" }, { "text": "Spoiler" }] }),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["words"],
        json!([{ "text": "Spoiler", "mode": "word" }, { "text": "bad", "mode": "word" }])
    );
    a.grant("v", 1000, "g1").await;
    let mut viewer = other.ws("w", Role::Viewer).await;
    viewer.join("rm").await;
    let mut inbox = other.ws("alice", Role::Creator).await;
    join_inbox(&mut inbox).await;
    let mut sender = a.ws("v", Role::Viewer).await;
    for (i, m) in SPELLINGS.iter().enumerate() {
        let ack = gift_msg(&mut sender, "rm", &format!("k{i}"), m).await;
        assert_eq!(ack["type"], "gift_ack", "the gift goes through: {ack}");
    }
    let ack = gift_msg(&mut sender, "rm", "ok1", "good badge, not bad-ly meant").await;
    assert_eq!(ack["type"], "gift_ack", "{ack}");
    let ack = gift_msg(&mut sender, "rm", "ok2", "a fine badge").await;
    assert_eq!(ack["type"], "gift_ack", "{ack}");
    let events = next_of(&mut viewer, "gift_event", 6).await;
    let mut ids = Vec::new();
    for ev in &events[..4] {
        ids.push(assert_kept(ev, "filtered"));
    }
    // "bad-ly": `bad` is a whole word there (a separator ends it).
    assert_kept(&events[4], "filtered");
    assert_eq!(events[5]["message"], "a fine badge", "{}", events[5]);
    assert!(events[5].get("message_state").is_none());
    // The creator's inbox: the original and its state.
    let boxed = next_of(&mut inbox, "inbox_event", 6).await;
    for (i, m) in SPELLINGS.iter().enumerate() {
        let ev = &boxed[i]["event"];
        assert_eq!(
            (ev["message"].as_str(), ev["message_state"].as_str()),
            (Some(*m), Some("filtered")),
            "{ev}"
        );
        assert_eq!(ev["message_id"].as_str(), Some(ids[i].as_str()));
    }
    // History: a viewer resuming from the start never gets the text.
    let mut late = other.ws("late", Role::Viewer).await;
    late.send(json!({ "type": "resume", "room": "rm", "since": 0 }))
        .await;
    let (_, replay) = late.until("resumed").await;
    let replayed: Vec<&Value> = replay
        .iter()
        .filter(|e| e["type"] == "gift_event")
        .collect();
    assert_eq!(replayed.len(), 6, "{replay:?}");
    for ev in &replayed[..5] {
        assert_kept(ev, "filtered");
    }
    // A video's gift over HTTP, on the other node; its feed shows no text.
    let (st, v) = other
        .post(
            "/v1/videos/vm/gifts",
            &other.token("v", Role::Viewer),
            json!({ "gift": "rose", "count": 1, "id": "vk", "message": "ｂ ａ ｄ" }),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    a.settled().await;
    other.settled().await;
    let (st, page) = a.get("/v1/videos/vm", &a.token("x", Role::Viewer)).await;
    assert_eq!(st, 200, "{page}");
    assert_eq!(page["latest"].as_array().unwrap().len(), 1, "{page}");
    assert!(page["latest"][0]["message"].is_null(), "{page}");
    // The ledger has every gift (the money is real), none with the text.
    let tok = a.token("alice", Role::Creator);
    let (_, gifts) = a.get("/v1/creators/me/gifts?limit=100", &tok).await;
    let gifts = gifts["gifts"].as_array().unwrap().clone();
    assert_eq!(gifts.len(), 7, "{gifts:?}");
    let texts: Vec<&Value> = gifts.iter().map(|g| &g["message"]).collect();
    assert_eq!(texts.iter().filter(|m| m.is_null()).count(), 6, "{texts:?}");
    assert_eq!(a.wallet("v").await, 1000 - 7);
    // The review list has the originals.
    let (st, list) = other
        .get("/v1/creators/me/messages?state=filtered", &tok)
        .await;
    assert_eq!(st, 200, "{list}");
    let originals: Vec<&str> = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(originals.len(), 6, "{list}");
    for m in SPELLINGS {
        assert!(originals.contains(&m), "{m}: {list}");
    }
    assert_eq!(list["messages"][0]["reason"], "word:bad", "{list}");
    // A filtered message cannot be approved into the room.
    let (st, v) = a
        .post(
            &format!("/v1/creators/me/messages/{}/approve", ids[0]),
            &tok,
            json!({}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")), "{v}");
    nothing_more(&mut viewer).await;
    if let Some(b) = b {
        b.stop().await;
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_muted_word_in_any_spelling_never_reaches_viewers_while_the_gift_completes() {
    each_engine!(muted_words_never_reach_viewers);
}

async fn held_messages_appear_once_after_approval(engine: &EngineSpec) {
    let (a, b) = nodes(engine).await;
    let other = b.as_ref().unwrap_or(&a);
    a.open_room("hana", "rh").await;
    let (st, v) = put(
        &a,
        "hana",
        "/v1/creators/me/moderation/settings",
        json!({ "review_coins_below": 5 }),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v,
        json!({ "builtin_langs": [], "review_account_age_days": null,
                "review_coins_below": 5, "message_interval_ms": 0 })
    );
    a.grant("v", 1000, "g1").await;
    let mut viewer = other.ws("w", Role::Viewer).await;
    viewer.join("rh").await;
    let mut inbox = a.ws("hana", Role::Creator).await;
    join_inbox(&mut inbox).await;
    let mut sender = a.ws("v", Role::Viewer).await;
    let ack1 = gift_msg(&mut sender, "rh", "h1", "hello there").await;
    let ack2 = gift_msg(&mut sender, "rh", "h2", "second one").await;
    assert_eq!(
        (ack1["type"].as_str(), ack2["type"].as_str()),
        (Some("gift_ack"), Some("gift_ack"))
    );
    let evs = next_of(&mut viewer, "gift_event", 2).await;
    let id1 = assert_kept(&evs[0], "held");
    let id2 = assert_kept(&evs[1], "held");
    let boxed = next_of(&mut inbox, "inbox_event", 2).await;
    assert_eq!(boxed[0]["event"]["message"], "hello there");
    assert_eq!(boxed[0]["event"]["message_state"], "held");
    let tok = a.token("hana", Role::Creator);
    let (_, held) = other.get("/v1/creators/me/messages?state=held", &tok).await;
    assert_eq!(held["messages"].as_array().unwrap().len(), 2, "{held}");
    assert_eq!(held["messages"][0]["reason"], "coins_below", "{held}");
    // Approve on the other node: the viewer gets it once, with its own seq.
    let (st, v) = other
        .post(
            &format!("/v1/creators/me/messages/{id1}/approve"),
            &tok,
            json!({}),
        )
        .await;
    assert_eq!((st, v["state"].as_str()), (200, Some("approved")), "{v}");
    assert_eq!(v["decided_by"], "hana");
    let m = viewer.until("gift_message").await.0;
    assert_eq!(
        m,
        json!({ "type": "gift_message", "room": "rh", "seq": 3, "message_id": id1,
                "ref_seq": 1, "message": "hello there" })
    );
    // Again: answered, nothing published twice. Rejected: nothing public.
    let (st, _) = a
        .post(
            &format!("/v1/creators/me/messages/{id1}/approve"),
            &tok,
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = a
        .post(
            &format!("/v1/creators/me/messages/{id2}/reject"),
            &tok,
            json!({}),
        )
        .await;
    assert_eq!((st, v["state"].as_str()), (200, Some("rejected")), "{v}");
    let (st, v) = a
        .post(
            &format!("/v1/creators/me/messages/{id2}/approve"),
            &tok,
            json!({}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")), "{v}");
    nothing_more(&mut viewer).await;
    // History holds the approved message once and never the rejected one.
    let mut late = a.ws("late", Role::Viewer).await;
    late.send(json!({ "type": "resume", "room": "rh", "since": 0 }))
        .await;
    let (_, replay) = late.until("resumed").await;
    let texts: Vec<&Value> = replay
        .iter()
        .filter(|e| e["type"] == "gift_message")
        .collect();
    assert_eq!(texts.len(), 1, "{replay:?}");
    assert_eq!(texts[0]["message"], "hello there");
    assert!(!format!("{replay:?}").contains("second one"));
    // The creator's inbox got the approval too.
    let (ev, _) = inbox.until("inbox_event").await;
    assert_eq!(ev["event"]["type"], "gift_message", "{ev}");
    // Another creator may not decide it.
    let (st, v) = a
        .post(
            &format!("/v1/creators/hana/messages/{id1}/approve"),
            &a.token("mallory", Role::Creator),
            json!({}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (403, Some("forbidden")), "{v}");
    if let Some(b) = b {
        b.stop().await;
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_message_appears_once_after_approval_and_never_after_rejection() {
    each_engine!(held_messages_appear_once_after_approval);
}

async fn message_interval_holds_across_nodes(engine: &EngineSpec) {
    let (a, b) = nodes(engine).await;
    let other = b.as_ref().unwrap_or(&a);
    a.open_room("rita", "rr").await;
    let (st, v) = put(
        &a,
        "rita",
        "/v1/creators/me/moderation/settings",
        json!({ "message_interval_ms": 60000 }),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    a.grant("v", 100, "g1").await;
    let mut on_a = a.ws("v", Role::Viewer).await;
    let ack = gift_msg(&mut on_a, "rr", "r1", "first").await;
    assert_eq!(ack["type"], "gift_ack", "{ack}");
    // The second message within the interval, on the other node: refused
    // before any money moved; without a message the gift goes through.
    let mut on_b = other.ws("v", Role::Viewer).await;
    let refused = gift_msg(&mut on_b, "rr", "r2", "second").await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("rate_limited")),
        "{refused}"
    );
    assert_eq!(other.wallet("v").await, 99);
    on_b.send(json!({ "type": "gift", "room": "rr", "gift": "rose", "count": 1, "id": "r3" }))
        .await;
    assert_eq!(on_b.until_id("r3").await["type"], "gift_ack");
    // Another viewer is not limited by v's message.
    a.grant("u", 100, "g2").await;
    let mut u = other.ws("u", Role::Viewer).await;
    assert_eq!(
        gift_msg(&mut u, "rr", "u1", "mine").await["type"],
        "gift_ack"
    );
    if let Some(b) = b {
        b.stop().await;
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_message_interval_refuses_a_second_message_on_another_node() {
    each_engine!(message_interval_holds_across_nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moderation_settings_and_words_are_bounded() {
    let engine = common::server::embedded();
    let s = TestServer::start(&engine, |_| {}).await;
    let path = "/v1/creators/me/moderation/settings";
    for body in [
        json!({ "message_interval_ms": 60001 }),
        json!({ "message_interval_ms": -1 }),
        json!({ "builtin_langs": ["de"] }),
        json!({ "review_account_age_days": 0 }),
        json!({ "review_account_age_days": 366 }),
        json!({ "review_coins_below": 0 }),
        json!({ "surprise": 1 }),
    ] {
        let (st, v) = put(&s, "cara", path, body.clone()).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (400, Some("bad_request")),
            "{body}: {v}"
        );
    }
    let tok = s.token("cara", Role::Creator);
    let (st, v) = s.get(path, &tok).await;
    assert_eq!(
        (st, v["message_interval_ms"].as_i64()),
        (200, Some(0)),
        "nothing stored: {v}"
    );
    let good = json!({ "builtin_langs": ["fr", "en", "fr"], "review_account_age_days": 7,
                       "review_coins_below": null, "message_interval_ms": 5000 });
    let (st, v) = put(&s, "cara", path, good).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["builtin_langs"], json!(["fr", "en"]));
    assert_eq!(s.get(path, &tok).await.1, v);
    let words = "/v1/creators/me/moderation/words";
    for body in [
        json!({ "words": [{ "text": "x", "mode": "regex" }] }),
        json!({ "words": [{ "text": " .! " }] }),
        json!({ "words": [{ "text": "a".repeat(65) }] }),
        json!({ "words": (0..201).map(|i| json!({ "text": format!("w{i}") })).collect::<Vec<_>>() }),
    ] {
        let (st, v) = put(&s, "cara", words, body).await;
        assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")), "{v}");
    }
    // A viewer token cannot set a creator's rules.
    let (st, _) = s
        .request(
            Method::PUT,
            words,
            Some(&s.token("cara", Role::Viewer)),
            Some(json!({ "words": [] })),
        )
        .await;
    assert_eq!(st, 403);
    s.stop().await;
}

async fn tip_message_filtered_on(engine: &EngineSpec, ls: String) {
    let p = crate::payments::Pay::start(engine, Some(ls), |_| {}).await;
    p.s.open_room("tia", "tip-mod").await;
    p.onboard("tia").await;
    let (st, v) = put(
        &p.s,
        "tia",
        "/v1/creators/me/moderation/words",
        json!({ "words": [{ "text": "bad" }] }),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let mut watcher = p.s.ws("wanda", Role::Viewer).await;
    watcher.join("tip-mod").await;
    let mut inbox = p.s.ws("tia", Role::Creator).await;
    join_inbox(&mut inbox).await;
    let original = "b\u{0430}d stream";
    let (st, t) =
        p.s.post(
            "/v1/rooms/tip-mod/tips",
            &p.s.token("tom", Role::Viewer),
            json!({ "amount_cents": 500, "currency": "usd", "message": original, "id": "t1" }),
        )
        .await;
    assert_eq!(st, 201, "{t}");
    p.pay(t["payment_intent"].as_str().unwrap()).await;
    let (ev, _) = watcher.until("tip_event").await;
    assert_kept(&ev, "filtered");
    assert_eq!(ev["amount_cents"], 500, "{ev}");
    let (boxed, _) = inbox.until("inbox_event").await;
    assert_eq!(
        (
            boxed["event"]["message"].as_str(),
            boxed["event"]["message_state"].as_str()
        ),
        (Some(original), Some("filtered")),
        "{boxed}"
    );
    // The payment completes: the whole tip is the creator's.
    let mut paid = false;
    for _ in 0..200 {
        if p.s.earnings("tia").await["tips_cents"] == 500 {
            paid = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(paid, "the tip reached the ledger");
    let tok = p.s.token("tia", Role::Creator);
    let (_, list) =
        p.s.get("/v1/creators/me/messages?state=filtered", &tok)
            .await;
    assert_eq!(list["messages"][0]["kind"], "tip", "{list}");
    assert_eq!(list["messages"][0]["message"], original, "{list}");
    nothing_more(&mut watcher).await;
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_muted_word_in_a_tip_message_never_reaches_viewers_while_the_tip_completes() {
    let Some(ls) = common::services::stripe_url() else {
        return;
    };
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        tip_message_filtered_on(&engine, ls.clone()).await;
    }
}

/// A viewer token carrying the host platform's `acct_created` claim.
fn token_created(user: &str, created_s: u64) -> String {
    let now = giftstream::auth::unix_s();
    let c = giftstream::auth::Claims {
        sub: user.into(),
        role: Role::Viewer,
        exp: now + 600,
        iat: Some(now),
        nbf: None,
        scope: None,
        iss: None,
        aud: None,
        acct_created: Some(created_s),
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &c,
        &jsonwebtoken::EncodingKey::from_secret(common::server::SECRET.as_bytes()),
    )
    .unwrap()
}

async fn young_accounts_are_held(engine: &EngineSpec) {
    let (a, b) = nodes(engine).await;
    a.open_room("yara", "ry").await;
    let (st, v) = put(
        &a,
        "yara",
        "/v1/creators/me/moderation/settings",
        json!({ "review_account_age_days": 7 }),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let day = 86_400;
    let now = giftstream::auth::unix_s();
    let gift = |id: &str| json!({ "gift": "rose", "count": 1, "id": id, "message": "hi all" });
    let mut states = Vec::new();
    for (user, created) in [
        ("young", Some(now - day)),
        ("old", Some(now - 30 * day)),
        ("unknown", None),
    ] {
        a.grant(user, 10, &format!("g-{user}")).await;
        let tok = match created {
            Some(c) => token_created(user, c),
            None => a.token(user, Role::Viewer),
        };
        let url = format!("ws://{}/v1/ws?token={tok}", a.addr);
        let mut ws = Ws::connect(&url, giftstream::protocol::Encoding::Json)
            .await
            .expect("ws connects");
        let mut m = gift(user);
        m["type"] = json!("gift");
        m["room"] = json!("ry");
        ws.send(m).await;
        assert_eq!(ws.until_id(user).await["type"], "gift_ack");
    }
    let mut viewer = a.ws("w", Role::Viewer).await;
    viewer
        .send(json!({ "type": "resume", "room": "ry", "since": 0 }))
        .await;
    let (_, replay) = viewer.until("resumed").await;
    for e in replay.iter().filter(|e| e["type"] == "gift_event") {
        states.push((
            e["sender"].as_str().unwrap().to_string(),
            e["message_state"].as_str().map(str::to_string),
        ));
    }
    assert_eq!(
        states,
        [
            ("young".to_string(), Some("held".to_string())),
            ("old".to_string(), None),
            ("unknown".to_string(), None),
        ]
    );
    let (_, held) = a
        .get(
            "/v1/creators/me/messages?state=held",
            &a.token("yara", Role::Creator),
        )
        .await;
    assert_eq!(held["messages"][0]["reason"], "account_age", "{held}");
    if let Some(b) = b {
        b.stop().await;
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_of_accounts_younger_than_the_review_age_are_held() {
    each_engine!(young_accounts_are_held);
}

//! Videos as first-class targets (issue 13 item 1): a video's feed
//! (`join`/`resume`/`gift` with `"video"`), gift messages, the video's page
//! and a creator's video list, on every engine pair, and across two server
//! processes.

use crate::common;

use common::server::{engines, TestServer, Ws};
use giftstream::auth::Role;
use giftstream::protocol::Encoding;
use serde_json::{json, Value};

/// Register `video` for `creator` (with `title`), expecting 201.
async fn register(s: &TestServer, creator: &str, video: &str, title: Option<&str>) -> Value {
    let mut body = json!({ "video": video });
    if let Some(t) = title {
        body["title"] = json!(t);
    }
    let (st, v) = s
        .post("/v1/videos", &s.token(creator, Role::Creator), body)
        .await;
    assert_eq!(st, 201, "register {video}: {v}");
    v
}

async fn join_video(ws: &mut Ws, video: &str) -> Value {
    ws.send(json!({ "type": "join", "video": video })).await;
    ws.expect("joined").await
}

/// A gift on a video over the socket; the ack or error.
async fn ws_gift(ws: &mut Ws, video: &str, id: &str, message: Option<&str>) -> Value {
    let mut m = json!({ "type": "gift", "video": video, "gift": "rose", "count": 1, "id": id });
    if let Some(t) = message {
        m["message"] = json!(t);
    }
    ws.send(m).await;
    ws.until_id(id).await
}

/// `GET /v1/videos/{video}` once the ledger holds `gifts` of its gifts.
async fn page_with(s: &TestServer, video: &str, gifts: i64) -> Value {
    s.settled().await;
    let token = s.token("anyone", Role::Viewer);
    for _ in 0..200 {
        let (st, v) = s.get(&format!("/v1/videos/{video}"), &token).await;
        assert_eq!(st, 200, "{v}");
        if v["totals"]["gifts"] == gifts {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the page of {video} never showed {gifts} gifts");
}

/// Every field of a video's `gift_event` but `ts`, and that it names no room.
fn check_event(ev: &Value, video: &str, seq: u64, sender: &str, message: Option<&str>) {
    assert_eq!(ev["type"], "gift_event", "{ev}");
    assert_eq!(ev["video"], video, "{ev}");
    assert!(
        ev.get("room").is_none(),
        "a video's event names no room: {ev}"
    );
    assert_eq!(ev["seq"], seq, "{ev}");
    assert_eq!(ev["sender"], sender, "{ev}");
    assert_eq!(ev["gift"], "rose", "{ev}");
    assert_eq!(ev["count"], 1, "{ev}");
    match message {
        Some(m) => assert_eq!(ev["message"], m, "{ev}"),
        None => assert!(ev.get("message").is_none(), "no message: {ev}"),
    }
}

#[tokio::test]
async fn a_video_gift_with_a_message_reaches_its_viewers_once_and_shows_on_its_page() {
    for engine in engines().await {
        let s = TestServer::start(&engine, |_| {}).await;
        let name = engine.name;
        let reg = register(&s, "vera", "clip", Some("Sunset timelapse 🌅")).await;
        assert_eq!(reg["title"], "Sunset timelapse 🌅", "{name}");
        s.grant("fan", 1000, "g-fan").await;
        s.grant("fan2", 1000, "g-fan2").await;
        let mut json_watcher = s.ws("w1", Role::Viewer).await;
        let joined = join_video(&mut json_watcher, "clip").await;
        assert_eq!(joined["video"], "clip", "{name}: {joined}");
        assert!(joined.get("room").is_none(), "{name}: {joined}");
        assert_eq!(joined["seq"], 0, "{name}: {joined}");
        let mut packed_watcher = s.ws_enc("w2", Role::Viewer, Encoding::MsgPack).await;
        join_video(&mut packed_watcher, "clip").await;

        let mut sender = s.ws("fan", Role::Viewer).await;
        let ack = ws_gift(&mut sender, "clip", "m1", Some("great video!")).await;
        assert_eq!(
            (ack["type"].as_str(), ack["seq"].as_u64()),
            (Some("gift_ack"), Some(1)),
            "{name}: {ack}"
        );
        // Over HTTP, with a message; then one without.
        let (st, ack) = s
            .post(
                "/v1/videos/clip/gifts",
                &s.token("fan2", Role::Viewer),
                json!({ "gift": "rose", "count": 1, "id": "h1", "message": "merci ✨" }),
            )
            .await;
        assert_eq!((st, ack["seq"].as_u64()), (200, Some(2)), "{name}: {ack}");
        let ack = ws_gift(&mut sender, "clip", "m2", None).await;
        assert_eq!(ack["seq"], 3, "{name}: {ack}");
        // A replay answers the first ack and keeps the first message.
        let again = ws_gift(&mut sender, "clip", "m1", Some("another text")).await;
        assert_eq!(
            (again["seq"].as_u64(), again["balance"].as_i64()),
            (Some(1), ack["balance"].as_i64().map(|b| b + 1)),
            "{name}: {again}"
        );

        for w in [&mut json_watcher, &mut packed_watcher] {
            check_event(
                &w.expect("gift_event").await,
                "clip",
                1,
                "fan",
                Some("great video!"),
            );
            check_event(
                &w.expect("gift_event").await,
                "clip",
                2,
                "fan2",
                Some("merci ✨"),
            );
            check_event(&w.expect("gift_event").await, "clip", 3, "fan", None);
            w.ping().await;
        }
        // Nothing else came: no duplicate of the replayed gift.
        json_watcher.send(json!({ "type": "ping" })).await;
        assert_eq!(json_watcher.recv().await["type"], "pong", "{name}");

        let page = page_with(&s, "clip", 3).await;
        assert_eq!(page["video"], "clip", "{name}");
        assert_eq!(page["creator"], "vera", "{name}");
        assert_eq!(page["title"], "Sunset timelapse 🌅", "{name}");
        assert!(page["created_ms"].as_i64().unwrap() > 0, "{name}");
        let rose = s.state().catalog.get("rose").unwrap().clone();
        assert_eq!(
            page["totals"],
            json!({ "gifts": 3, "coins": 3 * rose.coins, "diamonds": 3 * rose.diamonds }),
            "{name}"
        );
        assert_eq!(
            page["top"],
            json!([
                { "user": "fan", "diamonds": 2 * rose.diamonds },
                { "user": "fan2", "diamonds": rose.diamonds },
            ]),
            "{name}"
        );
        let latest = page["latest"].as_array().unwrap();
        let seqs: Vec<u64> = latest.iter().map(|g| g["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, vec![3, 2, 1], "{name}: newest first");
        assert_eq!(latest[0]["message"], Value::Null, "{name}");
        assert_eq!(latest[1]["message"], "merci ✨", "{name}");
        assert_eq!(latest[1]["sender"], "fan2", "{name}");
        assert_eq!(latest[2]["message"], "great video!", "{name}");
        assert_eq!(latest[2]["coins"], rose.coins, "{name}");
        assert_eq!(latest[2]["count"], 1, "{name}");
        // Rooms keep their shape: a room gift with a message names the room.
        s.open_room("vera", "live").await;
        let mut room_watcher = s.ws("w3", Role::Viewer).await;
        room_watcher.join("live").await;
        sender
            .send(json!({ "type": "gift", "room": "live", "gift": "rose", "count": 1, "id": "r1", "message": "hi room" }))
            .await;
        let ev = room_watcher.expect("gift_event").await;
        assert_eq!(
            (ev["room"].as_str(), ev["message"].as_str()),
            (Some("live"), Some("hi room")),
            "{name}: {ev}"
        );
        assert!(ev.get("video").is_none(), "{name}: {ev}");
        s.stop().await;
    }
}

#[tokio::test]
async fn resume_on_a_video_replays_what_the_viewer_missed() {
    for engine in engines().await {
        let s = TestServer::start(&engine, |_| {}).await;
        let name = engine.name;
        register(&s, "vera", "rv", None).await;
        s.grant("fan", 1000, "g").await;
        let mut sender = s.ws("fan", Role::Viewer).await;
        let mut w = s.ws("w", Role::Viewer).await;
        join_video(&mut w, "rv").await;
        ws_gift(&mut sender, "rv", "a1", Some("one")).await;
        check_event(&w.expect("gift_event").await, "rv", 1, "fan", Some("one"));
        w.send(json!({ "type": "leave", "video": "rv" })).await;
        let left = w.expect("left").await;
        assert_eq!(left["video"], "rv", "{name}: {left}");
        assert!(left.get("room").is_none(), "{name}: {left}");
        for i in 2..=4 {
            let ack = ws_gift(&mut sender, "rv", &format!("a{i}"), Some(&format!("n{i}"))).await;
            assert_eq!(ack["seq"], i, "{name}: {ack}");
        }
        // A new socket (the viewer reconnected) resumes after seq 1.
        let mut back = s.ws("w", Role::Viewer).await;
        back.send(json!({ "type": "resume", "video": "rv", "since": 1 }))
            .await;
        for seq in 2..=4u64 {
            let ev = back.expect("gift_event").await;
            check_event(&ev, "rv", seq, "fan", Some(&format!("n{seq}")));
        }
        let resumed = back.expect("resumed").await;
        assert_eq!(
            (resumed["video"].as_str(), resumed["seq"].as_u64()),
            (Some("rv"), Some(4)),
            "{name}: {resumed}"
        );
        // And it is live again, once.
        ws_gift(&mut sender, "rv", "a5", None).await;
        check_event(&back.expect("gift_event").await, "rv", 5, "fan", None);
        back.ping().await;
        s.stop().await;
    }
}

#[tokio::test]
async fn a_creators_videos_page_with_a_cursor_newest_first() {
    for engine in engines().await {
        let s = TestServer::start(&engine, |_| {}).await;
        let name = engine.name;
        for i in 0..5 {
            register(&s, "vera", &format!("v{i}"), Some(&format!("title {i}"))).await;
            // Distinct registration times, so the order is known.
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        register(&s, "other", "not-vera", None).await;
        // Re-registering by the creator updates the title.
        register(&s, "vera", "v2", Some("renamed")).await;
        let token = s.token("anyone", Role::Viewer);
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                None => "/v1/creators/vera/videos?limit=2".to_string(),
                Some(c) => format!("/v1/creators/vera/videos?limit=2&cursor={c}"),
            };
            let (st, v) = s.get(&path, &token).await;
            assert_eq!(st, 200, "{name}: {v}");
            pages += 1;
            let videos = v["videos"].as_array().unwrap();
            assert!(videos.len() <= 2, "{name}: {v}");
            for e in videos {
                seen.push((e["video"].as_str().unwrap().to_string(), e["title"].clone()));
            }
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(pages, 3, "{name}");
        let ids: Vec<&str> = seen.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(ids, vec!["v4", "v3", "v2", "v1", "v0"], "{name}");
        assert_eq!(seen[2].1, "renamed", "{name}");
        assert_eq!(seen[0].1, "title 4", "{name}");
        let (st, v) = s.get("/v1/creators/vera/videos", &token).await;
        assert_eq!(
            (st, v["videos"].as_array().unwrap().len()),
            (200, 5),
            "{name}: default limit"
        );
        assert_eq!(v["next_cursor"], Value::Null, "{name}");
        for bad in [
            "cursor=%21%21",
            "cursor=bm90LWEtY3Vyc29y",
            "limit=0",
            "limit=101",
            "limit=x",
        ] {
            let (st, v) = s
                .get(&format!("/v1/creators/vera/videos?{bad}"), &token)
                .await;
            assert_eq!(
                (st, v["code"].as_str()),
                (400, Some("bad_request")),
                "{name}: {bad}: {v}"
            );
        }
        let (st, v) = s.get("/v1/videos/nope", &token).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (404, Some("unknown_video")),
            "{name}: {v}"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn bad_messages_and_titles_are_refused_and_charge_nothing() {
    for engine in engines().await {
        let s = TestServer::start(&engine, |_| {}).await;
        let name = engine.name;
        register(&s, "vera", "bv", None).await;
        s.open_room("vera", "br").await;
        s.grant("fan", 100, "g").await;
        let mut ws = s.ws("fan", Role::Viewer).await;
        let long = "é".repeat(151);
        let bad = [
            long.as_str(),
            "bell\u{7}",
            "new\nline",
            "evil\u{202E}txt",
            "\u{2066}x",
        ];
        for (i, m) in bad.iter().enumerate() {
            for at in [json!({ "video": "bv" }), json!({ "room": "br" })] {
                let id = format!("b{i}-{}", at.as_object().unwrap().keys().next().unwrap());
                let mut msg =
                    json!({ "type": "gift", "gift": "rose", "count": 1, "id": id, "message": m });
                msg.as_object_mut()
                    .unwrap()
                    .extend(at.as_object().unwrap().clone());
                ws.send(msg).await;
                let e = ws.until_id(&id).await;
                assert_eq!(
                    (e["type"].as_str(), e["code"].as_str()),
                    (Some("error"), Some("bad_request")),
                    "{name}: {m:?}: {e}"
                );
            }
            let (st, v) = s
                .post(
                    "/v1/videos/bv/gifts",
                    &s.token("fan", Role::Viewer),
                    json!({ "gift": "rose", "count": 1, "id": format!("h{i}"), "message": m }),
                )
                .await;
            assert_eq!(
                (st, v["code"].as_str(), v["id"].as_str()),
                (400, Some("bad_request"), Some(format!("h{i}").as_str())),
                "{name}: {m:?}: {v}"
            );
        }
        // 150 characters is fine.
        let ok = "é".repeat(150);
        let ack = ws_gift(&mut ws, "bv", "fine", Some(&ok)).await;
        assert_eq!(ack["type"], "gift_ack", "{name}: {ack}");
        let rose = s.state().catalog.get("rose").unwrap().coins;
        assert_eq!(
            s.wallet("fan").await,
            100 - rose,
            "{name}: only the good gift was charged"
        );
        let page = page_with(&s, "bv", 1).await;
        assert_eq!(page["latest"][0]["message"], ok.as_str(), "{name}");
        // Titles follow the same rule (at most 100).
        let creator = s.token("vera", Role::Creator);
        for t in ["x".repeat(101), "a\u{202E}b".into(), "tab\t".into()] {
            let (st, v) = s
                .post("/v1/videos", &creator, json!({ "video": "bt", "title": t }))
                .await;
            assert_eq!(
                (st, v["code"].as_str()),
                (400, Some("bad_request")),
                "{name}: {t:?}: {v}"
            );
        }
        let (st, _) = s.get("/v1/videos/bt", &creator).await;
        assert_eq!(st, 404, "{name}: a refused registration registers nothing");
        // Join/resume/gift name exactly one of room and video.
        for m in [
            json!({ "type": "join" }),
            json!({ "type": "join", "room": "br", "video": "bv" }),
            json!({ "type": "resume", "since": 0 }),
        ] {
            ws.send(m.clone()).await;
            let e = ws.expect("error").await;
            assert_eq!(e["code"], "bad_request", "{name}: {m}: {e}");
        }
        ws.send(json!({ "type": "join", "video": "no-such-video" }))
            .await;
        assert_eq!(ws.expect("error").await["code"], "unknown_video", "{name}");
        let e = ws_gift(&mut ws, "no-such-video", "u1", None).await;
        assert_eq!(e["code"], "unknown_video", "{name}: {e}");
        s.stop().await;
    }
}

/// Two server processes on one Redis and one PostgreSQL: a video gift sent
/// on node B, over the socket and over HTTP, reaches a viewer of the video
/// on node A once, with its message; node A's page shows both once settled.
#[tokio::test]
async fn a_video_gift_on_node_b_reaches_a_viewer_on_node_a_once_with_its_message() {
    use crate::multiprocess::{eventually, two_nodes};
    let Some((_s, a, b)) = two_nodes(&[]).await else {
        return;
    };
    let (st, v) = a
        .post(
            "/v1/videos",
            &a.token("vera", Role::Creator),
            json!({ "video": "xv", "title": "cross" }),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    a.grant("fan", 1000, "g").await;
    let mut watcher = a.ws("watcher", Role::Viewer).await;
    let joined = join_video(&mut watcher, "xv").await;
    assert_eq!(joined["seq"], 0, "{joined}");
    let mut sender = b.ws("fan", Role::Viewer).await;
    for i in 1..=5u64 {
        let ack = ws_gift(
            &mut sender,
            "xv",
            &format!("x{i}"),
            Some(&format!("hello {i}")),
        )
        .await;
        assert_eq!(ack["seq"], i, "{ack}");
    }
    let (st, ack) = b
        .post(
            "/v1/videos/xv/gifts",
            &b.token("fan", Role::Viewer),
            json!({ "gift": "rose", "count": 1, "id": "http-1", "message": "via http" }),
        )
        .await;
    assert_eq!((st, ack["seq"].as_u64()), (200, Some(6)), "{ack}");
    for seq in 1..=5u64 {
        let ev = watcher.expect("gift_event").await;
        check_event(&ev, "xv", seq, "fan", Some(&format!("hello {seq}")));
    }
    check_event(
        &watcher.expect("gift_event").await,
        "xv",
        6,
        "fan",
        Some("via http"),
    );
    watcher.ping().await; // no duplicate came before the pong
                          // A second viewer on B resumes from seq 3 (B's history: Redis stream).
    let mut late = b.ws("late", Role::Viewer).await;
    late.send(json!({ "type": "resume", "video": "xv", "since": 3 }))
        .await;
    for seq in 4..=6u64 {
        assert_eq!(late.expect("gift_event").await["seq"], seq);
    }
    assert_eq!(late.expect("resumed").await["seq"], 6);
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/videos/xv", a.addr);
    let token = a.token("anyone", Role::Viewer);
    let page = |http: reqwest::Client, url: String, token: String| async move {
        let v: Value = http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("http")
            .json()
            .await
            .expect("json");
        v
    };
    eventually("node A's page shows the 6 gifts", || {
        let got = page(http.clone(), url.clone(), token.clone());
        async move { got.await["totals"]["gifts"] == 6 }
    })
    .await;
    let page = page(http, url, token).await;
    assert_eq!(page["title"], "cross", "{page}");
    assert_eq!(page["latest"][0]["message"], "via http", "{page}");
    assert_eq!(page["latest"][5]["message"], "hello 1", "{page}");
}

/// The ledger's video reads on SQLite and PostgreSQL: the page from
/// settled gift rows (messages kept, top by diamonds then user, latest
/// newest first), the list's order and key paging, and the title rule.
#[tokio::test]
async fn the_ledgers_video_reads_agree_on_sqlite_and_postgres() {
    use giftstream::ledger::{self, Ledger};
    use giftstream::model::{Batch, PendingGift, Target};
    let mut ledgers: Vec<(&str, std::sync::Arc<dyn Ledger>)> =
        vec![("sqlite", ledger::open("sqlite::memory:", 4).await.unwrap())];
    if let Some(url) = common::services::fresh_postgres_url().await {
        ledgers.push(("postgres", ledger::open(&url, 4).await.unwrap()));
    }
    for (name, l) in ledgers {
        for v in ["va", "vb", "vc"] {
            l.open_target(&Target::video(v), "cc").await.unwrap();
        }
        l.open_target(&Target::video("elsewhere"), "dd")
            .await
            .unwrap();
        assert!(
            l.set_video_title("va", "cc", "A title").await.unwrap(),
            "{name}"
        );
        assert!(
            !l.set_video_title("va", "dd", "stolen").await.unwrap(),
            "{name}: not theirs"
        );
        assert!(l.set_video_title("vb", "cc", "B").await.unwrap(), "{name}");
        assert!(
            l.set_video_title("vb", "cc", "").await.unwrap(),
            "{name}: cleared"
        );
        let gift = |seq: u64, sender: &str, diamonds: i64, message: Option<&str>| PendingGift {
            target: "video:va".into(),
            seq,
            sender: sender.into(),
            client_id: format!("c{seq}"),
            creator: "cc".into(),
            gift: "rose".into(),
            count: 1,
            coins: diamonds,
            diamonds,
            balance_after: 0,
            ts: 1_000 + seq as i64,
            message: message.map(String::from),
        };
        for (u, coins) in [("x", 10), ("y", 10), ("z", 10)] {
            let op = giftstream::ledger::CreditOp {
                op_id: format!("grant:{u}"),
                kind: "grant".into(),
                user: u.into(),
                coins,
            };
            l.credit(&op).await.unwrap();
        }
        let batch = Batch {
            id: "b1".into(),
            gifts: vec![
                gift(1, "x", 3, Some("first")),
                gift(2, "y", 2, None),
                gift(3, "z", 3, Some("third ✨")),
                gift(4, "y", 1, None),
            ],
            ticket_max: 4,
        };
        assert!(l.commit_batch(&batch).await.unwrap(), "{name}");
        let page = l.video_page("va").await.unwrap().expect("va");
        assert_eq!(
            (page.creator.as_str(), page.title.as_deref()),
            ("cc", Some("A title")),
            "{name}"
        );
        assert_eq!(
            (page.totals.gifts, page.totals.coins, page.totals.diamonds),
            (4, 9, 9),
            "{name}"
        );
        let top: Vec<(&str, i64)> = page
            .top
            .iter()
            .map(|t| (t.user.as_str(), t.diamonds))
            .collect();
        assert_eq!(
            top,
            vec![("x", 3), ("y", 3), ("z", 3)],
            "{name}: ties by user"
        );
        let latest: Vec<(u64, Option<&str>)> = page
            .latest
            .iter()
            .map(|g| (g.seq, g.message.as_deref()))
            .collect();
        assert_eq!(
            latest,
            vec![
                (4, None),
                (3, Some("third ✨")),
                (2, None),
                (1, Some("first"))
            ],
            "{name}"
        );
        assert_eq!(
            l.video_page("vb").await.unwrap().unwrap().title,
            None,
            "{name}"
        );
        assert!(l.video_page("nope").await.unwrap().is_none(), "{name}");
        // Newest first by (created_ms, video); a page goes on after its last key.
        let all = l.creator_videos("cc", 10, None).await.unwrap();
        assert_eq!(all.len(), 3, "{name}");
        let keys: Vec<(i64, String)> = all
            .iter()
            .map(|v| (v.created_ms, v.video.clone()))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(keys, sorted, "{name}: newest first, then by id");
        let first = l.creator_videos("cc", 1, None).await.unwrap();
        let rest = l
            .creator_videos(
                "cc",
                10,
                Some((first[0].created_ms, first[0].video.clone())),
            )
            .await
            .unwrap();
        let paged: Vec<String> = first.iter().chain(&rest).map(|v| v.video.clone()).collect();
        let want: Vec<String> = all.iter().map(|v| v.video.clone()).collect();
        assert_eq!(paged, want, "{name}");
    }
}

/// A video feed coalesces like a room's, and an overlay token (scoped to
/// one room) may not watch a video.
#[tokio::test]
async fn a_video_feed_coalesces_and_an_overlay_token_may_not_join_it() {
    let s = TestServer::start(&common::server::embedded(), |_| {}).await;
    register(&s, "vera", "cv", None).await;
    s.open_room("vera", "live").await;
    s.grant("fan", 100, "g").await;
    let mut w = s.ws("w", Role::Viewer).await;
    w.send(json!({ "type": "join", "video": "cv", "coalesce": true }))
        .await;
    w.expect("joined").await;
    let mut sender = s.ws("fan", Role::Viewer).await;
    for i in 1..=3 {
        ws_gift(&mut sender, "cv", &format!("c{i}"), None).await;
    }
    // Coalesced steps (one, unless the gifts straddled a step): each the
    // streak's latest event; the last is "x3".
    let mut steps = 0;
    loop {
        let ev = w.expect("gift_event").await;
        steps += 1;
        assert_eq!(ev["video"], "cv", "{ev}");
        assert_eq!(ev["combo"], ev["seq"], "the streak so far: {ev}");
        if ev["seq"] == 3 {
            break;
        }
    }
    assert!(steps < 3, "coalesced: {steps} events for 3 gifts");
    w.ping().await;

    let (st, v) = s
        .post(
            "/v1/creators/me/overlay-tokens",
            &s.token("vera", Role::Creator),
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
    overlay.join("live").await;
    overlay.send(json!({ "type": "join", "video": "cv" })).await;
    assert_eq!(overlay.expect("error").await["code"], "forbidden");
    s.stop().await;
}

//! Bad input, authentication, slow viewers, limits and shutdown, over real
//! sockets. Every bad input gets its typed error and the socket stays sane.

use crate::common;

use std::time::Duration;

use common::server::{embedded, engines, TestServer, Ws, SECRET};
use giftstream::auth::Role;
use giftstream::protocol::Encoding;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn every_bad_input_gets_its_code_and_the_socket_still_answers() {
    for engine in engines().await {
        let s = TestServer::start(&engine, |c| {
            c.hub.frame_len_max = 512;
        })
        .await;
        s.open_room("alice", "r").await;
        s.open_room("alice", "ended").await;
        let (st, _) = s
            .request(
                reqwest::Method::DELETE,
                "/v1/rooms/ended",
                Some(&s.token("alice", Role::Creator)),
                None,
            )
            .await;
        assert_eq!(st, 200);
        s.grant("v", 100, "g").await;
        let mut ws = s.ws("v", Role::Viewer).await;
        let long_id = "x".repeat(65);
        let cases: Vec<(String, &str, Option<&str>)> = vec![
            ("not json".into(), "bad_request", None),
            (r#"{"room":"r"}"#.into(), "bad_request", None),
            (r#"{"type":"dance"}"#.into(), "bad_request", None),
            (
                r#"{"type":"gift","room":"r","gift":"rose","count":0,"id":"c0"}"#.into(),
                "bad_request",
                Some("c0"),
            ),
            (
                r#"{"type":"gift","room":"r","gift":"rose","count":100,"id":"c100"}"#.into(),
                "bad_request",
                Some("c100"),
            ),
            (
                r#"{"type":"gift","room":"r","gift":"rose","count":-1,"id":"cneg"}"#.into(),
                "bad_request",
                Some("cneg"),
            ),
            (
                r#"{"type":"gift","room":"r","gift":"rose","count":"1","id":"cstr"}"#.into(),
                "bad_request",
                Some("cstr"),
            ),
            (
                r#"{"type":"gift","room":"r","gift":"unicorn","count":1,"id":"ug"}"#.into(),
                "unknown_gift",
                Some("ug"),
            ),
            (
                r#"{"type":"gift","room":"nowhere","gift":"rose","count":1,"id":"ur"}"#.into(),
                "unknown_room",
                Some("ur"),
            ),
            (
                format!(r#"{{"type":"gift","room":"r","gift":"rose","count":1,"id":"{long_id}"}}"#),
                "bad_request",
                None,
            ),
            (
                format!(r#"{{"type":"ping","pad":"{}"}}"#, "p".repeat(600)),
                "bad_request",
                None,
            ),
            (
                r#"{"type":"gift","room":"ended","gift":"rose","count":1,"id":"ended"}"#.into(),
                "room_not_live",
                Some("ended"),
            ),
            (
                r#"{"type":"join","room":"nowhere"}"#.into(),
                "unknown_room",
                None,
            ),
            (
                r#"{"type":"join","room":"ended"}"#.into(),
                "room_not_live",
                None,
            ),
            (
                r#"{"type":"join","room":"bad room"}"#.into(),
                "bad_request",
                None,
            ),
            (
                r#"{"type":"gift","room":"r","gift":"lion","count":1,"id":"poor"}"#.into(),
                "insufficient_funds",
                Some("poor"),
            ),
        ];
        for (frame, code, id) in cases {
            ws.send_raw(Message::text(frame.clone())).await;
            let e = ws.expect("error").await;
            assert_eq!(e["code"], code, "{}: frame {frame}", engine.name);
            assert_eq!(e["id"].as_str(), id, "{}: frame {frame}", engine.name);
            assert!(!e["message"].as_str().unwrap().is_empty());
            ws.ping().await;
        }
        // Binary garbage on a JSON socket is decoded as MessagePack and refused.
        ws.send_raw(Message::binary(vec![0xc1, 0xff, 0x00])).await;
        assert_eq!(ws.expect("error").await["code"], "bad_request");
        ws.ping().await;
        assert_eq!(s.wallet("v").await, 100, "nothing was charged by bad input");
        s.stop().await;
    }
}

#[tokio::test]
async fn a_frame_over_the_close_limit_closes_with_1009() {
    let s = TestServer::start(&embedded(), |c| {
        c.hub.frame_len_max = 256;
        c.hub.frame_close_len_max = 1024;
    })
    .await;
    let mut ws = s.ws("v", Role::Viewer).await;
    ws.send_raw(Message::text(format!(
        r#"{{"type":"ping","pad":"{}"}}"#,
        "p".repeat(4096)
    )))
    .await;
    let close = ws.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
    // The server is fine: a new socket works.
    let mut ws2 = s.ws("v", Role::Viewer).await;
    ws2.ping().await;
    s.stop().await;
}

fn forged(claims: serde_json::Value, alg_none: bool) -> String {
    use base64::Engine;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    if alg_none {
        format!(
            "{}.{}.",
            b64(&json!({"alg":"none","typ":"JWT"})),
            b64(&claims)
        )
    } else {
        let key = jsonwebtoken::EncodingKey::from_secret(b"some-other-secret-entirely");
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
    }
}

#[tokio::test]
async fn the_auth_matrix() {
    let s = TestServer::start(&embedded(), |_| {}).await;
    s.open_room("alice", "r").await;
    let exp = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600) as i64;
    let bad_sig = forged(json!({"sub":"v","role":"admin","exp":exp}), false);
    let none = forged(json!({"sub":"v","role":"admin","exp":exp}), true);
    let expired = {
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"sub":"v","role":"viewer","exp": exp - 7200}),
            &key,
        )
        .unwrap()
    };
    let bad_sub = {
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"sub":"a/b","role":"viewer","exp": exp}),
            &key,
        )
        .unwrap()
    };
    for (what, token) in [
        ("bad signature", &bad_sig),
        ("alg none", &none),
        ("expired", &expired),
        ("malformed sub", &bad_sub),
    ] {
        let (st, v) = s.get("/v1/wallet", token).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (401, Some("unauthorized")),
            "{what}"
        );
        let ws = Ws::connect(
            &format!("ws://{}/v1/ws?token={token}", s.addr),
            Encoding::Json,
        )
        .await;
        match ws {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 401, "{what}")
            }
            other => panic!(
                "{what}: upgrade must be refused, got {:?}",
                other.map(|_| ())
            ),
        }
    }
    let (st, v) = s
        .request(reqwest::Method::GET, "/v1/wallet", None, None)
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (401, Some("unauthorized")),
        "no token"
    );
    assert!(
        Ws::connect(&format!("ws://{}/v1/ws", s.addr), Encoding::Json)
            .await
            .is_err(),
        "no token on the socket"
    );

    let viewer = s.token("v", Role::Viewer);
    let (st, v) = s.post("/v1/rooms", &viewer, json!({"room":"mine"})).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("forbidden")),
        "viewer opens a room"
    );
    let (st, _) = s
        .post(
            "/v1/admin/grants",
            &viewer,
            json!({"user":"v","coins":5,"id":"x"}),
        )
        .await;
    assert_eq!(st, 403, "non-admin grant");
    let (st, _) = s
        .post(
            "/v1/admin/grants",
            &s.token("alice", Role::Creator),
            json!({"user":"v","coins":5,"id":"x"}),
        )
        .await;
    assert_eq!(st, 403, "creator grant");
    let (st, _) = s
        .get(
            "/v1/creators/alice/earnings",
            &s.token("bob", Role::Creator),
        )
        .await;
    assert_eq!(st, 403, "another creator's earnings");
    let (st, _) = s.get("/v1/creators/alice/earnings", &viewer).await;
    assert_eq!(st, 403, "a viewer named like nobody reads earnings");
    let (st, _) = s
        .get("/v1/creators/alice/earnings", &s.token("ops", Role::Admin))
        .await;
    assert_eq!(st, 200, "admin reads any earnings");
    let (st, _) = s
        .request(
            reqwest::Method::DELETE,
            "/v1/rooms/r",
            Some(&s.token("bob", Role::Creator)),
            None,
        )
        .await;
    assert_eq!(st, 403, "ending another creator's room");
    let (st, _) = s
        .post(
            "/v1/rooms",
            &s.token("bob", Role::Creator),
            json!({"room":"r"}),
        )
        .await;
    assert_eq!(st, 403, "taking over another creator's room id");
    // The wallet endpoint only ever shows the caller's own wallet.
    s.grant("v", 7, "g7").await;
    let (_, w) = s.get("/v1/wallet", &s.token("w", Role::Viewer)).await;
    assert_eq!(
        (w["user"].as_str(), w["coins"].as_i64()),
        (Some("w"), Some(0))
    );
    // Bearer header works for the socket too.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/v1/ws", s.addr),
    )
    .unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {viewer}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("bearer header accepted");
    futures_util::SinkExt::send(&mut ws, Message::text(r#"{"type":"ping"}"#))
        .await
        .unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_never_reads_does_not_delay_others() {
    let s = TestServer::start(&embedded(), |c| {
        c.hub.viewer_queue_len_max = 4096;
        c.hub.viewer_skipped_max = 400;
        c.hub.socket_msgs_per_s_max = 1_000_000;
        c.hub.socket_send_buffer_len = 4096;
    })
    .await;
    s.open_room("alice", "r").await;
    s.grant("sender", 100_000, "g").await; // 6000 roses

    // The stalled viewer: a tiny receive buffer, joins, then never reads.
    let mut stalled = tiny_buffer_socket(&s, "stalled").await;
    futures_util::SinkExt::send(&mut stalled, Message::text(r#"{"type":"join","room":"r"}"#))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut fast = s.ws("fast", Role::Viewer).await;
    fast.join("r").await;
    let n = 6000u64;
    let fast_reader = tokio::spawn(async move {
        for seq in 1..=n {
            assert_eq!(
                fast.expect("gift_event").await["seq"],
                seq,
                "the fast viewer gets every event in order"
            );
        }
    });
    let mut sender = s.ws("sender", Role::Viewer).await;
    let started = std::time::Instant::now();
    // Chunks of 50 acked gifts: far under the fast viewer's queue of 4096,
    // far over what the stalled viewer's queue and buffers can hold.
    send_roses_acked(&mut sender, "r", n, "f").await;
    fast_reader.await.expect("fast viewer saw everything");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(30),
        "fan-out to the fast viewer took {elapsed:?}"
    );

    // The stalled viewer was skipped past hub.viewer_skipped_max, then kicked
    // (1008; the close frame may not fit its full buffers, so the server's
    // own count is the proof), and its socket ends.
    assert!(
        metric(&s, "giftstream_skipped_total").await > 400.0,
        "skips were counted"
    );
    assert!(
        metric(&s, "giftstream_kicked_total{reason=\"too_slow\"}").await >= 1.0,
        "the stalled viewer was kicked"
    );
    let mut saw_skipped = false;
    let mut ended = false;
    while let Ok(frame) = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::StreamExt::next(&mut stalled),
    )
    .await
    {
        match frame {
            Some(Ok(Message::Text(t))) => saw_skipped |= t.contains(r#""type":"skipped""#),
            Some(Ok(Message::Close(c))) => {
                assert_eq!(c.map(|c| u16::from(c.code)), Some(1008));
                ended = true;
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                ended = true;
                break;
            }
        }
    }
    assert!(
        ended,
        "the stalled socket was closed (saw skipped: {saw_skipped})"
    );
    s.stop().await;
}

/// A viewer's WebSocket over a TCP socket with a 4 KiB receive buffer, so
/// that the server's queue for it fills soon when it does not read.
async fn tiny_buffer_socket(
    s: &TestServer,
    user: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(s.addr).await.unwrap();
    let url = format!(
        "ws://{}/v1/ws?token={}",
        s.addr,
        s.token(user, Role::Viewer)
    );
    tokio_tungstenite::client_async(url, tcp).await.unwrap().0
}

/// Send `n` one-coin roses to `room` in chunks of 50 acked gifts (ids
/// `{prefix}{i}`): paced by the acks, far faster than a stalled reader.
async fn send_roses_acked(sender: &mut Ws, room: &str, n: u64, prefix: &str) {
    for chunk in 0..n / 50 {
        for i in chunk * 50..(chunk + 1) * 50 {
            let id = format!("{prefix}{i}");
            sender
                .send(json!({"type":"gift","room":room,"gift":"rose","count":1,"id":id}))
                .await;
        }
        for i in chunk * 50..(chunk + 1) * 50 {
            assert_eq!(
                sender.until_id(&format!("{prefix}{i}")).await["type"],
                "gift_ack"
            );
        }
    }
}

async fn metric(s: &TestServer, name: &str) -> f64 {
    let text = reqwest::get(s.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001_and_settles() {
    let s = TestServer::start(&embedded(), |c| c.settlement.flush_interval_ms = 60_000).await;
    s.open_room("alice", "r").await;
    s.grant("v", 10, "g").await;
    let mut ws = s.ws("v", Role::Viewer).await;
    ws.join("r").await;
    assert_eq!(ws.gift("r", "rose", 1, "last").await["type"], "gift_ack");
    let ledger = s.state().ledger.clone();
    assert!(
        !ledger.has_gift("room:r", 1).await.unwrap(),
        "not flushed yet (flush interval is a minute)"
    );
    let stop = tokio::spawn(s.stop());
    let _ = ws.until("gift_event").await;
    let close = ws.closed().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1001);
    stop.await.unwrap();
    assert!(
        ledger.has_gift("room:r", 1).await.unwrap(),
        "the final flush settled the accepted gift"
    );
}

/// A clean stop returns only after every socket's task has ended, even a
/// socket whose close takes long: a viewer that stopped reading, whose
/// close frame waits behind full buffers for `hub.close_timeout_ms`. Fails
/// with the old fixed 50 ms wait (the stalled socket still held its
/// connection permit when `stop` returned).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_returns_after_every_socket_task_ended() {
    let s = TestServer::start(&embedded(), |c| {
        c.hub.viewer_queue_len_max = 4096;
        c.hub.socket_msgs_per_s_max = 1_000_000;
        c.hub.socket_send_buffer_len = 4096;
        c.hub.close_timeout_ms = 1500;
    })
    .await;
    s.open_room("alice", "r").await;
    s.grant("sender", 100_000, "g").await;
    let mut stalled = tiny_buffer_socket(&s, "stalled").await;
    futures_util::SinkExt::send(&mut stalled, Message::text(r#"{"type":"join","room":"r"}"#))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut reading = s.ws("reading", Role::Viewer).await;
    reading.join("r").await;
    // This viewer reads all along, up to its close frame.
    let reading = tokio::spawn(async move { reading.closed().await.map(|c| u16::from(c.code)) });
    let mut sender = s.ws("sender", Role::Viewer).await;
    // Far more than the stalled viewer's buffers hold, less than its
    // queue (no skip, no kick: it is still open at the stop).
    send_roses_acked(&mut sender, "r", 3000, "b").await;
    // The room hands the last events to the stalled viewer's writer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let state = s.running.as_ref().unwrap().state.clone();
    assert_eq!(state.hub.sockets_open(), 3);
    let permits = s.cfg.hub.connections_max;
    assert_eq!(state.connections.available_permits(), permits - 3);

    s.stop().await;
    assert_eq!(state.hub.sockets_open(), 0, "every socket task ended");
    assert_eq!(
        state.connections.available_permits(),
        permits,
        "every socket gave its permit back before stop returned"
    );
    assert_eq!(reading.await.unwrap(), Some(1001));
    drop(stalled);
}

#[tokio::test]
async fn ending_a_room_tells_viewers_and_refuses_gifts() {
    let s = TestServer::start(&embedded(), |_| {}).await;
    s.open_room("alice", "r").await;
    s.grant("v", 10, "g").await;
    let mut ws = s.ws("v", Role::Viewer).await;
    ws.join("r").await;
    ws.gift("r", "rose", 1, "a").await;
    let (st, _) = s
        .request(
            reqwest::Method::DELETE,
            "/v1/rooms/r",
            Some(&s.token("alice", Role::Creator)),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let (_, rest) = ws.until("room_ended").await;
    assert_eq!(
        rest.iter().filter(|v| v["type"] == "gift_event").count(),
        1,
        "events before the end arrive first"
    );
    assert_eq!(ws.gift("r", "rose", 1, "b").await["code"], "room_not_live");
    // Re-opening continues the seq (seq 2: the streak's combo_end, before
    // room_ended).
    s.open_room("alice", "r").await;
    assert_eq!(ws.gift("r", "rose", 1, "c").await["seq"], 3);
    s.stop().await;
}

#[tokio::test]
async fn gifts_on_ordinary_videos() {
    let s = TestServer::start(&embedded(), |_| {}).await;
    let creator = s.token("alice", Role::Creator);
    let (st, v) = s
        .post("/v1/videos", &creator, json!({"video":"vid-1"}))
        .await;
    assert_eq!((st, v["video"].as_str()), (201, Some("vid-1")));
    s.grant("v", 100, "g").await;
    let viewer = s.token("v", Role::Viewer);
    let (st, ack) = s
        .post(
            "/v1/videos/vid-1/gifts",
            &viewer,
            json!({"gift":"perfume","count":2,"id":"vg-1"}),
        )
        .await;
    assert_eq!(
        (st, ack),
        (
            200,
            json!({"type":"gift_ack","id":"vg-1","seq":1,"balance":60})
        )
    );
    let (st, again) = s
        .post(
            "/v1/videos/vid-1/gifts",
            &viewer,
            json!({"gift":"perfume","count":2,"id":"vg-1"}),
        )
        .await;
    assert_eq!(
        (st, again["balance"].as_i64()),
        (200, Some(60)),
        "idempotent over HTTP too"
    );
    let (st, e) = s
        .post(
            "/v1/videos/nope/gifts",
            &viewer,
            json!({"gift":"rose","count":1,"id":"vg-2"}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str(), e["id"].as_str()),
        (404, Some("unknown_video"), Some("vg-2"))
    );
    let (st, e) = s
        .post(
            "/v1/videos/vid-1/gifts",
            &viewer,
            json!({"gift":"rose","count":0,"id":"vg-3"}),
        )
        .await;
    assert_eq!((st, e["code"].as_str()), (400, Some("bad_request")));
    let (st, e) = s
        .post("/v1/videos/vid-1/gifts", &viewer, json!("not an object"))
        .await;
    assert_eq!((st, e["code"].as_str()), (400, Some("bad_request")));
    let (st, _) = s
        .post(
            "/v1/videos",
            &s.token("bob", Role::Creator),
            json!({"video":"vid-1"}),
        )
        .await;
    assert_eq!(st, 403, "another creator's video id");
    s.settled().await;
    assert_eq!(s.earnings("alice").await["diamonds_settled"], 20);
    s.stop().await;
}

#[tokio::test]
async fn resume_replays_history_then_history_gone() {
    let s = TestServer::start(&embedded(), |c| c.hub.history_len_max = 5).await;
    s.open_room("alice", "r").await;
    s.grant("v", 100, "g").await;
    let mut sender = s.ws("v", Role::Viewer).await;
    for i in 0..8 {
        sender.gift("r", "rose", 1, &format!("h{i}")).await;
    }
    let mut feed = s.ws("alice", Role::Creator).await;
    feed.send(json!({"type":"resume","room":"r","since":5}))
        .await;
    assert_eq!(feed.expect("gift_event").await["seq"], 6);
    assert_eq!(feed.expect("gift_event").await["seq"], 7);
    assert_eq!(feed.expect("gift_event").await["seq"], 8);
    assert_eq!(
        feed.expect("resumed").await,
        json!({"type":"resumed","room":"r","seq":8})
    );
    sender.gift("r", "rose", 1, "live").await;
    assert_eq!(
        feed.expect("gift_event").await["seq"],
        9,
        "resume subscribes: live events follow"
    );
    let mut late = s.ws("late", Role::Viewer).await;
    late.send(json!({"type":"resume","room":"r","since":1}))
        .await;
    assert_eq!(late.expect("error").await["code"], "history_gone");
    late.ping().await;
    s.stop().await;
}

#[tokio::test]
async fn limits_on_rooms_per_socket_and_connections() {
    let s = TestServer::start(&embedded(), |c| {
        c.hub.rooms_per_socket_max = 2;
        c.hub.connections_max = 3;
    })
    .await;
    for r in ["a", "b", "c"] {
        s.open_room("alice", r).await;
    }
    let mut ws = s.ws("v", Role::Viewer).await;
    ws.join("a").await;
    ws.join("b").await;
    ws.send(json!({"type":"join","room":"c"})).await;
    assert_eq!(ws.expect("error").await["code"], "bad_request");
    ws.send(json!({"type":"leave","room":"a"})).await;
    assert_eq!(ws.expect("left").await["room"], "a");
    ws.join("c").await;
    let _w2 = s.ws("v2", Role::Viewer).await;
    let _w3 = s.ws("v3", Role::Viewer).await;
    match Ws::connect(
        &format!(
            "ws://{}/v1/ws?token={}",
            s.addr,
            s.token("v4", Role::Viewer)
        ),
        Encoding::Json,
    )
    .await
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 429),
        other => panic!(
            "the fourth connection must be refused, got {:?}",
            other.map(|_| ())
        ),
    }
    s.stop().await;
}

#[tokio::test]
async fn http_edges_answer_typed_errors() {
    let s = TestServer::start(&embedded(), |c| c.http.body_len_max = 1024).await;
    let admin = s.token("root", Role::Admin);
    let (st, v) = s
        .post(
            "/v1/admin/grants",
            &admin,
            json!({"user":"v","coins":"lots","id":"x"}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")));
    let (st, v) = s
        .post(
            "/v1/admin/grants",
            &admin,
            json!({"user":"v","coins":5,"id":"x","pad":"p".repeat(4096)}),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (400, Some("bad_request")),
        "oversize body"
    );
    let (st, v) = s
        .post(
            "/v1/admin/grants",
            &admin,
            json!({"user":"v v","coins":5,"id":"x"}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")));
    let (st, v) = s.get("/v1/nothing-here", &admin).await;
    assert_eq!((st, v["code"].as_str()), (404, Some("bad_request")));
    let (st, v) = s
        .request(reqwest::Method::GET, "/v1/catalog", None, None)
        .await;
    assert_eq!(st, 200);
    assert!(v["gifts"].as_array().unwrap().len() >= 10);
    let (st, v) = s
        .request(reqwest::Method::GET, "/healthz", None, None)
        .await;
    assert_eq!((st, v["ok"].as_bool()), (200, Some(true)));
    let (st, _) = s.get("/v1/ws", &admin).await;
    assert_eq!(
        st, 400,
        "a plain GET on the socket route is a typed bad_request"
    );
    s.stop().await;
}

#[tokio::test]
async fn room_stats_and_coalesced_combos() {
    let s = TestServer::start(&embedded(), |c| {
        c.hub.stats_interval_ms = 200;
        c.hub.coalesce_interval_ms = 300;
    })
    .await;
    s.open_room("alice", "r").await;
    s.grant("big", 1000, "g1").await;
    s.grant("small", 1000, "g2").await;
    let mut full = s.ws("alice", Role::Creator).await;
    full.join("r").await;
    let mut coalesced = s.ws("phone", Role::Viewer).await;
    coalesced
        .send(json!({"type":"join","room":"r","coalesce":true}))
        .await;
    coalesced.expect("joined").await;
    let mut big = s.ws("big", Role::Viewer).await;
    let mut small = s.ws("small", Role::Viewer).await;
    // A combo of 12 roses within the window, plus one perfume from another sender.
    for i in 0..12 {
        assert_eq!(
            big.gift("r", "rose", 1, &format!("rose-{i}")).await["type"],
            "gift_ack"
        );
    }
    small.gift("r", "perfume", 1, "p").await;
    // The full feed: 13 events, combo counting up to 12.
    let mut combos = Vec::new();
    for seq in 1..=13u64 {
        let ev = full.expect("gift_event").await;
        assert_eq!(ev["seq"], seq);
        combos.push(ev["combo"].as_u64().unwrap());
    }
    assert_eq!(combos, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1]);
    // The coalescing viewer: one update per combo, the latest seq, in seq order.
    let a = coalesced.expect("gift_event").await;
    let b = coalesced.expect("gift_event").await;
    assert_eq!(
        (a["gift"].as_str(), a["combo"].as_u64(), a["seq"].as_u64()),
        (Some("rose"), Some(12), Some(12))
    );
    assert_eq!(
        (b["gift"].as_str(), b["seq"].as_u64()),
        (Some("perfume"), Some(13))
    );
    // Stats: at most once per interval, the latest carries the totals
    // (with no event after the last gift, they go out alone when the
    // ride is over: within interval + ride of it).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        coalesced.ping().await;
        let total = coalesced.stats.last().map(|v| v["diamonds"].clone());
        if total == Some(json!(22)) || tokio::time::Instant::now() > deadline {
            break;
        }
    }
    let last = coalesced.stats.last().expect("room_stats arrived").clone();
    assert_eq!(last["viewers"], 2, "the two senders never joined");
    assert_eq!(last["diamonds"], 12 + 10);
    assert_eq!(
        last["top"],
        json!([{"user":"big","diamonds":12},{"user":"small","diamonds":10}])
    );
    // The ledger sees every gift.
    s.settled().await;
    assert_eq!(s.state().ledger.totals().await.unwrap().gifts, 13);
    s.stop().await;
}

/// Issue #16: a socket over its message budget is slowed (not read until
/// its budget refills), not answered `rate_limited` per frame.
#[tokio::test]
async fn a_burst_over_the_socket_budget_is_slowed_not_refused() {
    let s = TestServer::start(&embedded(), |c| c.hub.socket_msgs_per_s_max = 20).await;
    s.open_room("alice", "r").await;
    s.grant("v", 1000, "g").await;
    let mut ws = s.ws("v", Role::Viewer).await;
    let t0 = std::time::Instant::now();
    for i in 0..50 {
        ws.send(json!({"type":"gift","room":"r","gift":"rose","count":1,"id":format!("f{i}")}))
            .await;
    }
    for i in 0..50 {
        let a = ws.until_id(&format!("f{i}")).await;
        assert_eq!(a["type"], "gift_ack", "slowed, never refused: {a}");
    }
    // One second of burst (20), then 20 a second: the other 30 take at
    // least 1.5 s. A lower bound only (a busy machine is slower).
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_millis(1450),
        "50 frames at 20/s after a burst of 20 took {elapsed:?}"
    );
    assert_eq!(
        s.wallet("v").await,
        1000 - 50,
        "every gift was charged once"
    );
    ws.ping().await;
    s.stop().await;
}

/// The hard bound: a socket slowed without a break for longer than
/// `hub.socket_throttled_ms_max` gets `rate_limited` for each further
/// frame over its budget, and is served again once it slows down.
#[tokio::test]
async fn a_socket_slowed_past_the_hard_bound_is_rate_limited_and_recovers() {
    let s = TestServer::start(&embedded(), |c| {
        c.hub.socket_msgs_per_s_max = 20;
        c.hub.socket_throttled_ms_max = 200;
    })
    .await;
    s.open_room("alice", "r").await;
    s.grant("v", 1000, "g").await;
    let mut ws = s.ws("v", Role::Viewer).await;
    for i in 0..60 {
        ws.send(json!({"type":"gift","room":"r","gift":"rose","count":1,"id":format!("f{i}")}))
            .await;
    }
    let mut acks = 0;
    let mut limited = 0;
    for i in 0..60 {
        let a = ws.until_id(&format!("f{i}")).await;
        match a["type"].as_str() {
            Some("gift_ack") => acks += 1,
            _ => {
                assert_eq!(a["code"], "rate_limited", "{a}");
                limited += 1;
            }
        }
    }
    // The burst (20) and ~200 ms of slowed frames at 20/s (~4) are served;
    // the rest is refused (bounds with room for a slow machine).
    assert!((20..=45).contains(&acks), "{acks} acks");
    assert_eq!(acks + limited, 60);
    assert_eq!(
        s.wallet("v").await,
        1000 - acks,
        "only accepted gifts were charged"
    );
    // A pause refills the budget: the next gift is served.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    ws.send(json!({"type":"gift","room":"r","gift":"rose","count":1,"id":"after"}))
        .await;
    assert_eq!(ws.until_id("after").await["type"], "gift_ack");
    s.stop().await;
}

#[tokio::test]
async fn the_overlay_page_is_served() {
    let s = TestServer::start(&embedded(), |_| {}).await;
    let resp = reqwest::get(s.url("/overlay/demo")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let body = resp.text().await.unwrap();
    assert!(body.contains("/overlay/assets/overlay.js"), "{body}");
    // Its script is a file of its own (the CSP allows no inline script).
    let js = reqwest::get(s.url("/overlay/assets/overlay.js"))
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    let body = js.text().await.unwrap();
    assert!(
        body.contains("giftstream.v1.json") && body.contains("resume"),
        "the overlay speaks v1 and resumes"
    );
    let (st, v) = s
        .request(reqwest::Method::GET, "/overlay/bad%20room", None, None)
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")));
    s.stop().await;
}

/// Found by the load generator: concurrent writes on the SQLite ledger
/// (here, opening rooms) once answered 500 `database is locked`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ledger_writes_all_succeed() {
    let s = TestServer::start(&embedded(), |c| {
        // 24 rooms of one creator at once: above the default limits.
        c.limits.rooms_per_hour_max = 100;
        c.limits.live_rooms_per_creator_max = 100;
    })
    .await;
    let creator = s.token("alice", Role::Creator);
    let admin = s.token("ops", Role::Admin);
    let results = futures_util::future::join_all((0..24).map(|i| {
        let (s, creator, admin) = (&s, creator.clone(), admin.clone());
        async move {
            let (a, _) = s
                .post("/v1/rooms", &creator, json!({ "room": format!("par-{i}") }))
                .await;
            let (b, _) = s
                .post(
                    "/v1/admin/grants",
                    &admin,
                    json!({ "user": format!("u{i}"), "coins": 5, "id": format!("par-{i}") }),
                )
                .await;
            (a, b)
        }
    }))
    .await;
    assert!(
        results.iter().all(|&(a, b)| a == 201 && b == 200),
        "{results:?}"
    );
    s.stop().await;
}

/// A viewer that fell behind learns exactly what it missed (`skipped`, even
/// when the live goes quiet right after) and `resume` makes its feed whole:
/// every seq arrives, and nothing past the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_viewer_resumes_the_gap() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        skipped_viewer_resumes(&engine).await;
    }
}

async fn skipped_viewer_resumes(engine: &common::server::EngineSpec) {
    let s = TestServer::start(engine, |c| {
        c.hub.viewer_queue_len_max = 8;
        c.hub.viewer_skipped_max = 1_000_000;
        c.hub.socket_msgs_per_s_max = 1_000_000;
        c.hub.socket_send_buffer_len = 4096;
        // No streak ends during the test: its combo_end would be seq n + 1
        // (the drain below waits for 2 s of silence, and the last
        // room_stats can come 1.25 s after the last gift: 3 s of default
        // window raced it).
        c.counters.combo_window_ms = 60_000;
    })
    .await;
    s.open_room("alice", "r").await;
    let n = 600u64;
    s.grant("sender", n as i64, "g").await;

    // The slow viewer: a tiny receive buffer; joins, then reads nothing
    // until every gift is acked.
    let mut slow = tiny_buffer_socket(&s, "slow").await;
    use futures_util::{SinkExt, StreamExt};
    slow.send(Message::text(r#"{"type":"join","room":"r"}"#))
        .await
        .unwrap();
    let mut sender = s.ws("sender", Role::Viewer).await;
    let mut joined = false;
    // The join must be through before the gifts, or they are not its to miss.
    while !joined {
        let f = tokio::time::timeout(Duration::from_secs(10), slow.next())
            .await
            .expect("joined within the wait");
        if let Some(Ok(Message::Text(t))) = f {
            joined = t.contains(r#""type":"joined""#);
        }
    }
    send_roses_acked(&mut sender, "r", n, "s").await;

    // Drain what the server kept for it; the live is now quiet.
    let mut got = std::collections::BTreeSet::new();
    let mut missed: Vec<(u64, u64)> = Vec::new();
    let mut read = |t: &str, got: &mut std::collections::BTreeSet<u64>| {
        let v: serde_json::Value = serde_json::from_str(t).unwrap();
        match v["type"].as_str() {
            Some("gift_event") => {
                assert!(got.insert(v["seq"].as_u64().unwrap()), "a duplicate: {v}");
            }
            Some("skipped") => missed.push((
                v["from_seq"].as_u64().unwrap(),
                v["to_seq"].as_u64().unwrap(),
            )),
            _ => {}
        }
        v
    };
    while let Ok(Some(Ok(f))) = tokio::time::timeout(Duration::from_secs(2), slow.next()).await {
        if let Message::Text(t) = f {
            read(t.as_str(), &mut got);
        }
    }
    assert!(!missed.is_empty(), "the tiny buffers overflowed its queue");
    let announced: u64 = missed.iter().map(|(a, b)| b - a + 1).sum();
    assert_eq!(
        got.len() as u64 + announced,
        n,
        "each seq was delivered or announced as skipped (got {}, skipped {missed:?})",
        got.len()
    );
    for (from, to) in &missed {
        assert!(
            got.range(from..=to).next().is_none(),
            "announced {from}..={to} as skipped but delivered some of it"
        );
    }

    // Resume from just before the first gap: the gap and everything after
    // it, in order, then `resumed` at the last seq.
    let since = missed[0].0 - 1;
    slow.send(Message::text(
        json!({"type":"resume","room":"r","since":since}).to_string(),
    ))
    .await
    .unwrap();
    let mut replayed = Vec::new();
    let resumed = loop {
        let f = tokio::time::timeout(Duration::from_secs(10), slow.next())
            .await
            .expect("resumed within the wait");
        let Some(Ok(Message::Text(t))) = f else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
        match v["type"].as_str() {
            Some("gift_event") => replayed.push(v["seq"].as_u64().unwrap()),
            Some("resumed") => break v,
            Some("error") => panic!("resume refused: {v}"),
            _ => {}
        }
    };
    assert_eq!(resumed["seq"], n);
    assert_eq!(replayed, ((since + 1)..=n).collect::<Vec<_>>());
    got.extend(replayed);
    assert_eq!(got, (1..=n).collect(), "the feed is whole");
    s.stop().await;
}

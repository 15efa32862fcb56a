//! Additions to v1 on the wire: video topics and gift messages decode as
//! specified, and room messages keep their v1 bytes in both encodings.

use axum::extract::ws::Message;
use serde::Serialize;

use super::*;

fn json_err(s: &str) -> (Error, Option<String>) {
    decode_client(s.as_bytes(), Encoding::Json).unwrap_err()
}

#[test]
fn video_messages_and_gift_messages_decode() {
    let m = decode_client(
        br#"{"type":"gift","video":"v1","gift":"rose","count":1,"id":"g","message":"hi"}"#,
        Encoding::Json,
    )
    .unwrap();
    assert_eq!(
        m,
        ClientMsg::Gift {
            topic: Topic::Video("v1".into()),
            gift: "rose".into(),
            count: 1,
            id: "g".into(),
            message: Some("hi".into()),
        }
    );
    let m = decode_client(
        br#"{"type":"gift","room":"r","gift":"rose","count":1,"id":"g","message":""}"#,
        Encoding::Json,
    )
    .unwrap();
    assert!(
        matches!(m, ClientMsg::Gift { message: None, .. }),
        "empty is none"
    );
    for s in [
        r#"{"type":"join"}"#,
        r#"{"type":"join","room":"r","video":"v"}"#,
        r#"{"type":"resume","since":1}"#,
        r#"{"type":"leave","room":"r","video":"v"}"#,
    ] {
        assert_eq!(json_err(s).0.code, ErrorCode::BadRequest, "{s}");
    }
    let (e, id) = json_err(r#"{"type":"gift","gift":"rose","count":1,"id":"g7"}"#);
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert_eq!(id.as_deref(), Some("g7"), "the gift id is echoed");
    let long = "m".repeat(151);
    for msg in [long.as_str(), "a\\u0007b", "x\\u202Ey"] {
        let s = format!(
            r#"{{"type":"gift","video":"v","gift":"rose","count":1,"id":"g8","message":"{msg}"}}"#
        );
        let (e, id) = json_err(&s);
        assert_eq!(e.code, ErrorCode::BadRequest, "{msg}");
        assert_eq!(id.as_deref(), Some("g8"));
    }
}

/// Room events and answers serialize exactly as in v1 (the new
/// `video` and `message` fields are left out), in both encodings; a
/// video's event names `video` and no `room`.
#[test]
fn room_messages_are_unchanged_byte_for_byte() {
    let ev = GiftEvent {
        room: "r".into(),
        video: None,
        seq: 7,
        id: "i".into(),
        sender: "s".into(),
        gift: "rose".into(),
        count: 2,
        combo: 3,
        coins: 4,
        diamonds: 5,
        animation: "rose.webp".into(),
        ts: 6,
        message: None,
        message_state: None,
        message_id: None,
        original: None,
    };
    let v1 = r#"{"type":"gift_event","room":"r","seq":7,"id":"i","sender":"s","gift":"rose","count":2,"combo":3,"coins":4,"diamonds":5,"animation":"rose.webp","ts":6}"#;
    assert_eq!(ServerMsg::GiftEvent(ev.clone()).to_json(), v1);
    // The v1 MessagePack bytes: v1's types, encoded as v1 did.
    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum V1 {
        GiftEvent(V1Gift),
    }
    #[derive(Serialize)]
    struct V1Gift {
        room: &'static str,
        seq: u64,
        id: &'static str,
        sender: &'static str,
        gift: &'static str,
        count: u32,
        combo: u32,
        coins: i64,
        diamonds: i64,
        animation: &'static str,
        ts: i64,
    }
    let packed_v1 = rmp_serde::to_vec_named(&V1::GiftEvent(V1Gift {
        room: "r",
        seq: 7,
        id: "i",
        sender: "s",
        gift: "rose",
        count: 2,
        combo: 3,
        coins: 4,
        diamonds: 5,
        animation: "rose.webp",
        ts: 6,
    }))
    .unwrap();
    let Message::Binary(b) = ServerMsg::GiftEvent(ev.clone()).encode(Encoding::MsgPack) else {
        panic!("binary expected")
    };
    assert_eq!(b.as_ref(), packed_v1.as_slice());
    let answers = [
        (
            ServerMsg::Joined {
                room: "r".into(),
                video: None,
                inbox: None,
                seq: 1,
                viewers: 2,
            },
            r#"{"type":"joined","room":"r","seq":1,"viewers":2}"#,
        ),
        (
            ServerMsg::Resumed {
                room: "r".into(),
                video: None,
                inbox: None,
                seq: 1,
            },
            r#"{"type":"resumed","room":"r","seq":1}"#,
        ),
        (
            ServerMsg::Left {
                room: "r".into(),
                video: None,
                inbox: None,
            },
            r#"{"type":"left","room":"r"}"#,
        ),
        (
            ServerMsg::Skipped {
                room: "r".into(),
                video: None,
                inbox: None,
                from_seq: 1,
                to_seq: 2,
            },
            r#"{"type":"skipped","room":"r","from_seq":1,"to_seq":2}"#,
        ),
    ];
    for (m, want) in answers {
        assert_eq!(m.to_json(), want);
    }
    let video = GiftEvent {
        room: String::new(),
        video: Some("v".into()),
        message: Some("hi".into()),
        message_state: None,
        message_id: None,
        original: None,
        ..ev
    };
    assert_eq!(
        ServerMsg::GiftEvent(video.clone()).to_json(),
        r#"{"type":"gift_event","video":"v","seq":7,"id":"i","sender":"s","gift":"rose","count":2,"combo":3,"coins":4,"diamonds":5,"animation":"rose.webp","ts":6,"message":"hi"}"#
    );
    let Message::Binary(b) = ServerMsg::GiftEvent(video.clone()).encode(Encoding::MsgPack) else {
        panic!("binary expected")
    };
    let back: ServerMsg = rmp_serde::from_slice(&b).unwrap();
    assert_eq!(back, ServerMsg::GiftEvent(video));
}

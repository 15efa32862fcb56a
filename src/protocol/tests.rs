//! Unit tests of the wire messages: decoding, validation, encodings.

use super::*;

fn json_err(s: &str) -> (Error, Option<String>) {
    decode_client(s.as_bytes(), Encoding::Json).unwrap_err()
}

mod props {
    //! Property tests: nothing a client sends makes the decoder panic,
    //! and every valid message survives both encodings unchanged.
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.-]{1,64}"
    }

    fn topic() -> impl Strategy<Value = Topic> {
        prop_oneof![name().prop_map(Topic::Room), name().prop_map(Topic::Video)]
    }

    fn client_msg() -> impl Strategy<Value = ClientMsg> {
        prop_oneof![
            (topic(), any::<bool>())
                .prop_map(|(topic, coalesce)| ClientMsg::Join { topic, coalesce }),
            topic().prop_map(|topic| ClientMsg::Leave { topic }),
            (topic(), name(), 1..=GIFT_COUNT_MAX, "[^\\p{Cc}]{1,64}").prop_map(
                |(topic, gift, count, id)| ClientMsg::Gift {
                    topic,
                    gift,
                    count,
                    id,
                    message: None,
                }
            ),
            (topic(), any::<u64>()).prop_map(|(topic, since)| ClientMsg::Resume { topic, since }),
            Just(ClientMsg::Ping),
        ]
    }

    /// The message as a client would write it (named fields).
    fn as_value(m: &ClientMsg) -> serde_json::Value {
        let at = |t: &Topic| (t.field(), t.id().to_string());
        match m {
            ClientMsg::Join { topic, coalesce } => {
                let (k, v) = at(topic);
                serde_json::json!({"type": "join", k: v, "coalesce": coalesce})
            }
            ClientMsg::Leave { topic } => {
                let (k, v) = at(topic);
                serde_json::json!({"type": "leave", k: v})
            }
            ClientMsg::Gift {
                topic,
                gift,
                count,
                id,
                ..
            } => {
                let (k, v) = at(topic);
                serde_json::json!(
                    {"type": "gift", k: v, "gift": gift, "count": count, "id": id}
                )
            }
            ClientMsg::Resume { topic, since } => {
                let (k, v) = at(topic);
                serde_json::json!({"type": "resume", k: v, "since": since})
            }
            ClientMsg::Ping => serde_json::json!({"type": "ping"}),
            ClientMsg::Refresh { token } => {
                serde_json::json!({"type": "refresh", "token": token})
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn arbitrary_bytes_get_an_answer_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            for enc in [Encoding::Json, Encoding::MsgPack] {
                if let Err((e, id)) = decode_client(&bytes, enc) {
                    prop_assert!(
                        matches!(e.code, ErrorCode::BadRequest | ErrorCode::UnknownGift),
                        "{:?}", e.code
                    );
                    prop_assert!(id.as_deref().is_none_or(valid_client_id));
                }
            }
        }

        #[test]
        fn cut_or_flipped_messages_get_an_answer_never_a_panic(
            m in client_msg(),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let v = as_value(&m);
            for (mut bytes, enc) in [
                (serde_json::to_vec(&v).unwrap(), Encoding::Json),
                (rmp_serde::to_vec_named(&v).unwrap(), Encoding::MsgPack),
            ] {
                let cut_at = cut.index(bytes.len());
                let _ = decode_client(&bytes[..cut_at], enc);
                let i = flip.index(bytes.len());
                bytes[i] ^= 1 << bit;
                if let Err((e, _)) = decode_client(&bytes, enc) {
                    prop_assert!(matches!(e.code, ErrorCode::BadRequest | ErrorCode::UnknownGift), "{:?}", e.code);
                }
            }
        }

        #[test]
        fn valid_messages_round_trip_in_both_encodings(m in client_msg()) {
            let v = as_value(&m);
            let json = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(decode_client(&json, Encoding::Json).unwrap(), m.clone());
            let packed = rmp_serde::to_vec_named(&v).unwrap();
            prop_assert_eq!(decode_client(&packed, Encoding::MsgPack).unwrap(), m);
        }

        #[test]
        fn a_wrong_type_in_any_field_is_bad_request_with_the_gift_id(
            m in client_msg(),
            field in 0usize..8,
            junk in prop_oneof![
                Just(serde_json::json!(null)),
                Just(serde_json::json!(-1)),
                Just(serde_json::json!(1.5)),
                Just(serde_json::json!([1, 2])),
                Just(serde_json::json!({"a": 1})),
            ],
        ) {
            let mut v = as_value(&m);
            let obj = v.as_object_mut().unwrap();
            let keys: Vec<String> = obj.keys().filter(|k| *k != "id").cloned().collect();
            let key = keys[field % keys.len()].clone();
            let ping_field = matches!(m, ClientMsg::Ping);
            obj.insert(key.clone(), junk.clone());
            let bytes = serde_json::to_vec(&v).unwrap();
            let got = decode_client(&bytes, Encoding::Json);
            // (A ping has only `type`.)
            let (e, id) = got.expect_err(&format!("{key} = {junk} accepted (ping: {ping_field})"));
            prop_assert!(matches!(e.code, ErrorCode::BadRequest | ErrorCode::UnknownGift), "{:?}", e.code);
            if let ClientMsg::Gift { id: gift_id, .. } = &m {
                prop_assert_eq!(id.as_deref(), Some(gift_id.as_str()), "the gift id is echoed");
            }
        }
    }
}

#[test]
fn decodes_every_client_type() {
    let m = decode_client(
        br#"{"type":"gift","room":"r1","gift":"rose","count":3,"id":"g-1"}"#,
        Encoding::Json,
    );
    assert_eq!(
        m.unwrap(),
        ClientMsg::Gift {
            topic: Topic::Room("r1".into()),
            gift: "rose".into(),
            count: 3,
            id: "g-1".into(),
            message: None,
        }
    );
    assert_eq!(
        decode_client(br#"{"type":"ping"}"#, Encoding::Json).unwrap(),
        ClientMsg::Ping
    );
    assert_eq!(
        decode_client(br#"{"type":"resume","room":"r","since":7}"#, Encoding::Json).unwrap(),
        ClientMsg::Resume {
            topic: Topic::Room("r".into()),
            since: 7
        }
    );
}

#[test]
fn rejects_bad_counts_with_the_gift_id() {
    for count in ["0", "100", "-1", "\"1\"", "1.5"] {
        let s = format!(r#"{{"type":"gift","room":"r","gift":"rose","count":{count},"id":"abc"}}"#);
        let (e, id) = json_err(&s);
        assert_eq!(e.code, ErrorCode::BadRequest, "count {count}");
        assert_eq!(id.as_deref(), Some("abc"), "count {count}");
    }
}

#[test]
fn rejects_malformed_and_unknown() {
    assert_eq!(json_err("not json").0.code, ErrorCode::BadRequest);
    assert_eq!(json_err(r#"{"room":"r"}"#).0.code, ErrorCode::BadRequest);
    assert_eq!(
        json_err(r#"{"type":"dance"}"#).0.code,
        ErrorCode::BadRequest
    );
    let long = "x".repeat(65);
    let s = format!(r#"{{"type":"gift","room":"r","gift":"rose","count":1,"id":"{long}"}}"#);
    let (e, id) = json_err(&s);
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert_eq!(id, None, "an invalid id is not echoed");
    assert_eq!(
        json_err(r#"{"type":"join","room":"a b"}"#).0.code,
        ErrorCode::BadRequest
    );
}

#[test]
fn msgpack_round_trip_uses_named_fields() {
    let ev = ServerMsg::GiftAck {
        id: "x".into(),
        seq: 4,
        balance: 90,
    };
    let Message::Binary(b) = ev.encode(Encoding::MsgPack) else {
        panic!("binary expected")
    };
    let v: serde_json::Value = rmp_serde::from_slice(&b).unwrap();
    assert_eq!(v["type"], "gift_ack");
    assert_eq!(v["seq"], 4);
    let back: ServerMsg = rmp_serde::from_slice(&b).unwrap();
    assert_eq!(back, ev);
    let gift = rmp_serde::to_vec_named(
        &serde_json::json!({"type":"gift","room":"r","gift":"rose","count":2,"id":"i"}),
    )
    .unwrap();
    assert!(matches!(
        decode_client(&gift, Encoding::MsgPack).unwrap(),
        ClientMsg::Gift { count: 2, .. }
    ));
}

#[test]
fn gift_event_json_has_contract_fields() {
    let ev = ServerMsg::GiftEvent(GiftEvent {
        room: "r".into(),
        video: None,
        seq: 1,
        id: "i".into(),
        sender: "s".into(),
        gift: "rose".into(),
        count: 1,
        combo: 1,
        coins: 1,
        diamonds: 1,
        animation: "rose.webp".into(),
        ts: 5,
        message: None,
        message_state: None,
        message_id: None,
        original: None,
    });
    let v: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
    for k in [
        "type",
        "room",
        "seq",
        "id",
        "sender",
        "gift",
        "count",
        "combo",
        "coins",
        "diamonds",
        "animation",
        "ts",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["type"], "gift_event");
}

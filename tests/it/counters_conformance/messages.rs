//! Conformance of issue 17's counters operations: the per-viewer message
//! slot, a gift whose message was kept back, and an approved message
//! published with the target's next seq.

use std::time::Duration;

use giftstream::error::ErrorCode;
use giftstream::model::{KeptBack, Target};
use giftstream::protocol::ServerMsg;

use super::{cfg, gift, req, watch, Factory};

/// The next frames of `rx` within `wait`, decoded.
async fn frames(rx: &mut giftstream::hub::outbox::OutboxRx, want: usize) -> Vec<ServerMsg> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while out.len() < want {
        let Ok(Some(msg)) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            break;
        };
        if let axum::extract::ws::Message::Text(t) = msg {
            if let Ok(m) = serde_json::from_str::<ServerMsg>(t.as_str()) {
                if !matches!(m, ServerMsg::RoomStats { .. } | ServerMsg::Joined { .. }) {
                    out.push(m);
                }
            }
        }
    }
    out
}

pub(super) async fn message_slot_is_one_claim_per_interval(f: Factory) {
    let e = f.make(cfg()).await;
    let c = e.c.as_ref();
    let key = f.name("room:r|u");
    assert!(c.message_slot(&key, 60_000).await.unwrap());
    assert!(!c.message_slot(&key, 60_000).await.unwrap(), "taken");
    assert!(
        c.message_slot(&format!("{key}2"), 60_000).await.unwrap(),
        "each key apart"
    );
    let short = f.name("room:r|w");
    assert!(c.message_slot(&short, 150).await.unwrap());
    assert!(!c.message_slot(&short, 150).await.unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(c.message_slot(&short, 150).await.unwrap(), "free again");
}

pub(super) async fn kept_messages_and_approved_ones_take_their_place(f: Factory) {
    let room = f.name("kept");
    let e = f.make(cfg()).await;
    let c = e.c.as_ref();
    e.open_room(&room, "cr").await;
    let mut rx = watch(&e.hub, &room, "cr").await;
    c.credit("v", 10, "grant:v").await.unwrap();
    let mut r = req("v", Target::room(&room), &gift("rose", 1, 1), 1, "k1");
    r.message = Some("b a d".into());
    r.kept = Some(KeptBack {
        id: "m1".into(),
        state: "held".into(),
    });
    assert_eq!(c.gift(r).await.unwrap().ack.seq, 1);
    let seq = c
        .gift_message(&Target::room(&room), "m1", Some(1), "b a d")
        .await
        .unwrap();
    assert_eq!(seq, 2, "the target's next seq");
    let got = frames(&mut rx, 2).await;
    let json: Vec<serde_json::Value> = got
        .iter()
        .map(|m| serde_json::from_str(&m.to_json()).unwrap())
        .collect();
    assert_eq!(json.len(), 2, "{json:?}");
    assert_eq!(json[0]["type"], "gift_event");
    assert!(json[0].get("message").is_none(), "{}", json[0]);
    assert_eq!(
        (
            json[0]["message_state"].as_str(),
            json[0]["message_id"].as_str()
        ),
        (Some("held"), Some("m1"))
    );
    assert_eq!(
        json[1],
        serde_json::json!({ "type": "gift_message", "room": room, "seq": 2,
                            "message_id": "m1", "ref_seq": 1, "message": "b a d" })
    );
    // The ledger's row of the gift gets no text.
    let batch = c.drain(10).await.unwrap().expect("a batch");
    assert_eq!(batch.gifts.len(), 1);
    assert_eq!(batch.gifts[0].message, None);
    let e2 = c
        .gift_message(&Target::room("nope"), "m2", None, "x")
        .await
        .unwrap_err();
    assert_eq!(e2.code(), ErrorCode::UnknownRoom);
}

//! Shared fixtures of the benches (included with `mod common;`).

#![allow(dead_code)]

use giftstream::protocol::{GiftEvent, ServerMsg};

/// A gift event shaped like a real one (ids of realistic length).
pub fn gift_event(seq: u64) -> GiftEvent {
    GiftEvent {
        room: "creator-4711-live-2f9c1e0a".into(),
        video: None,
        seq,
        id: "a1b2c3d4.17.12345.9876543210".into(),
        sender: "viewer-1234567".into(),
        gift: "finger_heart".into(),
        count: 1,
        combo: 7,
        coins: 5,
        diamonds: 2,
        animation: "finger_heart.webp".into(),
        ts: 1_790_000_000_000,
        message: None,
        message_state: None,
        message_id: None,
        original: None,
    }
}

/// The same as a server message.
pub fn gift_msg(seq: u64) -> ServerMsg {
    ServerMsg::GiftEvent(gift_event(seq))
}

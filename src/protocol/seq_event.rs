//! The events that take a room seq: gifts ([`GiftEvent`]) and streak ends
//! ([`ComboEnd`], an addition to v1), as [`SeqEvent`].
//!
//! Owns: the `combo_end` message body and how the engines' JSON of a
//! seq'd event decodes. Must not: touch sockets, wallets or rooms.

use serde::{Deserialize, Serialize};

use super::{GiftEvent, ServerMsg};

/// The end of a sender's streak of one gift on one target (addition to
/// v1): no same gift from that sender within `counters.combo_window_ms`, a
/// different gift from them, or the room ending. Sent exactly once per
/// streak, with its own room seq (ordered with gifts, kept in history and
/// replayed by `resume`). Count a streak from this, never from its steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComboEnd {
    /// Room id; empty (and left out on the wire) for a video's streak.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub room: String,
    /// The video id, for a video's streak (None for a room's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
    /// Room sequence number of this event (not a gift's).
    pub seq: u64,
    /// Sender's user id.
    pub sender: String,
    /// Catalog gift id.
    pub gift: String,
    /// Gifts in the streak (sum of counts).
    pub count: u32,
    /// Coins the streak cost.
    pub coins: i64,
    /// Diamonds the streak earned the creator.
    pub diamonds: i64,
    /// Seq of the streak's first gift.
    pub seq_first: u64,
    /// Seq of the streak's last gift.
    pub seq_last: u64,
    /// When the streak ended, ms since the epoch (for a timeout: its last
    /// gift's time plus the window).
    pub ts: i64,
}

/// An event that takes a room seq: a gift or a streak end. Decodes from
/// the engines' JSON (a gift event is tried first; a streak end carries
/// `seq_first` and `seq_last`, which a gift lacks).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SeqEvent {
    /// An accepted gift.
    Gift(GiftEvent),
    /// A streak's end.
    ComboEnd(ComboEnd),
}

impl SeqEvent {
    /// Its room seq.
    pub fn seq(&self) -> u64 {
        match self {
            SeqEvent::Gift(g) => g.seq,
            SeqEvent::ComboEnd(c) => c.seq,
        }
    }
}

impl From<GiftEvent> for SeqEvent {
    fn from(g: GiftEvent) -> Self {
        SeqEvent::Gift(g)
    }
}

impl From<ComboEnd> for SeqEvent {
    fn from(c: ComboEnd) -> Self {
        SeqEvent::ComboEnd(c)
    }
}

impl From<SeqEvent> for ServerMsg {
    fn from(e: SeqEvent) -> Self {
        match e {
            SeqEvent::Gift(g) => ServerMsg::GiftEvent(g),
            SeqEvent::ComboEnd(c) => ServerMsg::ComboEnd(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Encoding;
    use axum::extract::ws::Message;

    #[test]
    fn combo_end_round_trips_in_both_encodings_and_decodes_as_a_seq_event() {
        let end = ComboEnd {
            room: "r".into(),
            video: None,
            seq: 13,
            sender: "s".into(),
            gift: "rose".into(),
            count: 12,
            coins: 12,
            diamonds: 6,
            seq_first: 1,
            seq_last: 12,
            ts: 99,
        };
        let msg = ServerMsg::ComboEnd(end.clone());
        let v: serde_json::Value = serde_json::from_str(&msg.to_json()).unwrap();
        assert_eq!(v["type"], "combo_end");
        assert_eq!(
            (v["seq"].as_u64(), v["count"].as_u64()),
            (Some(13), Some(12))
        );
        let Message::Binary(b) = msg.encode(Encoding::MsgPack) else {
            panic!("binary expected")
        };
        assert_eq!(rmp_serde::from_slice::<ServerMsg>(&b).unwrap(), msg);
        let back: SeqEvent = serde_json::from_str(&msg.to_json()).unwrap();
        assert_eq!(back, SeqEvent::ComboEnd(end));
        let gift = r#"{"room":"r","id":"i","sender":"s","gift":"rose","count":1,"coins":1,"diamonds":1,"animation":"a","ts":5,"seq":2,"combo":1}"#;
        assert!(matches!(
            serde_json::from_str::<SeqEvent>(gift).unwrap(),
            SeqEvent::Gift(GiftEvent { seq: 2, .. })
        ));
    }
}

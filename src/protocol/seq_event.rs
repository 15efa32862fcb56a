//! The events that take a seq: gifts ([`GiftEvent`]) and streak ends
//! ([`ComboEnd`], an addition to v1) take their room's or video's, and
//! each of them and each tip also takes its creator's inbox seq, wrapped as
//! an [`InboxEvent`] (addition to v1); all as [`SeqEvent`].
//!
//! Owns: the `combo_end`, `inbox_event` and `gift_message` message bodies and how the
//! engines' JSON of a seq'd event decodes. Must not: touch sockets, wallets or rooms.

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

/// One event of a creator's inbox (addition to v1): a `gift_event` (of a
/// room or a video), a `combo_end` or a `tip_event` of one of the
/// creator's targets, exactly as a viewer of that target sees it, with the
/// inbox's own seq (strictly increasing, no gaps, per creator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxEvent {
    /// The creator whose inbox this is.
    pub creator: String,
    /// The inbox's seq of this event (not the target's).
    pub seq: u64,
    /// The message as a viewer of its target sees it.
    pub event: Box<ServerMsg>,
}

/// A held gift or tip message, approved (addition to v1): shown once, in
/// the room or video of its gift (or tip), with its own seq (ordered with
/// gifts, kept in history, replayed by `resume`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GiftMessage {
    /// Room id; empty (and left out on the wire) for a video's message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub room: String,
    /// The video id, for a video's message (None for a room's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
    /// Room (or video) sequence number of this event (not the gift's).
    pub seq: u64,
    /// The message's id (the gift event's `message_id`).
    pub message_id: String,
    /// Seq of the gift the message came with (left out for a tip's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_seq: Option<u64>,
    /// The approved text.
    pub message: String,
}

/// An event that takes a seq: a gift or a streak end (a room's or a
/// video's seq), or an inbox event (the inbox's seq). Decodes from the
/// engines' JSON (a gift event is tried first; a streak end carries
/// `seq_first` and `seq_last`, which a gift lacks; an inbox event carries
/// `creator` and `event`, which neither has).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SeqEvent {
    /// An accepted gift.
    Gift(GiftEvent),
    /// A streak's end.
    ComboEnd(ComboEnd),
    /// An event of a creator's inbox.
    Inbox(InboxEvent),
    /// An approved held message (tried last: it has none of the others'
    /// required fields but `seq`).
    Message(GiftMessage),
}

impl SeqEvent {
    /// Its seq (its target's, or its inbox's for an inbox event).
    pub fn seq(&self) -> u64 {
        match self {
            SeqEvent::Gift(g) => g.seq,
            SeqEvent::ComboEnd(c) => c.seq,
            SeqEvent::Inbox(i) => i.seq,
            SeqEvent::Message(m) => m.seq,
        }
    }

    /// The message as the creator's inbox gets it: a gift whose message
    /// was kept back carries its original text there.
    pub fn for_inbox(&self) -> ServerMsg {
        match self {
            SeqEvent::Gift(g) if g.original.is_some() => {
                let mut g = g.clone();
                g.message = g.original.take();
                ServerMsg::GiftEvent(g)
            }
            other => ServerMsg::from(other.clone()),
        }
    }
}

impl From<GiftMessage> for SeqEvent {
    fn from(m: GiftMessage) -> Self {
        SeqEvent::Message(m)
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
            SeqEvent::Inbox(i) => ServerMsg::InboxEvent(i),
            SeqEvent::Message(m) => ServerMsg::GiftMessage(m),
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

    #[test]
    fn inbox_event_round_trips_and_decodes_as_a_seq_event_of_its_own_seq() {
        let gift = r#"{"type":"gift_event","room":"r","id":"i","sender":"s","gift":"rose","count":1,"coins":1,"diamonds":1,"animation":"a","ts":5,"seq":2,"combo":1}"#;
        let json = format!(r#"{{"type":"inbox_event","creator":"c","seq":7,"event":{gift}}}"#);
        let ev: SeqEvent = serde_json::from_str(&json).unwrap();
        let SeqEvent::Inbox(inbox) = ev.clone() else {
            panic!("an inbox event: {ev:?}")
        };
        assert_eq!((ev.seq(), inbox.creator.as_str()), (7, "c"));
        assert!(matches!(
            *inbox.event,
            ServerMsg::GiftEvent(GiftEvent { seq: 2, .. })
        ));
        let msg = ServerMsg::from(ev);
        let v: serde_json::Value = serde_json::from_str(&msg.to_json()).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["event"]["type"].as_str()),
            (Some("inbox_event"), Some("gift_event"))
        );
        let Message::Binary(b) = msg.encode(Encoding::MsgPack) else {
            panic!("binary expected")
        };
        assert_eq!(rmp_serde::from_slice::<ServerMsg>(&b).unwrap(), msg);
    }
}

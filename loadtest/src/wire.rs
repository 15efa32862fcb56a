//! Protocol v1 as an outside client sees it: the frames this tool sends
//! and the few fields it reads from what the server sends.
//!
//! Owns: [`Encoding`] (JSON text frames or MessagePack binary frames, picked
//! by subprotocol), encoding of client messages ([`Out`]), a borrowing
//! decoder of server frames ([`Frame`]) that reads only what the load
//! tester measures, and the gift id scheme that carries the send time.
//! Must not: depend on the server crate; this speaks the contract in
//! `docs/CONTRACT-v1.md` like any other client.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

/// Subprotocol of the JSON encoding.
pub const SUBPROTOCOL_JSON: &str = "giftstream.v1.json";
/// Subprotocol of the MessagePack encoding.
pub const SUBPROTOCOL_MSGPACK: &str = "giftstream.v1.msgpack";
/// Longest client id the contract allows.
pub const ID_LEN_MAX: usize = 64;

/// Wire format of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// JSON in text frames.
    Json,
    /// MessagePack maps with named fields in binary frames.
    Msgpack,
}

impl Encoding {
    /// The subprotocol to ask for.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Encoding::Json => SUBPROTOCOL_JSON,
            Encoding::Msgpack => SUBPROTOCOL_MSGPACK,
        }
    }
}

/// A client -> server message.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Out<'a> {
    /// Subscribe to a room.
    Join {
        /// Room id.
        room: &'a str,
    },
    /// Unsubscribe.
    Leave {
        /// Room id.
        room: &'a str,
    },
    /// Send a gift.
    Gift {
        /// Room id.
        room: &'a str,
        /// Catalog gift id.
        gift: &'a str,
        /// Units (1..=99).
        count: u32,
        /// Idempotency key; see [`gift_id`].
        id: &'a str,
    },
    /// Replay after `since`, then continue live.
    Resume {
        /// Room id.
        room: &'a str,
        /// Last seq seen.
        since: u64,
    },
    /// Liveness check.
    Ping,
}

impl Out<'_> {
    /// The frame for this message in `enc`.
    pub fn encode(&self, enc: Encoding) -> Message {
        match enc {
            // Serializing these plain values cannot fail.
            Encoding::Json => Message::text(serde_json::to_string(self).unwrap_or_default()),
            Encoding::Msgpack => Message::binary(rmp_serde::to_vec_named(self).unwrap_or_default()),
        }
    }
}

/// The fields of a server frame the load tester reads; others are skipped.
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    /// Message type (`gift_event`, `gift_ack`, `error`, ...).
    #[serde(rename = "type", borrow)]
    pub ty: Cow<'a, str>,
    /// Room seq (`gift_event`, `gift_ack`, `joined`, `resumed`).
    #[serde(default)]
    pub seq: Option<u64>,
    /// Gift client id (`gift_event`, `gift_ack`, `error`).
    #[serde(default, borrow)]
    pub id: Option<Cow<'a, str>>,
    /// First dropped seq (`skipped`).
    #[serde(default)]
    pub from_seq: Option<u64>,
    /// Last dropped seq (`skipped`).
    #[serde(default)]
    pub to_seq: Option<u64>,
    /// Error code (`error`).
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
    /// Server time of a `gift_event`, ms since the epoch.
    #[serde(default)]
    pub ts: Option<i64>,
}

/// What one received WebSocket message was.
#[derive(Debug)]
pub enum Received<'a> {
    /// A decoded data frame.
    Frame(Frame<'a>),
    /// A data frame that did not decode (counted as a protocol error).
    Garbled,
    /// The server closed, with its code.
    Close(Option<u16>),
    /// Ping, pong or a raw frame: nothing to measure.
    Control,
}

/// Decode a message; JSON from text frames, MessagePack from binary ones.
pub fn decode(msg: &Message) -> Received<'_> {
    let parsed = match msg {
        Message::Text(t) => serde_json::from_str::<Frame>(t.as_str()).ok(),
        Message::Binary(b) => rmp_serde::from_slice::<Frame>(b).ok(),
        Message::Close(c) => return Received::Close(c.as_ref().map(|c| u16::from(c.code))),
        _ => return Received::Control,
    };
    parsed.map_or(Received::Garbled, Received::Frame)
}

/// A gift id that carries its send time: `RUN.SENDER.N.T` where `T` is
/// microseconds since the run's epoch. Every receiver (the sender's own ack,
/// every viewer's event) reads the send time back from the id, so latency
/// is measured against the client's own clock without any shared map.
pub fn gift_id(run: &str, sender: usize, n: u64, sent_us: u64) -> String {
    let id = format!("{run}.{sender}.{n}.{sent_us}");
    debug_assert!(id.len() <= ID_LEN_MAX);
    id
}

/// The send time (µs since the run's epoch) carried by a [`gift_id`] of run `run`.
pub fn sent_us(run: &str, id: &str) -> Option<u64> {
    let rest = id.strip_prefix(run)?.strip_prefix('.')?;
    rest.rsplit('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gift_ids_round_trip_their_send_time() {
        let id = gift_id("ab12cd34", 12_345, 987_654, 123_456_789_012);
        assert!(id.len() <= ID_LEN_MAX);
        assert_eq!(sent_us("ab12cd34", &id), Some(123_456_789_012));
        assert_eq!(sent_us("other", &id), None);
    }

    #[test]
    fn decodes_both_encodings() {
        let ev = serde_json::json!({"type":"gift_event","room":"r","seq":7,"id":"x.1.2.3",
            "sender":"s","gift":"rose","count":1,"combo":1,"coins":1,"diamonds":1,
            "animation":"rose.webp","ts":5});
        let text = Message::text(ev.to_string());
        let bin = Message::binary(rmp_serde::to_vec_named(&ev).unwrap());
        for m in [&text, &bin] {
            let Received::Frame(f) = decode(m) else {
                panic!("frame expected")
            };
            assert_eq!(f.ty, "gift_event");
            assert_eq!(f.seq, Some(7));
            assert_eq!(f.id.as_deref(), Some("x.1.2.3"));
        }
        let out = Out::Gift {
            room: "r",
            gift: "rose",
            count: 2,
            id: "i",
        };
        let Message::Text(t) = out.encode(Encoding::Json) else {
            panic!("text expected")
        };
        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
        assert_eq!(v["type"], "gift");
        assert_eq!(v["count"], 2);
        assert!(matches!(decode(&Message::text("nope")), Received::Garbled));
    }
}

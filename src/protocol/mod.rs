//! Wire contract v1: the messages, their validation, and their encodings.
//!
//! Owns: [`ClientMsg`] (what a client may send), [`ServerMsg`] (what the
//! server sends), [`Encoding`] (JSON text frames or MessagePack binary
//! frames, picked by WebSocket subprotocol), and the id rules shared by
//! HTTP and WebSocket.
//! Must not: touch sockets, wallets or rooms. Encoding here is pure: the hub
//! calls [`ServerMsg::encode`] once per event per encoding and shares bytes.

use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};

pub mod text;
pub mod topic;
#[cfg(test)]
mod wire_tests;

pub use text::{check_message, check_text, MESSAGE_LEN_MAX, TITLE_LEN_MAX};
pub use topic::Topic;
mod seq_event;
pub use seq_event::{ComboEnd, GiftMessage, InboxEvent, SeqEvent};

/// Subprotocol name of the JSON encoding (text frames; the default).
pub const SUBPROTOCOL_JSON: &str = "giftstream.v1.json";
/// Subprotocol name of the MessagePack encoding (binary frames).
pub const SUBPROTOCOL_MSGPACK: &str = "giftstream.v1.msgpack";
/// Longest id (user, room, video, gift client id) the contract allows.
pub const ID_LEN_MAX: usize = 64;
/// Largest `count` of one gift message.
pub const GIFT_COUNT_MAX: u32 = 99;

/// How frames of one socket are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// JSON in text frames.
    Json,
    /// MessagePack maps (named fields) in binary frames.
    MsgPack,
}

impl Encoding {
    /// The encoding for a requested subprotocol; JSON when none matches.
    pub fn from_subprotocol(name: Option<&str>) -> Encoding {
        match name {
            Some(SUBPROTOCOL_MSGPACK) => Encoding::MsgPack,
            _ => Encoding::Json,
        }
    }
}

/// A message from a client. Unknown fields are ignored (forward compatible).
/// Join, leave and resume name exactly one of `room`, `video` or
/// `"inbox": true`, a gift one of `room` or `video` ([`Topic`]); none or
/// more is `bad_request`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "topic::ClientWire")]
pub enum ClientMsg {
    /// Subscribe to a room's or a video's events.
    Join {
        /// The room or video.
        topic: Topic,
        /// Addition to v1: coalesce combo floods into one update per window step.
        coalesce: bool,
    },
    /// Unsubscribe from a room or video.
    Leave {
        /// The room or video.
        topic: Topic,
    },
    /// Send a gift to the room's or video's creator.
    Gift {
        /// The room or video.
        topic: Topic,
        /// Catalog gift id.
        gift: String,
        /// How many of the gift (1..=99).
        count: u32,
        /// Client idempotency key (1..=64 chars).
        id: String,
        /// Addition to v1: a message shown with the gift (at most 150
        /// characters, see [`text`]); None when absent or empty.
        message: Option<String>,
    },
    /// Replay history after `since`, then continue live.
    Resume {
        /// The room or video.
        topic: Topic,
        /// Last seq the client saw.
        since: u64,
    },
    /// Liveness check; answered with `pong`.
    Ping,
    /// Addition to v1: extend this socket with a new token (same `sub`,
    /// same or narrower role and scope); answered with `refreshed`.
    Refresh {
        /// The new JWT.
        token: String,
    },
}

/// The body of a gift sent over HTTP (a WS `gift` minus `room`).
#[derive(Debug, Clone, Deserialize)]
pub struct GiftBody {
    /// Catalog gift id.
    pub gift: String,
    /// How many (1..=99).
    pub count: u32,
    /// Client idempotency key.
    pub id: String,
    /// Addition to v1: a message shown with the gift (at most 150
    /// characters); empty is none.
    #[serde(default)]
    pub message: Option<String>,
}

/// One entry of a room's top gifters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopEntry {
    /// User id.
    pub user: String,
    /// Diamonds that user gave in this live.
    pub diamonds: i64,
}

/// An accepted gift, as every viewer of the room or video sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GiftEvent {
    /// Room id; empty (and left out on the wire) for a video's event.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub room: String,
    /// Addition to v1: the video id, for a video's event (None for a room's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
    /// Room sequence number: strictly increasing, no gaps.
    pub seq: u64,
    /// The gift's client id.
    pub id: String,
    /// Sender's user id.
    pub sender: String,
    /// Catalog gift id.
    pub gift: String,
    /// How many in this message.
    pub count: u32,
    /// Running streak (sum of counts) of this sender and gift.
    pub combo: u32,
    /// Coins this message cost (unit coins x count).
    pub coins: i64,
    /// Diamonds this message earned the creator (unit diamonds x count).
    pub diamonds: i64,
    /// Animation asset name.
    pub animation: String,
    /// Server time of acceptance, ms since the Unix epoch.
    pub ts: i64,
    /// Addition to v1: the sender's message (left out when none, and when
    /// it was kept back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Addition to v1: `filtered` or `held` when the creator's rules kept
    /// the message back (then `message` is left out, except in the
    /// creator's inbox); left out otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_state: Option<String>,
    /// Addition to v1: the kept-back message's id (for review, and the
    /// `gift_message` that follows an approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The kept-back original, for the creator's inbox only
    /// ([`SeqEvent::for_inbox`]); never serialized.
    #[serde(skip)]
    pub original: Option<String>,
}

impl GiftEvent {
    /// The room or video this event belongs to.
    pub fn topic(&self) -> Topic {
        match &self.video {
            Some(v) => Topic::Video(v.clone()),
            None => Topic::Room(self.room.clone()),
        }
    }
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Answer to `join`.
    Joined {
        /// Room id; empty (left out on the wire) for a video.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        room: String,
        /// Addition to v1: the video id (None for a room).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video: Option<String>,
        /// Addition to v1: the inbox's creator (None for a room or video).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inbox: Option<String>,
        /// Last room seq at the moment of joining.
        seq: u64,
        /// Viewers in the room.
        viewers: u64,
    },
    /// Answer to `leave`.
    Left {
        /// Room id; empty (left out on the wire) for a video.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        room: String,
        /// Addition to v1: the video id (None for a room).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video: Option<String>,
        /// Addition to v1: the inbox's creator (None for a room or video).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inbox: Option<String>,
    },
    /// A gift was accepted (or was a replay of an accepted one).
    GiftAck {
        /// Client id of the gift.
        id: String,
        /// Its room seq.
        seq: u64,
        /// Sender's coins after it.
        balance: i64,
    },
    /// End of a `resume` replay.
    Resumed {
        /// Room id; empty (left out on the wire) for a video.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        room: String,
        /// Addition to v1: the video id (None for a room).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video: Option<String>,
        /// Addition to v1: the inbox's creator (None for a room or video).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inbox: Option<String>,
        /// Last seq replayed or current.
        seq: u64,
    },
    /// Answer to `ping`.
    Pong,
    /// Addition to v1: answer to `refresh`; the socket now lives until
    /// `exp`.
    Refreshed {
        /// The new token's expiry, seconds since the epoch.
        exp: u64,
    },
    /// An accepted gift in a joined room.
    GiftEvent(GiftEvent),
    /// Addition to v1: a streak ended (see [`ComboEnd`]).
    ComboEnd(ComboEnd),
    /// Addition to v1: an event in the creator's inbox (see [`InboxEvent`]).
    InboxEvent(InboxEvent),
    /// Addition to v1: a held message approved by the creator or a
    /// moderator (see [`GiftMessage`]).
    GiftMessage(GiftMessage),
    /// A tip in a joined room.
    TipEvent {
        /// Room id.
        room: String,
        /// Tipper.
        sender: String,
        /// Amount in the currency's minor unit.
        amount_cents: i64,
        /// ISO currency code, lower case.
        currency: String,
        /// Tipper's message (addition to v1: left out when it was kept
        /// back, except in the creator's inbox).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// ms since epoch.
        ts: i64,
        /// Addition to v1: `filtered` or `held` when the message was kept
        /// back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_state: Option<String>,
        /// Addition to v1: the kept-back message's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
    },
    /// Addition to v1: a user followed the creator (in the creator's
    /// inbox only, wrapped in an `inbox_event`).
    FollowEvent {
        /// The creator followed.
        creator: String,
        /// Who followed.
        follower: String,
        /// ms since epoch.
        ts: i64,
    },
    /// Room statistics.
    RoomStats {
        /// Room id.
        room: String,
        /// Viewers now.
        viewers: u64,
        /// Diamonds in this live so far.
        diamonds: i64,
        /// Top gifters.
        top: Vec<TopEntry>,
    },
    /// This viewer's queue overflowed; these seqs were dropped for it.
    Skipped {
        /// Room id; empty (left out on the wire) for a video.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        room: String,
        /// Addition to v1: the video id (None for a room).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video: Option<String>,
        /// Addition to v1: the inbox's creator (None for a room or video).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inbox: Option<String>,
        /// First dropped seq.
        from_seq: u64,
        /// Last dropped seq.
        to_seq: u64,
    },
    /// The live ended.
    RoomEnded {
        /// Room id.
        room: String,
    },
    /// A typed error.
    Error {
        /// Contract code.
        code: ErrorCode,
        /// Human message.
        message: String,
        /// The request's client id, when it had one.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        id: Option<String>,
        /// Addition to v1: the room this error ends for the socket (a
        /// block dropped it), when it names one.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        room: Option<String>,
        /// Addition to v1: the video this error ends for the socket.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        video: Option<String>,
    },
}

impl ServerMsg {
    /// The `error` message for `err`, carrying the request's client id.
    pub fn error(err: &Error, id: Option<String>) -> ServerMsg {
        ServerMsg::Error {
            code: err.code,
            message: err.message.clone(),
            id,
            room: None,
            video: None,
        }
    }

    /// An `error` about a room or video the socket was subscribed to (it
    /// ends that subscription): names the `room` or the `video`.
    pub fn error_on(err: &Error, room: Option<String>, video: Option<String>) -> ServerMsg {
        ServerMsg::Error {
            code: err.code,
            message: err.message.clone(),
            id: None,
            room,
            video,
        }
    }

    /// Encode into a WebSocket frame. Called once per event per encoding;
    /// the frame is then cloned (a reference count) for every subscriber.
    pub fn encode(&self, enc: Encoding) -> Message {
        match enc {
            Encoding::Json => {
                // Serializing these plain structs cannot fail.
                let text = serde_json::to_string(self).unwrap_or_default();
                Message::Text(Utf8Bytes::from(text))
            }
            Encoding::MsgPack => {
                let bin = rmp_serde::to_vec_named(self).unwrap_or_default();
                Message::Binary(Bytes::from(bin))
            }
        }
    }

    /// JSON bytes of this message (for HTTP answers and tests).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Decode a client frame. On failure the error carries the message's `id`
/// when one could be read, so the client can match the error to its gift.
pub fn decode_client(payload: &[u8], enc: Encoding) -> Result<ClientMsg, (Error, Option<String>)> {
    let parsed: Result<ClientMsg, String> = match enc {
        Encoding::Json => serde_json::from_slice(payload).map_err(|e| e.to_string()),
        Encoding::MsgPack => rmp_serde::from_slice(payload).map_err(|e| e.to_string()),
    };
    match parsed {
        Ok(msg) => {
            let id = match &msg {
                ClientMsg::Gift { id, .. } if valid_client_id(id) => Some(id.clone()),
                _ => None,
            };
            msg.validate().map(|()| msg).map_err(|e| (e, id))
        }
        Err(why) => Err((
            Error::bad_request(format!("malformed message: {why}")),
            loose_id(payload, enc),
        )),
    }
}

/// Best effort: a message's string `id` field, read without decoding the
/// message itself (other fields are skipped, not built): for a frame
/// refused before it is handled (the socket's message budget is spent).
pub fn peek_id(payload: &[u8], enc: Encoding) -> Option<String> {
    loose_id(payload, enc)
}

/// Best effort: the string `id` field of a message that failed to decode.
fn loose_id(payload: &[u8], enc: Encoding) -> Option<String> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: String,
    }
    let got: Option<IdOnly> = match enc {
        Encoding::Json => serde_json::from_slice(payload).ok(),
        Encoding::MsgPack => rmp_serde::from_slice(payload).ok(),
    };
    got.map(|g| g.id).filter(|id| valid_client_id(id))
}

impl ClientMsg {
    /// Range and shape checks the type system does not express.
    pub fn validate(&self) -> Result<()> {
        match self {
            ClientMsg::Join { topic, .. }
            | ClientMsg::Leave { topic }
            | ClientMsg::Resume { topic, .. } => match topic {
                // The socket names the inbox (the token's `sub`).
                Topic::Inbox(_) => Ok(()),
                _ => check_name(topic.field(), topic.id()),
            },
            ClientMsg::Gift {
                topic,
                gift,
                count,
                id,
                message,
            } => {
                check_name(topic.field(), topic.id())?;
                check_gift(gift, *count, id)?;
                check_message(message.as_deref())
            }
            ClientMsg::Ping => Ok(()),
            ClientMsg::Refresh { token } if token.is_empty() => {
                Err(Error::bad_request("refresh needs a token"))
            }
            ClientMsg::Refresh { .. } => Ok(()),
        }
    }
}

impl GiftBody {
    /// Same checks as a WS `gift`.
    pub fn validate(&self) -> Result<()> {
        check_gift(&self.gift, self.count, &self.id)?;
        check_message(self.message.as_deref())
    }

    /// The message, None when absent or empty.
    pub fn message(&self) -> Option<String> {
        self.message.clone().filter(|m| !m.is_empty())
    }
}

fn check_gift(gift: &str, count: u32, id: &str) -> Result<()> {
    if !(1..=GIFT_COUNT_MAX).contains(&count) {
        return Err(Error::bad_request(format!(
            "count must be 1..={GIFT_COUNT_MAX}, got {count}"
        )));
    }
    if !valid_client_id(id) {
        return Err(Error::bad_request(format!(
            "id must be 1..={ID_LEN_MAX} characters"
        )));
    }
    if gift.is_empty() || gift.len() > ID_LEN_MAX {
        return Err(Error::new(ErrorCode::UnknownGift, "no such gift"));
    }
    Ok(())
}

/// A client idempotency key: 1..=64 characters, no control characters.
pub fn valid_client_id(id: &str) -> bool {
    let n = id.chars().count();
    (1..=ID_LEN_MAX).contains(&n) && !id.chars().any(char::is_control)
}

/// A name (user, room, video): 1..=64 of `[A-Za-z0-9_.-]`.
pub fn valid_name(name: &str) -> bool {
    (1..=ID_LEN_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// `bad_request` naming `what` unless `name` is a valid name.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(Error::bad_request(format!(
            "{what} must be 1..={ID_LEN_MAX} characters of [A-Za-z0-9_.-]"
        )))
    }
}

/// Milliseconds since the Unix epoch, server time.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;

//! What a client subscribes to or gifts: a room or a video (the wire's
//! `room` / `video` field; a third kind, the creator's `inbox`, is meant to
//! fit here the same way), and the client messages' wire form before that
//! choice is checked.
//!
//! Owns: [`Topic`], the rule "exactly one of `room` / `video`" and the raw
//! wire shape (`ClientWire`) that [`super::ClientMsg`] is decoded from.
//! Must not: know rooms or sockets (the hub does).

use serde::Deserialize;

use super::ClientMsg;

/// A room or a video named by a client message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `"room": ID`.
    Room(String),
    /// `"video": ID`.
    Video(String),
}

impl Topic {
    /// The room `id`.
    pub fn room(id: impl Into<String>) -> Topic {
        Topic::Room(id.into())
    }

    /// The video `id`.
    pub fn video(id: impl Into<String>) -> Topic {
        Topic::Video(id.into())
    }

    /// The room or video id.
    pub fn id(&self) -> &str {
        match self {
            Topic::Room(id) | Topic::Video(id) => id,
        }
    }

    /// The wire field naming it: `room` or `video`.
    pub fn field(&self) -> &'static str {
        match self {
            Topic::Room(_) => "room",
            Topic::Video(_) => "video",
        }
    }

    /// The hub's name of this topic: a room's id as is, `video:ID` for a
    /// video (ids never hold `:`, so the two never collide).
    pub fn hub_key(&self) -> String {
        match self {
            Topic::Room(id) => id.clone(),
            Topic::Video(id) => format!("video:{id}"),
        }
    }

    /// Inverse of [`Topic::hub_key`].
    pub fn from_hub_key(key: &str) -> Topic {
        match key.strip_prefix("video:") {
            Some(id) => Topic::Video(id.to_string()),
            None => Topic::Room(key.to_string()),
        }
    }

    /// The `(room, video)` fields of a server message about this topic:
    /// `room` empty (left out on the wire) for a video.
    pub fn fields(&self) -> (String, Option<String>) {
        match self {
            Topic::Room(id) => (id.clone(), None),
            Topic::Video(id) => (String::new(), Some(id.clone())),
        }
    }
}

/// `room` and `video` of a client message: exactly one must be there.
fn topic(room: Option<String>, video: Option<String>) -> Result<Topic, String> {
    match (room, video) {
        (Some(r), None) => Ok(Topic::Room(r)),
        (None, Some(v)) => Ok(Topic::Video(v)),
        (None, None) => Err("the message names no `room` or `video`".into()),
        (Some(_), Some(_)) => Err("the message names both a `room` and a `video`".into()),
    }
}

/// A client message as it is on the wire, before the topic is checked.
/// Unknown fields are ignored (forward compatible).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ClientWire {
    Join {
        room: Option<String>,
        video: Option<String>,
        #[serde(default)]
        coalesce: bool,
    },
    Leave {
        room: Option<String>,
        video: Option<String>,
    },
    Gift {
        room: Option<String>,
        video: Option<String>,
        gift: String,
        count: u32,
        id: String,
        message: Option<String>,
    },
    Resume {
        room: Option<String>,
        video: Option<String>,
        since: u64,
    },
    Ping,
    Refresh {
        token: String,
    },
}

impl TryFrom<ClientWire> for ClientMsg {
    type Error = String;

    fn try_from(w: ClientWire) -> Result<ClientMsg, String> {
        Ok(match w {
            ClientWire::Join {
                room,
                video,
                coalesce,
            } => ClientMsg::Join {
                topic: topic(room, video)?,
                coalesce,
            },
            ClientWire::Leave { room, video } => ClientMsg::Leave {
                topic: topic(room, video)?,
            },
            ClientWire::Gift {
                room,
                video,
                gift,
                count,
                id,
                message,
            } => ClientMsg::Gift {
                topic: topic(room, video)?,
                gift,
                count,
                id,
                // An empty message is no message.
                message: message.filter(|m| !m.is_empty()),
            },
            ClientWire::Resume { room, video, since } => ClientMsg::Resume {
                topic: topic(room, video)?,
                since,
            },
            ClientWire::Ping => ClientMsg::Ping,
            ClientWire::Refresh { token } => ClientMsg::Refresh { token },
        })
    }
}

//! What a client subscribes to or gifts: a room or a video (the wire's
//! `room` / `video` field), or a creator's inbox (`"inbox": true`, always
//! the token's own: the wire names no creator), and the client messages'
//! wire form before that choice is checked.
//!
//! Owns: [`Topic`], the rule "exactly one of `room` / `video` / `inbox`" and the raw
//! wire shape (`ClientWire`) that [`super::ClientMsg`] is decoded from.
//! Must not: know rooms or sockets (the hub does).

use serde::Deserialize;

use super::ClientMsg;

/// A room, a video or a creator's inbox named by a client message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `"room": ID`.
    Room(String),
    /// `"video": ID`.
    Video(String),
    /// `"inbox": true`: the creator's inbox (addition to v1). Decoded from
    /// the wire with an empty id; the socket fills in the token's `sub`.
    Inbox(String),
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

    /// A creator's inbox.
    pub fn inbox(creator: impl Into<String>) -> Topic {
        Topic::Inbox(creator.into())
    }

    /// The room or video id, or the inbox's creator.
    pub fn id(&self) -> &str {
        match self {
            Topic::Room(id) | Topic::Video(id) | Topic::Inbox(id) => id,
        }
    }

    /// The wire field naming it: `room`, `video` or `inbox`.
    pub fn field(&self) -> &'static str {
        match self {
            Topic::Room(_) => "room",
            Topic::Video(_) => "video",
            Topic::Inbox(_) => "inbox",
        }
    }

    /// The hub's name of this topic: a room's id as is, `video:ID` for a
    /// video, `inbox:CREATOR` for an inbox (ids never hold `:`, so they
    /// never collide).
    pub fn hub_key(&self) -> String {
        match self {
            Topic::Room(id) => id.clone(),
            Topic::Video(id) => format!("video:{id}"),
            Topic::Inbox(id) => format!("inbox:{id}"),
        }
    }

    /// Inverse of [`Topic::hub_key`].
    pub fn from_hub_key(key: &str) -> Topic {
        if let Some(id) = key.strip_prefix("video:") {
            Topic::Video(id.to_string())
        } else if let Some(id) = key.strip_prefix("inbox:") {
            Topic::Inbox(id.to_string())
        } else {
            Topic::Room(key.to_string())
        }
    }

    /// The `(room, video, inbox)` fields of a server message about this
    /// topic: `room` empty (left out on the wire) for a video or an inbox.
    pub fn fields(&self) -> (String, Option<String>, Option<String>) {
        match self {
            Topic::Room(id) => (id.clone(), None, None),
            Topic::Video(id) => (String::new(), Some(id.clone()), None),
            Topic::Inbox(id) => (String::new(), None, Some(id.clone())),
        }
    }
}

/// `room`, `video` and `inbox` of a client message: exactly one must be
/// there (`"inbox": false` is no inbox).
fn topic(
    room: Option<String>,
    video: Option<String>,
    inbox: Option<bool>,
) -> Result<Topic, String> {
    let inbox = inbox.unwrap_or(false).then(String::new);
    match (room, video, inbox) {
        (Some(r), None, None) => Ok(Topic::Room(r)),
        (None, Some(v), None) => Ok(Topic::Video(v)),
        (None, None, Some(i)) => Ok(Topic::Inbox(i)),
        (None, None, None) => Err("the message names no `room`, `video` or `inbox`".into()),
        _ => Err("the message names more than one of `room`, `video` and `inbox`".into()),
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
        inbox: Option<bool>,
        #[serde(default)]
        coalesce: bool,
    },
    Leave {
        room: Option<String>,
        video: Option<String>,
        inbox: Option<bool>,
    },
    Gift {
        room: Option<String>,
        video: Option<String>,
        inbox: Option<bool>,
        gift: String,
        count: u32,
        id: String,
        message: Option<String>,
    },
    Resume {
        room: Option<String>,
        video: Option<String>,
        inbox: Option<bool>,
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
                inbox,
                coalesce,
            } => ClientMsg::Join {
                topic: topic(room, video, inbox)?,
                coalesce,
            },
            ClientWire::Leave { room, video, inbox } => ClientMsg::Leave {
                topic: topic(room, video, inbox)?,
            },
            ClientWire::Gift {
                room,
                video,
                inbox,
                gift,
                count,
                id,
                message,
            } => ClientMsg::Gift {
                topic: match topic(room, video, inbox)? {
                    Topic::Inbox(_) => return Err("a gift goes to a `room` or a `video`".into()),
                    t => t,
                },
                gift,
                count,
                id,
                // An empty message is no message.
                message: message.filter(|m| !m.is_empty()),
            },
            ClientWire::Resume {
                room,
                video,
                inbox,
                since,
            } => ClientMsg::Resume {
                topic: topic(room, video, inbox)?,
                since,
            },
            ClientWire::Ping => ClientMsg::Ping,
            ClientWire::Refresh { token } => ClientMsg::Refresh { token },
        })
    }
}

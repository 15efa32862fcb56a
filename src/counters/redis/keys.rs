//! Redis key and channel names: everything under the `{gs}` hash tag.

use super::*;

pub(super) fn key(parts: &[&str]) -> String {
    let mut k = String::from(PREFIX);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(':');
        }
        k.push_str(p);
    }
    k
}

/// A sender's id index: a list of `<16-digit ticket>:<client id>` in
/// acceptance order, capped at `counters.idempotency_keys_per_wallet_max`
/// (`lua/gift.lua`). `idl`, not the `idz` sorted set it replaced, so an
/// old index (it expires after the idempotency TTL) is never pushed to.
pub(super) fn idz_key(user: &str) -> String {
    key(&["idl", user])
}
pub(super) fn wallet_key(user: &str) -> String {
    key(&["bal", user])
}
pub(super) fn idem_prefix(user: &str) -> String {
    key(&["idem", user, ""])
}
pub(crate) fn target_key(target_key: &str) -> String {
    key(&["t", target_key])
}
pub(super) fn pending_prefix() -> String {
    key(&["pd", ""])
}
pub(super) fn stream_key() -> String {
    key(&["pending"])
}
/// The settlement stream's gift counts: unsettled, and delivered to a
/// worker (named in `lua/stream_lib.lua`'s `stream_count_keys`).
pub(super) fn stream_count_keys() -> [String; 2] {
    let s = stream_key();
    [format!("{s}:n"), format!("{s}:d")]
}
pub(super) fn ticket_key() -> String {
    key(&["ticket"])
}
pub(super) fn credit_ops_key() -> String {
    key(&["credit_ops"])
}
pub(super) fn marker_key() -> String {
    key(&["marker"])
}
/// The load fence: loader -> deadline (sorted set), one entry per engine
/// loading Redis from the ledger; credits wait while one stands (`credit.lua`).
pub(super) fn load_fence_key() -> String {
    key(&["loading"])
}
/// Names of the rooms' sharded pub/sub channels, `{gs}:ev:<db>:<room>`.
///
/// Keys live in one logical database, but pub/sub channels span all of
/// them: the database number in the name keeps two deployments (or two
/// test servers) that share one `redis-server` on different databases from
/// hearing each other's rooms.
#[derive(Clone, Debug)]
pub struct Channels {
    prefix: String,
}

impl Channels {
    pub(crate) fn new(db: i64) -> Channels {
        Channels {
            prefix: key(&["ev", &db.to_string(), ""]),
        }
    }

    /// What every channel name starts with.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A room's channel.
    pub(crate) fn room(&self, room: &str) -> String {
        let mut c = String::with_capacity(self.prefix.len() + room.len());
        c.push_str(&self.prefix);
        c.push_str(room);
        c
    }
}
/// The history stream (entry ids `<seq>-0`) of a room, video or inbox,
/// by its hub key (a room's id, `video:ID` for a video, `inbox:C` for a
/// creator's inbox).
pub(crate) fn history_key(hub_key: &str) -> String {
    if let Some(video) = hub_key.strip_prefix("video:") {
        key(&["h", "video", video])
    } else if let Some(creator) = hub_key.strip_prefix("inbox:") {
        key(&["h", "inbox", creator])
    } else {
        key(&["h", "room", hub_key])
    }
}
/// A creator's inbox (hash, field `seq`: its last inbox seq; never
/// expires). See `lua/inbox_lib.lua`.
pub(crate) fn inbox_key(creator: &str) -> String {
    key(&["ib", creator])
}
/// Where a fresh inbox starts after Redis lost its data (ms; see
/// `lua/inbox_lib.lua`, which derives this name from an inbox key).
pub(crate) fn inbox_floor_key() -> String {
    key(&["ibfloor"])
}
/// A room's top gifters this live (sorted set, diamonds per user).
pub(crate) fn top_key(room: &str) -> String {
    key(&["top", "room", room])
}
/// A room's viewers per node (hash, node id -> `count:ts ms`).
pub(crate) fn viewers_key(room: &str) -> String {
    key(&["vw", "room", room])
}
/// Follower counts (hash, field: creator, value: followers; never
/// expires). See `followers.rs`.
pub(crate) fn followers_key() -> String {
    key(&["fl"])
}
/// Set once the follower counts were loaded from the ledger (gone with a
/// wipe, so the next start loads them again).
pub(crate) fn followers_loaded_key() -> String {
    key(&["flloaded"])
}

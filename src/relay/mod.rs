//! The relay: how room events other than the counters engine's own gift
//! publications reach every node's subscribers, and what a node knows of
//! the others (history to resume from, their viewer counts).
//!
//! Owns: the [`Relay`] trait, keyed by [`Topic`] (rooms, video feeds and
//! creator inboxes; tips enter an inbox through [`Relay::publish_inbox`]), and its two
//! implementations: [`local::LocalRelay`] (one node, in process: the hub is
//! every subscriber there is) and [`redis::RedisRelay`] (several nodes:
//! sharded pub/sub subscriptions for the rooms open here, gap filling from
//! each room's history stream, per-node viewer counts and room stats).
//! Which one runs is chosen with the counters engine at build time
//! (`server::start`); callers never ask which.
//! Must not: change balances or seqs (the counters engine does, and
//! publishes gift events inside its atomic step), or be imported by the
//! hub or the counters engine (it delivers into the hub; the hub reaches
//! it only through its `ConnOps` handle).

pub mod local;
pub mod redis;

use async_trait::async_trait;

use crate::counters::Counters;
use crate::error::Result;
use crate::protocol::{SeqEvent, ServerMsg};

/// What a relayed message is about: a room, a video feed or a creator's
/// inbox (the wire's topic).
pub use crate::protocol::Topic;

/// The cross-node side of room events.
#[async_trait]
pub trait Relay: Send + Sync + 'static {
    /// Send a message other than a gift event (a `tip_event`) to every
    /// subscriber of `topic` on every node, this node's included, after the
    /// events already published there. Gift events are not published here:
    /// the counters engine publishes them inside its atomic step.
    async fn publish(&self, topic: &Topic, msg: &ServerMsg) -> Result<()>;

    /// Put a message that is not a counters engine event (a `tip_event`)
    /// into `creator`'s inbox, with the inbox's next seq, on every node
    /// (Redis: one script assigns the seq, keeps it in the inbox's history
    /// and publishes it). Gift events and streak ends are not published
    /// here: the counters engine puts them into the inbox itself.
    async fn publish_inbox(&self, creator: &str, msg: &ServerMsg) -> Result<()>;

    /// `creator`'s inbox seq now, or None when the relay keeps none (in
    /// process: the hub keeps each inbox's seq).
    async fn inbox_seq(&self, creator: &str) -> Result<Option<u64>>;

    /// The topic's events with seq > `since`, in order, from the relay's
    /// own history (Redis: the room's history stream, bounded by
    /// `hub.history_len_max` and `hub.history_age_ms_max`), or None when it
    /// keeps none (in process: the room task's ring serves `resume`).
    /// Errors with `history_gone` when the history no longer reaches back
    /// to `since`.
    async fn history(&self, topic: &Topic, since: u64) -> Result<Option<Vec<SeqEvent>>>;

    /// Subscribers of `topic` on every other node, as they last reported
    /// them (Redis: each node refreshes its count every
    /// `hub.stats_interval_ms`; a dead node's count ages out after
    /// `counters.viewers_ttl_ms`); 0 on one node.
    async fn other_nodes_viewers(&self, topic: &Topic) -> Result<u64>;

    /// The counters engine just ended the topic's live
    /// (`Counters::end_room`): end it on this node. In process at once;
    /// with Redis nothing is done here, since the engine published
    /// `room_ended` in the same step and every node (this one included)
    /// ends its room when that arrives, after the room's last gift events.
    async fn ended(&self, topic: &Topic) -> Result<()>;

    /// `creator` blocked `user`: end `user`'s subscriptions to the
    /// creator's rooms and videos on every node (this one included), each
    /// with an `error` `forbidden` naming its room or video; their other
    /// subscriptions stay. In process at once; with Redis one message on
    /// the channel every node listens to.
    async fn drop_blocked(&self, creator: &str, user: &str) -> Result<()>;

    /// At start, the live rooms restored from the ledger (room, creator):
    /// in process every one opens on the hub now (at the engine's seq);
    /// with Redis a room opens on a node when a viewer there joins it.
    async fn restore(&self, live: Vec<(String, String)>, counters: &dyn Counters) -> Result<()>;
}

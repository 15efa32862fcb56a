//! The Redis relay (several nodes sharing the Redis counters engine).
//!
//! Owns: [`RedisRelay`]: the node's room-event feed ([`feed`]: one RESP3
//! connection holding a sharded subscription for exactly the rooms open
//! here, gaps filled from each room's history stream), the stats loop
//! ([`stats`]: this node's viewer counts out, each room's stats across
//! nodes in), and the relay's reads and writes on its own connection:
//! `SPUBLISH` of non-gift room messages and of blocks (on one channel
//! every node's feed listens to), `inbox_publish.lua` for tips into
//! a creator's inbox (the one write this side makes to an inbox, with the
//! engine's own `inbox_lib.lua`, so an inbox seq is taken in one place
//! per event), `history.lua` for `resume`, and the other nodes' viewer
//! counts.
//! Must not: change balances or target seqs, or write any other key the
//! counters engine owns (the gift script writes the history stream and
//! publishes gift events; this side only reads them, and writes this
//! node's viewer count).

mod feed;
mod stats;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::Script;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Relay, Topic};
use crate::config::HubConfig;
use crate::counters::redis::keys::{history_key, inbox_key, target_key, viewers_key, Channels};
use crate::counters::redis::RedisCounters;
use crate::counters::Counters;
use crate::error::{Error, ErrorCode, Result};
use crate::hub::Hub;
use crate::model::Target;
use crate::protocol::{SeqEvent, ServerMsg};

/// The relay of a node sharing the Redis counters engine with others.
/// Dropping it stops its feed and stats loop.
pub struct RedisRelay {
    conn: ConnectionManager,
    channels: Channels,
    /// This node's id (its field in each room's viewers hash).
    node: String,
    viewers_ttl_ms: u64,
    hub_cfg: HubConfig,
    history: Script,
    inbox_publish: Script,
    _stop: DropGuard,
}

impl RedisRelay {
    /// The relay of `engine`'s Redis: it shares the engine's command
    /// connection, opens its own RESP3 subscription connection, and starts
    /// the feed of `hub`'s rooms and the stats loop (bounds from the
    /// engine's and the hub's configuration). Marks `hub` as relayed (see
    /// `Hub::set_relayed`). Returns once the feed's connection is up.
    pub async fn connect(engine: &RedisCounters, hub: Arc<Hub>) -> anyhow::Result<RedisRelay> {
        let (client, mut conn, cfg) = engine.relay_link();
        let channels = Channels::new(client.get_connection_info().redis_settings().db());
        let timeout = Duration::from_millis(cfg.redis_timeout_ms);
        let history = Script::new(include_str!("../lua/history.lua"));
        history.prepare_invoke().load_async(&mut conn).await?;
        let inbox_publish = Script::new(concat!(
            include_str!("../../counters/lua/inbox_lib.lua"),
            include_str!("../lua/inbox_publish.lua")
        ));
        inbox_publish.prepare_invoke().load_async(&mut conn).await?;
        let hub_cfg = hub.config().clone();
        let node = format!("n-{}", uuid::Uuid::now_v7().simple());
        let stop = CancellationToken::new();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        hub.set_relayed();
        let feed = feed::Feed {
            client: feed::resp3(&client).context("redis: a RESP3 client for the relay")?,
            conn: conn.clone(),
            hub: hub.clone(),
            backoff_max: Duration::from_millis(cfg.redis_reconnect_ms_max),
            timeout,
            queue_len_max: cfg.relay_queue_len_max,
            history_len_max: hub_cfg.history_len_max,
            channels: channels.clone(),
        };
        tokio::spawn(feed.run(stop.clone(), ready_tx));
        tokio::spawn(stats::stats_loop(stats::StatsLoop {
            conn: conn.clone(),
            hub,
            node: node.clone(),
            interval: Duration::from_millis(hub_cfg.stats_interval_ms),
            ttl_ms: cfg.viewers_ttl_ms,
            stop: stop.clone(),
        }));
        match tokio::time::timeout(timeout, ready_rx).await {
            Ok(Ok(())) => {}
            _ => {
                stop.cancel();
                anyhow::bail!("redis: could not connect the room-event relay within {timeout:?}")
            }
        }
        Ok(RedisRelay {
            conn,
            channels,
            node,
            viewers_ttl_ms: cfg.viewers_ttl_ms,
            hub_cfg,
            history,
            inbox_publish,
            _stop: stop.drop_guard(),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

fn redis_err(e: redis::RedisError) -> Error {
    metrics::counter!("giftstream_redis_errors_total").increment(1);
    Error::internal(format_args!("redis: {e}"))
}

/// The viewers in a room's viewers hash (node id -> `count:ts ms`) that
/// were refreshed within `ttl_ms` before `now_ms`, leaving out node
/// `except` (the caller's own, which it counts live). The same rule as
/// `room_stats.lua`.
fn fresh_viewers(counts: &HashMap<String, String>, except: &str, now_ms: i64, ttl_ms: u64) -> u64 {
    counts
        .iter()
        .filter(|(node, _)| node.as_str() != except)
        .filter_map(|(_, v)| {
            let (count, ts) = v.split_once(':')?;
            let (count, ts) = (count.parse::<u64>().ok()?, ts.parse::<i64>().ok()?);
            (now_ms.saturating_sub(ts) <= ttl_ms.min(i64::MAX as u64) as i64).then_some(count)
        })
        .sum()
}

/// The hash whose `seq` field is the topic's seq: the counters engine's
/// target hash, or the creator's inbox hash.
fn seq_hash_key(topic: &Topic) -> String {
    match topic {
        Topic::Room(id) => target_key(&Target::room(id.as_str()).key()),
        Topic::Video(id) => target_key(&Target::video(id.as_str()).key()),
        Topic::Inbox(creator) => inbox_key(creator),
    }
}

#[async_trait]
impl Relay for RedisRelay {
    async fn publish(&self, topic: &Topic, msg: &ServerMsg) -> Result<()> {
        let room = &topic.hub_key();
        let payload = serde_json::to_string(msg).map_err(Error::internal)?;
        // Sharded, like gift events: only nodes with the room open listen.
        let _: i64 = redis::cmd("SPUBLISH")
            .arg(self.channels.room(room))
            .arg(payload)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    async fn publish_inbox(&self, creator: &str, msg: &ServerMsg) -> Result<()> {
        let payload = serde_json::to_string(msg).map_err(Error::internal)?;
        let hub_key = Topic::inbox(creator).hub_key();
        let _: u64 = self
            .inbox_publish
            .key(inbox_key(creator))
            .key(history_key(&hub_key))
            .arg(self.channels.room(&hub_key))
            .arg(creator)
            .arg(payload)
            .arg(crate::protocol::now_ms())
            .arg(self.hub_cfg.history_len_max)
            .arg(self.hub_cfg.history_age_ms_max)
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    async fn inbox_seq(&self, creator: &str) -> Result<Option<u64>> {
        let seq: Option<u64> = redis::cmd("HGET")
            .arg(inbox_key(creator))
            .arg("seq")
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(Some(seq.unwrap_or(0)))
    }

    async fn history(&self, topic: &Topic, since: u64) -> Result<Option<Vec<SeqEvent>>> {
        let room = &topic.hub_key();
        let age_ms = self.hub_cfg.history_age_ms_max.min(i64::MAX as u64) as i64;
        let reply: Vec<String> = self
            .history
            .key(history_key(room))
            .key(seq_hash_key(topic))
            .arg(since)
            .arg(self.hub_cfg.history_len_max)
            .arg(crate::protocol::now_ms().saturating_sub(age_ms))
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        match reply.first().map(String::as_str) {
            Some("OK") => reply
                .get(2..)
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    serde_json::from_str::<SeqEvent>(e)
                        .map_err(|e| Error::internal(format_args!("redis: bad history entry: {e}")))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some("GONE") => Err(Error::new(
                ErrorCode::HistoryGone,
                format!(
                    "history of `{room}` starts at seq {}; resume since {since} is gone",
                    reply.get(1).map(String::as_str).unwrap_or("?")
                ),
            )),
            _ => Err(Error::internal("redis: bad history answer")),
        }
    }

    async fn other_nodes_viewers(&self, topic: &Topic) -> Result<u64> {
        let room = &topic.hub_key();
        let counts: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(viewers_key(room))
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(fresh_viewers(
            &counts,
            &self.node,
            crate::protocol::now_ms(),
            self.viewers_ttl_ms,
        ))
    }

    async fn ended(&self, _topic: &Topic) -> Result<()> {
        // `end_room.lua` published `room_ended` with `live = 0`: every
        // node's feed (this one's too) ends its room after the last gift.
        Ok(())
    }

    async fn drop_blocked(&self, creator: &str, user: &str) -> Result<()> {
        let payload = serde_json::to_string(&feed::Blocked {
            creator: creator.to_string(),
            user: user.to_string(),
        })
        .map_err(Error::internal)?;
        let _: i64 = redis::cmd("SPUBLISH")
            .arg(self.channels.room(feed::BLOCKS_CHANNEL))
            .arg(payload)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    async fn restore(&self, _live: Vec<(String, String)>, _counters: &dyn Counters) -> Result<()> {
        // A room opens on a node when a viewer there joins or resumes it.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_viewers_sums_other_live_nodes_only() {
        let counts: HashMap<String, String> = [
            ("me", "7:1000"),      // the caller's own: counted live instead
            ("b", "3:990"),        // 10 ms old
            ("c", "2:500"),        // exactly ttl old: still counted
            ("dead", "100:499"),   // past the ttl
            ("garbled", "x:1000"), // not a count
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(fresh_viewers(&counts, "me", 1000, 500), 5);
        assert_eq!(fresh_viewers(&counts, "nobody", 1000, 500), 12);
        assert_eq!(fresh_viewers(&HashMap::new(), "me", 1000, 500), 0);
    }
}

//! The node's room stats across nodes (Redis relay).
//!
//! Owns: the stats loop: every `hub.stats_interval_ms`, this node's viewer
//! count of each local room goes to the room's viewers hash, and the room
//! gets its stats across nodes (`room_stats.lua`) as a [`RoomCmd::Stats`].
//! Must not: change balances or seqs, or wait on a room's queue.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;
use tokio_util::sync::CancellationToken;

use crate::counters::redis::keys::{target_key, top_key, viewers_key};
use crate::hub::{Hub, RoomCmd};
use crate::protocol::TopEntry;

/// Rooms whose stats are read in one round of concurrent script calls.
const STATS_CHUNK_LEN_MAX: usize = 64;
/// Top gifters in `room_stats`.
const TOP_LEN: usize = 10;

/// The stats loop's set-up.
pub(super) struct StatsLoop {
    /// The engine's connection.
    pub conn: ConnectionManager,
    /// This node's rooms.
    pub hub: Arc<Hub>,
    /// This node's id (its field in each room's viewers hash).
    pub node: String,
    /// `hub.stats_interval_ms`.
    pub interval: Duration,
    /// `counters.viewers_ttl_ms`.
    pub ttl_ms: u64,
    /// Stops the loop.
    pub stop: CancellationToken,
}

/// Every `hub.stats_interval_ms`: write this node's viewer count of each
/// local room and hand the room its stats across nodes (viewers summed
/// over live nodes, diamonds this live, top gifters); the room sends
/// `room_stats` only when they changed. A room that stopped here gets its
/// count removed.
pub(super) async fn stats_loop(s: StatsLoop) {
    let script = Script::new(include_str!("../lua/room_stats.lua"));
    let mut last: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            _ = s.stop.cancelled() => return,
            _ = tokio::time::sleep(s.interval) => {}
        }
        // Videos and inboxes have no live stats (a video's totals are in
        // the ledger).
        let mut rooms = s.hub.open_rooms();
        rooms.retain(|(r, _)| !r.starts_with("video:") && !r.starts_with("inbox:"));
        let now = crate::protocol::now_ms();
        let mut seen = HashSet::with_capacity(rooms.len());
        for chunk in rooms.chunks(STATS_CHUNK_LEN_MAX) {
            let calls = chunk.iter().map(|(room, h)| {
                let mut conn = s.conn.clone();
                let viewers = h.viewers.load(Ordering::Relaxed);
                let mut inv = script.prepare_invoke();
                inv.key(viewers_key(room))
                    .key(top_key(room))
                    .key(target_key(&format!("room:{room}")))
                    .arg(&s.node)
                    .arg(viewers)
                    .arg(now)
                    .arg(s.ttl_ms)
                    .arg(TOP_LEN);
                async move { inv.invoke_async::<Vec<String>>(&mut conn).await }
            });
            let answers = futures_util::future::join_all(calls).await;
            for ((room, h), answer) in chunk.iter().zip(answers) {
                seen.insert(room.clone());
                match answer {
                    Ok(a) => {
                        if let Some(cmd) = stats_cmd(&a) {
                            let _ = h.tx.try_send(cmd);
                        }
                    }
                    Err(e) => tracing::warn!(room, error = %e, "redis: room stats failed"),
                }
            }
        }
        for room in last.difference(&seen) {
            let r: redis::RedisResult<i64> = redis::cmd("HDEL")
                .arg(viewers_key(room))
                .arg(&s.node)
                .query_async(&mut s.conn.clone())
                .await;
            if let Err(e) = r {
                tracing::warn!(room, error = %e, "redis: removing a viewer count failed");
            }
        }
        last = seen;
    }
}

/// `room_stats.lua`'s answer as a room command.
fn stats_cmd(a: &[String]) -> Option<RoomCmd> {
    let viewers = a.first()?.parse().ok()?;
    let diamonds = a.get(1)?.parse().ok()?;
    let top = a
        .get(2..)?
        .chunks_exact(2)
        .filter_map(|p| {
            Some(TopEntry {
                user: p[0].clone(),
                diamonds: p[1].parse::<f64>().ok()? as i64,
            })
        })
        .collect();
    Some(RoomCmd::Stats {
        viewers,
        diamonds,
        top,
    })
}

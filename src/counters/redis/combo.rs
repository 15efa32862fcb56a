//! Combo streak ends on Redis: the streak keys, the `combo_end` head the
//! gift script stores with a streak, ending a room's streaks with the room,
//! and the reaper every node runs.
//!
//! Owns: the streak keys (`{gs}:cs:<target>:<sender>` hashes, the
//! `{gs}:csi:<target>` index sets, the `{gs}:cdue` due zset; their layout
//! is documented in `lua/combo_lib.lua`), [`spawn_reaper`] (every
//! `counters.combo_reap_interval_ms`, one `combo_reap.lua` call ending at
//! most `counters.combo_reap_batch_max` due streaks: atomic, so whichever
//! node runs it first emits each end, once; a node's death leaves its
//! streaks to the others) and `end_room.lua`'s call.
//! Must not: keep a streak's timer in this process only (the due zset is
//! the timer), or publish a streak end outside a script.

use serde::Serialize;

use super::keys::*;
use super::scripts::*;
use super::*;
use crate::counters::combo;

/// A sender's streak on a target (hash).
pub(super) fn streak_key(tkey: &str, sender: &str) -> String {
    key(&["cs", tkey, sender])
}

/// A target's index of senders with a streak (set).
pub(super) fn streak_index_key(tkey: &str) -> String {
    key(&["csi", tkey])
}

/// Every streak by due time (zset), for the reapers.
pub(super) fn due_key() -> String {
    key(&["cdue"])
}

/// A streak's member in the due zset.
pub(super) fn due_member(tkey: &str, sender: &str) -> String {
    format!("{tkey}|{sender}")
}

/// How long a streak's keys live past its last gift: the window plus
/// `counters.combo_end_late_ms_max`.
pub(super) fn streak_ttl_ms(cfg: &CountersConfig) -> u64 {
    cfg.combo_window_ms
        .saturating_add(cfg.combo_end_late_ms_max)
}

/// The head of a `combo_end` as JSON, without the closing brace (the
/// script appends seq and the numbers), or "" when the target publishes no
/// events ([`combo::publishes_events`]).
pub(super) fn end_head(target: &Target, sender: &str, gift: &str) -> Result<String> {
    #[derive(Serialize)]
    struct Head<'a> {
        r#type: &'a str,
        #[serde(skip_serializing_if = "str::is_empty")]
        room: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        video: Option<&'a str>,
        sender: &'a str,
        gift: &'a str,
    }
    if !combo::publishes_events(target.kind) {
        return Ok(String::new());
    }
    let mut json = serde_json::to_string(&Head {
        r#type: "combo_end",
        room: if target.kind == TargetKind::Room {
            &target.id
        } else {
            ""
        },
        video: (target.kind == TargetKind::Video).then_some(target.id.as_str()),
        sender,
        gift,
    })
    .map_err(|e| CountersError::Corrupt(format!("combo_end head: {e}")))?;
    json.pop();
    Ok(json)
}

fn reap_script() -> &'static Script {
    static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| {
        Script::new(concat!(
            include_str!("../lua/combo_lib.lua"),
            include_str!("../lua/combo_reap.lua")
        ))
    })
}

/// One reaper run: end the streaks due before `now_ms` (at most
/// `batch_max`); answers how many ended.
pub(super) async fn reap_once(
    conn: &mut ConnectionManager,
    now_ms: i64,
    batch_max: usize,
) -> Result<u64> {
    reap_script()
        .key(due_key())
        .arg(now_ms)
        .arg(batch_max)
        .arg(key(&["cs", ""]))
        .arg(key(&["t", ""]))
        .arg(key(&["csi", ""]))
        .invoke_async(conn)
        .await
        .map_err(redis_err)
}

/// Start this node's streak reaper; it runs until `stop`. Every node runs
/// one: the due zset in Redis is the timer, so a streak whose node died is
/// ended by another.
pub(super) fn spawn_reaper(
    conn: ConnectionManager,
    cfg: &CountersConfig,
    stop: tokio_util::sync::CancellationToken,
) {
    let every = Duration::from_millis(cfg.combo_reap_interval_ms.max(1));
    let batch_max = cfg.combo_reap_batch_max;
    tokio::spawn(async move {
        let mut conn = conn;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match reap_once(&mut conn, crate::protocol::now_ms(), batch_max).await {
                Ok(n) => {
                    failing = false;
                    if n > 0 {
                        metrics::counter!("giftstream_combo_ends_total").increment(n);
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "redis: the combo streak reaper failed; retrying");
                    }
                    failing = true;
                }
            }
        }
    });
}

impl RedisCounters {
    /// [`Counters::end_room`] on Redis: `live = 0`, every open streak of
    /// the room ends (`combo_end`), then `room_ended`, in one script.
    pub(super) async fn end_room_op(&self, room: &str) -> Result<()> {
        let target = Target::room(room);
        let tkey = target.key();
        let n: i64 = self
            .scripts
            .end_room
            .key(target_key(&tkey))
            .key(streak_index_key(&tkey))
            .key(due_key())
            .arg(self.channels.room(room))
            .arg(crate::protocol::now_ms())
            .arg(key(&["cs", ""]))
            .arg(&tkey)
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        if n == 0 {
            return Err(Self::unknown(&target));
        }
        Ok(())
    }
}

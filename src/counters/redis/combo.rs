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
use crate::protocol::ComboEnd;

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
            include_str!("../lua/inbox_lib.lua"),
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

/// Consumer group of the webhook pumps on `{gs}:whq`.
const STREAK_GROUP: &str = "webhooks";
/// A pump that took streak ends and did not acknowledge them this long
/// (it died) leaves them to another node's pump, ms.
const STREAK_CLAIM_IDLE_MS: u64 = 30_000;

fn streak_take_script() -> &'static Script {
    static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(include_str!("../lua/streak_take.lua")))
}

impl RedisCounters {
    /// [`Counters::streak_ends`] on Redis: the `{gs}:whq` stream through
    /// the `webhooks` consumer group.
    pub(super) async fn streak_ends_op(&self, len_max: usize) -> Result<Vec<StreakEnd>> {
        let rows: Vec<(String, String, String)> = streak_take_script()
            .key(key(&["whq"]))
            .arg(STREAK_GROUP)
            .arg(&self.consumer)
            .arg(len_max.max(1))
            .arg(STREAK_CLAIM_IDLE_MS)
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        let mut out = Vec::with_capacity(rows.len());
        let mut junk = Vec::new();
        for (id, creator, json) in rows {
            match serde_json::from_str::<ComboEnd>(&json) {
                Ok(end) if !creator.is_empty() => out.push(StreakEnd { id, creator, end }),
                _ => junk.push(id),
            }
        }
        if !junk.is_empty() {
            tracing::warn!(
                entries = junk.len(),
                "redis: unreadable streak ends dropped"
            );
            self.streak_ends_done_op(&junk).await?;
        }
        Ok(out)
    }

    /// [`Counters::streak_ends_done`] on Redis: acknowledged and deleted.
    pub(super) async fn streak_ends_done_op(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let q = key(&["whq"]);
        let mut pipe = redis::pipe();
        pipe.cmd("XACK").arg(&q).arg(STREAK_GROUP).arg(ids).ignore();
        pipe.cmd("XDEL").arg(&q).arg(ids).ignore();
        let () = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(())
    }
}

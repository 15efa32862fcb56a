//! Issue 17's message rules on Redis: per-viewer message slots (`SET NX
//! PX`, shared by every node) and approved held messages
//! (`gift_message.lua`, the target's next seq).

use super::keys::*;
use super::scripts::*;
use super::*;
use crate::protocol::{GiftMessage, Topic};

impl RedisCounters {
    /// [`Counters::message_slot`] on Redis.
    pub(super) async fn message_slot_op(&self, slot: &str, interval_ms: u64) -> Result<bool> {
        if interval_ms == 0 {
            return Ok(true);
        }
        let taken: Option<String> = redis::cmd("SET")
            .arg(key(&["msg", slot]))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(interval_ms)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(taken.is_some())
    }

    /// [`Counters::gift_message`] on Redis.
    pub(super) async fn gift_message_op(
        &self,
        target: &Target,
        message_id: &str,
        ref_seq: Option<u64>,
        message: &str,
    ) -> Result<u64> {
        static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
        let script = SCRIPT.get_or_init(|| {
            Script::new(concat!(
                include_str!("../lua/inbox_lib.lua"),
                include_str!("../lua/gift_message.lua")
            ))
        });
        let (room, video, _) = target.topic().fields();
        let mut head = serde_json::to_string(&GiftMessage {
            room,
            video,
            seq: 0,
            message_id: message_id.to_string(),
            ref_seq,
            message: message.to_string(),
        })
        .map_err(|e| CountersError::Corrupt(format!("gift message: {e}")))?;
        // Without `"seq":0` and the closing brace: the script appends the seq.
        head = head.replacen(",\"seq\":0", "", 1);
        head.pop();
        let hub_key = target.hub_key();
        let reply: Vec<String> = script
            .key(target_key(&target.key()))
            .arg(&head)
            .arg(self.channels.room(&hub_key))
            .arg(history_key(&hub_key))
            .arg(self.hub_cfg.history_len_max)
            .arg(self.hub_cfg.history_age_ms_max)
            .arg(inbox_key(""))
            .arg(history_key(&Topic::inbox("").hub_key()))
            .arg(self.channels.room(&Topic::inbox("").hub_key()))
            .arg(crate::protocol::now_ms())
            .invoke_async(&mut self.conn())
            .await
            .map_err(script_err)?;
        match reply.first().map(String::as_str) {
            Some("OK") => parse(reply.get(1), "seq"),
            Some("E") => Err(Self::unknown(target)),
            _ => Err(CountersError::AnswerUnknown(
                "redis: bad gift_message script answer",
            )),
        }
    }
}

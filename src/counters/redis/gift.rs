//! The atomic gift: one `gift.lua` round trip, then the event to the room.

use super::combo::{due_key, due_member, end_head, streak_index_key, streak_key, streak_ttl_ms};
use super::keys::*;
use super::scripts::*;
use super::*;
use crate::protocol::Topic;

impl RedisCounters {
    /// [`Counters::gift`] on Redis.
    pub(super) async fn gift_op(&self, req: GiftRequest) -> Result<GiftOutcome> {
        let (coins, diamonds) = gift_value(&req.gift, req.count);
        let tkey = req.target.key();
        // Rooms and videos alike: an event on the target's channel and in
        // its history stream; only a room keeps live stats (top gifters).
        let hub_key = req.target.hub_key();
        let is_room = req.target.kind == TargetKind::Room;
        let head = EventHead {
            room: if is_room { &req.target.id } else { "" },
            video: (!is_room).then_some(req.target.id.as_str()),
            id: &req.client_id,
            sender: &req.sender,
            gift: &req.gift.id,
            count: req.count,
            coins,
            diamonds,
            animation: &req.gift.animation,
            ts: req.ts,
            message: req.message.as_deref().filter(|_| req.kept.is_none()),
            message_state: req.kept.as_ref().map(|k| k.state.as_str()),
            message_id: req.kept.as_ref().map(|k| k.id.as_str()),
        };
        // A kept-back message: the creator's inbox gets the original (its
        // own head), the target and the ledger none.
        let inbox_head = match &req.kept {
            Some(_) => {
                let mut h = serde_json::to_string(&EventHead {
                    message: req.message.as_deref(),
                    ..head
                })
                .map_err(|e| CountersError::Corrupt(format!("gift event: {e}")))?;
                h.pop();
                h
            }
            None => String::new(),
        };
        let stored_message = req.message.as_deref().filter(|_| req.kept.is_none());
        let mut head = serde_json::to_string(&head)
            .map_err(|e| CountersError::Corrupt(format!("gift event: {e}")))?;
        head.pop(); // the closing brace; the script appends seq and combo
        let channel = self.channels.room(&hub_key);
        let hist = history_key(&hub_key);
        let top = if is_room {
            top_key(&req.target.id)
        } else {
            String::new()
        };
        let streak_head = end_head(&req.target, &req.sender, &req.gift.id)?;
        let idem = idem_prefix(&req.sender);
        let reply: Vec<String> = self
            .scripts
            .gift
            .key(format!("{idem}{}", req.client_id))
            .key(key(&["idz", &req.sender]))
            .key(wallet_key(&req.sender))
            .key(target_key(&tkey))
            .key(streak_key(&tkey, &req.sender))
            .key(stream_key())
            .key(ticket_key())
            .key(streak_index_key(&tkey))
            .key(due_key())
            .arg(&req.client_id)
            .arg(req.ts)
            .arg(self.cfg.idempotency_ttl_s)
            .arg(self.cfg.idempotency_keys_per_wallet_max)
            .arg(coins)
            .arg(diamonds)
            .arg(req.count)
            .arg(&req.sender)
            .arg(&req.gift.id)
            .arg(&tkey)
            .arg(self.cfg.combo_window_ms)
            .arg(self.cfg.pending_len_max)
            .arg(pending_prefix())
            .arg(&channel)
            .arg(&head)
            .arg(&idem)
            .arg(&hist)
            .arg(self.hub_cfg.history_len_max)
            .arg(self.hub_cfg.history_age_ms_max)
            .arg(&top)
            .arg(self.hub_cfg.room_gifters_max)
            .arg(&streak_head)
            .arg(due_member(&tkey, &req.sender))
            .arg(streak_ttl_ms(&self.cfg))
            .arg(stored_message.unwrap_or(""))
            .arg(inbox_key(""))
            .arg(history_key(&Topic::inbox("").hub_key()))
            .arg(self.channels.room(&Topic::inbox("").hub_key()))
            .arg(self.cfg.streak_end_queue_len_max)
            .arg(&inbox_head)
            .arg(super::blocks::blocks_prefix())
            .invoke_async(&mut self.conn())
            .await
            .map_err(script_err)?;
        match reply.first().map(String::as_str) {
            Some("OK") => {
                let seq = parse(reply.get(1), "seq")?;
                let balance = parse(reply.get(2), "balance")?;
                let ticket = parse(reply.get(3), "ticket")?;
                Ok(GiftOutcome {
                    ack: GiftAck {
                        id: req.client_id,
                        seq,
                        balance,
                    },
                    duplicate: false,
                    ticket,
                })
            }
            Some("DUP") => {
                let answer = reply.get(1).map(String::as_str).unwrap_or("");
                let parts: Vec<String> = answer.split(':').map(str::to_string).collect();
                let seq = parse(parts.first(), "seq")?;
                let balance = parse(parts.get(1), "balance")?;
                let ticket = parse(parts.get(2), "ticket")?;
                Ok(GiftOutcome {
                    ack: GiftAck {
                        id: req.client_id,
                        seq,
                        balance,
                    },
                    duplicate: true,
                    ticket,
                })
            }
            Some("E") => Err(match reply.get(1).map(String::as_str) {
                Some("unknown") => Self::unknown(&req.target),
                Some("room_not_live") => CountersError::NotLive(req.target.id.clone()),
                Some("forbidden") => {
                    CountersError::Forbidden("a creator cannot gift their own room or video".into())
                }
                Some("blocked") => CountersError::Forbidden(crate::counters::BLOCKED.into()),
                Some("insufficient_funds") => {
                    let held: i64 = parse(reply.get(2), "balance")?;
                    CountersError::InsufficientFunds { cost: coins, held }
                }
                Some("rate_limited") => CountersError::PendingFull,
                _ => CountersError::Corrupt("redis: unknown gift script error".into()),
            }),
            _ => Err(CountersError::AnswerUnknown(
                "redis: bad gift script answer",
            )),
        }
    }
}

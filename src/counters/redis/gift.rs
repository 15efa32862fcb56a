//! The atomic gift: one `gift.lua` step (alone, or in a batch of the
//! node's waiting gifts: `batch`), then the event to the room.

use super::combo::{due_key, due_member, end_head, streak_index_key, streak_key, streak_ttl_ms};
use super::keys::*;
use super::scripts::*;
use super::*;
use crate::protocol::Topic;

impl RedisCounters {
    /// [`Counters::gift`] on Redis.
    pub(super) async fn gift_op(&self, req: GiftRequest) -> Result<GiftOutcome> {
        let (keys, args) = self.gift_call(&req)?;
        let reply = match &self.batcher {
            Some(b) => b.call(keys, args).await?,
            None => {
                let mut inv = self.scripts.gift.prepare_invoke();
                for k in &keys {
                    inv.key(k);
                }
                for a in &args {
                    inv.arg(a);
                }
                let reply: Vec<String> = inv
                    .invoke_async(&mut self.conn())
                    .await
                    .map_err(script_err)?;
                reply
            }
        };
        Self::gift_answer(req, reply)
    }

    /// [`Counters::gift_group`] on Redis: the group in one script call
    /// (the batcher never splits a group), so the pending count only grows
    /// from one gift of it to the next and a gift refused for a full queue
    /// is followed by no applied gift. Without a batcher, one at a time.
    pub(super) async fn gift_group_op(&self, reqs: Vec<GiftRequest>) -> Vec<Result<GiftOutcome>> {
        let Some(batcher) = &self.batcher else {
            return crate::counters::gift_one_by_one(self, reqs).await;
        };
        // A gift whose call could not be built is refused alone (it is
        // not a full queue, so the order of the others does not hang on it).
        let mut built = Vec::with_capacity(reqs.len());
        let mut calls = Vec::with_capacity(reqs.len());
        for req in reqs {
            match self.gift_call(&req) {
                Ok(call) => {
                    calls.push(call);
                    built.push(Ok(req));
                }
                Err(e) => built.push(Err(e)),
            }
        }
        let mut replies = batcher.call_group(calls).await.into_iter();
        built
            .into_iter()
            .map(|b| {
                let req = b?;
                let reply = replies.next().unwrap_or(Err(CountersError::AnswerUnknown(
                    "redis: the gift batch was dropped",
                )))?;
                Self::gift_answer(req, reply)
            })
            .collect()
    }

    /// `gift.lua`'s KEYS and ARGV for `req`, in its order.
    fn gift_call(&self, req: &GiftRequest) -> Result<(Vec<String>, Vec<String>)> {
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
        // gift.lua's KEYS and ARGV (see the script), in its order.
        let keys = vec![
            format!("{idem}{}", req.client_id),
            idz_key(&req.sender),
            wallet_key(&req.sender),
            target_key(&tkey),
            streak_key(&tkey, &req.sender),
            stream_key(),
            ticket_key(),
            streak_index_key(&tkey),
            due_key(),
        ];
        let args = vec![
            req.client_id.clone(),
            req.ts.to_string(),
            self.cfg.idempotency_ttl_s.to_string(),
            self.cfg.idempotency_keys_per_wallet_max.to_string(),
            coins.to_string(),
            diamonds.to_string(),
            req.count.to_string(),
            req.sender.clone(),
            req.gift.id.clone(),
            tkey.clone(),
            self.cfg.combo_window_ms.to_string(),
            self.cfg.pending_len_max.to_string(),
            pending_prefix(),
            channel,
            head,
            idem,
            hist,
            self.hub_cfg.history_len_max.to_string(),
            self.hub_cfg.history_age_ms_max.to_string(),
            top,
            self.hub_cfg.room_gifters_max.to_string(),
            streak_head,
            due_member(&tkey, &req.sender),
            streak_ttl_ms(&self.cfg).to_string(),
            stored_message.unwrap_or("").to_string(),
            inbox_key(""),
            history_key(&Topic::inbox("").hub_key()),
            self.channels.room(&Topic::inbox("").hub_key()),
            self.cfg.streak_end_queue_len_max.to_string(),
            inbox_head,
            super::blocks::blocks_prefix(),
        ];
        Ok((keys, args))
    }

    /// `req`'s outcome from its `gift.lua` answer.
    fn gift_answer(req: GiftRequest, reply: Vec<String>) -> Result<GiftOutcome> {
        let (coins, _) = gift_value(&req.gift, req.count);
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

//! The memory engine's gift: idempotency, the block check, the debit, the
//! target's seq and streak, the pending gift and the publish, all under
//! the wallet lock and then the target lock.
//!
//! Owns: [`MemoryCounters::gift_op`].
//! Must not: await (it runs under locks) or publish outside the target
//! lock.

use super::*;

impl MemoryCounters {
    /// [`Counters::gift`]: the whole gift under the wallet lock, then the
    /// target lock (see the module doc for the order).
    pub(super) fn gift_op(&self, req: GiftRequest) -> Result<GiftOutcome> {
        let key = self.ids.key(&req.client_id);
        let now_s = self.ids.now_s();
        let wallet = self.wallet(&req.sender);
        let mut w = wallet.lock();
        w.seen.forget_old(
            now_s,
            self.cfg.idempotency_ttl_s,
            self.cfg.idempotency_keys_per_wallet_max,
        );
        if let Some(a) = w.seen.get(&key) {
            return Ok(GiftOutcome {
                ack: GiftAck {
                    id: req.client_id,
                    seq: a.seq,
                    balance: a.balance,
                },
                duplicate: true,
                ticket: a.ticket,
            });
        }
        let state = self
            .target_state(&req.target)
            .ok_or_else(|| Self::unknown(&req.target))?;
        let mut t = state.lock();
        if !t.live {
            return Err(CountersError::NotLive(t.id.clone()));
        }
        if *t.creator == *req.sender {
            return Err(CountersError::Forbidden(
                "a creator cannot gift their own room or video".into(),
            ));
        }
        if self.blocks.contains(&t.creator, &req.sender) {
            return Err(CountersError::Forbidden(BLOCKED.into()));
        }
        let (coins, diamonds) = gift_value(&req.gift, req.count);
        if w.coins < coins {
            return Err(CountersError::InsufficientFunds {
                cost: coins,
                held: w.coins,
            });
        }
        let mut pending = self.pending.lock();
        if pending.gifts.len() >= self.cfg.pending_len_max {
            return Err(CountersError::PendingFull);
        }
        let window = self.cfg.combo_window_ms;
        let publish = combo::publishes_events(t.kind);
        // A different gift (or one after the window) ends the sender's
        // streak first: its end takes the seq before this gift's.
        let ends_streak = t
            .streaks
            .get(req.sender.as_str())
            .is_some_and(|s| !s.extends(&req.gift.id, req.ts, window));
        // Reserve the room's or video's fan-out slots before changing
        // anything, so a full queue refuses the gift with nothing charged.
        let permit = self.sink.reserve(&req.target, &t.creator, t.seq)?;
        let end_permit = if ends_streak && publish {
            Some(self.sink.reserve(&req.target, &t.creator, t.seq)?)
        } else {
            None
        };

        // Commit point: nothing below can fail.
        w.coins -= coins;
        debug_assert!(w.coins >= 0, "overdraft");
        let mut due = self.due.lock();
        let tkey = t.key.clone();
        let sender = w.user.clone();
        let ended = if ends_streak {
            let old = t.streaks.remove(&*sender);
            old.map(|old| {
                due.remove(&(old.due_ms(window), tkey.clone(), sender.clone()));
                let seq = if publish {
                    t.seq += 1;
                    t.seq
                } else {
                    0
                };
                old.end(&req.target, &req.sender, seq, req.ts)
            })
        } else {
            None
        };
        t.seq += 1;
        let seq = t.seq;
        let combo = match t.streaks.get_mut(&*sender) {
            Some(streak) => {
                due.remove(&(streak.due_ms(window), tkey.clone(), sender.clone()));
                streak.add(req.count, coins, diamonds, seq, req.ts);
                due.insert((streak.due_ms(window), tkey.clone(), sender.clone()));
                streak.count
            }
            None => {
                let streak = Streak::start(&req.gift.id, req.count, coins, diamonds, seq, req.ts);
                due.insert((streak.due_ms(window), tkey.clone(), sender.clone()));
                t.streaks.insert(sender.clone(), streak);
                req.count
            }
        };
        drop(due);
        match self.pending_diamonds.get_mut(&*t.creator) {
            Some(mut d) => *d += diamonds,
            None => {
                *self
                    .pending_diamonds
                    .entry(t.creator.to_string())
                    .or_insert(0) += diamonds
            }
        }
        let ticket = pending.next_ticket;
        pending.next_ticket += 1;
        if pending.gifts.len() == pending.gifts.capacity() {
            // Grow toward the cap, not past it (a doubling would hold
            // room for up to twice `counters.pending_len_max`).
            let len = pending.gifts.len();
            let room = len
                .max(64)
                .min(self.cfg.pending_len_max.saturating_sub(len))
                .max(1);
            pending.gifts.reserve_exact(room);
        }
        pending.gifts.push_back(Queued {
            ticket,
            target: tkey,
            seq,
            sender,
            client_id: req.client_id.as_str().into(),
            creator: t.creator.clone(),
            gift: req.gift.id.as_str().into(),
            count: req.count,
            coins,
            diamonds,
            balance_after: w.coins,
            ts: req.ts,
            // A kept-back message stays out of the ledger's gift row.
            message: req
                .message
                .as_deref()
                .filter(|_| req.kept.is_none())
                .map(Into::into),
        });
        drop(pending);
        let ack = GiftAck {
            id: req.client_id.clone(),
            seq,
            balance: w.coins,
        };
        let answer = seen::Answer {
            seq,
            balance: w.coins,
            ticket,
        };
        w.seen.remember(key, now_s, answer);
        if let (Some(p), Some(end)) = (end_permit, ended) {
            self.streak_ends.push(&t.creator, &end);
            p.send(end);
        }
        let (room, video, _) = req.target.topic().fields();
        permit.send(GiftEvent {
            room,
            video,
            seq,
            id: req.client_id,
            sender: req.sender,
            gift: req.gift.id,
            count: req.count,
            combo,
            coins,
            diamonds,
            animation: req.gift.animation,
            ts: req.ts,
            message: req.message.clone().filter(|_| req.kept.is_none()),
            message_state: req.kept.as_ref().map(|k| k.state.clone()),
            message_id: req.kept.as_ref().map(|k| k.id.clone()),
            original: req.message.filter(|_| req.kept.is_some()),
        });
        Ok(GiftOutcome {
            ack,
            duplicate: false,
            ticket,
        })
    }
}

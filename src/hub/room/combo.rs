//! Combo coalescing: for subscribers that asked for it, one event per
//! (sender, gift) streak every `hub.coalesce_interval_ms`, the streak's
//! latest.
//!
//! Owns: the pending latest event per (sender, gift) and its flush, in seq
//! order.
//! Must not: delay or drop events for subscribers that did not ask to
//! coalesce.

use std::time::{Duration, Instant};

use super::*;

impl Room {
    /// Keep `ev` as its streak's latest for coalescing subscribers, and
    /// arm the flush.
    pub(super) fn queue_combo(&mut self, ev: &GiftEvent) {
        if self.coalesce_subs > 0 {
            self.combos
                .insert((ev.sender.clone(), ev.gift.clone()), ev.clone());
            if self.coalesce_due.is_none() {
                self.coalesce_due =
                    Some(Instant::now() + Duration::from_millis(self.cfg.coalesce_interval_ms));
            }
        }
    }

    /// Send each combo's latest event to coalescing subscribers, in seq order.
    pub(super) fn flush_combos(&mut self) {
        self.coalesce_due = None;
        if self.combos.is_empty() {
            return;
        }
        let mut latest: Vec<GiftEvent> = self.combos.drain().map(|(_, ev)| ev).collect();
        latest.sort_unstable_by_key(|e| e.seq);
        let mut skipped = false;
        for ev in latest {
            let seq = ev.seq;
            let msg = ServerMsg::GiftEvent(ev);
            let json = msg.encode(Encoding::Json);
            let msgpack = (self.msgpack_subs > 0).then(|| msg.encode(Encoding::MsgPack));
            for s in self.subs.iter_mut().filter(|s| s.sub.coalesce) {
                let frame = match s.sub.encoding {
                    Encoding::Json => &json,
                    Encoding::MsgPack => msgpack.as_ref().unwrap_or(&json),
                };
                skipped |= !deliver(s, &self.topic, seq, frame, &self.cfg);
            }
        }
        if skipped {
            self.arm_skip_notes();
        }
    }
}

//! Delivery and skip policy: one event to one subscriber's bounded queue.
//!
//! Owns: the rule for a full subscriber queue (a viewer gets a `skipped`
//! range before its next event, retried every `hub.skipped_note_retry_ms`
//! while the live is quiet, and is disconnected past
//! `hub.viewer_skipped_max`; the room's creator is disconnected with 1013
//! and resumes, so its feed misses nothing).
//! Must not: await on a subscriber (every delivery is `try_send`).

use std::time::{Duration, Instant};

use super::*;

impl Room {
    /// Arm the retry of pending `skipped` notes, unless armed.
    pub(super) fn arm_skip_notes(&mut self) {
        if self.skip_due.is_none() {
            self.skip_due =
                Some(Instant::now() + Duration::from_millis(self.cfg.skipped_note_retry_ms));
        }
    }

    /// An event with `seq` arrives while the room is at `last_seq`: any
    /// seq between them never reached this node (a relayed event lost, a
    /// room whose seqs jumped after Redis lost its data, a node whose
    /// `joined.seq` was older than the room's). Every subscriber that gets
    /// each event (not coalescing) is told, as `skipped` before the event
    /// (or as soon as it fits), so that no gap reaches a viewer unannounced
    /// (PROTOCOL: a gap is announced by `skipped` or `history_gone`; the
    /// viewer may `resume` to fetch what history still holds).
    pub(super) fn announce_gap(&mut self, seq: u64) {
        let from = self.last_seq + 1;
        if seq <= from {
            return;
        }
        let to = seq - 1;
        metrics::counter!("giftstream_relay_gap_seqs_total").increment(to - from + 1);
        for s in self.subs.iter_mut().filter(|s| !s.dead && !s.sub.coalesce) {
            let from = from.max(s.seen_seq + 1);
            if from > to {
                continue;
            }
            s.skip = Some(match s.skip {
                Some((a, _)) => (a.min(from), to),
                None => (from, to),
            });
        }
    }

    /// Queue each pending `skipped` note that fits now: the live may have
    /// gone quiet, and a viewer must not wait for the next gift to learn
    /// that it missed the last ones. Re-armed while any is still pending.
    pub(super) fn retry_skip_notes(&mut self) {
        let mut pending = false;
        for s in self.subs.iter_mut().filter(|s| !s.dead) {
            let Some((from, to)) = s.skip else {
                continue;
            };
            let (room, video, inbox) = self.topic.fields();
            let note = ServerMsg::Skipped {
                room,
                video,
                inbox,
                from_seq: from,
                to_seq: to,
            };
            if s.sub.tx.try_send(note.encode(s.sub.encoding)).is_ok() {
                s.skip = None;
            } else {
                pending = true;
            }
        }
        if pending {
            self.arm_skip_notes();
        }
    }
}

pub(super) fn busy() -> Error {
    Error::new(
        ErrorCode::RateLimited,
        "socket queue full; read your frames and retry",
    )
}

/// Queue one event for one subscriber; false if it was skipped.
pub(super) fn deliver(
    s: &mut SubState,
    topic: &Topic,
    seq: u64,
    frame: &Message,
    cfg: &HubConfig,
) -> bool {
    if s.dead {
        return false;
    }
    if seq <= s.seen_seq {
        return true;
    }
    if let Some((from, to)) = s.skip {
        // Tell the viewer what it missed before anything newer, if both fit.
        if s.sub.tx.capacity() >= 2 {
            let (room, video, inbox) = topic.fields();
            let note = ServerMsg::Skipped {
                room,
                video,
                inbox,
                from_seq: from,
                to_seq: to,
            };
            if s.sub.tx.try_send(note.encode(s.sub.encoding)).is_ok() {
                s.skip = None;
            }
        }
        if s.skip.is_some() {
            s.skip = Some((from, seq));
            return note_skip(s, cfg);
        }
    }
    match s.sub.tx.try_send(frame.clone()) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            if s.is_creator {
                s.sub
                    .ctl
                    .kick(CLOSE_RESUME, "feed queue full; reconnect and resume");
                metrics::counter!("giftstream_kicked_total", "reason" => "creator_behind")
                    .increment(1);
                s.dead = true;
                return false;
            }
            s.skip = Some((seq, seq));
            note_skip(s, cfg)
        }
        Err(TrySendError::Closed(_)) => {
            s.dead = true;
            false
        }
    }
}

fn note_skip(s: &mut SubState, cfg: &HubConfig) -> bool {
    s.skipped += 1;
    if s.skipped > cfg.viewer_skipped_max {
        s.sub
            .ctl
            .kick(CLOSE_TOO_SLOW, "too slow: skipped too many events");
        metrics::counter!("giftstream_kicked_total", "reason" => "too_slow").increment(1);
        s.dead = true;
    }
    false
}

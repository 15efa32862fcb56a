//! History and resume: the room's ring (bounded by count and age) and the
//! replay of what a resuming socket missed, joined to the relay's history
//! when the relay keeps one.
//!
//! Owns: [`Hist`] (one event, encoded once per wire format on demand),
//! trimming the ring, `resume` (from the ring, or from the relay's backfill
//! then the ring), and the all-or-nothing replay into the socket's queue.
//! Must not: await on a subscriber, or hand a socket an event twice.

use axum::extract::ws::Message;

use std::time::{Duration, Instant};

use super::*;

/// One event of the ring. Its frames are encoded when a subscriber first
/// needs them (live, or in a replay): a room nobody watches encodes
/// nothing (a gift's event was 11 % of the server's CPU in an ingest run
/// with no viewer, issue #16 item 5).
pub(super) struct Hist {
    pub(super) seq: u64,
    pub(super) at: Instant,
    pub(super) msg: ServerMsg,
    pub(super) json: Option<Message>,
    pub(super) msgpack: Option<Message>,
}

impl Hist {
    /// The event's frame in `enc`, encoded on first use.
    pub(super) fn frame_ref(&mut self, enc: Encoding) -> &Message {
        let slot = match enc {
            Encoding::Json => &mut self.json,
            Encoding::MsgPack => &mut self.msgpack,
        };
        slot.get_or_insert_with(|| self.msg.encode(enc))
    }

    pub(super) fn frame(&mut self, enc: Encoding) -> Message {
        self.frame_ref(enc).clone()
    }
}

impl Room {
    pub(super) fn trim_history(&mut self) {
        let age_max = Duration::from_millis(self.cfg.history_age_ms_max);
        while let Some(h) = self.history.front() {
            if self.history.len() > self.cfg.history_len_max || h.at.elapsed() > age_max {
                self.history.pop_front();
            } else {
                break;
            }
        }
    }

    pub(super) fn on_resume(
        &mut self,
        sub: Subscriber,
        since: u64,
        backfill: Option<Vec<SeqEvent>>,
    ) -> Result<()> {
        self.trim_history();
        if let Some(backfill) = backfill {
            return self.resume_from(sub, since, backfill);
        }
        if since > self.last_seq && matches!(self.topic, Topic::Inbox(_)) && self.relay.is_none() {
            // In process an inbox's seq starts again with the process: a
            // client that saw further saw a previous one's.
            return Err(Error::new(
                ErrorCode::HistoryGone,
                format!(
                    "inbox of `{}` is at seq {}; resume since {since} is gone",
                    self.id, self.last_seq
                ),
            ));
        }
        if since < self.last_seq {
            let reaches = self.history.front().is_some_and(|h| h.seq <= since + 1);
            if !reaches {
                return Err(Error::new(
                    ErrorCode::HistoryGone,
                    format!(
                        "history of `{}` starts at seq {}; resume since {since} is gone",
                        self.id,
                        self.history.front().map_or(self.last_seq + 1, |h| h.seq)
                    ),
                ));
            }
            let frames = self
                .history
                .iter_mut()
                .filter(|h| h.seq > since)
                .map(|h| h.frame(sub.encoding))
                .collect();
            return self.replay(sub, since, frames);
        }
        self.replay(sub, since, Vec::new())
    }

    /// Resume from the engine's history (read just before this command)
    /// joined to the ring: the engine's events up to this room's seq, then
    /// the ring's after them; events the engine already had but this room
    /// has not received yet follow live.
    pub(super) fn resume_from(
        &mut self,
        sub: Subscriber,
        since: u64,
        backfill: Vec<SeqEvent>,
    ) -> Result<()> {
        let mut covered = since;
        let mut frames = Vec::new();
        for ev in backfill {
            let seq = ev.seq();
            if seq > covered && seq <= self.last_seq {
                covered = seq;
                frames.push(ServerMsg::from(ev).encode(sub.encoding));
            }
        }
        if covered < self.last_seq {
            // The rest must come from the ring (it arrived here after the
            // engine was read).
            let reaches = self.history.front().is_some_and(|h| h.seq <= covered + 1);
            if !reaches {
                return Err(Error::new(
                    ErrorCode::RateLimited,
                    "the room moved on while its history was read; resume again",
                ));
            }
            for h in self.history.iter_mut().filter(|h| h.seq > covered) {
                frames.push(h.frame(sub.encoding));
            }
        }
        self.replay(sub, since, frames)
    }

    /// Queue `frames` (the events after `since`), then `resumed`, and
    /// subscribe; all or nothing, in one step, so nothing else lands in
    /// between and a resume that does not fit changes nothing. A replay may
    /// take the socket's queue past its live bound by up to
    /// `2 × hub.history_len_max + 1` frames (no longer than the engine's
    /// history plus the ring, and `resumed`): a viewer that missed more than its queue holds can still
    /// resume the whole gap. Live events that find the queue over its bound
    /// meanwhile are skipped as usual, and announced.
    pub(super) fn replay(
        &mut self,
        sub: Subscriber,
        since: u64,
        mut frames: Vec<Message>,
    ) -> Result<()> {
        let replayed = frames.len();
        let (room, video, inbox) = self.topic.fields();
        let resumed = ServerMsg::Resumed {
            room,
            video,
            inbox,
            seq: self.last_seq,
        };
        frames.push(resumed.encode(sub.encoding));
        let allowance = self.cfg.history_len_max.saturating_mul(2).saturating_add(1);
        match sub.tx.try_send_all(frames, allowance) {
            Ok(()) => {}
            Err(BatchError::Full) => {
                return Err(Error::new(
                    ErrorCode::RateLimited,
                    format!("{replayed} events to replay do not fit the socket's queue now; read your frames and resume again"),
                ));
            }
            Err(BatchError::Closed) => return Err(busy()),
        }
        self.subscribe(sub, since);
        Ok(())
    }
}

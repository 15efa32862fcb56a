//! Stats and top gifters: `room_stats`, sent only when changed and at most
//! once per `hub.stats_interval_ms`.
//!
//! Due stats ride with the room's next event: [`Room::publish`] queues
//! them right behind it on each socket, so the socket's writer sends both
//! in one write (issue 16: a `room_stats` of its own was one more `send`
//! per viewer per second). A room whose live goes quiet sends them alone,
//! `hub.stats_ride_ms` after they became due.
//!
//! Owns: [`Stats`] (this live's diamonds and gifters, bounded by
//! `hub.room_gifters_max`, or the relay's stats across nodes) and when a
//! `room_stats` goes out.
//! Must not: count a relayed room locally (the relay's stats cover every
//! node).

use std::time::{Duration, Instant};

use super::*;

/// This live's statistics, derived from the ordered event stream.
#[derive(Default)]
pub(super) struct Stats {
    pub(super) diamonds: i64,
    pub(super) gifters: foldhash::HashMap<String, i64>,
    /// Set while the stats changed since the last ones sent: from when
    /// they may go out (with the next event).
    pub(super) ready: Option<Instant>,
    /// When they go out alone if no event came (`ready` +
    /// `hub.stats_ride_ms`): the room's stats timer.
    pub(super) due: Option<Instant>,
    pub(super) last_sent: Option<Instant>,
    pub(super) last_viewers: u64,
    /// Stats across nodes from the engine (relaying engine only).
    pub(super) external: Option<(u64, i64, Vec<TopEntry>)>,
}

impl Room {
    /// Stats across nodes from the engine: send them if they changed.
    pub(super) fn on_stats(&mut self, viewers: u64, diamonds: i64, top: Vec<TopEntry>) {
        if self.is_video() {
            return; // a video's totals are in `GET /v1/videos/{video}`
        }
        self.tally.note(viewers, crate::protocol::now_ms());
        let next = (viewers, diamonds, top);
        if self.stats.external.as_ref() != Some(&next) {
            self.stats.external = Some(next);
            self.stats_changed();
        }
    }

    /// Mark stats changed: they may go out with an event once
    /// `hub.stats_interval_ms` has passed since the last ones, and go out
    /// alone `hub.stats_ride_ms` after that.
    pub(super) fn stats_changed(&mut self) {
        if self.stats.ready.is_none() {
            let interval = Duration::from_millis(self.cfg.stats_interval_ms);
            let now = Instant::now();
            let ready = self.stats.last_sent.map_or(now, |t| t + interval).max(now);
            self.stats.ready = Some(ready);
            let ride = self.cfg.stats_ride_ms.min(self.cfg.stats_interval_ms);
            self.stats.due = Some(ready + Duration::from_millis(ride));
        }
    }

    /// The stats to send with the event being published: changed, and
    /// ready by `now`. Taking them counts as sending them.
    pub(super) fn take_ready_stats(&mut self, now: Instant) -> Option<ServerMsg> {
        let ready = self.stats.ready.is_some_and(|r| r <= now);
        ready.then(|| self.take_stats())
    }

    /// The stats timer: changed stats no event carried go out alone.
    pub(super) fn on_stats_timer(&mut self) {
        debug_assert!(self.stats.ready.is_some(), "the timer is armed with ready");
        let msg = self.take_stats();
        self.broadcast(&msg);
    }

    pub(super) fn note_viewers(&mut self) {
        if self.relay.is_some() || self.is_video() {
            return; // the engine's stats count every node's viewers
        }
        let n = self.subs.len() as u64;
        if n != self.stats.last_viewers {
            self.stats.last_viewers = n;
            self.stats_changed();
        }
    }

    /// This live's `room_stats` now, marked sent (the caller sends it).
    fn take_stats(&mut self) -> ServerMsg {
        self.stats.ready = None;
        self.stats.due = None;
        self.stats.last_sent = Some(Instant::now());
        if let Some((viewers, diamonds, top)) = &self.stats.external {
            return ServerMsg::RoomStats {
                room: self.id.clone(),
                viewers: *viewers,
                diamonds: *diamonds,
                top: top.clone(),
            };
        }
        let mut top: Vec<TopEntry> = self
            .stats
            .gifters
            .iter()
            .map(|(u, d)| TopEntry {
                user: u.clone(),
                diamonds: *d,
            })
            .collect();
        top.sort_unstable_by(|a, b| {
            b.diamonds
                .cmp(&a.diamonds)
                .then_with(|| a.user.cmp(&b.user))
        });
        top.truncate(10);
        ServerMsg::RoomStats {
            room: self.id.clone(),
            viewers: self.subs.len() as u64,
            diamonds: self.stats.diamonds,
            top,
        }
    }

    pub(super) fn count_gift(&mut self, ev: &GiftEvent) {
        if self.relay.is_some() || self.is_video() {
            return; // the engine keeps this live's stats across nodes
        }
        self.stats.diamonds += ev.diamonds;
        *self.stats.gifters.entry(ev.sender.clone()).or_insert(0) += ev.diamonds;
        if self.stats.gifters.len() > self.cfg.room_gifters_max {
            // Keep the largest half (amortized O(1) per gift); the top list
            // only ever needs the largest.
            let keep = (self.cfg.room_gifters_max / 2).max(1);
            let mut ranked: Vec<(String, i64)> = self.stats.gifters.drain().collect();
            ranked.select_nth_unstable_by(keep - 1, |a, b| b.1.cmp(&a.1));
            ranked.truncate(keep);
            self.stats.gifters.extend(ranked);
        }
        self.stats_changed();
    }
}

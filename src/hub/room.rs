//! One task per room: ordered delivery, history for `resume`, skip accounting.
//!
//! Owns: the room's subscribers, its last seq, its history ring (bounded by
//! count and age), and the rule for a full subscriber queue: a viewer gets
//! a `skipped` range (and is disconnected past `hub.viewer_skipped_max`);
//! the room's creator is never skipped — it is disconnected with 1013 and
//! resumes from its last seq, so its feed misses nothing.
//! With a relaying engine (Redis) the room also takes its stats from the
//! engine ([`RoomCmd::Stats`], summed over nodes), merges the engine's
//! history stream into `resume` replays, and stops after
//! `hub.room_linger_ms` without a subscriber (so the node unsubscribes).
//! Must not: await on a subscriber (every delivery is `try_send`), or
//! serialize per subscriber (each event is encoded once per wire format).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use tokio::sync::{mpsc, oneshot, Notify};

use super::conn::ConnCtl;
use super::outbox::{BatchError, Outbox, TrySendError};
use super::RoomHandle;
use crate::config::HubConfig;
use crate::error::{Error, ErrorCode, Result};
use crate::protocol::{ComboEnd, Encoding, GiftEvent, SeqEvent, ServerMsg, TopEntry};

/// Close code for a viewer that fell too far behind (policy violation).
pub const CLOSE_TOO_SLOW: u16 = 1008;
/// Close code for a creator whose feed queue overflowed: reconnect and resume.
pub const CLOSE_RESUME: u16 = 1013;

/// A socket subscribed to a room.
pub struct Subscriber {
    /// The socket's id.
    pub conn_id: u64,
    /// Its user.
    pub user: String,
    /// Its wire format.
    pub encoding: Encoding,
    /// Its writer queue.
    pub tx: Outbox,
    /// Its kill switch.
    pub ctl: Arc<ConnCtl>,
    /// Receive combo floods coalesced (one update per combo per
    /// `hub.coalesce_interval_ms`) instead of one event per gift.
    pub coalesce: bool,
}

/// Commands a room task takes, in order.
pub enum RoomCmd {
    /// An accepted gift, in seq order (published by the counters engine).
    Gift(GiftEvent),
    /// A streak's end, in seq order with gifts (published by the counters
    /// engine): coalescing subscribers first get the pending steps.
    ComboEnd(ComboEnd),
    /// Subscribe; the room itself queues `joined` before any later event.
    Join {
        /// Who.
        sub: Subscriber,
        /// Ok once `joined` is queued.
        reply: oneshot::Sender<Result<()>>,
    },
    /// Replay history after `since`, queue `resumed`, and subscribe.
    Resume {
        /// Who.
        sub: Subscriber,
        /// Last seq the client saw.
        since: u64,
        /// Events after `since` read from the engine's history (Redis
        /// stream), which then decides whether history reaches back; None:
        /// the room's own ring does.
        backfill: Option<Vec<SeqEvent>>,
        /// Ok once the replay and `resumed` are queued.
        reply: oneshot::Sender<Result<()>>,
    },
    /// Unsubscribe a socket.
    Leave {
        /// The socket's id.
        conn_id: u64,
    },
    /// Any other message for every subscriber (tips, stats).
    Broadcast(ServerMsg),
    /// The room's stats across every node (relaying engine), sent to
    /// subscribers as `room_stats` if they changed.
    Stats {
        /// Viewers on every node.
        viewers: u64,
        /// Diamonds this live.
        diamonds: i64,
        /// Top gifters, largest first.
        top: Vec<TopEntry>,
    },
    /// The live ended: tell everyone, then stop.
    End,
}

impl From<SeqEvent> for RoomCmd {
    fn from(ev: SeqEvent) -> RoomCmd {
        match ev {
            SeqEvent::Gift(g) => RoomCmd::Gift(g),
            SeqEvent::ComboEnd(c) => RoomCmd::ComboEnd(c),
        }
    }
}

struct SubState {
    sub: Subscriber,
    is_creator: bool,
    skip: Option<(u64, u64)>,
    skipped: u64,
    dead: bool,
    /// Events up to this seq are not sent (a resume that saw further than
    /// this room has received yet: no duplicate when they arrive).
    seen_seq: u64,
}

struct Hist {
    seq: u64,
    at: Instant,
    msg: ServerMsg,
    json: Message,
    msgpack: Option<Message>,
}

impl Hist {
    fn frame(&mut self, enc: Encoding) -> Message {
        match enc {
            Encoding::Json => self.json.clone(),
            Encoding::MsgPack => self
                .msgpack
                .get_or_insert_with(|| self.msg.encode(Encoding::MsgPack))
                .clone(),
        }
    }
}

struct Room {
    id: String,
    creator: Arc<str>,
    last_seq: u64,
    subs: Vec<SubState>,
    msgpack_subs: usize,
    coalesce_subs: usize,
    history: VecDeque<Hist>,
    viewers: Arc<AtomicU64>,
    cfg: HubConfig,
    stats: Stats,
    /// Latest event per (sender, gift) since the last coalesced step.
    combos: foldhash::HashMap<(String, String), GiftEvent>,
    coalesce_due: Option<Instant>,
    /// Relaying engine: woken when this room stops.
    relay: Option<Arc<Notify>>,
    /// Relaying engine: when an empty room stops.
    idle_due: Option<Instant>,
    /// When to retry the `skipped` notes that did not fit (armed only
    /// while some subscriber has one pending).
    skip_due: Option<Instant>,
}

/// This live's statistics, derived from the ordered event stream.
#[derive(Default)]
struct Stats {
    diamonds: i64,
    gifters: foldhash::HashMap<String, i64>,
    changed: bool,
    due: Option<Instant>,
    last_sent: Option<Instant>,
    last_viewers: u64,
    /// Stats across nodes from the engine (relaying engine only).
    external: Option<(u64, i64, Vec<TopEntry>)>,
}

/// Start a room task; `last_seq` is the room's seq now. `relay`: events
/// come from a relaying engine, woken when the room stops (see the module
/// doc).
pub fn spawn(
    id: String,
    creator: Arc<str>,
    last_seq: u64,
    cfg: HubConfig,
    relay: Option<Arc<Notify>>,
) -> RoomHandle {
    let (tx, rx) = mpsc::channel(cfg.room_queue_len_max);
    let viewers = Arc::new(AtomicU64::new(0));
    let room = Room {
        id,
        creator: creator.clone(),
        last_seq,
        subs: Vec::new(),
        msgpack_subs: 0,
        coalesce_subs: 0,
        history: VecDeque::new(),
        viewers: viewers.clone(),
        cfg,
        stats: Stats::default(),
        combos: foldhash::HashMap::default(),
        coalesce_due: None,
        idle_due: None,
        skip_due: None,
        relay,
    };
    let mut room = room;
    room.arm_idle();
    tokio::spawn(room.run(rx));
    RoomHandle {
        tx,
        viewers,
        creator,
        opened_seq: last_seq,
    }
}

impl Room {
    async fn run(mut self, mut rx: mpsc::Receiver<RoomCmd>) {
        loop {
            // Timers are armed only when something changed: an idle room
            // costs nothing.
            let due = [
                self.stats.due,
                self.coalesce_due,
                self.idle_due,
                self.skip_due,
            ]
            .into_iter()
            .flatten()
            .min();
            let cmd = tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => cmd,
                    None => break,
                },
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => {
                    if self.on_timer() {
                        break;
                    }
                    continue;
                }
            };
            match cmd {
                RoomCmd::Gift(ev) => self.on_gift(ev),
                RoomCmd::ComboEnd(end) => self.on_combo_end(end),
                RoomCmd::Join { sub, reply } => {
                    let _ = reply.send(self.on_join(sub));
                }
                RoomCmd::Resume {
                    sub,
                    since,
                    backfill,
                    reply,
                } => {
                    let _ = reply.send(self.on_resume(sub, since, backfill));
                }
                RoomCmd::Leave { conn_id } => self.remove(conn_id),
                RoomCmd::Broadcast(msg) => self.broadcast(&msg),
                RoomCmd::Stats {
                    viewers,
                    diamonds,
                    top,
                } => self.on_stats(viewers, diamonds, top),
                RoomCmd::End => {
                    self.flush_combos();
                    self.broadcast(&ServerMsg::RoomEnded {
                        room: self.id.clone(),
                    });
                    break;
                }
            }
            self.sweep();
            self.note_viewers();
            self.arm_idle();
        }
        self.viewers.store(0, Ordering::Relaxed);
        if let Some(changed) = &self.relay {
            // Close the queue first, so the hub sees this room as stopped
            // when it is woken.
            rx.close();
            changed.notify_one();
        }
    }

    /// Relaying engine: arm the stop timer when the room has no subscriber
    /// (and disarm it when it has one).
    fn arm_idle(&mut self) {
        if self.relay.is_none() {
            return;
        }
        if !self.subs.is_empty() {
            self.idle_due = None;
        } else if self.idle_due.is_none() {
            self.idle_due = Some(Instant::now() + Duration::from_millis(self.cfg.room_linger_ms));
        }
    }

    /// Stats across nodes from the engine: send them if they changed.
    fn on_stats(&mut self, viewers: u64, diamonds: i64, top: Vec<TopEntry>) {
        let next = (viewers, diamonds, top);
        if self.stats.external.as_ref() != Some(&next) {
            self.stats.external = Some(next);
            self.stats_changed();
        }
    }

    /// Handle due timers; true when the room should stop (relaying engine,
    /// no subscriber for `hub.room_linger_ms`).
    fn on_timer(&mut self) -> bool {
        let now = Instant::now();
        if self.idle_due.is_some_and(|d| d <= now) {
            self.idle_due = None;
            if self.subs.is_empty() {
                self.flush_combos();
                return true;
            }
        }
        if self.coalesce_due.is_some_and(|d| d <= now) {
            self.flush_combos();
        }
        if self.stats.due.is_some_and(|d| d <= now) {
            self.stats.due = None;
            if self.stats.changed {
                self.send_stats();
            }
        }
        if self.skip_due.is_some_and(|d| d <= now) {
            self.skip_due = None;
            self.retry_skip_notes();
        }
        self.sweep();
        false
    }

    /// Arm the retry of pending `skipped` notes, unless armed.
    fn arm_skip_notes(&mut self) {
        if self.skip_due.is_none() {
            self.skip_due =
                Some(Instant::now() + Duration::from_millis(self.cfg.skipped_note_retry_ms));
        }
    }

    /// Queue each pending `skipped` note that fits now: the live may have
    /// gone quiet, and a viewer must not wait for the next gift to learn
    /// that it missed the last ones. Re-armed while any is still pending.
    fn retry_skip_notes(&mut self) {
        let mut pending = false;
        for s in self.subs.iter_mut().filter(|s| !s.dead) {
            let Some((from, to)) = s.skip else {
                continue;
            };
            let note = ServerMsg::Skipped {
                room: self.id.clone(),
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

    /// Mark stats changed and arm the stats timer (at most once per interval).
    fn stats_changed(&mut self) {
        self.stats.changed = true;
        if self.stats.due.is_none() {
            let interval = Duration::from_millis(self.cfg.stats_interval_ms);
            let earliest = self
                .stats
                .last_sent
                .map_or_else(Instant::now, |t| t + interval);
            self.stats.due = Some(earliest.max(Instant::now()));
        }
    }

    fn note_viewers(&mut self) {
        if self.relay.is_some() {
            return; // the engine's stats count every node's viewers
        }
        let n = self.subs.len() as u64;
        if n != self.stats.last_viewers {
            self.stats.last_viewers = n;
            self.stats_changed();
        }
    }

    fn send_stats(&mut self) {
        if let Some((viewers, diamonds, top)) = &self.stats.external {
            let msg = ServerMsg::RoomStats {
                room: self.id.clone(),
                viewers: *viewers,
                diamonds: *diamonds,
                top: top.clone(),
            };
            self.broadcast(&msg);
            self.stats.changed = false;
            self.stats.last_sent = Some(Instant::now());
            return;
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
        let msg = ServerMsg::RoomStats {
            room: self.id.clone(),
            viewers: self.subs.len() as u64,
            diamonds: self.stats.diamonds,
            top,
        };
        self.broadcast(&msg);
        self.stats.changed = false;
        self.stats.last_sent = Some(Instant::now());
    }

    fn count_gift(&mut self, ev: &GiftEvent) {
        if self.relay.is_some() {
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

    /// Send each combo's latest event to coalescing subscribers, in seq order.
    fn flush_combos(&mut self) {
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
                skipped |= !deliver(s, &self.id, seq, frame, &self.cfg);
            }
        }
        if skipped {
            self.arm_skip_notes();
        }
    }

    fn on_gift(&mut self, ev: GiftEvent) {
        if ev.seq <= self.last_seq {
            // Only possible for events relayed from another node (a room
            // opened here mid-stream, a pub/sub redelivery): already covered.
            metrics::counter!("giftstream_stale_events_total").increment(1);
            return;
        }
        let seq = ev.seq;
        self.last_seq = seq;
        self.count_gift(&ev);
        if self.coalesce_subs > 0 {
            self.combos
                .insert((ev.sender.clone(), ev.gift.clone()), ev.clone());
            if self.coalesce_due.is_none() {
                self.coalesce_due =
                    Some(Instant::now() + Duration::from_millis(self.cfg.coalesce_interval_ms));
            }
        }
        self.publish(seq, ServerMsg::GiftEvent(ev), false);
    }

    /// A streak ended: coalescing subscribers get every pending step first
    /// (all of them, in seq order: each is older than the end), then every
    /// subscriber gets the end; it is kept in history like a gift.
    fn on_combo_end(&mut self, end: ComboEnd) {
        if end.seq <= self.last_seq {
            metrics::counter!("giftstream_stale_events_total").increment(1);
            return;
        }
        self.last_seq = end.seq;
        self.flush_combos();
        let seq = end.seq;
        self.publish(seq, ServerMsg::ComboEnd(end), true);
    }

    /// Deliver a seq'd event to the non-coalescing subscribers (and the
    /// coalescing ones too when `to_all`), and keep it in history.
    fn publish(&mut self, seq: u64, msg: ServerMsg, to_all: bool) {
        let json = msg.encode(Encoding::Json);
        let msgpack = (self.msgpack_subs > 0).then(|| msg.encode(Encoding::MsgPack));
        let mut delivered = 0u64;
        let mut skipped = 0u64;
        for s in self.subs.iter_mut().filter(|s| to_all || !s.sub.coalesce) {
            let frame = match s.sub.encoding {
                Encoding::Json => &json,
                Encoding::MsgPack => msgpack.as_ref().unwrap_or(&json),
            };
            if deliver(s, &self.id, seq, frame, &self.cfg) {
                delivered += 1;
            } else {
                skipped += 1;
            }
        }
        metrics::counter!("giftstream_deliveries_total").increment(delivered);
        if skipped > 0 {
            metrics::counter!("giftstream_skipped_total").increment(skipped);
            self.arm_skip_notes();
        }
        self.history.push_back(Hist {
            seq,
            at: Instant::now(),
            msg,
            json,
            msgpack,
        });
        self.trim_history();
    }

    fn trim_history(&mut self) {
        let age_max = Duration::from_millis(self.cfg.history_age_ms_max);
        while let Some(h) = self.history.front() {
            if self.history.len() > self.cfg.history_len_max || h.at.elapsed() > age_max {
                self.history.pop_front();
            } else {
                break;
            }
        }
    }

    fn subscribe(&mut self, sub: Subscriber, seen_seq: u64) {
        self.remove(sub.conn_id);
        if sub.encoding == Encoding::MsgPack {
            self.msgpack_subs += 1;
        }
        if sub.coalesce {
            self.coalesce_subs += 1;
        }
        let is_creator = *sub.user == *self.creator;
        self.subs.push(SubState {
            sub,
            is_creator,
            skip: None,
            skipped: 0,
            dead: false,
            seen_seq,
        });
        self.viewers
            .store(self.subs.len() as u64, Ordering::Relaxed);
    }

    fn on_join(&mut self, sub: Subscriber) -> Result<()> {
        let viewers = (self.subs.len()
            + usize::from(!self.subs.iter().any(|s| s.sub.conn_id == sub.conn_id)))
            as u64;
        let joined = ServerMsg::Joined {
            room: self.id.clone(),
            seq: self.last_seq,
            viewers,
        };
        sub.tx
            .try_send(joined.encode(sub.encoding))
            .map_err(|_| busy())?;
        self.subscribe(sub, 0);
        Ok(())
    }

    fn on_resume(
        &mut self,
        sub: Subscriber,
        since: u64,
        backfill: Option<Vec<SeqEvent>>,
    ) -> Result<()> {
        self.trim_history();
        if let Some(backfill) = backfill {
            return self.resume_from(sub, since, backfill);
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
    fn resume_from(&mut self, sub: Subscriber, since: u64, backfill: Vec<SeqEvent>) -> Result<()> {
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
    fn replay(&mut self, sub: Subscriber, since: u64, mut frames: Vec<Message>) -> Result<()> {
        let replayed = frames.len();
        let resumed = ServerMsg::Resumed {
            room: self.id.clone(),
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

    fn broadcast(&mut self, msg: &ServerMsg) {
        let json = msg.encode(Encoding::Json);
        let msgpack = (self.msgpack_subs > 0).then(|| msg.encode(Encoding::MsgPack));
        for s in &mut self.subs {
            let frame = match s.sub.encoding {
                Encoding::Json => &json,
                Encoding::MsgPack => msgpack.as_ref().unwrap_or(&json),
            };
            if let Err(TrySendError::Closed(_)) = s.sub.tx.try_send(frame.clone()) {
                s.dead = true;
            }
        }
    }

    fn remove(&mut self, conn_id: u64) {
        if let Some(i) = self.subs.iter().position(|s| s.sub.conn_id == conn_id) {
            let s = self.subs.swap_remove(i);
            if s.sub.encoding == Encoding::MsgPack {
                self.msgpack_subs -= 1;
            }
            if s.sub.coalesce {
                self.coalesce_subs -= 1;
            }
        }
        self.viewers
            .store(self.subs.len() as u64, Ordering::Relaxed);
    }

    fn sweep(&mut self) {
        if self.subs.iter().any(|s| s.dead) {
            let dead: Vec<u64> = self
                .subs
                .iter()
                .filter(|s| s.dead)
                .map(|s| s.sub.conn_id)
                .collect();
            for id in dead {
                self.remove(id);
            }
        }
    }
}

fn busy() -> Error {
    Error::new(
        ErrorCode::RateLimited,
        "socket queue full; read your frames and retry",
    )
}

/// Queue one event for one subscriber; false if it was skipped.
fn deliver(s: &mut SubState, room: &str, seq: u64, frame: &Message, cfg: &HubConfig) -> bool {
    if s.dead {
        return false;
    }
    if seq <= s.seen_seq {
        return true;
    }
    if let Some((from, to)) = s.skip {
        // Tell the viewer what it missed before anything newer, if both fit.
        if s.sub.tx.capacity() >= 2 {
            let note = ServerMsg::Skipped {
                room: room.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::outbox::{outbox, OutboxRx};

    fn event(seq: u64, sender: &str, diamonds: i64) -> GiftEvent {
        GiftEvent {
            room: "r".into(),
            seq,
            id: format!("id{seq}"),
            sender: sender.into(),
            gift: "rose".into(),
            count: 1,
            combo: 1,
            coins: diamonds,
            diamonds,
            animation: "rose.webp".into(),
            ts: 0,
        }
    }

    fn room(gifters_max: usize) -> Room {
        let cfg = HubConfig {
            room_gifters_max: gifters_max,
            ..HubConfig::default()
        };
        Room {
            id: "r".into(),
            creator: "c".into(),
            last_seq: 0,
            subs: Vec::new(),
            msgpack_subs: 0,
            coalesce_subs: 0,
            history: VecDeque::new(),
            viewers: Arc::new(AtomicU64::new(0)),
            cfg,
            stats: Stats::default(),
            combos: foldhash::HashMap::default(),
            coalesce_due: None,
            relay: None,
            idle_due: None,
            skip_due: None,
        }
    }

    #[test]
    fn gifter_tracking_stays_bounded_and_keeps_the_top() {
        for max in [1, 2, 3, 10] {
            let mut r = room(max);
            for i in 0..200u64 {
                r.on_gift(event(i + 1, &format!("u{}", i % 50), (i % 7) as i64 + 1));
                assert!(
                    r.stats.gifters.len() <= max,
                    "max {max}: {} tracked",
                    r.stats.gifters.len()
                );
            }
            assert_eq!(
                r.stats.diamonds,
                (0..200u64).map(|i| (i % 7) as i64 + 1).sum::<i64>()
            );
        }
        let mut r = room(4);
        for (i, (u, d)) in [("a", 1), ("b", 100), ("c", 2), ("d", 3), ("e", 4), ("f", 5)]
            .iter()
            .enumerate()
        {
            r.on_gift(event(i as u64 + 1, u, *d));
        }
        assert!(
            r.stats.gifters.contains_key("b"),
            "the biggest gifter survives eviction"
        );
    }

    fn sub(conn_id: u64, len: usize) -> (Subscriber, OutboxRx) {
        let (tx, rx) = outbox(len);
        let s = Subscriber {
            conn_id,
            user: format!("u{conn_id}"),
            encoding: Encoding::Json,
            tx,
            ctl: Arc::new(ConnCtl::default()),
            coalesce: false,
        };
        (s, rx)
    }

    /// (type, seq) of every frame queued so far.
    fn drained(rx: &mut OutboxRx) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        while let Some(Message::Text(t)) = rx.try_recv() {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            out.push((
                v["type"].as_str().unwrap_or("").to_string(),
                v["seq"].as_u64().unwrap_or(0),
            ));
        }
        out
    }

    #[test]
    fn resume_joins_engine_history_to_the_ring_and_live_events_once() {
        let mut r = room(10);
        for seq in 1..=5 {
            r.on_gift(event(seq, "a", 1));
        }
        // The engine's stream is ahead of this room (7 not received yet).
        let backfill: Vec<SeqEvent> = (2..=7).map(|s| event(s, "a", 1).into()).collect();
        let (s, mut rx) = sub(1, 100);
        r.on_resume(s, 1, Some(backfill)).unwrap();
        for seq in 6..=7 {
            r.on_gift(event(seq, "a", 1));
        }
        let got = drained(&mut rx);
        let want: Vec<(String, u64)> = [2, 3, 4, 5]
            .iter()
            .map(|s| ("gift_event".to_string(), *s))
            .chain([("resumed".to_string(), 5)])
            .chain([6, 7].iter().map(|s| ("gift_event".to_string(), *s)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_resume_ahead_of_the_room_gets_no_event_it_already_saw() {
        let mut r = room(10);
        for seq in 1..=5 {
            r.on_gift(event(seq, "a", 1));
        }
        let (s, mut rx) = sub(1, 100);
        r.on_resume(s, 8, Some(Vec::new())).unwrap();
        for seq in 6..=9 {
            r.on_gift(event(seq, "a", 1));
        }
        assert_eq!(
            drained(&mut rx),
            vec![("resumed".to_string(), 5), ("gift_event".to_string(), 9)]
        );
    }

    #[tokio::test]
    async fn a_relayed_room_without_subscribers_stops_after_its_linger() {
        let cfg = HubConfig {
            room_linger_ms: 20,
            ..HubConfig::default()
        };
        let changed = Arc::new(Notify::new());
        let h = spawn("r".into(), "c".into(), 0, cfg, Some(changed.clone()));
        tokio::time::timeout(Duration::from_secs(30), changed.notified())
            .await
            .expect("the room stops and says so");
        assert!(!h.is_open());
    }

    #[test]
    fn a_combo_end_flushes_the_pending_step_first_reaches_everyone_and_stays_in_history() {
        let mut r = room(10);
        let (full, mut full_rx) = sub(1, 100);
        let (mut co, mut co_rx) = sub(2, 100);
        co.coalesce = true;
        r.on_join(full).unwrap();
        r.on_join(co).unwrap();
        for seq in 1..=3 {
            r.on_gift(event(seq, "a", 1));
        }
        let end = ComboEnd {
            room: "r".into(),
            seq: 4,
            sender: "a".into(),
            gift: "rose".into(),
            count: 3,
            coins: 3,
            diamonds: 3,
            seq_first: 1,
            seq_last: 3,
            ts: 0,
        };
        r.on_combo_end(end.clone());
        r.on_combo_end(end); // a redelivery: dropped
        let kinds = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
            v.iter().map(|(t, s)| (t.to_string(), *s)).collect()
        };
        assert_eq!(
            drained(&mut full_rx),
            kinds(&[
                ("joined", 0),
                ("gift_event", 1),
                ("gift_event", 2),
                ("gift_event", 3),
                ("combo_end", 4)
            ])
        );
        assert_eq!(
            drained(&mut co_rx),
            kinds(&[("joined", 0), ("gift_event", 3), ("combo_end", 4)]),
            "the latest step, then the end"
        );
        let (s, mut rx) = sub(3, 100);
        r.on_resume(s, 2, None).unwrap();
        assert_eq!(
            drained(&mut rx),
            kinds(&[("gift_event", 3), ("combo_end", 4), ("resumed", 4)])
        );
    }

    #[test]
    fn stale_and_duplicate_events_are_dropped() {
        let mut r = room(10);
        r.on_gift(event(5, "a", 1));
        r.on_gift(event(5, "a", 1));
        r.on_gift(event(3, "a", 1));
        r.on_gift(event(6, "a", 1));
        assert_eq!(r.last_seq, 6);
        assert_eq!(
            r.history.iter().map(|h| h.seq).collect::<Vec<_>>(),
            vec![5, 6]
        );
        assert_eq!(r.stats.diamonds, 2);
    }
}

//! One task per room, video or creator inbox (a topic): ordered delivery,
//! history for `resume`, skip accounting.
//!
//! An inbox's task is a video's (no live, no stats, lingers) whose events
//! are `inbox_event`s with the inbox's own seq ([`RoomCmd::Inbox`]).
//!
//! A video's task is a room's without the live: it names `video` in its
//! messages, sends no `room_stats` and never `room_ended`, and stops
//! after its linger without a subscriber (in process: after
//! `hub.history_age_ms_max`, the longest its ring is any use; with a
//! relaying engine: `hub.room_linger_ms`, like a room).
//!
//! Owns: the room's subscribers, its last seq, its history ring (bounded by
//! count and age), and the rule for a full subscriber queue: a viewer gets
//! a `skipped` range (and is disconnected past `hub.viewer_skipped_max`);
//! the room's creator is never skipped — it is disconnected with 1013 and
//! resumes from its last seq, so its feed misses nothing.
//! A user the creator blocked is dropped ([`RoomCmd::Drop`]): each of their
//! subscriptions ends with an `error` `forbidden` naming the room or video.
//! With a cross-node relay (Redis) the room also takes its stats from the
//! engine ([`RoomCmd::Stats`], summed over nodes), merges the engine's
//! history stream into `resume` replays, and stops after
//! `hub.room_linger_ms` without a subscriber (so the node unsubscribes).
//! By concern: [`delivery`] (one event to one queue, the skip policy),
//! [`history`] (the ring and `resume`), [`stats`] (`room_stats`, top
//! gifters), [`combo`] (coalescing); this file holds the task, its
//! commands and its subscribers.
//! Must not: await on a subscriber (every delivery is `try_send`), or
//! serialize per subscriber (each event is encoded once per wire format).

mod combo;
mod delivery;
mod history;
mod stats;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use tokio::sync::{mpsc, oneshot, Notify};

use super::ctl::ConnCtl;
use super::outbox::{BatchError, Outbox, TrySendError};
use super::RoomHandle;
use crate::config::HubConfig;
use crate::error::{Error, ErrorCode, Result};
use crate::protocol::{
    ComboEnd, Encoding, GiftEvent, GiftMessage, InboxEvent, SeqEvent, ServerMsg, TopEntry, Topic,
};
use delivery::{busy, deliver};
use history::Hist;
use stats::Stats;

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
    /// An event of a creator's inbox, in inbox seq order (an inbox's task
    /// only).
    Inbox(InboxEvent),
    /// An approved held message, in seq order with gifts (published by the
    /// counters engine).
    Message(GiftMessage),
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
    /// The creator blocked this user: their subscriptions end, each with
    /// an `error` `forbidden` naming the room or video.
    Drop {
        /// The blocked user.
        user: String,
    },
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
            SeqEvent::Inbox(i) => RoomCmd::Inbox(i),
            SeqEvent::Message(m) => RoomCmd::Message(m),
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

/// A message without seq (stats, tips, `room_ended`) encoded once per
/// format the room's subscribers use.
struct Frames {
    json: Message,
    msgpack: Option<Message>,
}

impl Frames {
    fn new(msg: &ServerMsg, msgpack: bool) -> Self {
        Frames {
            json: msg.encode(Encoding::Json),
            msgpack: msgpack.then(|| msg.encode(Encoding::MsgPack)),
        }
    }

    /// Queue it for `s` if it fits (it has no seq: a viewer whose queue is
    /// full misses it, and the next one supersedes it); a closed socket is
    /// marked dead.
    fn push(&self, s: &mut SubState) {
        let frame = match s.sub.encoding {
            Encoding::Json => &self.json,
            Encoding::MsgPack => self.msgpack.as_ref().unwrap_or(&self.json),
        };
        if let Err(TrySendError::Closed(_)) = s.sub.tx.try_send(frame.clone()) {
            s.dead = true;
        }
    }
}

struct Room {
    /// The room or video id (in texts).
    id: String,
    /// The room or video (in messages).
    topic: Topic,
    creator: Arc<str>,
    last_seq: u64,
    subs: Vec<SubState>,
    msgpack_subs: usize,
    coalesce_subs: usize,
    history: VecDeque<Hist>,
    viewers: Arc<AtomicU64>,
    tally: Arc<super::tally::ViewerTally>,
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

/// Start a room's or video's task; `last_seq` is its seq now. `relay`:
/// events come from a relaying engine, woken when the task stops (see the
/// module doc).
pub fn spawn(
    topic: Topic,
    creator: Arc<str>,
    last_seq: u64,
    cfg: HubConfig,
    relay: Option<Arc<Notify>>,
) -> RoomHandle {
    let (tx, rx) = mpsc::channel(cfg.room_queue_len_max);
    let viewers = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(super::tally::ViewerTally::new(crate::protocol::now_ms()));
    let room = Room {
        id: topic.id().to_string(),
        topic,
        creator: creator.clone(),
        last_seq,
        subs: Vec::new(),
        msgpack_subs: 0,
        coalesce_subs: 0,
        history: VecDeque::new(),
        viewers: viewers.clone(),
        tally: tally.clone(),
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
        tally,
    }
}

impl Room {
    /// Publish this node's subscriber count (and tally it, unless a
    /// relaying engine's stats carry every node's count).
    fn set_viewers(&mut self) {
        let n = self.subs.len() as u64;
        self.viewers.store(n, Ordering::Relaxed);
        if self.relay.is_none() {
            self.tally.note(n, crate::protocol::now_ms());
        }
    }

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
                RoomCmd::Message(m) => self.on_message(m),
                RoomCmd::Inbox(ev) => self.on_inbox(ev),
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
                RoomCmd::Drop { user } => self.drop_user(&user),
                RoomCmd::Stats {
                    viewers,
                    diamonds,
                    top,
                } => self.on_stats(viewers, diamonds, top),
                RoomCmd::End if self.is_video() => break,
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

    /// A video or an inbox: no live (no stats, no `room_ended`), and the
    /// task lingers like a video's.
    fn is_video(&self) -> bool {
        !matches!(self.topic, Topic::Room(_))
    }

    /// How long the task runs on without a subscriber: relaying engine
    /// `hub.room_linger_ms`; in process, a video for as long as its ring
    /// can serve a resume, a room until its live ends (None).
    fn linger(&self) -> Option<Duration> {
        if self.relay.is_some() {
            Some(Duration::from_millis(self.cfg.room_linger_ms))
        } else if self.is_video() {
            let ms = self.cfg.history_age_ms_max.max(self.cfg.room_linger_ms);
            Some(Duration::from_millis(ms))
        } else {
            None
        }
    }

    /// Arm the stop timer when the room has no subscriber (and disarm it
    /// when it has one); see [`Room::linger`].
    fn arm_idle(&mut self) {
        let Some(linger) = self.linger() else {
            return;
        };
        if !self.subs.is_empty() {
            self.idle_due = None;
        } else if self.idle_due.is_none() {
            self.idle_due = Some(Instant::now() + linger);
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
            self.on_stats_timer();
        }
        if self.skip_due.is_some_and(|d| d <= now) {
            self.skip_due = None;
            self.retry_skip_notes();
        }
        self.sweep();
        false
    }

    fn on_gift(&mut self, ev: GiftEvent) {
        if ev.seq <= self.last_seq {
            // Only possible for events relayed from another node (a room
            // opened here mid-stream, a pub/sub redelivery): already covered.
            metrics::counter!("giftstream_stale_events_total").increment(1);
            return;
        }
        self.announce_gap(ev.seq);
        let seq = ev.seq;
        self.last_seq = seq;
        self.count_gift(&ev);
        self.queue_combo(&ev);
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
        self.announce_gap(end.seq);
        self.last_seq = end.seq;
        self.flush_combos();
        let seq = end.seq;
        self.publish(seq, ServerMsg::ComboEnd(end), true);
    }

    /// An approved held message: to every subscriber (coalescing ones
    /// too), kept in history like a gift.
    fn on_message(&mut self, m: GiftMessage) {
        if m.seq <= self.last_seq {
            metrics::counter!("giftstream_stale_events_total").increment(1);
            return;
        }
        self.announce_gap(m.seq);
        self.last_seq = m.seq;
        let seq = m.seq;
        self.publish(seq, ServerMsg::GiftMessage(m), true);
    }

    /// An inbox event: to every subscriber (an inbox does not coalesce),
    /// kept in history like a gift.
    fn on_inbox(&mut self, ev: InboxEvent) {
        if ev.seq <= self.last_seq {
            metrics::counter!("giftstream_stale_events_total").increment(1);
            return;
        }
        self.announce_gap(ev.seq);
        self.last_seq = ev.seq;
        let seq = ev.seq;
        self.publish(seq, ServerMsg::InboxEvent(ev), true);
    }

    /// Deliver a seq'd event to the non-coalescing subscribers (and the
    /// coalescing ones too when `to_all`), and keep it in history. Ready
    /// stats ride behind it, to every subscriber (see [`stats`]).
    fn publish(&mut self, seq: u64, msg: ServerMsg, to_all: bool) {
        let now = Instant::now();
        let stats = self
            .take_ready_stats(now)
            .map(|m| Frames::new(&m, self.msgpack_subs > 0));
        let mut hist = Hist {
            seq,
            at: now,
            msg,
            json: None,
            msgpack: None,
        };
        let mut delivered = 0u64;
        let mut skipped = 0u64;
        for s in &mut self.subs {
            if to_all || !s.sub.coalesce {
                let frame = hist.frame_ref(s.sub.encoding);
                if deliver(s, &self.topic, seq, frame, &self.cfg) {
                    delivered += 1;
                } else {
                    skipped += 1;
                }
            }
            if let Some(stats) = &stats {
                stats.push(s);
            }
        }
        metrics::counter!("giftstream_deliveries_total").increment(delivered);
        if skipped > 0 {
            metrics::counter!("giftstream_skipped_total").increment(skipped);
            self.arm_skip_notes();
        }
        self.history.push_back(hist);
        self.trim_history();
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
        self.set_viewers();
    }

    fn on_join(&mut self, sub: Subscriber) -> Result<()> {
        let viewers = (self.subs.len()
            + usize::from(!self.subs.iter().any(|s| s.sub.conn_id == sub.conn_id)))
            as u64;
        let (room, video, inbox) = self.topic.fields();
        let joined = ServerMsg::Joined {
            room,
            video,
            inbox,
            seq: self.last_seq,
            viewers,
        };
        sub.tx
            .try_send(joined.encode(sub.encoding))
            .map_err(|_| busy())?;
        self.subscribe(sub, 0);
        Ok(())
    }

    fn broadcast(&mut self, msg: &ServerMsg) {
        let frames = Frames::new(msg, self.msgpack_subs > 0);
        for s in &mut self.subs {
            frames.push(s);
        }
    }

    /// End `user`'s subscriptions (never the creator's): an `error`
    /// `forbidden` naming this room or video, then out.
    fn drop_user(&mut self, user: &str) {
        let (room, video, _) = self.topic.fields();
        let e = Error::forbidden(format!(
            "the creator blocked you: {} `{}` ended for you",
            self.topic.field(),
            self.id
        ));
        let msg = ServerMsg::error_on(&e, (!room.is_empty()).then_some(room), video);
        let gone: Vec<u64> = self
            .subs
            .iter()
            .filter(|s| *s.sub.user == *user && !s.is_creator)
            .map(|s| s.sub.conn_id)
            .collect();
        for id in gone {
            if let Some(s) = self.subs.iter().find(|s| s.sub.conn_id == id) {
                let _ = s.sub.tx.try_send(msg.encode(s.sub.encoding));
            }
            self.remove(id);
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
        self.set_viewers();
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

#[cfg(test)]
mod tests;

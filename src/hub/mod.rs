//! The WebSocket hub: rooms, subscribers, fan-out.
//!
//! Owns: the registry of rooms and videos open on this node ([`Hub`]),
//! keyed by their hub key ([`crate::protocol::Topic::hub_key`]: a room's
//! id, `video:ID` for a video), one task per room or video ([`room`]) that
//! encodes each event once per wire format and hands
//! the same bytes to every subscriber's bounded queue, and one reader and
//! one writer task per socket ([`conn`]).
//! With a cross-node relay (Redis, `crate::relay::redis`), the hub is also
//! the node's list of rooms with local interest: the relay subscribes to
//! exactly the rooms open here ([`Hub::open_rooms`], woken by
//! [`Hub::rooms_changed`]), and a room with no local viewer stops after
//! `hub.room_linger_ms`.
//! In process (no relay) the hub also keeps each creator's inbox seq: every
//! event published through [`EventSink`] is wrapped into an `inbox_event`
//! with the next seq of its creator's inbox and queued into the inbox's
//! task (opened on demand, like a video's feed, and lingering
//! `hub.history_age_ms_max` so a later `resume` finds it), in the same step
//! as the event itself; tips arrive through [`Hub::publish_inbox`]. With a
//! relay (Redis) the engine assigns inbox seqs in its scripts instead, and
//! inbox events arrive through the relay like any other topic's.
//! Must not: change balances or target seqs (the counters engine does, and then
//! publishes through [`crate::model::EventSink`]), or block a room on a slow socket.

pub mod admit;
pub mod conn;
pub mod ctl;
pub mod outbox;
pub mod room;
pub mod tally;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use tokio::sync::{mpsc, Notify};
use tokio_util::task::TaskTracker;

use crate::config::HubConfig;
use crate::error::{Error, ErrorCode, Result};
use crate::model::{EventPermit, EventSink, Target, TargetKind};
use crate::protocol::{GiftEvent, InboxEvent, SeqEvent, ServerMsg, Topic};
pub use room::RoomCmd;

/// Entries of the registry below which stopped tasks are not pruned.
const PRUNE_AT_MIN: usize = 1024;

/// A room's handle: its task's queue and its live viewer count.
#[derive(Clone)]
pub struct RoomHandle {
    /// The room task's command queue.
    pub tx: mpsc::Sender<RoomCmd>,
    /// Subscribers right now.
    pub viewers: Arc<AtomicU64>,
    /// Creator of the room.
    pub creator: Arc<str>,
    /// The room's seq when it opened on this node (its events after this
    /// one reach it; a relaying engine catches up from here).
    pub opened_seq: u64,
    /// This live's viewers over time (peak, average).
    pub tally: Arc<tally::ViewerTally>,
}

impl RoomHandle {
    /// True while the room task runs.
    pub fn is_open(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// Rooms open on this node.
pub struct Hub {
    rooms: DashMap<String, RoomHandle>,
    cfg: HubConfig,
    next_conn_id: AtomicU64,
    relayed: AtomicBool,
    changed: Arc<Notify>,
    caps: Arc<admit::ConnCaps>,
    /// Entries (open or stopped) past which stopped tasks are forgotten
    /// on the next open (videos stop on their own; nothing else removes
    /// their entry in process).
    prune_at: AtomicUsize,
    /// Every socket's task, joined at shutdown ([`Hub::sockets_ended`]).
    sockets: TaskTracker,
    /// In process: each creator's inbox seq (last one handed out). Taken
    /// for the whole of "next seq, queue the event", so inbox order is
    /// seq order.
    inboxes: DashMap<String, Arc<Mutex<u64>>>,
    /// In process: where an inbox first seen by this process starts: 0 on
    /// a fresh ledger, the start time in ms after a restart (set by
    /// [`Hub::set_inbox_floor`]), so a restart never hands out an inbox
    /// seq a client already saw before it.
    inbox_floor: AtomicU64,
}

/// A reserved slot in a creator's inbox queue (in process).
struct InboxSlot {
    creator: String,
    seq: Arc<Mutex<u64>>,
    permit: mpsc::OwnedPermit<RoomCmd>,
}

impl InboxSlot {
    /// Take the inbox's next seq and queue `event` with it.
    fn send(self, event: ServerMsg) {
        let mut seq = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        *seq += 1;
        self.permit.send(RoomCmd::Inbox(InboxEvent {
            creator: self.creator,
            seq: *seq,
            event: Box::new(event),
        }));
    }
}

impl Hub {
    /// An empty hub.
    pub fn new(cfg: HubConfig) -> Arc<Hub> {
        Arc::new(Hub {
            rooms: DashMap::new(),
            next_conn_id: AtomicU64::new(1),
            relayed: AtomicBool::new(false),
            changed: Arc::new(Notify::new()),
            caps: admit::ConnCaps::new(cfg.connections_per_ip_max, cfg.connections_per_user_max),
            prune_at: AtomicUsize::new(PRUNE_AT_MIN),
            sockets: TaskTracker::new(),
            inboxes: DashMap::new(),
            inbox_floor: AtomicU64::new(0),
            cfg,
        })
    }

    /// The tracker of every socket's task (one socket's whole life is
    /// tracked with it, and counted as open until it ends).
    pub fn socket_tracker(&self) -> TaskTracker {
        self.sockets.clone()
    }

    /// Sockets whose task has not ended yet.
    pub fn sockets_open(&self) -> usize {
        self.sockets.len()
    }

    /// Graceful shutdown: wait until every socket's task has ended (each
    /// closes itself with 1001 on the shutdown token), at most `limit`.
    /// False if some still run then.
    pub async fn sockets_ended(&self, limit: std::time::Duration) -> bool {
        self.sockets.close();
        tokio::time::timeout(limit, self.sockets.wait())
            .await
            .is_ok()
    }

    /// Room events reach this hub through a cross-node relay (Redis): rooms
    /// opened from now on take their stats from the engine
    /// ([`RoomCmd::Stats`]) and stop after `hub.room_linger_ms` without a
    /// local viewer. Set once, by the relay, before any room opens.
    pub fn set_relayed(&self) {
        self.relayed.store(true, Ordering::Relaxed);
    }

    /// Woken (one waiter; a wake-up is kept until taken) whenever a room
    /// opens or stops on this node.
    pub fn rooms_changed(&self) -> &Notify {
        &self.changed
    }

    /// Every room running on this node (stopped rooms are forgotten).
    pub fn open_rooms(&self) -> Vec<(String, RoomHandle)> {
        self.rooms.retain(|_, h| h.is_open());
        self.rooms
            .iter()
            .map(|r| (r.key().clone(), r.value().clone()))
            .collect()
    }

    /// The hub's configuration.
    pub fn config(&self) -> &HubConfig {
        &self.cfg
    }

    /// Open sockets per client IP and per user (`hub.connections_per_*`).
    pub fn caps(&self) -> &Arc<admit::ConnCaps> {
        &self.caps
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Start the room task for `room` if it is not running; `last_seq` is
    /// the room's seq at this moment (events after it will follow).
    pub fn open_room(&self, room: &str, creator: &str, last_seq: u64) {
        self.open_topic(&Topic::Room(room.to_string()), creator, last_seq);
    }

    /// Start the task of a room or video if it is not running; `last_seq`
    /// is its seq at this moment (events after it will follow).
    pub fn open_topic(&self, topic: &Topic, creator: &str, last_seq: u64) {
        self.open_topic_handle(topic, creator, last_seq);
    }

    /// [`Hub::open_topic`], answering the running task's handle.
    fn open_topic_handle(&self, topic: &Topic, creator: &str, last_seq: u64) -> RoomHandle {
        if self.rooms.len() >= self.prune_at.load(Ordering::Relaxed) {
            // Amortized O(1) per open; never under an entry lock.
            self.rooms.retain(|_, h| h.is_open());
            let next = (self.rooms.len() * 2).max(PRUNE_AT_MIN);
            self.prune_at.store(next, Ordering::Relaxed);
        }
        let relayed = self.relayed.load(Ordering::Relaxed);
        let spawn = || {
            room::spawn(
                topic.clone(),
                creator.into(),
                last_seq,
                self.cfg.clone(),
                relayed.then(|| self.changed.clone()),
            )
        };
        // One entry lock for the check and the insert: two sockets opening
        // the same room at once get the same room task.
        let handle = match self.rooms.entry(topic.hub_key()) {
            dashmap::Entry::Occupied(mut e) => {
                if e.get().is_open() {
                    return e.get().clone();
                }
                let h = spawn();
                e.insert(h.clone());
                h
            }
            dashmap::Entry::Vacant(e) => e.insert(spawn()).clone(),
        };
        metrics::gauge!("giftstream_rooms").set(self.rooms.len() as f64);
        self.changed.notify_one();
        handle
    }

    /// In process, at start: inboxes start after `floor` (the embedded
    /// engine keeps no inbox seq across a restart, so a restarted process
    /// starts its inboxes above any seq the last one handed out).
    pub fn set_inbox_floor(&self, floor: u64) {
        self.inbox_floor.store(floor, Ordering::Relaxed);
    }

    /// In process: the seq lock of `creator`'s inbox.
    fn inbox_seq_lock(&self, creator: &str) -> Arc<Mutex<u64>> {
        self.inboxes
            .entry(creator.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(self.inbox_floor.load(Ordering::Relaxed))))
            .clone()
    }

    /// In process: `creator`'s inbox task, opened at the inbox's seq if it
    /// is not running.
    pub fn open_inbox(&self, creator: &str) -> RoomHandle {
        let lock = self.inbox_seq_lock(creator);
        let seq = lock.lock().unwrap_or_else(|p| p.into_inner());
        self.open_topic_handle(&Topic::inbox(creator), creator, *seq)
    }

    /// In process: a slot in `creator`'s inbox queue (the inbox opened on
    /// demand), or `rate_limited` when the queue is full.
    fn reserve_inbox(&self, creator: &str) -> Result<InboxSlot> {
        let seq = self.inbox_seq_lock(creator);
        let permit = {
            let last = seq.lock().unwrap_or_else(|p| p.into_inner());
            self.open_topic_handle(&Topic::inbox(creator), creator, *last)
                .tx
                .try_reserve_owned()
        };
        let permit = permit.map_err(|_| {
            metrics::counter!("giftstream_room_queue_full_total").increment(1);
            Error::new(
                ErrorCode::RateLimited,
                "the creator's inbox is busy; try again shortly",
            )
        })?;
        Ok(InboxSlot {
            creator: creator.to_string(),
            seq,
            permit,
        })
    }

    /// In process: put a message other than a seq'd event (a `tip_event`)
    /// into `creator`'s inbox with the inbox's next seq. Waits (a little,
    /// then gives up with a warning) while the inbox's queue is full.
    pub async fn publish_inbox(&self, creator: &str, msg: ServerMsg) {
        const ATTEMPTS_MAX: u32 = 200;
        for _ in 0..ATTEMPTS_MAX {
            if let Ok(slot) = self.reserve_inbox(creator) {
                slot.send(msg);
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        tracing::warn!(creator, "inbox queue full: an inbox event was not queued");
    }

    /// End `room`: viewers get `room_ended` after every earlier event.
    pub async fn end_room(&self, room: &str) {
        if let Some((_, h)) = self.rooms.remove(room) {
            let _ = h.tx.send(RoomCmd::End).await;
        }
        metrics::gauge!("giftstream_rooms").set(self.rooms.len() as f64);
        self.changed.notify_one();
    }

    /// `creator` blocked `user`: every room and video of the creator open
    /// on this node ends `user`'s subscriptions ([`RoomCmd::Drop`]).
    pub async fn drop_blocked(&self, creator: &str, user: &str) {
        let rooms: Vec<mpsc::Sender<RoomCmd>> = self
            .rooms
            .iter()
            .filter(|r| *r.value().creator == *creator && !r.key().starts_with("inbox:"))
            .map(|r| r.value().tx.clone())
            .collect();
        for tx in rooms {
            let _ = tx.send(RoomCmd::Drop { user: user.into() }).await;
        }
    }

    /// Deliver an event that arrived from elsewhere (another node, through
    /// the counters engine's pub/sub), in the order it is called. Waits if
    /// the room's queue is full; a no-op when the room is not open here.
    pub async fn deliver(&self, room: &str, event: GiftEvent) {
        if let Some(tx) = self.rooms.get(room).map(|h| h.tx.clone()) {
            let _ = tx.send(RoomCmd::Gift(event)).await;
        }
    }

    /// Send a message other than a gift (a `tip_event`) to every
    /// subscriber of `room` on this node, after the events queued before
    /// it. Waits if the room's queue is full; a no-op when the room is not
    /// open here.
    pub async fn broadcast(&self, room: &str, msg: crate::protocol::ServerMsg) {
        if let Some(tx) = self.rooms.get(room).map(|h| h.tx.clone()) {
            let _ = tx.send(RoomCmd::Broadcast(msg)).await;
        }
    }

    /// The room's handle when this hub's own rooms are the truth about
    /// which rooms are live (one node: a room ends here when its live
    /// ends). None for a relayed hub, whose rooms end when the relay's
    /// `room_ended` arrives: the counters engine must be asked there.
    pub fn authoritative_room(&self, room: &str) -> Option<RoomHandle> {
        if self.relayed.load(Ordering::Relaxed) {
            return None;
        }
        self.room(room)
    }

    /// The room's handle, if it is open on this node.
    pub fn room(&self, room: &str) -> Option<RoomHandle> {
        self.rooms
            .get(room)
            .filter(|h| h.is_open())
            .map(|h| h.clone())
    }

    /// Rooms open on this node.
    pub fn room_len(&self) -> usize {
        self.rooms.len()
    }

    /// End every room (graceful shutdown).
    pub async fn end_all(&self) {
        let names: Vec<String> = self.rooms.iter().map(|r| r.key().clone()).collect();
        for r in names {
            if let Some((_, h)) = self.rooms.remove(&r) {
                drop(h);
            }
        }
    }
}

impl EventSink for Hub {
    /// The target's slot, and one in its creator's inbox (the event takes
    /// the inbox's next seq when it is sent): a full inbox queue refuses
    /// the event like a full room queue; an inbox nobody watches never
    /// does (it opens on demand).
    fn reserve(&self, target: &Target, creator: &str, last_seq: u64) -> Result<EventPermit> {
        let handle = match target.kind {
            TargetKind::Room => {
                let room = &target.id;
                self.rooms.get(room).map(|h| h.clone()).ok_or_else(|| {
                    Error::new(ErrorCode::UnknownRoom, format!("room `{room}` is not open"))
                })?
            }
            // A video's feed runs while someone watches or may resume it;
            // its first gift after that opens it again.
            TargetKind::Video => self.open_topic_handle(&target.topic(), creator, last_seq),
        };
        let p = handle.tx.try_reserve_owned().map_err(|_| {
            metrics::counter!("giftstream_room_queue_full_total").increment(1);
            Error::new(
                ErrorCode::RateLimited,
                "the room is busy; try again shortly",
            )
        })?;
        // The room's own creator (a late streak end names none).
        let inbox = match &*handle.creator {
            "" => None,
            c => Some(self.reserve_inbox(c)?),
        };
        Ok(EventPermit::new(move |ev: SeqEvent| {
            let msg = inbox.as_ref().map(|_| ev.for_inbox());
            p.send(ev.into());
            if let (Some(slot), Some(msg)) = (inbox, msg) {
                slot.send(msg);
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In process, a video's feed opens on its gift and stops after its
    /// linger without a viewer; stopped entries do not pile up.
    #[tokio::test]
    async fn video_feeds_open_on_a_gift_stop_alone_and_are_forgotten() {
        let hub = Hub::new(HubConfig {
            history_age_ms_max: 10,
            room_linger_ms: 10,
            ..HubConfig::default()
        });
        let n = PRUNE_AT_MIN;
        // No creator: no inbox opens with them (see the next test), so
        // the registry holds exactly the feeds.
        for i in 0..n {
            let permit = hub
                .reserve(&Target::video(format!("v{i}")), "", 0)
                .expect("a video's feed opens on demand");
            drop(permit);
        }
        assert_eq!(hub.room_len(), n);
        assert!(hub.room("video:v0").is_some());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while hub.room("video:v0").is_some() || hub.room(&format!("video:v{}", n - 1)).is_some() {
            assert!(std::time::Instant::now() < deadline, "the feeds stop");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        hub.open_topic(&Topic::Video("fresh".into()), "c", 0);
        assert!(
            hub.room_len() == 1,
            "stopped feeds were forgotten: {}",
            hub.room_len()
        );
        // A room is never opened on demand.
        let e = hub
            .reserve(&Target::room("r"), "c", 0)
            .err()
            .expect("no room");
        assert_eq!(e.code, ErrorCode::UnknownRoom);
    }

    /// In process, every event of a creator's targets also goes to the
    /// creator's inbox (opened on demand, no viewer needed) with the
    /// inbox's own consecutive seq; a tip joins the same sequence.
    #[tokio::test]
    async fn events_of_a_creators_targets_take_consecutive_inbox_seqs() {
        let hub = Hub::new(HubConfig::default());
        hub.open_room("r", "c", 0);
        let mut seen = Vec::new();
        for (i, target) in [Target::room("r"), Target::video("v"), Target::room("r")]
            .into_iter()
            .enumerate()
        {
            let permit = hub.reserve(&target, "c", 0).expect("never refused");
            let (room, video, _) = target.topic().fields();
            let seq = i as u64 + 1;
            let ev = GiftEvent {
                room,
                video,
                seq,
                id: format!("g{i}"),
                sender: "s".into(),
                gift: "rose".into(),
                count: 1,
                combo: 1,
                coins: 1,
                diamonds: 1,
                animation: "a".into(),
                ts: 1,
                message: None,
                message_state: None,
                message_id: None,
                original: None,
            };
            seen.push(ServerMsg::GiftEvent(ev.clone()));
            permit.send(ev);
        }
        let inbox = hub.room("inbox:c").expect("the inbox opened on demand");
        hub.publish_inbox("c", ServerMsg::Pong).await;
        // Join now: `joined` names the inbox at seq 4, resume replays 1..=4.
        let (tx, mut rx) = super::outbox::outbox(64);
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sub = room::Subscriber {
            conn_id: 1,
            user: "c".into(),
            encoding: crate::protocol::Encoding::Json,
            tx,
            ctl: Arc::new(conn::ConnCtl::default()),
            coalesce: false,
        };
        let cmd = RoomCmd::Resume {
            sub,
            since: 0,
            backfill: None,
            reply,
        };
        assert!(inbox.tx.send(cmd).await.is_ok());
        answer.await.unwrap().unwrap();
        let mut got = Vec::new();
        while let Some(axum::extract::ws::Message::Text(t)) = rx.try_recv() {
            got.push(serde_json::from_str::<ServerMsg>(&t).unwrap());
        }
        seen.push(ServerMsg::Pong);
        let mut want: Vec<ServerMsg> = seen
            .into_iter()
            .enumerate()
            .map(|(i, event)| {
                ServerMsg::InboxEvent(InboxEvent {
                    creator: "c".into(),
                    seq: i as u64 + 1,
                    event: Box::new(event),
                })
            })
            .collect();
        want.push(ServerMsg::Resumed {
            room: String::new(),
            video: None,
            inbox: Some("c".into()),
            seq: 4,
        });
        assert_eq!(got, want);
    }
}

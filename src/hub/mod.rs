//! The WebSocket hub: rooms, subscribers, fan-out.
//!
//! Owns: the registry of rooms open on this node ([`Hub`]), one task per
//! room ([`room`]) that encodes each event once per wire format and hands
//! the same bytes to every subscriber's bounded queue, and one reader and
//! one writer task per socket ([`conn`]).
//! With an engine that relays room events (Redis), the hub is also the
//! node's list of rooms with local interest: the engine subscribes to
//! exactly the rooms open here ([`Hub::open_rooms`], woken by
//! [`Hub::rooms_changed`]), and a room with no local viewer stops after
//! `hub.room_linger_ms`.
//! Must not: change balances or seqs (the counters engine does, and then
//! publishes through [`crate::model::EventSink`]), or block a room on a slow socket.

pub mod admit;
pub mod conn;
pub mod outbox;
pub mod room;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::{mpsc, Notify};
use tokio_util::task::TaskTracker;

use crate::config::HubConfig;
use crate::error::{Error, ErrorCode, Result};
use crate::model::{EventPermit, EventSink};
use crate::protocol::{GiftEvent, SeqEvent};
pub use room::RoomCmd;

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
    /// Every socket's task, joined at shutdown ([`Hub::sockets_ended`]).
    sockets: TaskTracker,
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
            sockets: TaskTracker::new(),
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

    /// Room events reach this hub through a relaying engine (Redis): rooms
    /// opened from now on take their stats from the engine
    /// ([`RoomCmd::Stats`]) and stop after `hub.room_linger_ms` without a
    /// local viewer. Set once, by the engine, before any room opens.
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
        let relayed = self.relayed.load(Ordering::Relaxed);
        let spawn = || {
            room::spawn(
                room.to_string(),
                creator.into(),
                last_seq,
                self.cfg.clone(),
                relayed.then(|| self.changed.clone()),
            )
        };
        // One entry lock for the check and the insert: two sockets opening
        // the same room at once get the same room task.
        match self.rooms.entry(room.to_string()) {
            dashmap::Entry::Occupied(mut e) => {
                if e.get().is_open() {
                    return;
                }
                e.insert(spawn());
            }
            dashmap::Entry::Vacant(e) => {
                e.insert(spawn());
            }
        }
        metrics::gauge!("giftstream_rooms").set(self.rooms.len() as f64);
        self.changed.notify_one();
    }

    /// End `room`: viewers get `room_ended` after every earlier event.
    pub async fn end_room(&self, room: &str) {
        if let Some((_, h)) = self.rooms.remove(room) {
            let _ = h.tx.send(RoomCmd::End).await;
        }
        metrics::gauge!("giftstream_rooms").set(self.rooms.len() as f64);
        self.changed.notify_one();
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
    fn reserve(&self, room: &str) -> Result<EventPermit> {
        let tx = self.rooms.get(room).map(|h| h.tx.clone()).ok_or_else(|| {
            Error::new(ErrorCode::UnknownRoom, format!("room `{room}` is not open"))
        })?;
        tx.try_reserve_owned()
            .map(|p| {
                EventPermit::new(move |ev: SeqEvent| {
                    p.send(ev.into());
                })
            })
            .map_err(|_| {
                metrics::counter!("giftstream_room_queue_full_total").increment(1);
                Error::new(
                    ErrorCode::RateLimited,
                    "the room is busy; try again shortly",
                )
            })
    }
}

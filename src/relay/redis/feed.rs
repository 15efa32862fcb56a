//! The node's room-event feed (Redis relay).
//!
//! Owns: one dedicated RESP3 connection holding a sharded subscription
//! (`SSUBSCRIBE {gs}:ev:<db>:<room>`) for exactly the rooms open on this node
//! (a room opens when a local viewer joins or the room is opened here, and
//! stops `hub.room_linger_ms` after its last local viewer left) plus the
//! blocks channel every node holds ([`BLOCKS_CHANNEL`]), the last
//! seq handed to each local room, gap filling from the room's history
//! stream (a room opened mid-stream, a message dropped by a full relay
//! queue, a subscription lost and restored), and the per-node viewer count
//! and stats read-back ([`stats_loop`]).
//! Must not: hand a room an event twice or out of seq order, wait on a
//! socket, or change balances (read-only apart from this node's viewer
//! count).
//!
//! Why RESP3 and raw commands: the redis crate 1.x offers `ssubscribe`
//! only on its cluster connection; its single-node `PubSub` has no sharded
//! subscribe. A multiplexed RESP3 connection with a push sender does: a
//! `SSUBSCRIBE` of one channel is answered by one push confirmation, which
//! the connection takes as the command's reply, and every `smessage` push
//! goes to the push sender. One channel per command keeps that pairing
//! exact.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::counters::redis::keys::{history_key, Channels};
use crate::hub::{Hub, RoomCmd};
use crate::protocol::SeqEvent;

/// First pause before reconnecting the relay, ms (doubles up to
/// `counters.redis_reconnect_ms_max`).
const BACKOFF_MS_MIN: u64 = 50;
/// Safety net: the subscribed set is compared with the hub's rooms at
/// least this often, ms (every change wakes the relay at once anyway).
const SYNC_MS: u64 = 1000;

/// The channel (under the rooms' channel prefix) on which blocks reach
/// every node: a name no room, video or inbox key can take.
pub(super) const BLOCKS_CHANNEL: &str = "#blocks";

/// A block, published on [`BLOCKS_CHANNEL`]: every node drops `user`'s
/// subscriptions to `creator`'s rooms and videos.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Blocked {
    /// The creator who blocked.
    pub creator: String,
    /// The user blocked.
    pub user: String,
}

/// A room message that is neither a gift event nor a streak end, for this node's hub (`decode`
/// is why it did not decode as a gift event).
async fn on_control(hub: &Hub, room: &str, payload: &[u8], decode: serde_json::Error) {
    match serde_json::from_slice::<RoomControl>(payload) {
        Ok(RoomControl::RoomEnded) => hub.end_room(room).await,
        Ok(RoomControl::TipEvent(t)) => hub.broadcast(room, t.into()).await,
        Err(_) => {
            tracing::warn!(room, error = %decode, "redis: undecodable room event skipped")
        }
    }
}

/// Room messages on the event channel other than gift events.
#[derive(serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RoomControl {
    /// Published by `end_room.lua`: end the room on this node.
    RoomEnded,
    /// A tip (published by `Relay::publish`): broadcast it in the room.
    TipEvent(TipEventBody),
}

/// The fields of a published `tip_event` (as `ServerMsg::TipEvent`).
#[derive(serde::Deserialize)]
struct TipEventBody {
    room: String,
    sender: String,
    amount_cents: i64,
    currency: String,
    #[serde(default)]
    message: Option<String>,
    ts: i64,
    #[serde(default)]
    message_state: Option<String>,
    #[serde(default)]
    message_id: Option<String>,
}

impl From<TipEventBody> for crate::protocol::ServerMsg {
    fn from(t: TipEventBody) -> Self {
        crate::protocol::ServerMsg::TipEvent {
            room: t.room,
            sender: t.sender,
            amount_cents: t.amount_cents,
            currency: t.currency,
            message: t.message,
            ts: t.ts,
            message_state: t.message_state,
            message_id: t.message_id,
        }
    }
}

/// A client like `client` that speaks RESP3 (needed for push messages on a
/// multiplexed connection).
pub(super) fn resp3(client: &redis::Client) -> anyhow::Result<redis::Client> {
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    Ok(redis::Client::open(info.set_redis_settings(settings))?)
}

/// The feed's set-up (see the module doc).
pub(super) struct Feed {
    /// RESP3 client for the subscription connection.
    pub client: redis::Client,
    /// The engine's connection, for history reads.
    pub conn: ConnectionManager,
    /// This node's rooms.
    pub hub: Arc<Hub>,
    /// Longest pause between reconnect attempts.
    pub backoff_max: Duration,
    /// Connect and reply timeout.
    pub timeout: Duration,
    /// Pushes received and not yet handled, at most (past it: dropped,
    /// then every room is caught up from its stream).
    pub queue_len_max: usize,
    /// Events read from a history stream in one gap fill, at most.
    pub history_len_max: usize,
    /// The rooms' channel names.
    pub channels: Channels,
}

/// One local room as the relay knows it.
struct Local {
    /// The room task's queue (a room reopened here has a new one).
    tx: mpsc::Sender<RoomCmd>,
    /// Last seq handed to the room.
    last: u64,
}

enum Ended {
    Stopped,
    Lost(String),
}

impl Feed {
    /// Run until `stop`; `ready` fires once the first connection is up.
    pub(super) async fn run(self, stop: CancellationToken, ready: oneshot::Sender<()>) {
        let mut ready = Some(ready);
        let backoff_min = Duration::from_millis(BACKOFF_MS_MIN).min(self.backoff_max);
        let mut backoff = backoff_min;
        // Kept across reconnects: where each room's feed stands.
        let mut locals: HashMap<String, Local> = HashMap::new();
        loop {
            let why = match self.connect().await {
                Ok((conn, rx, overflow)) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    } else {
                        tracing::info!("redis: room relay reconnected; resubscribing");
                        metrics::counter!("giftstream_redis_resubscribed_total").increment(1);
                    }
                    backoff = backoff_min;
                    match self.serve(conn, rx, &overflow, &mut locals, &stop).await {
                        Ended::Stopped => return,
                        Ended::Lost(why) => why,
                    }
                }
                Err(e) => e.to_string(),
            };
            tracing::warn!(error = %why, "redis: room relay connection lost; reconnecting");
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.backoff_max);
        }
    }

    async fn connect(
        &self,
    ) -> redis::RedisResult<(
        MultiplexedConnection,
        mpsc::Receiver<PushInfo>,
        Arc<AtomicBool>,
    )> {
        let (tx, rx) = mpsc::channel(self.queue_len_max.max(1));
        let overflow = Arc::new(AtomicBool::new(false));
        let flag = overflow.clone();
        let sender = move |info: PushInfo| -> Result<(), ()> {
            match tx.try_send(info) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // Bounded: drop and catch up from the streams later.
                    flag.store(true, Ordering::Relaxed);
                    metrics::counter!("giftstream_relay_dropped_total").increment(1);
                    Ok(())
                }
                Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
            }
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_push_sender(sender);
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok((conn, rx, overflow))
    }

    async fn serve(
        &self,
        mut conn: MultiplexedConnection,
        mut rx: mpsc::Receiver<PushInfo>,
        overflow: &AtomicBool,
        locals: &mut HashMap<String, Local>,
        stop: &CancellationToken,
    ) -> Ended {
        // A new connection holds no subscription: every local room is
        // subscribed again and caught up from its last seq.
        let mut subscribed: HashSet<String> = HashSet::new();
        // Blocks reach every node on one channel, kept for the connection.
        if let Err(e) = redis::cmd("SSUBSCRIBE")
            .arg(self.channels.room(BLOCKS_CHANNEL))
            .query_async::<Value>(&mut conn)
            .await
        {
            return Ended::Lost(e.to_string());
        }
        let mut tick = tokio::time::interval(Duration::from_millis(SYNC_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let prefix = self.channels.prefix();
        loop {
            let synced = tokio::select! {
                _ = stop.cancelled() => return Ended::Stopped,
                _ = self.hub.rooms_changed().notified() => self.sync(&mut conn, locals, &mut subscribed).await,
                _ = tick.tick() => self.sync(&mut conn, locals, &mut subscribed).await,
                m = rx.recv() => match m {
                    None => return Ended::Lost("push channel closed".into()),
                    Some(info) if info.kind == PushKind::Disconnection => {
                        return Ended::Lost("disconnected".into())
                    }
                    Some(info) => {
                        self.on_push(info, prefix, locals).await;
                        Ok(())
                    }
                },
            };
            if let Err(e) = synced {
                return Ended::Lost(e.to_string());
            }
            if overflow.swap(false, Ordering::Relaxed) {
                tracing::warn!(
                    "redis: room relay queue overflowed; catching every room up from its history"
                );
                let rooms: Vec<String> = locals.keys().cloned().collect();
                for room in rooms {
                    self.catch_up(&room, locals).await;
                }
            }
        }
    }

    /// Subscribe to every room open here and not yet subscribed (then
    /// catch it up from its stream), unsubscribe from rooms that stopped.
    async fn sync(
        &self,
        conn: &mut MultiplexedConnection,
        locals: &mut HashMap<String, Local>,
        subscribed: &mut HashSet<String>,
    ) -> redis::RedisResult<()> {
        let rooms = self.hub.open_rooms();
        let open: HashSet<&str> = rooms.iter().map(|(r, _)| r.as_str()).collect();
        let gone: Vec<String> = subscribed
            .iter()
            .filter(|r| !open.contains(r.as_str()))
            .cloned()
            .collect();
        for room in gone {
            redis::cmd("SUNSUBSCRIBE")
                .arg(self.channels.room(&room))
                .query_async::<Value>(conn)
                .await?;
            subscribed.remove(&room);
            locals.remove(&room);
        }
        locals.retain(|r, _| open.contains(r.as_str()));
        for (room, handle) in &rooms {
            let fresh = locals
                .get(room)
                .is_none_or(|l| !l.tx.same_channel(&handle.tx));
            if fresh {
                locals.insert(
                    room.clone(),
                    Local {
                        tx: handle.tx.clone(),
                        last: handle.opened_seq,
                    },
                );
            }
            if !subscribed.contains(room) {
                redis::cmd("SSUBSCRIBE")
                    .arg(self.channels.room(room))
                    .query_async::<Value>(conn)
                    .await?;
                subscribed.insert(room.clone());
                self.catch_up(room, locals).await;
            } else if fresh {
                self.catch_up(room, locals).await;
            }
        }
        metrics::gauge!("giftstream_relay_rooms").set(subscribed.len() as f64);
        Ok(())
    }

    async fn on_push(&self, info: PushInfo, prefix: &str, locals: &mut HashMap<String, Local>) {
        if info.kind != PushKind::SMessage && info.kind != PushKind::Message {
            return;
        }
        let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
            (info.data.first(), info.data.get(1))
        else {
            return;
        };
        let Some(room) = std::str::from_utf8(channel)
            .ok()
            .and_then(|c| c.strip_prefix(prefix))
        else {
            return;
        };
        if room == BLOCKS_CHANNEL {
            match serde_json::from_slice::<Blocked>(payload) {
                Ok(b) => self.hub.drop_blocked(&b.creator, &b.user).await,
                Err(e) => tracing::warn!(error = %e, "redis: undecodable block skipped"),
            }
            return;
        }
        match decode_events(payload) {
            Ok(events) => {
                for ev in events {
                    self.on_event(room, ev, locals).await;
                }
            }
            Err(e) => on_control(&self.hub, room, payload, e).await,
        }
    }

    /// Hand `ev` to its room, first filling a gap before it from the
    /// room's history; a stale event is dropped.
    async fn on_event(&self, room: &str, ev: SeqEvent, locals: &mut HashMap<String, Local>) {
        let Some(local) = locals.get(room) else {
            return; // unsubscribed meanwhile
        };
        let seq = ev.seq();
        if seq <= local.last {
            metrics::counter!("giftstream_stale_events_total").increment(1);
            return;
        }
        if seq > local.last + 1 {
            let missed = self.read(room, local.last, Some(seq - 1)).await;
            metrics::counter!("giftstream_relay_gap_filled_total").increment(missed.len() as u64);
            for m in missed {
                forward(locals, room, m).await;
            }
        }
        forward(locals, room, ev).await;
    }

    /// Hand the room every event of its stream after its last seq.
    async fn catch_up(&self, room: &str, locals: &mut HashMap<String, Local>) {
        let Some(last) = locals.get(room).map(|l| l.last) else {
            return;
        };
        let events = self.read(room, last, None).await;
        if !events.is_empty() {
            metrics::counter!("giftstream_relay_gap_filled_total").increment(events.len() as u64);
        }
        for ev in events {
            forward(locals, room, ev).await;
        }
    }

    /// Events of `room`'s stream with after < seq <= until (or to its end),
    /// from at most `history_len_max` entries. A failed read is logged and
    /// reads as empty (the room then sees a seq jump; a creator resumes).
    async fn read(&self, room: &str, after: u64, until: Option<u64>) -> Vec<SeqEvent> {
        // An entry's id is its last event's seq, so the entry holding
        // `until` may end past it: read on and keep what is in range.
        let rows: redis::RedisResult<Vec<StreamEntry>> = redis::cmd("XRANGE")
            .arg(history_key(room))
            .arg(format!("{}-0", after.saturating_add(1)))
            .arg("+")
            .arg("COUNT")
            .arg(self.history_len_max)
            .query_async(&mut self.conn.clone())
            .await;
        match rows {
            Ok(rows) => rows
                .into_iter()
                .flat_map(|(_, fields)| fields.into_iter().filter(|(k, _)| k == "e"))
                .filter_map(|(_, e)| serde_json::from_str::<SeqEvent>(&e).ok())
                .filter(|ev| ev.seq() > after && until.is_none_or(|u| ev.seq() <= u))
                .collect(),
            Err(e) => {
                tracing::warn!(room, error = %e, "redis: reading a room's history failed");
                Vec::new()
            }
        }
    }
}

/// A room message with seq'd events: one event, or a gift call's events
/// of the room as an array, in seq order (`lua/inbox_lib.lua`).
fn decode_events(payload: &[u8]) -> serde_json::Result<Vec<SeqEvent>> {
    if payload.first() == Some(&b'[') {
        serde_json::from_slice(payload)
    } else {
        serde_json::from_slice(payload).map(|ev| vec![ev])
    }
}

/// One `XRANGE` entry: id and field-value pairs.
type StreamEntry = (String, Vec<(String, String)>);

/// Hand `ev` to the room if it is the room's next; waits while the room's
/// queue is full (the room never waits on sockets, so this is short).
async fn forward(locals: &mut HashMap<String, Local>, room: &str, ev: SeqEvent) {
    let Some(local) = locals.get_mut(room) else {
        return;
    };
    if ev.seq() <= local.last {
        return;
    }
    local.last = ev.seq();
    let _ = local.tx.send(ev.into()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gift(seq: u64) -> String {
        format!(
            r#"{{"type":"gift_event","room":"r","id":"x{seq}","sender":"u","gift":"rose","count":1,"coins":2,"diamonds":1,"animation":"a","ts":1,"seq":{seq},"combo":1}}"#
        )
    }

    #[test]
    fn a_message_is_one_event_or_an_array_of_them_in_order() {
        let one = decode_events(gift(7).as_bytes()).unwrap();
        assert_eq!(one.iter().map(SeqEvent::seq).collect::<Vec<_>>(), vec![7]);
        let many = format!("[{},{},{}]", gift(3), gift(4), gift(5));
        let many = decode_events(many.as_bytes()).unwrap();
        assert_eq!(
            many.iter().map(SeqEvent::seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        // Not events: a control message, or garbage, is an error (handed
        // to `on_control`), never a panic.
        assert!(decode_events(br#"{"type":"room_ended"}"#).is_err());
        assert!(decode_events(b"[").is_err());
        assert!(decode_events(b"").is_err());
    }
}

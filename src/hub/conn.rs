//! One WebSocket connection: a reader task and a writer task joined by a
//! bounded queue.
//!
//! Owns: decoding client frames and answering them (acks, errors, pong),
//! the socket's room memberships, and the writer's batching (feed up to
//! `hub.write_batch_len_max` frames, flush once). A kick (too slow, feed
//! overflow) or server shutdown closes the socket with a code and reason.
//! Which task a topic is, and who may open an inbox: [`targets`]. How fast
//! a socket is read (slowed over its budget, refused past the hard bound):
//! [`budget`].
//! A socket's gifts taken together for the engine: [`group`].
//! Must not: wait on a room (rooms never wait on us either), or panic on
//! any input: every bad frame is answered with a typed `error`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, SinkExt, StreamExt};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::outbox::{outbox, Outbox, OutboxRx};
use super::room::{RoomCmd, Subscriber};
use super::{Hub, RoomHandle};

mod budget;
mod group;
mod refresh;
mod targets;
mod writer;
use crate::auth::{scoped_refusal, Identity, Role, Scope, Token};
use crate::config::AckMode;
use crate::counters::Counters;
use crate::error::{Error, ErrorCode, Result};
use crate::model::{GiftOutcome, PlainGift, Target};
use crate::protocol::{decode_client, peek_id, ClientMsg, Encoding, SeqEvent, ServerMsg, Topic};
use budget::{Budget, Verdict};
use group::Read;
use writer::{is_too_big, write_loop};

pub use super::ctl::{ConnCtl, CLOSE_GOING_AWAY};

/// Close code for a frame over `hub.frame_close_len_max`.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code when the socket's token expired without a `refresh`.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// `resume` of one room on one socket at most this often.
const RESUME_INTERVAL: Duration = Duration::from_secs(1);
/// Ledger-mode acks one socket may have waiting at once.
const ACKS_WAITING_MAX: usize = 256;

/// What a connection needs of the application: a narrow handle instead of
/// the whole application state (implemented by `crate::app::AppState`), so
/// the hub does not import the layer above it.
#[async_trait::async_trait]
pub trait ConnOps: Send + Sync + 'static {
    /// This node's rooms.
    fn hub(&self) -> &Hub;
    /// Cancelled when the server starts shutting down.
    fn shutdown(&self) -> &CancellationToken;
    /// Token checks (`refresh`).
    fn auth(&self) -> &crate::auth::Auth;
    /// The counters engine (room lookups).
    fn counters(&self) -> &dyn Counters;
    /// The room's events with seq > `since` from the relay's history, or
    /// None when the relay keeps none (the room's ring serves `resume`).
    async fn history(&self, room: &str, since: u64) -> Result<Option<Vec<SeqEvent>>>;
    /// `creator`'s inbox seq now, from the relay, or None when the relay
    /// keeps none (in process the hub keeps it: [`Hub::open_inbox`]).
    async fn inbox_seq(&self, creator: &str) -> Result<Option<u64>>;
    /// `gift.ack`.
    fn ack_mode(&self) -> AckMode;
    /// The gift operation up to the counters engine's ack.
    async fn gift(
        &self,
        who: &Identity,
        target: Target,
        gift_id: &str,
        count: u32,
        client_id: &str,
        message: Option<String>,
    ) -> Result<GiftOutcome>;
    /// In ledger ack mode: wait until the gift is in the ledger.
    async fn wait_durable(&self, outcome: &GiftOutcome, target_key: &str) -> Result<()>;
    /// Gifts the reader may take together for [`ConnOps::gift_group`]: 1
    /// where a group costs what its gifts cost one at a time (then every
    /// gift is read, applied and answered alone).
    fn gift_group_len_max(&self) -> usize;
    /// Gifts without messages read together from this socket, applied in
    /// the order sent; answers each, in order.
    async fn gift_group(&self, who: &Identity, gifts: Vec<PlainGift>) -> Vec<Result<GiftOutcome>>;
}

/// Serve one upgraded socket until it closes.
///
/// The socket is split and its writer task started here, outside the
/// returned future: a future keeps its arguments for its whole life, and
/// this one lives as long as the socket, so it takes only what it uses
/// (for 20,000 idle sockets, bytes here are megabytes).
pub fn serve(
    socket: WebSocket,
    state: Arc<dyn ConnOps>,
    token: Token,
    encoding: Encoding,
    permit: OwnedSemaphorePermit,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let Token {
        identity: who,
        scope,
        exp,
    } = token;
    metrics::gauge!("giftstream_connections").increment(1.0);
    let cfg = state.hub().config();
    let queue_len = if who.role == Role::Creator {
        cfg.creator_queue_len_max
    } else {
        cfg.viewer_queue_len_max
    };
    let (tx, rx) = outbox(queue_len);
    let ctl = Arc::new(ConnCtl::child_of(state.shutdown(), rx.stopper()));
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(
        sink,
        rx,
        ctl.clone(),
        cfg.write_batch_len_max,
        Duration::from_millis(cfg.close_timeout_ms),
    ));
    // Joined at shutdown: `stop` returns after this ends (writer included).
    let sockets = state.hub().socket_tracker();
    let reader = Reader {
        conn_id: state.hub().next_conn_id(),
        who,
        scope,
        exp,
        encoding,
        tx,
        ctl: ctl.clone(),
        rooms: Vec::new(),
        acks_waiting: None,
        budget: Budget::new(
            cfg.socket_msgs_per_s_max,
            Duration::from_millis(cfg.socket_throttled_ms_max),
        ),
        resumed: Vec::new(),
        state,
    };
    sockets.track_future(read_until_closed(reader, stream, ctl, writer, permit))
}

/// The reader's life: frames until the socket closes, then leave the
/// rooms, close with the right code and wait for the writer.
async fn read_until_closed(
    mut reader: Reader,
    stream: SplitStream<WebSocket>,
    ctl: Arc<ConnCtl>,
    writer: tokio::task::JoinHandle<()>,
    permit: OwnedSemaphorePermit,
) {
    reader.run(stream).await;
    for (_, room) in reader.rooms.drain(..) {
        let _ = room.tx.try_send(RoomCmd::Leave {
            conn_id: reader.conn_id,
        });
    }
    let shutting_down = reader.state.shutdown().is_cancelled();
    drop(reader);
    if shutting_down {
        ctl.kick(CLOSE_GOING_AWAY, "server shutting down");
    } else {
        ctl.kick(1000, "");
    }
    let _ = writer.await;
    drop(permit);
    metrics::gauge!("giftstream_connections").decrement(1.0);
}

struct Reader {
    conn_id: u64,
    who: Identity,
    /// The token's scope: `overlay:ROOM` allows join/resume/leave of ROOM,
    /// ping and refresh only.
    scope: Option<Scope>,
    /// The token's expiry (seconds since the epoch): the socket closes
    /// with 4001 then unless a `refresh` moved it.
    exp: u64,
    encoding: Encoding,
    tx: Outbox,
    ctl: Arc<ConnCtl>,
    /// Joined rooms and videos by hub key: at most
    /// `hub.rooms_per_socket_max` (8 by default), so a vector searched in
    /// order beats a hash map's memory per socket.
    rooms: Vec<(String, RoomHandle)>,
    /// Bounds ledger-mode acks in flight; made on the first one (most
    /// sockets never send a gift).
    acks_waiting: Option<Arc<Semaphore>>,
    budget: Budget,
    /// Rooms resumed in the last [`RESUME_INTERVAL`], and when.
    resumed: Vec<(Box<str>, Instant)>,
    state: Arc<dyn ConnOps>,
}

impl Reader {
    async fn run(&mut self, mut stream: SplitStream<WebSocket>) {
        let cfg = self.state.hub().config();
        let frame_len_max = cfg.frame_len_max;
        let ping_every = Duration::from_millis(cfg.ping_interval_ms);
        let idle_max = Duration::from_millis(cfg.idle_timeout_ms);
        let ctl = self.ctl.clone();
        let stopped = ctl.kick.cancelled();
        tokio::pin!(stopped);
        let mut armed = self.exp;
        let expiry = tokio::time::sleep_until(token_deadline(armed));
        tokio::pin!(expiry);
        // One timer per socket: every `hub.ping_interval_ms` a ping, and a
        // close once nothing arrived for `hub.idle_timeout_ms`.
        let mut heard = tokio::time::Instant::now();
        let tick = tokio::time::sleep(ping_every.min(idle_max));
        tokio::pin!(tick);
        // A frame read ahead while gathering a group of gifts that is not
        // one of them: handled next, before the socket is read again.
        // Boxed: rare, and this future lives as long as the socket.
        let mut early: Option<Box<Read>> = None;
        loop {
            if self.exp != armed {
                armed = self.exp;
                expiry.as_mut().reset(token_deadline(armed));
            }
            let next = if let Some(next) = early.take() {
                *next
            } else {
                tokio::select! {
                biased;
                _ = &mut stopped => return,
                _ = &mut expiry => {
                    self.ctl.kick(CLOSE_TOKEN_EXPIRED, "token expired");
                    return;
                }
                m = stream.next() => m,
                _ = &mut tick => {
                    let now = tokio::time::Instant::now();
                    let silent = now.duration_since(heard);
                    if silent >= idle_max {
                        metrics::counter!("giftstream_ws_idle_closed_total").increment(1);
                        self.ctl.kick(CLOSE_GOING_AWAY, "idle timeout");
                        return;
                    }
                    // A full queue already holds frames for this socket;
                    // its pong (or its being kicked as slow) follows them.
                    let _ = self.tx.try_send(Message::Ping(bytes::Bytes::new()));
                    tick.as_mut().reset(now + ping_every.min(idle_max - silent));
                    continue;
                }
                }
            };
            heard = tokio::time::Instant::now();
            let frame = match next {
                None | Some(Ok(Message::Close(_))) => return,
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => m,
                Some(Ok(_)) => continue, // ping/pong: tungstenite answers pings itself
                Some(Err(e)) => {
                    if is_too_big(&e) {
                        self.ctl.kick(CLOSE_TOO_BIG, "frame too large");
                    }
                    return;
                }
            };
            // Borrow the frame's bytes: no copy per client message.
            let (payload, enc) = payload_of(&frame);
            // Over budget: not read until the budget refills (boxed: the
            // timer exists only while a fast socket waits).
            let (wait, refused) = match self.budget.take(Instant::now()) {
                Verdict::Now => (None, false),
                Verdict::Wait(d) => (Some(d), false),
                Verdict::Refuse(d) => (Some(d), true),
            };
            if let Some(d) = wait {
                metrics::counter!("giftstream_ws_throttled_total").increment(1);
                tokio::select! {
                        biased;
                        _ = &mut stopped => return,
                    _ = Box::pin(tokio::time::sleep(d)) => {}
                }
            }
            let ok = if refused {
                let e = Error::new(
                    ErrorCode::RateLimited,
                    "socket over its message budget for longer than hub.socket_throttled_ms_max \
                     (hub.socket_msgs_per_s_max)",
                );
                // Not decoded: only its `id` is read (a gift's, for the
                // client to match the refusal).
                let id = peek_id(payload, enc);
                Box::pin(self.reply(error_frame(&e, id))).await
            } else if payload.len() > frame_len_max {
                let e = Error::bad_request(format!(
                    "frame of {} bytes exceeds hub.frame_len_max ({frame_len_max})",
                    payload.len()
                ));
                Box::pin(self.reply(error_frame(&e, None))).await
            } else {
                // Boxed: the handlers' futures (a gift, a join) are large
                // and live only while a frame is handled; inline, they
                // would size this task for every idle socket.
                Box::pin(self.on_data(payload, enc, &mut stream, &mut early, &mut heard)).await
            };
            if !ok {
                return;
            }
        }
    }

    /// Queue a reply; false if the writer is gone.
    async fn reply(&self, msg: ServerMsg) -> bool {
        self.tx.send(msg.encode(self.encoding)).await.is_ok()
    }

    async fn on_frame(&mut self, payload: &[u8], enc: Encoding) -> bool {
        let mut msg = match decode_client(payload, enc) {
            Ok(m) => m,
            Err((e, id)) => return self.reply(error_frame(&e, id)).await,
        };
        if let Err(e) = self.own_inbox(&mut msg) {
            return self.reply(error_frame(&e, None)).await;
        }
        if let Some(scope) = &self.scope {
            let allowed = match &msg {
                ClientMsg::Ping | ClientMsg::Refresh { .. } => true,
                ClientMsg::Join { topic, .. }
                | ClientMsg::Resume { topic, .. }
                | ClientMsg::Leave { topic } => match topic {
                    Topic::Room(room) => scope.allows_room(room),
                    Topic::Video(_) | Topic::Inbox(_) => false,
                },
                _ => false,
            };
            if !allowed {
                let id = match &msg {
                    ClientMsg::Gift { id, .. } => Some(id.clone()),
                    _ => None,
                };
                return self.reply(error_frame(&scoped_refusal(scope), id)).await;
            }
        }
        match msg {
            ClientMsg::Ping => self.reply(ServerMsg::Pong).await,
            ClientMsg::Refresh { token } => self.refresh(&token).await,
            ClientMsg::Join { topic, coalesce } => {
                let result = self.subscribe(&topic, None, coalesce).await;
                self.answer_err(result).await
            }
            ClientMsg::Resume { topic, since } => {
                let now = Instant::now();
                self.resumed
                    .retain(|(_, at)| now.duration_since(*at) < RESUME_INTERVAL);
                let key = topic.hub_key();
                if self.resumed.iter().any(|(r, _)| **r == *key) {
                    let e = Error::new(
                        ErrorCode::RateLimited,
                        format!(
                            "resume of {} `{}` at most once a second on a socket",
                            topic.field(),
                            topic.id()
                        ),
                    );
                    return self.reply(error_frame(&e, None)).await;
                }
                self.resumed.push((key.into(), now));
                let result = self.subscribe(&topic, Some(since), false).await;
                self.answer_err(result).await
            }
            ClientMsg::Leave { topic } => {
                let key = topic.hub_key();
                if let Some(i) = self.rooms.iter().position(|(r, _)| *r == key) {
                    let (_, h) = self.rooms.swap_remove(i);
                    let _ =
                        h.tx.send(RoomCmd::Leave {
                            conn_id: self.conn_id,
                        })
                        .await;
                }
                let (room, video, inbox) = topic.fields();
                self.reply(ServerMsg::Left { room, video, inbox }).await
            }
            ClientMsg::Gift {
                topic,
                gift,
                count,
                id,
                message,
            } => {
                let target = match topic {
                    Topic::Room(room) => Target::room(room),
                    Topic::Video(video) => Target::video(video),
                    Topic::Inbox(_) => {
                        let e = Error::bad_request("a gift goes to a `room` or a `video`");
                        return self.reply(error_frame(&e, Some(id))).await;
                    }
                };
                self.gift(target, gift, count, id, message).await
            }
        }
    }

    async fn answer_err(&self, result: Result<()>) -> bool {
        match result {
            Ok(()) => true,
            Err(e) => self.reply(error_frame(&e, None)).await,
        }
    }

    /// Join (since = None) or resume; the room (or video) queues
    /// `joined`/`resumed`.
    async fn subscribe(&mut self, topic: &Topic, since: Option<u64>, coalesce: bool) -> Result<()> {
        let key = topic.hub_key();
        let room = key.as_str();
        // A room with no local viewer may stop (`hub.room_linger_ms`) just
        // as this command reaches it; it is then opened again, at most
        // this many times.
        const SUBSCRIBE_ATTEMPTS_MAX: u32 = 3;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let handle = self.room_handle(topic).await?;
            self.refuse_blocked(topic, &handle).await?;
            // A cross-node relay (Redis) keeps the room's history: read it
            // once the room runs here, so the history reaches at least to
            // the room's seq and the room's ring holds what came after.
            let backfill = match since {
                Some(since) => self.state.history(room, since).await?,
                None => None,
            };
            self.rooms.retain(|(_, h)| h.is_open());
            let joined = self.rooms.iter().position(|(r, _)| r == room);
            if joined.is_none()
                && self.rooms.len() >= self.state.hub().config().rooms_per_socket_max
            {
                return Err(Error::bad_request(format!(
                    "a socket may join {} rooms at most (hub.rooms_per_socket_max)",
                    self.state.hub().config().rooms_per_socket_max
                )));
            }
            let sub = Subscriber {
                conn_id: self.conn_id,
                user: self.who.user.clone(),
                encoding: self.encoding,
                tx: self.tx.clone(),
                ctl: self.ctl.clone(),
                coalesce,
            };
            let (reply, answer) = oneshot::channel();
            let cmd = match since {
                None => RoomCmd::Join { sub, reply },
                Some(since) => RoomCmd::Resume {
                    sub,
                    since,
                    backfill,
                    reply,
                },
            };
            let sent = handle.tx.send(cmd).await.is_ok();
            let answer = if sent { answer.await.ok() } else { None };
            match answer {
                Some(result) => {
                    result?;
                    self.recheck_blocked(&handle).await?;
                    match joined {
                        Some(i) => self.rooms[i].1 = handle,
                        None => {
                            // Most sockets join one room: grow one slot at a time.
                            self.rooms.reserve_exact(1);
                            self.rooms.push((room.to_string(), handle));
                        }
                    }
                    return Ok(());
                }
                None if attempt < SUBSCRIBE_ATTEMPTS_MAX => continue,
                None => {
                    return Err(Error::new(
                        ErrorCode::RoomNotLive,
                        format!("{} `{}` has ended", topic.field(), topic.id()),
                    ))
                }
            }
        }
    }

    async fn gift(
        &mut self,
        target: Target,
        gift: String,
        count: u32,
        id: String,
        message: Option<String>,
    ) -> bool {
        let target_key = target.key();
        let answer = self
            .state
            .gift(&self.who, target, &gift, count, &id, message)
            .await;
        self.answer_gift(answer, target_key, id).await
    }

    /// Answer the gift `id` to `target_key`: its error, or its ack (in
    /// ledger ack mode once it is committed, without blocking reads).
    async fn answer_gift(
        &mut self,
        answer: Result<GiftOutcome>,
        target_key: String,
        id: String,
    ) -> bool {
        let state = &self.state;
        match answer {
            Err(e) => self.reply(error_frame(&e, Some(id))).await,
            Ok(outcome) if state.ack_mode() == AckMode::Counter => {
                let a = outcome.ack;
                self.reply(ServerMsg::GiftAck {
                    id: a.id,
                    seq: a.seq,
                    balance: a.balance,
                })
                .await
            }
            Ok(outcome) => {
                // Ledger mode: wait for the commit without blocking this
                // socket's reads; bounded by ACKS_WAITING_MAX.
                let acks = self
                    .acks_waiting
                    .get_or_insert_with(|| Arc::new(Semaphore::new(ACKS_WAITING_MAX)))
                    .clone();
                let Ok(permit) = acks.acquire_owned().await else {
                    return false;
                };
                let (state, tx, enc) = (self.state.clone(), self.tx.clone(), self.encoding);
                tokio::spawn(async move {
                    let msg = match state.wait_durable(&outcome, &target_key).await {
                        Ok(()) => ServerMsg::GiftAck {
                            id: outcome.ack.id,
                            seq: outcome.ack.seq,
                            balance: outcome.ack.balance,
                        },
                        Err(e) => error_frame(&e, Some(outcome.ack.id)),
                    };
                    let _ = tx.send(msg.encode(enc)).await;
                    drop(permit);
                });
                true
            }
        }
    }
}

/// A data frame's bytes, borrowed (no copy per client message), and their
/// encoding; empty for any other frame (never passed here).
fn payload_of(frame: &Message) -> (&[u8], Encoding) {
    match frame {
        Message::Binary(b) => (b.as_ref(), Encoding::MsgPack),
        Message::Text(t) => (t.as_bytes(), Encoding::Json),
        _ => (&[], Encoding::Json),
    }
}

/// The `error` frame answering `e`: the WebSocket edge, where a failure
/// on our side is logged (once, with its source chain).
fn error_frame(e: &Error, id: Option<String>) -> ServerMsg {
    e.log_at_edge("ws");
    ServerMsg::error(e, id)
}

/// When a token expiring at `exp` (seconds since the epoch) runs out, as
/// a timer deadline (at most a year ahead).
fn token_deadline(exp: u64) -> tokio::time::Instant {
    let left_ms = (exp as i64)
        .saturating_mul(1000)
        .saturating_sub(crate::protocol::now_ms())
        .clamp(0, 365 * 86_400 * 1000);
    tokio::time::Instant::now() + Duration::from_millis(left_ms as u64)
}

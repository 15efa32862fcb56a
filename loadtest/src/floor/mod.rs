//! `giftstream-loadtest floor-server`: the floor a WebSocket fan-out can
//! reach on this machine, to compare giftstream against in the same run.
//!
//! Owns: a minimal server speaking just enough of protocol v1 (JSON only)
//! for the load generator's scenarios to run against it unchanged: the
//! set-up routes ([`http`]), `join` → `joined`, `gift` → `gift_ack` and a
//! `gift_event` to every viewer of the room, `leave`, `ping`.
//! `--threads` threads (default: the machine's cores, as many as
//! giftstream's runtime uses), each a current-thread runtime with its own
//! listener on the same port (`SO_REUSEPORT`: the kernel spreads the
//! connections). A gift is framed once; the frame goes to each thread's
//! event pump (one message per event and thread, in seq order: handed over
//! under the books' lock), which writes it to each of that thread's viewer
//! sockets with a direct non-blocking `send(2)` (the events of a room that
//! queued while the pump was busy go in one `send`, as giftstream's
//! writers batch when behind): no per-socket writer task,
//! no per-socket channel or queue. Only when a socket would block are the
//! rest of its bytes kept and flushed by that socket's own task when it is
//! writable again. Each socket has one task, which reads its frames (idle
//! viewers' tasks never wake during a fan-out).
//! Must not: verify tokens, keep a ledger, or do anything per delivery but
//! the `send`: the point is to measure what moving the bytes costs.

pub mod frame;
pub mod http;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

use frame::{ClientFrame, Parsed, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};

/// Bytes kept for a socket that would block, at most; beyond, it is closed.
const PENDING_LEN_MAX: usize = 1024 * 1024;
/// Read buffer growth step per socket.
const READ_STEP: usize = 1024;
/// Events one pump round takes at most.
const PUMP_BATCH_MAX: usize = 64;

/// Arguments of `floor-server`.
#[derive(Debug, Clone, clap::Args)]
pub struct FloorArgs {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// Listen backlog (the kernel clamps it to net.core.somaxconn).
    #[arg(long, default_value_t = 4096)]
    pub backlog: u32,
    /// Threads (0: the machine's cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Rooms, wallets and earnings: what the set-up and the conservation
/// check read back.
#[derive(Default)]
pub struct Books {
    wallets: HashMap<String, i64>,
    grant_ids: HashSet<String>,
    earnings: HashMap<String, i64>,
    rooms: HashMap<String, Room>,
}

struct Room {
    creator: String,
    seq: u64,
}

impl Books {
    fn open_room(&mut self, room: &str, creator: &str) {
        self.rooms.entry(room.to_string()).or_insert_with(|| Room {
            creator: creator.to_string(),
            seq: 0,
        });
    }
}

/// One framed event for every viewer of `room`.
struct Event {
    room: Arc<str>,
    frame: Arc<[u8]>,
}

/// What every thread shares: the books and each thread's event pump.
struct Shared {
    books: Mutex<Books>,
    pumps: Vec<mpsc::UnboundedSender<Event>>,
}

impl Shared {
    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One thread's state: its viewer sockets by room.
struct Local {
    shared: Arc<Shared>,
    viewers: RefCell<HashMap<Arc<str>, Vec<Rc<Sock>>>>,
}

/// One WebSocket's write side, shared by its task and the rooms.
struct Sock {
    fd: RawFd,
    /// What a blocked `send` left; flushed by the socket's task.
    pending: RefCell<Vec<u8>>,
    /// Wakes the socket's task: bytes pending, or dead.
    wake: Notify,
    /// Closed (or to be closed): never written again.
    dead: Cell<bool>,
}

impl Sock {
    /// Write `bytes` now with one non-blocking `send(2)`, or keep them
    /// behind bytes already waiting.
    fn send(&self, bytes: &[u8]) {
        if self.dead.get() {
            return;
        }
        let mut p = self.pending.borrow_mut();
        if !p.is_empty() {
            if p.len() + bytes.len() > PENDING_LEN_MAX {
                drop(p);
                self.kill();
            } else {
                p.extend_from_slice(bytes);
            }
            return;
        }
        // SAFETY: `fd` is open while `dead` is false (the task sets it
        // before its stream closes); the buffer is valid for its length.
        let n = unsafe {
            libc::send(
                self.fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            let n = n as usize;
            if n < bytes.len() {
                p.extend_from_slice(&bytes[n..]);
                self.wake.notify_one();
            }
            return;
        }
        if std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock {
            p.extend_from_slice(bytes);
            self.wake.notify_one();
        } else {
            drop(p);
            self.kill();
        }
    }

    fn kill(&self) {
        self.dead.set(true);
        self.wake.notify_one();
    }

    fn send_json(&self, v: &serde_json::Value) {
        self.send(&frame::encode(OP_TEXT, v.to_string().as_bytes()));
    }
}

/// Marks its socket dead when the task ends, before the stream closes.
struct DeadOnDrop(Rc<Sock>);

impl Drop for DeadOnDrop {
    fn drop(&mut self) {
        self.0.dead.set(true);
    }
}

/// Serve until SIGTERM or SIGINT (blocks this thread).
pub fn serve(args: &FloorArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.listen.ip().is_loopback(),
        "the floor server listens on loopback only"
    );
    crate::conn::raise_nofile();
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // One listener per thread on one port, made here (a listener is
    // registered with a runtime; each thread takes its own as std).
    let listeners = rt.block_on(async {
        let mut at = args.listen;
        let mut out = Vec::with_capacity(threads);
        for _ in 0..threads {
            let socket = if at.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.set_reuseport(true)?;
            socket.bind(at).with_context(|| format!("binding {at}"))?;
            let l = socket.listen(args.backlog.max(1))?;
            at = l.local_addr()?;
            out.push(l.into_std()?);
        }
        eprintln!(
            "floor-server listening on {at} (backlog {}, {threads} threads)",
            args.backlog
        );
        anyhow::Ok(out)
    })?;
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..threads).map(|_| mpsc::unbounded_channel()).unzip();
    let shared = Arc::new(Shared {
        books: Mutex::new(Books::default()),
        pumps: txs,
    });
    for (listener, rx) in listeners.into_iter().zip(rxs) {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("floor".into())
            .spawn(move || {
                if let Err(e) = run_thread(listener, rx, shared) {
                    eprintln!("floor-server thread: {e:#}");
                }
            })?;
    }
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        anyhow::Ok(())
    })
}

/// A room's frames of one pump round, in seq order: one `send` per
/// viewer socket for all of them (a pump that fell behind batches, as
/// giftstream's writers do; one waiting event is sent as it is).
fn by_room(batch: &mut Vec<Event>) -> Vec<(Arc<str>, Arc<[u8]>)> {
    type Frames = Vec<Arc<[u8]>>;
    let mut rooms: Vec<(Arc<str>, Frames)> = Vec::new();
    for ev in batch.drain(..) {
        match rooms.iter_mut().find(|(r, _)| *r == ev.room) {
            Some((_, frames)) => frames.push(ev.frame),
            None => rooms.push((ev.room, vec![ev.frame])),
        }
    }
    rooms
        .into_iter()
        .map(|(room, frames)| match <[_; 1]>::try_from(frames) {
            Ok([one]) => (room, one),
            Err(frames) => (room, frames.concat().into()),
        })
        .collect()
}

/// One thread: accept on its listener, serve its sockets, pump events.
fn run_thread(
    listener: std::net::TcpListener,
    mut events: mpsc::UnboundedReceiver<Event>,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let here = Rc::new(Local {
            shared,
            viewers: RefCell::new(HashMap::new()),
        });
        let pump = here.clone();
        tokio::task::spawn_local(async move {
            let mut batch = Vec::with_capacity(PUMP_BATCH_MAX);
            while events.recv_many(&mut batch, PUMP_BATCH_MAX).await > 0 {
                for (room, bytes) in by_room(&mut batch) {
                    let mut viewers = pump.viewers.borrow_mut();
                    if let Some(vs) = viewers.get_mut(&room) {
                        let mut dead = false;
                        for v in vs.iter() {
                            v.send(&bytes);
                            dead |= v.dead.get();
                        }
                        if dead {
                            vs.retain(|v| !v.dead.get());
                        }
                    }
                }
            }
        });
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let here = here.clone();
            tokio::task::spawn_local(async move {
                let _ = conn(tcp, here).await;
            });
        }
    })
}

fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

async fn read_some(s: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.reserve(READ_STEP);
    loop {
        s.readable().await?;
        match s.try_read_buf(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

async fn write_all(s: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        s.writable().await?;
        match s.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One connection: HTTP requests until a WebSocket upgrade.
async fn conn(tcp: TcpStream, here: Rc<Local>) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = find_blank_line(&buf) {
                break i;
            }
            if buf.len() > http::HEAD_LEN_MAX || read_some(&tcp, &mut buf).await? == 0 {
                return Ok(());
            }
        };
        let Some(h) = http::parse_head(&buf[..head_end]) else {
            return Ok(());
        };
        let body_at = head_end + 4;
        if h.content_len > http::BODY_LEN_MAX {
            return Ok(());
        }
        while buf.len() < body_at + h.content_len {
            if read_some(&tcp, &mut buf).await? == 0 {
                return Ok(());
            }
        }
        let end = body_at + h.content_len;
        if h.ws_key.is_some() && h.path == "/v1/ws" {
            let user = h.token.as_deref().and_then(http::token_sub);
            let (Some(answer), Some(user)) = (http::upgrade_answer(&h), user) else {
                let r = http::response(400, &json!({ "code": "bad_request" }));
                write_all(&tcp, &r).await?;
                return Ok(());
            };
            write_all(&tcp, &answer).await?;
            buf.drain(..end);
            return socket(tcp, buf, user, here).await;
        }
        let r = http::route(&here.shared.books, &h, &buf[body_at..end]);
        write_all(&tcp, &r).await?;
        buf.drain(..end);
    }
}

/// One WebSocket: read and answer frames; flush what a blocked send left.
async fn socket(
    tcp: TcpStream,
    mut buf: Vec<u8>,
    user: String,
    here: Rc<Local>,
) -> anyhow::Result<()> {
    let sock = Rc::new(Sock {
        fd: tcp.as_raw_fd(),
        pending: RefCell::new(Vec::new()),
        wake: Notify::new(),
        dead: Cell::new(false),
    });
    // Dropped before `tcp` (declared after it): dead before the fd closes.
    let _dead = DeadOnDrop(sock.clone());
    let mut joined: Vec<Arc<str>> = Vec::new();
    let result = async {
        loop {
            loop {
                match frame::parse(&buf) {
                    Parsed::Frame(f, used) => {
                        buf.drain(..used);
                        if !on_frame(&here, &sock, &user, &mut joined, f) {
                            return Ok(());
                        }
                    }
                    Parsed::More => break,
                    Parsed::Bad => return Ok(()),
                }
            }
            if sock.dead.get() {
                return Ok(());
            }
            let flushing = !sock.pending.borrow().is_empty();
            tokio::select! {
                r = tcp.readable() => {
                    r?;
                    buf.reserve(READ_STEP);
                    match tcp.try_read_buf(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(anyhow::Error::from(e)),
                    }
                }
                r = tcp.writable(), if flushing => {
                    r?;
                    let mut p = sock.pending.borrow_mut();
                    match tcp.try_write(&p) {
                        Ok(n) => {
                            p.drain(..n);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(anyhow::Error::from(e)),
                    }
                }
                _ = sock.wake.notified() => {}
            }
        }
    }
    .await;
    sock.dead.set(true);
    let mut viewers = here.viewers.borrow_mut();
    for room in &joined {
        if let Some(vs) = viewers.get_mut(room) {
            vs.retain(|v| !Rc::ptr_eq(v, &sock));
        }
    }
    result
}

#[derive(Deserialize)]
struct In {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    gift: Option<String>,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    id: Option<String>,
}

fn error(sock: &Sock, code: &str, id: Option<&str>) {
    sock.send_json(&json!({ "type": "error", "code": code, "message": code, "id": id }));
}

/// Answer one client frame; false to close the socket.
fn on_frame(
    here: &Local,
    sock: &Rc<Sock>,
    user: &str,
    joined: &mut Vec<Arc<str>>,
    f: ClientFrame,
) -> bool {
    match f.opcode {
        OP_TEXT if f.fin => {}
        OP_CLOSE => {
            sock.send(&frame::encode(
                OP_CLOSE,
                &f.payload[..f.payload.len().min(2)],
            ));
            return false;
        }
        OP_PING => {
            sock.send(&frame::encode(OP_PONG, &f.payload));
            return true;
        }
        OP_PONG => return true,
        OP_BINARY => {
            error(sock, "bad_request", None);
            return true;
        }
        _ => return false, // fragments: not spoken here
    }
    let Ok(m) = serde_json::from_slice::<In>(&f.payload) else {
        error(sock, "bad_request", None);
        return true;
    };
    let room_name = m.room.as_deref().unwrap_or("");
    match m.ty.as_str() {
        "ping" => sock.send_json(&json!({ "type": "pong" })),
        "join" => {
            let seq = here.shared.books().rooms.get(room_name).map(|r| r.seq);
            let Some(seq) = seq else {
                error(sock, "unknown_room", None);
                return true;
            };
            if !joined.iter().any(|r| &**r == room_name) {
                let key: Arc<str> = room_name.into();
                here.viewers
                    .borrow_mut()
                    .entry(key.clone())
                    .or_default()
                    .push(sock.clone());
                joined.push(key);
            }
            sock.send_json(&json!({ "type": "joined", "room": room_name, "seq": seq }));
        }
        "leave" => {
            if let Some(vs) = here.viewers.borrow_mut().get_mut(room_name) {
                vs.retain(|v| !Rc::ptr_eq(v, sock));
            }
            joined.retain(|r| &**r != room_name);
            sock.send_json(&json!({ "type": "left", "room": room_name }));
        }
        "gift" => gift(&here.shared, sock, user, room_name, &m),
        _ => error(sock, "bad_request", None),
    }
    true
}

/// A gift: charge, ack, one event framed once and handed to every
/// thread's pump (under the lock, so every pump gets a room's events in
/// seq order).
fn gift(shared: &Shared, sock: &Sock, user: &str, room_name: &str, m: &In) {
    let id = m.id.as_deref().unwrap_or("");
    let count = m.count.unwrap_or(0);
    if id.is_empty() || !(1..=99).contains(&count) {
        return error(sock, "bad_request", Some(id));
    }
    if m.gift.as_deref() != Some(http::GIFT) {
        return error(sock, "unknown_gift", Some(id));
    }
    let coins = http::GIFT_COINS * i64::from(count);
    let diamonds = http::GIFT_DIAMONDS * i64::from(count);
    let mut b = shared.books();
    let Books {
        wallets,
        earnings,
        rooms,
        ..
    } = &mut *b;
    let Some(room) = rooms.get_mut(room_name) else {
        return error(sock, "unknown_room", Some(id));
    };
    let wallet = wallets.entry(user.to_string()).or_default();
    if *wallet < coins {
        return error(sock, "insufficient_funds", Some(id));
    }
    *wallet -= coins;
    *earnings.entry(room.creator.clone()).or_default() += diamonds;
    room.seq += 1;
    let seq = room.seq;
    let balance = *wallet;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let event = json!({
        "type": "gift_event", "room": room_name, "seq": seq, "id": id, "sender": user,
        "gift": http::GIFT, "count": count, "combo": 1, "coins": coins,
        "diamonds": diamonds, "animation": http::GIFT_ANIMATION, "ts": ts,
    });
    let frame: Arc<[u8]> = frame::encode(OP_TEXT, event.to_string().as_bytes()).into();
    let room: Arc<str> = room_name.into();
    for pump in &shared.pumps {
        let _ = pump.send(Event {
            room: room.clone(),
            frame: frame.clone(),
        });
    }
    drop(b);
    sock.send_json(&json!({ "type": "gift_ack", "id": id, "seq": seq, "balance": balance }));
}

//! A viewer: joins a room and accounts for every event it is sent.
//!
//! Owns: [`join`] (send `join`, wait for `joined`), [`Watcher`] (per-socket
//! seq tracking: deliveries, send -> receive latency from the gift id, seq
//! gaps not announced by `skipped`, errors and closes), and [`watch`], the
//! read loop used by `fanout` and `conns`, which ends when the run says so
//! ([`Phase`]) and this viewer has seen its room's final seq.
//! Must not: write anything after joining (an idle viewer is idle).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;

use crate::conn::Ws;
use crate::metrics::{Live, Tally};
use crate::wire::{decode, sent_us, Encoding, Frame, Out, Received};

/// Longest wait for `joined` / `resumed` / `left`.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a polite close at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a run is, as viewers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Gifts are flowing.
    Run,
    /// Senders are done; each room's final seq is set: read up to it.
    Drain,
    /// Stop reading now.
    Abort,
}

/// Shared end-of-run signal for viewers.
#[derive(Clone)]
pub struct RunEnd {
    /// The phase.
    pub phase: watch::Receiver<Phase>,
    /// Per room: the last acked seq once senders are done (u64::MAX before).
    pub finals: Arc<Vec<AtomicU64>>,
}

/// Send `type` and wait for the answer of type `want` (skipping events,
/// which are still accounted by `w` when given). Answers its `seq` field.
pub async fn request(
    ws: &mut Ws,
    enc: Encoding,
    out: Out<'_>,
    want: &str,
    mut w: Option<(&mut Watcher, &Live)>,
) -> anyhow::Result<u64> {
    ws.send(out.encode(enc)).await?;
    let answer = async {
        while let Some(msg) = ws.next().await {
            let msg = msg?;
            match decode(&msg) {
                Received::Frame(f) if f.ty == want => return Ok(f.seq.unwrap_or(0)),
                Received::Frame(f) if f.ty == "error" => {
                    anyhow::bail!("{want}: error {}", f.code.as_deref().unwrap_or("?"))
                }
                Received::Frame(f) => {
                    if let Some((w, live)) = w.as_mut() {
                        w.on_frame(&f, live);
                    }
                }
                Received::Close(code) => anyhow::bail!("{want}: closed ({code:?})"),
                Received::Garbled | Received::Control => {}
            }
        }
        anyhow::bail!("{want}: connection ended")
    };
    tokio::time::timeout(ANSWER_TIMEOUT, answer)
        .await
        .map_err(|_| anyhow::anyhow!("no {want} within {ANSWER_TIMEOUT:?}"))?
}

/// Join `room`; answers the room's seq at that moment.
pub async fn join(ws: &mut Ws, enc: Encoding, room: &str) -> anyhow::Result<u64> {
    request(ws, enc, Out::Join { room }, "joined", None).await
}

/// One socket's view of one room.
pub struct Watcher {
    run: Arc<str>,
    task: usize,
    /// Highest seq seen (or announced skipped).
    pub last_seq: u64,
    gap_seen: bool,
    /// Totals so far.
    pub tally: Tally,
}

/// What a frame meant to the loop reading it.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// Accounted; keep reading.
    Nothing,
    /// The room ended.
    Ended,
}

impl Watcher {
    /// A watcher that joined at `last_seq`.
    pub fn new(run: Arc<str>, task: usize, last_seq: u64) -> Watcher {
        Watcher {
            run,
            task,
            last_seq,
            gap_seen: false,
            tally: Tally::default(),
        }
    }

    /// Account one frame.
    pub fn on_frame(&mut self, f: &Frame<'_>, live: &Live) -> Seen {
        match f.ty.as_ref() {
            "gift_event" => {
                let seq = f.seq.unwrap_or(0);
                if seq > self.last_seq + 1 {
                    self.tally.seq_gaps += seq - self.last_seq - 1;
                    self.gap_seen = true;
                }
                self.last_seq = self.last_seq.max(seq);
                self.tally.deliveries += 1;
                Live::bump(&live.deliveries);
                if let Some(t) = f.id.as_deref().and_then(|id| sent_us(&self.run, id)) {
                    live.delivery_latency
                        .record(self.task, live.now_us().saturating_sub(t));
                }
            }
            "combo_end" => {
                // A streak's end takes a room seq too (it is no delivery).
                let seq = f.seq.unwrap_or(0);
                if seq > self.last_seq + 1 {
                    self.tally.seq_gaps += seq - self.last_seq - 1;
                    self.gap_seen = true;
                }
                self.last_seq = self.last_seq.max(seq);
            }
            "skipped" => {
                let (from, to) = (f.from_seq.unwrap_or(0), f.to_seq.unwrap_or(0));
                self.tally.skipped_msgs += 1;
                self.tally.skipped_events += to.saturating_sub(from) + 1;
                if from > self.last_seq + 1 {
                    self.tally.seq_gaps += from - self.last_seq - 1;
                    self.gap_seen = true;
                }
                self.last_seq = self.last_seq.max(to);
            }
            "error" => {
                self.tally.error(f.code.as_deref().unwrap_or("?"));
                Live::bump(&live.errors);
            }
            "room_ended" => return Seen::Ended,
            _ => {}
        }
        Seen::Nothing
    }

    /// Forget the seq: the socket left the room or joined another.
    pub fn rejoined(&mut self, last_seq: u64) {
        self.last_seq = last_seq;
    }

    /// The totals, counting this viewer once if it saw a gap.
    pub fn finish(mut self) -> Tally {
        self.tally.viewers_with_gaps += u64::from(self.gap_seen);
        self.tally
    }
}

fn reached(end: &RunEnd, room: usize, last_seq: u64) -> bool {
    match *end.phase.borrow() {
        Phase::Run => false,
        Phase::Drain => last_seq >= end.finals[room].load(Ordering::Acquire),
        Phase::Abort => true,
    }
}

/// Read `ws` (joined to room number `room` at `w.last_seq`) until the run
/// ends for it; then close politely.
pub async fn watch(
    mut ws: Ws,
    room: usize,
    mut w: Watcher,
    live: Arc<Live>,
    mut end: RunEnd,
) -> Tally {
    Live::bump(&live.open);
    loop {
        if reached(&end, room, w.last_seq) {
            break;
        }
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(msg)) => match decode(&msg) {
                    Received::Frame(f) => {
                        if w.on_frame(&f, &live) == Seen::Ended {
                            break;
                        }
                    }
                    Received::Close(code) => {
                        w.tally.close(code);
                        break;
                    }
                    Received::Garbled => w.tally.garbled += 1,
                    Received::Control => {}
                },
                Some(Err(_)) | None => {
                    w.tally.close(None);
                    break;
                }
            },
            changed = end.phase.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
    live.open.fetch_sub(1, Ordering::Relaxed);
    w.finish()
}

//! Chaos viewers: watch a room, drop the connection now and then (or lose
//! it to a fault), come back on any node with `resume` from the last seq
//! seen, and change rooms.
//!
//! Owns: [`viewer`] and its seq rule: on one room, every event's seq is
//! above the last one seen (each seq at most once), and a seq more than one
//! above it is a violation unless `skipped` or `history_gone` announced the
//! gap, or a fault that loses Redis's data happened meanwhile (the room's
//! seqs jump by design then; counted apart).
//! Must not: send gifts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::load::World;
use crate::conn::{Connector, Ws};
use crate::token::Role;
use crate::wire::{decode, Encoding, Out, Received};

/// The smallest seq jump of a room after Redis lost its data:
/// `2 × counters.pending_len_max` (200000 by default; README).
const LOST_SEQ_JUMP_MIN: u64 = 400_000;

/// What one viewer knows of its room.
struct Seen {
    room: usize,
    /// Last seq seen (None: not joined yet).
    last: Option<u64>,
    /// The data-loss epoch when this connection was made.
    epoch: u64,
}

enum End {
    /// Drop and resume (or the connection went).
    Reconnect,
    /// The load is over.
    Stop,
}

/// Viewer `i`.
pub async fn viewer(w: Arc<World>, i: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let me = format!("{}-w{i}", w.run);
    let token = w.tokens.sign(&me, Role::Viewer).unwrap_or_default();
    let mut seen = Seen {
        room: rng.gen_range(0..w.rooms.len()),
        last: None,
        epoch: 0,
    };
    while !w.gate.stopped() {
        let (_, base) = w.nodes.pick(&mut rng);
        let Ok(addr) = base
            .trim_start_matches("http://")
            .parse::<std::net::SocketAddr>()
        else {
            return;
        };
        let Ok(conn) = Connector::new(&[addr], Encoding::Json, 0, 4) else {
            return;
        };
        let ws = tokio::time::timeout(Duration::from_secs(5), conn.connect_now(&token)).await;
        let Ok(Ok(mut ws)) = ws else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        w.books.inner.lock().counts.viewer_connects += 1;
        let until = Instant::now() + Duration::from_millis(rng.gen_range(2000..9000));
        let switch = rng.gen_bool(0.2);
        match watch(&w, &mut ws, &mut seen, &me, until).await {
            End::Stop => {
                let _ = ws.close(None).await;
                return;
            }
            End::Reconnect if switch => {
                let room = &w.rooms[seen.room];
                let _ = ws.send(Out::Leave { room }.encode(Encoding::Json)).await;
                let _ = ws.close(None).await;
                seen = Seen {
                    room: rng.gen_range(0..w.rooms.len()),
                    last: None,
                    epoch: 0,
                };
            }
            End::Reconnect => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
            }
        }
    }
}

/// Join or resume on `ws`, then read until `until`.
async fn watch(w: &World, ws: &mut Ws, seen: &mut Seen, me: &str, until: Instant) -> End {
    let room = w.rooms[seen.room].clone();
    // A connection that lived through the end of a fault that loses
    // Redis's data may see the room's seqs jump (README); one made after
    // it may not.
    seen.epoch = w.books.data_loss_epoch.load(Ordering::Acquire);
    let first = match seen.last {
        None => Out::Join { room: &room },
        Some(since) => Out::Resume { room: &room, since },
    };
    if ws.send(first.encode(Encoding::Json)).await.is_err() {
        return End::Reconnect;
    }
    let mut joining = seen.last.is_none();
    loop {
        if w.gate.stopped() {
            return End::Stop;
        }
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = tokio::time::sleep_until(until) => return End::Reconnect,
        };
        let Some(Ok(msg)) = msg else {
            return End::Reconnect;
        };
        let f = match decode(&msg) {
            Received::Frame(f) => f,
            Received::Close(_) => return End::Reconnect,
            _ => continue,
        };
        let epoch = w.books.data_loss_epoch.load(Ordering::Acquire);
        match f.ty.as_ref() {
            "joined" if joining => {
                joining = false;
                seen.last = Some(f.seq.unwrap_or(0));
            }
            "resumed" => {
                w.books.inner.lock().counts.resumes += 1;
            }
            "history_gone" => {
                // Announced: join and accept the gap.
                w.books.inner.lock().counts.history_gone += 1;
                joining = true;
                if ws
                    .send(Out::Join { room: &room }.encode(Encoding::Json))
                    .await
                    .is_err()
                {
                    return End::Reconnect;
                }
            }
            "skipped" => {
                w.books.inner.lock().counts.skipped += 1;
                let to = f.to_seq.unwrap_or(0);
                seen.last = Some(seen.last.unwrap_or(0).max(to));
            }
            "gift_event" | "combo_end" => {
                let Some(last) = seen.last else { continue };
                let seq = f.seq.unwrap_or(0);
                if joining {
                    // Events before `joined` (none expected): only order.
                    continue;
                }
                let mut b = w.books.inner.lock();
                b.counts.viewer_events += 1;
                if seq <= last {
                    drop(b);
                    w.books.violation(format!(
                        "viewer {me} room {room}: seq {seq} again (last seen {last})"
                    ));
                } else if seq > last + 1 {
                    if epoch != seen.epoch {
                        b.counts.gaps_across_data_loss += 1;
                    } else if epoch > 0 && seq - last > LOST_SEQ_JUMP_MIN {
                        // The jump itself, seen on a socket joined after
                        // the repair: a node that got no event of the room
                        // since answers `joined` with its seq from before
                        // the jump (docs/RELIABILITY.md, findings).
                        b.counts.stale_joined_seq_jumps += 1;
                    } else {
                        drop(b);
                        w.books.violation(format!(
                            "viewer {me} room {room}: seqs {}..={} missing, not announced (skipped/history_gone)",
                            last + 1,
                            seq - 1
                        ));
                    }
                }
                seen.last = Some(seq.max(last));
            }
            _ => {}
        }
    }
}

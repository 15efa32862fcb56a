//! A sender: sends gifts on one socket and accounts for every answer.
//!
//! Owns: [`SendPlan`] (open-loop pacing at a rate, bursts of combos, or
//! closed-loop "as fast as acks return"; always a window of gifts in flight
//! at most, and a duration) and [`send`], which writes on one half of the
//! socket and reads acks and errors on the other, measuring send -> ack
//! latency from the gift id, coins and diamonds acked, and the highest
//! acked seq (the viewers' finish line).
//! Must not: resend a gift id (every gift is new; conservation relies on it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, MissedTickBehavior};

use crate::api::Price;
use crate::conn::Ws;
use crate::metrics::{Live, Tally};
use crate::wire::{decode, gift_id, sent_us, Encoding, Out, Received};

/// How a sender paces itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Open loop: this many gifts per second, evenly spaced.
    Rate(f64),
    /// Combos: bursts of 1..=10 back to back, at this many gifts per second
    /// on average.
    Bursts(f64),
    /// Closed loop: as fast as acks return (bounded by the window).
    Flood,
}

/// What one sender does.
#[derive(Debug, Clone)]
pub struct SendPlan {
    /// Run id (gift id prefix).
    pub run: Arc<str>,
    /// This sender's number (unique in the run).
    pub sender: usize,
    /// Room id.
    pub room: Arc<str>,
    /// Catalog gift id.
    pub gift: Arc<str>,
    /// Units per gift message.
    pub count: u32,
    /// Price of one unit.
    pub price: Price,
    /// Pacing.
    pub pace: Pace,
    /// Gifts in flight at most.
    pub window: usize,
    /// How long to send.
    pub duration: Duration,
    /// How long to wait for the last answers after sending stopped.
    pub drain: Duration,
    /// Wire format.
    pub encoding: Encoding,
}

/// What a sender did.
#[derive(Debug, Default)]
pub struct SendResult {
    /// Totals.
    pub tally: Tally,
    /// Highest seq acked.
    pub max_seq: u64,
}

/// Run `plan` on `ws`, then close it.
pub async fn send(ws: Ws, plan: SendPlan, live: Arc<Live>) -> SendResult {
    Live::bump(&live.open);
    let (mut sink, mut stream) = ws.split();
    let window = Arc::new(Semaphore::new(plan.window.max(1)));
    let answered = Arc::new(AtomicU64::new(0));
    let (done_tx, mut done_rx) = watch::channel(None::<u64>);

    let reader = {
        let (window, answered, live, plan) =
            (window.clone(), answered.clone(), live.clone(), plan.clone());
        tokio::spawn(async move {
            let mut r = SendResult::default();
            let mut drain_until: Option<Instant> = None;
            loop {
                let total = *done_rx.borrow();
                if let Some(t) = total {
                    if answered.load(Ordering::Relaxed) >= t {
                        break;
                    }
                    drain_until.get_or_insert_with(|| Instant::now() + plan.drain);
                }
                let deadline = async {
                    match drain_until {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    m = stream.next() => {
                        let Some(Ok(msg)) = m else {
                            r.tally.close(None);
                            break;
                        };
                        match decode(&msg) {
                            Received::Frame(f) => match f.ty.as_ref() {
                                "gift_ack" => {
                                    r.tally.acked += 1;
                                    r.tally.coins_acked += plan.price.coins * i64::from(plan.count);
                                    r.tally.diamonds_acked += plan.price.diamonds * i64::from(plan.count);
                                    r.max_seq = r.max_seq.max(f.seq.unwrap_or(0));
                                    Live::bump(&live.acks);
                                    if let Some(t) = f.id.as_deref().and_then(|id| sent_us(&plan.run, id)) {
                                        live.ack_latency.record(plan.sender, live.now_us().saturating_sub(t));
                                    }
                                    answered.fetch_add(1, Ordering::Relaxed);
                                    window.add_permits(1);
                                }
                                "error" => {
                                    r.tally.error(f.code.as_deref().unwrap_or("?"));
                                    Live::bump(&live.errors);
                                    if f.id.is_some() {
                                        answered.fetch_add(1, Ordering::Relaxed);
                                        window.add_permits(1);
                                    }
                                }
                                _ => {}
                            },
                            Received::Close(code) => {
                                r.tally.close(code);
                                break;
                            }
                            Received::Garbled => r.tally.garbled += 1,
                            Received::Control => {}
                        }
                    }
                    changed = done_rx.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                    _ = deadline => break,
                }
            }
            // Let a writer blocked on the window see the end.
            window.close();
            (r, stream)
        })
    };

    let sent = write(&mut sink, &plan, &window, &live).await;
    let _ = done_tx.send(Some(sent));
    let (mut r, stream) = match reader.await {
        Ok(x) => x,
        Err(_) => {
            live.open.fetch_sub(1, Ordering::Relaxed);
            return SendResult::default();
        }
    };
    r.tally.sent = sent;
    r.tally.unanswered = sent.saturating_sub(answered.load(Ordering::Relaxed));
    if let Ok(mut ws) = sink.reunite(stream) {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    }
    live.open.fetch_sub(1, Ordering::Relaxed);
    r
}

/// Write gifts per the plan; answers how many were sent.
async fn write(
    sink: &mut futures_util::stream::SplitSink<Ws, tokio_tungstenite::tungstenite::Message>,
    plan: &SendPlan,
    window: &Semaphore,
    live: &Live,
) -> u64 {
    let start = Instant::now();
    let end = start + plan.duration;
    let mut n = 0u64;
    let mut tick = match plan.pace {
        Pace::Rate(r) if r > 0.0 => {
            let mut i = tokio::time::interval_at(start, Duration::from_secs_f64(1.0 / r));
            i.set_missed_tick_behavior(MissedTickBehavior::Burst);
            Some(i)
        }
        _ => None,
    };
    let mut burst_left = 0u32;
    loop {
        match (&mut tick, plan.pace) {
            (Some(t), _) => {
                tokio::select! {
                    _ = t.tick() => {}
                    _ = tokio::time::sleep_until(end) => break,
                }
            }
            (None, Pace::Bursts(rate)) if burst_left == 0 && rate > 0.0 => {
                // Next burst: 1..=10 gifts; pause so the mean rate holds.
                let (len, pause) = {
                    let mut rng = rand::thread_rng();
                    let len: u32 = rng.gen_range(1..=10);
                    let mean_s = f64::from(len) / rate;
                    let u: f64 = rng.gen_range(1e-6..1.0);
                    (len, (-u.ln() * mean_s).min(60.0))
                };
                burst_left = len;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs_f64(pause)) => {}
                    _ = tokio::time::sleep_until(end) => break,
                }
            }
            _ => {}
        }
        if Instant::now() >= end {
            break;
        }
        let permit = tokio::select! {
            p = window.acquire() => p,
            _ = tokio::time::sleep_until(end) => break,
        };
        let Ok(permit) = permit else { break };
        permit.forget();
        n += 1;
        burst_left = burst_left.saturating_sub(1);
        let id = gift_id(&plan.run, plan.sender, n, live.now_us());
        let msg = Out::Gift {
            room: &plan.room,
            gift: &plan.gift,
            count: plan.count,
            id: &id,
        }
        .encode(plan.encoding);
        Live::bump(&live.sent);
        if sink.send(msg).await.is_err() {
            break;
        }
    }
    n
}

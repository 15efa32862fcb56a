//! Micro-batching of gift scripts (issue 16): many gifts in one
//! `gift_batch.lua` call.
//!
//! Owns: the node's gift batcher task, which takes the gifts waiting for
//! Redis and sends up to `counters.gift_batch_len_max` of them in one
//! script call, with at most `counters.gift_batches_in_flight_max` calls in
//! flight; it never waits for more gifts to come (a lone gift leaves at
//! once: the batches form only while earlier calls are in flight, so the
//! latency at low load is a single gift's). Gifts come in groups (one
//! socket's gifts read together: `Counters::gift_group`), and a group
//! always leaves whole, in its order, in one call.
//! Must not: re-send a batch (a gift is not idempotent in Redis; a lost
//! reply is `outcome_unknown` for every gift of the batch, and each
//! client's retry with the same id is answered from its idempotency key),
//! split a group across calls (between two calls settlement may make room
//! in the pending queue, so a group's later gift could be applied after
//! an earlier one was refused for a full queue), or change a gift's keys,
//! arguments or answer (`gift.rs` builds and reads them, exactly as for a
//! call of its own).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::Script;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::scripts::{redis_err, script_err};
use crate::counters::{CountersError, Result};

/// Keys per gift in `gift_batch.lua` (gift.lua's KEYS).
pub(super) const KEYS_PER_GIFT: usize = 9;
/// Arguments per gift in `gift_batch.lua` (gift.lua's ARGV).
pub(super) const ARGS_PER_GIFT: usize = 31;
/// gift.lua's KEYS (1-based) that are the same for every gift of a node:
/// sent once per batch (`gift_batch.lua`).
const SHARED_KEYS: [usize; 3] = [6, 7, 9];
/// gift.lua's ARGV (1-based) that are the same for every gift of a node
/// (limits, TTLs, key prefixes): sent once per batch.
const SHARED_ARGS: [usize; 14] = [3, 4, 11, 12, 13, 18, 19, 21, 24, 26, 27, 28, 29, 31];
/// [`SHARED_KEYS`] as a mask over gift.lua's KEYS (0-based).
const SHARED_KEY_MASK: [bool; KEYS_PER_GIFT] = mask(SHARED_KEYS);
/// [`SHARED_ARGS`] as a mask over gift.lua's ARGV (0-based).
const SHARED_ARG_MASK: [bool; ARGS_PER_GIFT] = mask(SHARED_ARGS);

/// The mask of 1-based positions `at` among `L`.
const fn mask<const N: usize, const L: usize>(at: [usize; N]) -> [bool; L] {
    let mut m = [false; L];
    let mut i = 0;
    while i < N {
        m[at[i] - 1] = true;
        i += 1;
    }
    m
}

/// One gift's keys and arguments, and where its answer goes.
pub(super) struct Job {
    pub(super) keys: Vec<String>,
    pub(super) args: Vec<String>,
    pub(super) reply: oneshot::Sender<Result<Vec<String>>>,
}

/// The sending side of the batcher; the task stops when it is dropped.
pub(super) struct Batcher {
    /// Groups of jobs, each sent whole in one call.
    tx: mpsc::UnboundedSender<Vec<Job>>,
    stats: Arc<Stats>,
}

/// Script calls sent and gifts in them, since the start.
#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    gifts: AtomicU64,
}

impl Batcher {
    /// Start the batcher task on `conn`. `len_max` ≥ 1 gifts per call,
    /// `in_flight_max` ≥ 1 calls at once.
    pub(super) fn spawn(
        conn: ConnectionManager,
        script: Script,
        len_max: usize,
        in_flight_max: usize,
    ) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        tokio::spawn(run(
            rx,
            conn,
            Arc::new(script),
            stats.clone(),
            (len_max.max(1), in_flight_max.max(1)),
        ));
        Batcher { tx, stats }
    }

    /// (script calls, gifts sent in them) since the start.
    pub(super) fn stats(&self) -> (u64, u64) {
        (
            self.stats.calls.load(Ordering::Relaxed),
            self.stats.gifts.load(Ordering::Relaxed),
        )
    }

    /// Run one gift (its `gift.lua` keys and arguments) in the next batch;
    /// answers its `gift.lua` answer.
    pub(super) async fn call(&self, keys: Vec<String>, args: Vec<String>) -> Result<Vec<String>> {
        let mut answers = self.call_group(vec![(keys, args)]).await;
        debug_assert_eq!(answers.len(), 1);
        answers.pop().unwrap_or(Err(CountersError::AnswerUnknown(
            "redis: the gift batch was dropped",
        )))
    }

    /// Run a group of gifts (each one's `gift.lua` keys and arguments) in
    /// the next batch, together and in this order; answers each one's
    /// `gift.lua` answer, in order.
    pub(super) async fn call_group(
        &self,
        gifts: Vec<(Vec<String>, Vec<String>)>,
    ) -> Vec<Result<Vec<String>>> {
        let mut group = Vec::with_capacity(gifts.len());
        let mut answers = Vec::with_capacity(gifts.len());
        for (keys, args) in gifts {
            debug_assert_eq!(keys.len(), KEYS_PER_GIFT);
            debug_assert_eq!(args.len(), ARGS_PER_GIFT);
            let (reply, rx) = oneshot::channel();
            group.push(Job { keys, args, reply });
            answers.push(rx);
        }
        if group.is_empty() {
            return Vec::new();
        }
        if self.tx.send(group).is_err() {
            return answers
                .iter()
                .map(|_| {
                    Err(CountersError::Corrupt(
                        "redis: the gift batcher stopped".into(),
                    ))
                })
                .collect();
        }
        let mut out = Vec::with_capacity(answers.len());
        for rx in answers {
            out.push(rx.await.unwrap_or(Err(CountersError::AnswerUnknown(
                "redis: the gift batch was dropped",
            ))));
        }
        out
    }
}

/// The gifts waiting when a call slot frees up leave together: the queue
/// (callers waiting for their answer, so bounded by them) is the batch,
/// taken in whole groups up to `len_max` gifts (a group larger than that
/// leaves alone).
async fn run(
    mut rx: mpsc::UnboundedReceiver<Vec<Job>>,
    conn: ConnectionManager,
    script: Arc<Script>,
    stats: Arc<Stats>,
    (len_max, in_flight_max): (usize, usize),
) {
    let slots = Arc::new(Semaphore::new(in_flight_max));
    // A group taken from the queue that did not fit the last call.
    let mut held: Option<Vec<Job>> = None;
    loop {
        let first = match held.take() {
            Some(group) => group,
            None => match rx.recv().await {
                Some(group) => group,
                None => return,
            },
        };
        if first.is_empty() {
            continue;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut jobs = first;
        while jobs.len() < len_max {
            match rx.try_recv() {
                Ok(group) if jobs.len() + group.len() <= len_max => jobs.extend(group),
                Ok(group) => {
                    held = Some(group);
                    break;
                }
                Err(_) => break,
            }
        }
        stats.calls.fetch_add(1, Ordering::Relaxed);
        stats.gifts.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        let (conn, script) = (conn.clone(), script.clone());
        tokio::spawn(async move {
            send(conn, &script, jobs).await;
            drop(slot);
        });
    }
}

/// One script call for `jobs`; every job gets its own answer.
async fn send(mut conn: ConnectionManager, script: &Script, jobs: Vec<Job>) {
    metrics::histogram!("giftstream_redis_gift_batch_len").record(jobs.len() as f64);
    let mut inv = script.prepare_invoke();
    inv.arg(jobs.len());
    // The shared keys and arguments once (every job of a node has the
    // same ones), then each job's own, in order.
    let first = &jobs[0];
    for i in SHARED_KEYS {
        inv.key(&first.keys[i - 1]);
    }
    for i in SHARED_ARGS {
        inv.arg(&first.args[i - 1]);
    }
    for job in &jobs {
        debug_assert!(SHARED_KEYS
            .iter()
            .all(|&i| job.keys[i - 1] == first.keys[i - 1]));
        debug_assert!(SHARED_ARGS
            .iter()
            .all(|&i| job.args[i - 1] == first.args[i - 1]));
        for (k, shared) in job.keys.iter().zip(SHARED_KEY_MASK) {
            if !shared {
                inv.key(k);
            }
        }
        for (a, shared) in job.args.iter().zip(SHARED_ARG_MASK) {
            if !shared {
                inv.arg(a);
            }
        }
    }
    let answer: redis::RedisResult<Vec<Vec<String>>> = inv.invoke_async(&mut conn).await;
    match answer {
        Ok(answers) if answers.len() == jobs.len() => {
            for (job, a) in jobs.into_iter().zip(answers) {
                let _ = job.reply.send(Ok(a));
            }
        }
        Ok(_) => {
            for job in jobs {
                let _ = job.reply.send(Err(CountersError::AnswerUnknown(
                    "redis: bad gift batch answer",
                )));
            }
        }
        Err(e) => {
            let len = jobs.len();
            for job in jobs {
                let _ = job.reply.send(Err(batch_err(&e, len)));
            }
        }
    }
}

/// The error of a failed batch for each of its `len` gifts. A batch of one
/// is a single gift (`script_err`). In a larger batch an error answer may
/// come after earlier gifts of the batch ran (a script is not rolled back
/// on an error), so only a refused connection means nothing ran; anything
/// else is `outcome_unknown`.
fn batch_err(e: &redis::RedisError, len: usize) -> CountersError {
    if len == 1 {
        script_err(e.clone())
    } else if e.is_connection_refusal() {
        redis_err(e.clone())
    } else {
        metrics::counter!("giftstream_redis_errors_total").increment(1);
        CountersError::OutcomeUnknown(e.clone())
    }
}

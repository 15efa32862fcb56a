//! What a run measures while it runs.
//!
//! Owns: [`Live`] — counters every task bumps (deliveries, acks, ...),
//! sharded HDR histograms of delivery and ack latency (µs) with a
//! per-second window for the time series — the per-second [`Sampler`] that
//! turns them into [`TimePoint`]s, and [`Tally`], the per-task totals that
//! are merged once at the end (error codes, gaps, skips, coins acked).
//! Must not: lock anything per frame but one histogram shard.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

/// Histogram shards (tasks pick one by index).
const SHARDS: usize = 16;
/// Highest latency recorded, µs (larger values are clamped).
const LATENCY_MAX_US: u64 = 120_000_000;
/// Samples of the time series at most (one a second).
const TIMELINE_LEN_MAX: usize = 24 * 3600;

fn histogram() -> Histogram<u64> {
    // 3 significant digits from 1 µs to 120 s; cannot fail for these bounds.
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("valid histogram bounds")
}

struct Pair {
    total: Histogram<u64>,
    window: Histogram<u64>,
}

/// Latency histograms split in shards to keep lock contention away.
pub struct Shards {
    shards: Vec<Mutex<Pair>>,
}

impl Default for Shards {
    fn default() -> Self {
        Shards {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Pair {
                        total: histogram(),
                        window: histogram(),
                    })
                })
                .collect(),
        }
    }
}

impl Shards {
    /// Record one latency (µs) from task `task`.
    pub fn record(&self, task: usize, us: u64) {
        let v = us.clamp(1, LATENCY_MAX_US);
        let mut p = self.shards[task % SHARDS].lock();
        p.total.saturating_record(v);
        p.window.saturating_record(v);
    }

    /// Everything recorded so far.
    pub fn total(&self) -> Histogram<u64> {
        let mut h = histogram();
        for s in &self.shards {
            // Same bounds everywhere: adding cannot fail.
            let _ = h.add(&s.lock().total);
        }
        h
    }

    /// What was recorded since the last call, and reset the window.
    pub fn take_window(&self) -> Histogram<u64> {
        let mut h = histogram();
        for s in &self.shards {
            let mut p = s.lock();
            let _ = h.add(&p.window);
            p.window.reset();
        }
        h
    }
}

/// Counters and histograms shared by every task of a run.
pub struct Live {
    /// Time zero of the run; gift ids carry µs since it.
    pub epoch: Instant,
    /// Gift events received by viewers.
    pub deliveries: AtomicU64,
    /// Gifts sent.
    pub sent: AtomicU64,
    /// Gift acks received.
    pub acks: AtomicU64,
    /// Errors received.
    pub errors: AtomicU64,
    /// Sockets open now.
    pub open: AtomicU64,
    /// Send -> viewer latency, µs.
    pub delivery_latency: Shards,
    /// Send -> ack latency, µs.
    pub ack_latency: Shards,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            epoch: Instant::now(),
            deliveries: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            acks: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            open: AtomicU64::new(0),
            delivery_latency: Shards::default(),
            ack_latency: Shards::default(),
        }
    }
}

impl Live {
    /// µs since the run's epoch.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Add one to a counter.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Percentiles of a latency histogram, ms.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

impl Percentiles {
    /// The percentiles of `h` (µs values).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// One second of a run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TimePoint {
    /// Seconds since the measured phase began (end of this window).
    pub t_s: f64,
    /// Gift events received in the window, per second.
    pub deliveries_per_s: f64,
    /// Acks received in the window, per second.
    pub acks_per_s: f64,
    /// Delivery latency in the window.
    pub delivery: Percentiles,
    /// Ack latency in the window.
    pub ack: Percentiles,
}

/// Samples [`Live`] once a second until stopped.
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<TimePoint>>,
}

impl Sampler {
    /// Start sampling `live` now.
    pub fn start(live: Arc<Live>) -> Sampler {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let mut out = Vec::new();
            let mut last = (
                live.deliveries.load(Ordering::Relaxed),
                live.acks.load(Ordering::Relaxed),
                t0,
            );
            live.delivery_latency.take_window();
            live.ack_latency.take_window();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                let stopping = tokio::select! {
                    _ = tick.tick() => false,
                    _ = stopped.changed() => true,
                };
                let now = Instant::now();
                let d = live.deliveries.load(Ordering::Relaxed);
                let a = live.acks.load(Ordering::Relaxed);
                let dt = now.duration_since(last.2).as_secs_f64().max(1e-3);
                if out.len() < TIMELINE_LEN_MAX && (dt > 0.2 || !stopping) {
                    out.push(TimePoint {
                        t_s: now.duration_since(t0).as_secs_f64(),
                        deliveries_per_s: (d - last.0) as f64 / dt,
                        acks_per_s: (a - last.1) as f64 / dt,
                        delivery: Percentiles::of(&live.delivery_latency.take_window()),
                        ack: Percentiles::of(&live.ack_latency.take_window()),
                    });
                }
                last = (d, a, now);
                if stopping {
                    return out;
                }
            }
        });
        Sampler { stop, task }
    }

    /// Stop and answer the series.
    pub async fn stop(self) -> Vec<TimePoint> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// Totals one task keeps for itself; merged once at the end of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// Gift events received.
    pub deliveries: u64,
    /// Gifts sent.
    pub sent: u64,
    /// Gifts acked.
    pub acked: u64,
    /// Gifts neither acked nor refused when the run ended.
    pub unanswered: u64,
    /// Coins the acked gifts cost.
    pub coins_acked: i64,
    /// Diamonds the acked gifts earned.
    pub diamonds_acked: i64,
    /// Errors by code.
    pub errors: BTreeMap<String, u64>,
    /// Missing seqs not announced by a `skipped`.
    pub seq_gaps: u64,
    /// Viewers that saw at least one unannounced gap.
    pub viewers_with_gaps: u64,
    /// `skipped` messages received.
    pub skipped_msgs: u64,
    /// Events those `skipped` messages covered.
    pub skipped_events: u64,
    /// Closes by the server, by close code.
    pub closes: BTreeMap<String, u64>,
    /// Frames that did not decode.
    pub garbled: u64,
    /// Connections that failed (connect, handshake, join).
    pub connect_failures: u64,
    /// Joins answered.
    pub joins: u64,
    /// Leaves answered.
    pub leaves: u64,
    /// Reconnects done (mixed).
    pub reconnects: u64,
    /// Resumes answered (mixed).
    pub resumes: u64,
}

impl Tally {
    /// Count an error code.
    pub fn error(&mut self, code: &str) {
        *self.errors.entry(code.to_string()).or_default() += 1;
    }

    /// Count a close code.
    pub fn close(&mut self, code: Option<u16>) {
        let k = code.map_or_else(|| "none".to_string(), |c| c.to_string());
        *self.closes.entry(k).or_default() += 1;
    }

    /// Add `o` into this one.
    pub fn merge(&mut self, o: Tally) {
        self.deliveries += o.deliveries;
        self.sent += o.sent;
        self.acked += o.acked;
        self.unanswered += o.unanswered;
        self.coins_acked += o.coins_acked;
        self.diamonds_acked += o.diamonds_acked;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.seq_gaps += o.seq_gaps;
        self.viewers_with_gaps += o.viewers_with_gaps;
        self.skipped_msgs += o.skipped_msgs;
        self.skipped_events += o.skipped_events;
        for (k, v) in o.closes {
            *self.closes.entry(k).or_default() += v;
        }
        self.garbled += o.garbled;
        self.connect_failures += o.connect_failures;
        self.joins += o.joins;
        self.leaves += o.leaves;
        self.reconnects += o.reconnects;
        self.resumes += o.resumes;
    }
}

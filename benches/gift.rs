//! The in-process gift operation: `MemoryCounters::gift` through the
//! `Counters` trait, uncontended and contended.
//!
//! Gifts go to a video target whose events go nowhere (a sink that drops
//! them), so this times the counters step alone (idempotency check and memory, balance check and
//! debit, pending diamonds, target seq and combo streak, pending queue).
//! Contended: several threads, each with its own senders, gifting the same
//! target at once (one hot creator). The pending queue is drained between
//! measurement batches, outside the timed section, as the settlement
//! worker would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::FutureExt;
use giftstream::catalog::{Catalog, Gift};
use giftstream::config::CountersConfig;
use giftstream::counters::memory::MemoryCounters;
use giftstream::counters::Counters;
use giftstream::error::Result;
use giftstream::model::{EventPermit, EventSink, GiftRequest, Target};

const SENDERS_PER_THREAD: usize = 64;

/// Takes every event and drops it: no fan-out in the timed section.
struct NoFanout;

impl EventSink for NoFanout {
    fn reserve(&self, _: &Target, _: &str, _: u64) -> Result<EventPermit> {
        Ok(EventPermit::new(|_| {}))
    }
}

fn engine() -> Arc<dyn Counters> {
    let cfg = CountersConfig {
        pending_len_max: usize::MAX,
        ..CountersConfig::default()
    };
    let c: Arc<dyn Counters> = Arc::new(MemoryCounters::new(cfg, Arc::new(NoFanout)));
    now(c.open_target(&Target::video("bench-video"), "bench-creator", 0)).expect("open");
    c
}

/// The in-process engine never awaits: its futures are ready at once.
fn now<T>(f: impl std::future::Future<Output = T>) -> T {
    f.now_or_never().expect("in-process counters never wait")
}

fn fund(c: &dyn Counters, thread: usize) -> Vec<String> {
    (0..SENDERS_PER_THREAD)
        .map(|i| {
            let user = format!("sender-{thread}-{i}");
            now(c.credit(&user, 1_000_000_000_000_000, &format!("grant:{user}"))).expect("credit");
            user
        })
        .collect()
}

fn gifts(c: &dyn Counters, senders: &[String], rose: &Gift, start: u64, n: u64) {
    for k in start..start + n {
        let sender = &senders[k as usize % senders.len()];
        let req = GiftRequest {
            sender: sender.clone(),
            target: Target::video("bench-video"),
            gift: rose.clone(),
            count: 1,
            client_id: format!("g{k}"),
            ts: 1_790_000_000_000 + k as i64,
            message: None,
            kept: None,
        };
        let out = now(c.gift(req)).expect("accepted");
        debug_assert!(!out.duplicate);
    }
}

fn settle(c: &dyn Counters) {
    while let Some(batch) = now(c.drain(100_000)).expect("drain") {
        now(c.settled(&batch)).expect("settled");
    }
}

fn bench(cr: &mut Criterion) {
    let rose = Catalog::load("")
        .expect("built-in catalog")
        .get("rose")
        .expect("rose")
        .clone();
    let mut g = cr.benchmark_group("gift_memory_counters");
    g.throughput(Throughput::Elements(1));

    let c = engine();
    let senders = fund(c.as_ref(), 0);
    let mut next = 0u64;
    g.bench_function("uncontended", |b| {
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            gifts(c.as_ref(), &senders, &rose, next, iters);
            let el = t0.elapsed();
            next += iters;
            settle(c.as_ref());
            el
        })
    });

    for threads in [2usize, 4] {
        let c = engine();
        let senders: Vec<Vec<String>> = (0..threads).map(|t| fund(c.as_ref(), t)).collect();
        let mut next = 0u64;
        g.bench_function(format!("contended_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(threads as u64);
                let t0 = Instant::now();
                std::thread::scope(|s| {
                    for ss in &senders {
                        let (c, rose) = (c.clone(), &rose);
                        s.spawn(move || gifts(c.as_ref(), ss, rose, next, per));
                    }
                });
                let el = t0.elapsed();
                next += per;
                settle(c.as_ref());
                el
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);

//! The Redis gift script: `RedisCounters::gift` through the `Counters`
//! trait, one at a time (a round trip each) and 64 in flight (pipelined on
//! the one multiplexed connection, as gifts from many sockets are).
//!
//! Runs only when `GIFTSTREAM_BENCH_REDIS_URL` names a Redis database it may
//! FLUSHDB (e.g. `redis://127.0.0.1:6379/15`); otherwise it says so and
//! exits. Gifts go to a video target (no publish), so this times the
//! script and its round trip.

use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use futures_util::future::join_all;
use giftstream::catalog::Catalog;
use giftstream::config::{CountersConfig, HubConfig};
use giftstream::counters::redis::RedisCounters;
use giftstream::counters::Counters;
use giftstream::model::{GiftRequest, Target};

const IN_FLIGHT: u64 = 64;

fn main() {
    let Ok(url) = std::env::var("GIFTSTREAM_BENCH_REDIS_URL") else {
        eprintln!("gift_redis: skipped (set GIFTSTREAM_BENCH_REDIS_URL to a Redis database it may FLUSHDB)");
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let counters: Arc<dyn Counters> = rt.block_on(async {
        let client = redis::Client::open(url.as_str()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis reachable");
        let _: () = redis::cmd("FLUSHDB")
            .query_async(&mut conn)
            .await
            .expect("flushdb");
        let cfg = CountersConfig {
            url: url.clone(),
            pending_len_max: 100_000_000,
            ..CountersConfig::default()
        };
        let c: Arc<dyn Counters> = Arc::new(
            RedisCounters::connect(&url, cfg, HubConfig::default())
                .await
                .expect("connect"),
        );
        c.open_target(&Target::video("bench-video"), "bench-creator", 0)
            .await
            .expect("open");
        c.credit("bench-sender", 1_000_000_000_000, "grant:bench")
            .await
            .expect("credit");
        c
    });
    let rose = Catalog::load("")
        .expect("catalog")
        .get("rose")
        .expect("rose")
        .clone();
    let next = std::sync::atomic::AtomicU64::new(0);
    let gift = |k: u64| GiftRequest {
        sender: "bench-sender".into(),
        target: Target::video("bench-video"),
        gift: rose.clone(),
        count: 1,
        client_id: format!("g{k}"),
        ts: 1_790_000_000_000 + k as i64,
        message: None,
        kept: None,
    };
    let mut cr = Criterion::default().configure_from_args();
    let mut g = cr.benchmark_group("gift_redis");
    g.throughput(Throughput::Elements(1));
    g.bench_function("one_round_trip_each", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    counters.gift(gift(k)).await.expect("accepted");
                }
                t.elapsed()
            })
        })
    });
    g.bench_function("pipelined_64_in_flight", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                let mut done = 0;
                while done < iters {
                    let n = IN_FLIGHT.min(iters - done);
                    let start = next.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    let batch = (start..start + n).map(|k| counters.gift(gift(k)));
                    for r in join_all(batch).await {
                        r.expect("accepted");
                    }
                    done += n;
                }
                t.elapsed()
            })
        })
    });
    g.finish();
    cr.final_summary();
}

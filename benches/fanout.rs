//! Encode-once fan-out of one `gift_event` to 10,000 subscriber queues.
//!
//! `encode_once_try_send`: what a room task does per event — encode once
//! per wire format, then `try_send` a clone of the same `Message` (a
//! reference count) into every subscriber's bounded outbox (`hub::outbox`).
//! `encode_per_subscriber`: the design's counterfactual (serialize for
//! each subscriber), to show what encoding once saves.
//! `room_task`: the real path through the crate's public API — a `Hub`
//! room task with 10,000 joined subscribers, from `Hub::deliver` to the
//! last subscriber's queue.
//! Queues are drained between iterations, outside the timed section.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use giftstream::config::HubConfig;
use giftstream::hub::conn::ConnCtl;
use giftstream::hub::outbox::{outbox, Outbox, OutboxRx};
use giftstream::hub::room::{RoomCmd, Subscriber};
use giftstream::hub::Hub;
use giftstream::protocol::Encoding;
use tokio::sync::oneshot;

const SUBSCRIBERS: usize = 10_000;

fn queues(cap: usize) -> (Vec<Outbox>, Vec<OutboxRx>) {
    (0..SUBSCRIBERS).map(|_| outbox(cap)).unzip()
}

fn drain(rxs: &mut [OutboxRx]) {
    for rx in rxs {
        while rx.try_recv().is_some() {}
    }
}

fn bench(c: &mut Criterion) {
    let cap = HubConfig::default().viewer_queue_len_max;
    let mut g = c.benchmark_group("fanout_10k");
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));

    let (txs, mut rxs) = queues(cap);
    let mut seq = 0u64;
    g.bench_function("encode_once_try_send", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                seq += 1;
                let msg = common::gift_msg(seq);
                let t0 = Instant::now();
                let frame = msg.encode(Encoding::Json);
                let mut delivered = 0usize;
                for tx in &txs {
                    delivered += usize::from(tx.try_send(frame.clone()).is_ok());
                }
                total += t0.elapsed();
                assert_eq!(delivered, SUBSCRIBERS);
                drain(&mut rxs);
            }
            total
        })
    });

    g.bench_function("encode_per_subscriber", |b| {
        b.iter_batched(
            || common::gift_msg(1),
            |msg| {
                for tx in &txs {
                    let _ = tx.try_send(msg.encode(Encoding::Json));
                }
                drain(&mut rxs);
            },
            BatchSize::SmallInput,
        )
    });
    drop((txs, rxs));

    // The real room task, through the hub's public API.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let hub = Hub::new(HubConfig::default());
    {
        // The room task is spawned on the runtime.
        let _in_rt = rt.enter();
        hub.open_room("bench", "bench-creator", 0);
    }
    let handle = hub.room("bench").expect("room open");
    let mut rxs = Vec::with_capacity(SUBSCRIBERS);
    rt.block_on(async {
        for i in 0..SUBSCRIBERS {
            let (tx, rx) = outbox(cap);
            let (reply, answer) = oneshot::channel();
            let sub = Subscriber {
                conn_id: i as u64 + 1,
                user: format!("viewer-{i}"),
                encoding: Encoding::Json,
                tx,
                ctl: Arc::new(ConnCtl::default()),
                coalesce: false,
            };
            handle
                .tx
                .send(RoomCmd::Join { sub, reply })
                .await
                .expect("room alive");
            answer.await.expect("answered").expect("joined");
            rxs.push(rx);
        }
    });
    drain(&mut rxs);
    let mut seq = 0u64;
    g.bench_function("room_task", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    seq += 1;
                    let ev = common::gift_event(seq);
                    let t0 = Instant::now();
                    hub.deliver("bench", ev).await;
                    // The room delivers in join order: the last queue is last.
                    let last = rxs.last_mut().expect("subscribers");
                    last.recv().await.expect("delivered");
                    total += t0.elapsed();
                    drain(&mut rxs);
                }
                total
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);

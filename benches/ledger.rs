//! A SQLite ledger batch of 1,000 gifts: `SqliteLedger::commit_batch`.
//!
//! A file ledger in WAL mode with `synchronous = FULL`, as the embedded
//! default runs it: one transaction per batch (operation row, 1,000 gift
//! rows, postings, balance updates) and its fsync. Senders are funded
//! through the ledger first so balances stay non-negative.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use giftstream::ledger::sqlite::SqliteLedger;
use giftstream::ledger::{CreditOp, Ledger};
use giftstream::model::{Batch, PendingGift};

const BATCH_LEN: usize = 1000;
const SENDERS: usize = 50;

fn batch(n: u64) -> Batch {
    let gifts = (0..BATCH_LEN)
        .map(|i| {
            let seq = n * BATCH_LEN as u64 + i as u64 + 1;
            PendingGift {
                target: "room:bench".into(),
                seq,
                sender: format!("sender-{}", i % SENDERS),
                client_id: format!("g{seq}"),
                creator: "bench-creator".into(),
                gift: "rose".into(),
                count: 1,
                coins: 1,
                diamonds: 1,
                balance_after: 1_000_000,
                ts: 1_790_000_000_000 + seq as i64,
                message: None,
            }
        })
        .collect();
    Batch {
        id: format!("bench-batch-{n}"),
        gifts,
        ticket_max: (n + 1) * BATCH_LEN as u64,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let ledger = rt.block_on(async {
        let l = SqliteLedger::open(&url, 4).await.expect("ledger opens");
        for i in 0..SENDERS {
            let op = CreditOp {
                op_id: format!("grant:sender-{i}"),
                kind: "grant".into(),
                user: format!("sender-{i}"),
                coins: 1_000_000_000_000,
            };
            l.credit(&op).await.expect("grant");
        }
        l
    });
    let mut g = c.benchmark_group("ledger_sqlite");
    g.throughput(Throughput::Elements(BATCH_LEN as u64));
    let mut n = 0u64;
    g.bench_function("commit_batch_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let batch = batch(n);
                n += 1;
                let t0 = Instant::now();
                let done = rt.block_on(ledger.commit_batch(&batch)).expect("commit");
                total += t0.elapsed();
                assert!(done, "a new batch id is committed");
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);

//! The settlement worker when the ledger refuses commits: the in-process
//! engine stops the process (its pending gifts exist nowhere else), the
//! Redis engine releases the batch and keeps serving; either way nothing is
//! lost or doubled once the ledger is back.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::hooked_ledger::{CommitHook, Hooked};
use giftstream::catalog::Catalog;
use giftstream::config::{CountersConfig, HubConfig, SettlementConfig};
use giftstream::counters::memory::MemoryCounters;
use giftstream::counters::redis::RedisCounters;
use giftstream::counters::Counters;
use giftstream::error::{Error, Result};
use giftstream::hub::Hub;
use giftstream::ledger::{self, CreditOp, Ledger};
use giftstream::model::{Batch, GiftRequest, Target};
use giftstream::settlement::{QueueHome, Worker};
use tokio_util::sync::CancellationToken;

/// A ledger's fault state: batch commits fail while `failing` is set.
struct Flaky {
    failing: AtomicBool,
    refused: AtomicU32,
}

#[async_trait]
impl CommitHook for Flaky {
    async fn commit_batch(&self, inner: &dyn Ledger, batch: &Batch) -> Result<bool> {
        if self.failing.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(Error::internal("injected: ledger unavailable"));
        }
        inner.commit_batch(batch).await
    }
}

async fn flaky_ledger() -> Arc<Hooked<Flaky>> {
    let inner = ledger::open("sqlite::memory:", 1).await.expect("ledger");
    Hooked::new(
        inner,
        Flaky {
            failing: AtomicBool::new(true),
            refused: AtomicU32::new(0),
        },
    )
}

fn settlement_cfg() -> SettlementConfig {
    SettlementConfig {
        flush_interval_ms: 10,
        batch_len_max: 4,
        retry_len_max: 3,
        retry_backoff_ms_max: 5,
        claim_idle_ms: 50,
    }
}

/// Five roses from `v` to `alice`'s room `r`, with the coins granted first.
async fn accept_gifts(counters: &dyn Counters, ledger: &dyn Ledger) {
    let op = CreditOp {
        op_id: "grant:g".into(),
        kind: "grant".into(),
        user: "v".into(),
        coins: 100,
    };
    ledger.credit(&op).await.unwrap();
    counters.credit("v", 100, "grant:g").await.unwrap();
    let room = Target::room("r");
    ledger.open_target(&room, "alice").await.unwrap();
    counters.open_target(&room, "alice", 0).await.unwrap();
    let rose = Catalog::load("").unwrap().get("rose").unwrap().clone();
    for i in 0..5 {
        let req = GiftRequest {
            sender: "v".into(),
            target: room.clone(),
            gift: rose.clone(),
            count: 1,
            client_id: format!("g{i}"),
            ts: 1,
            message: None,
            kept: None,
        };
        counters.gift(req).await.unwrap();
    }
}

#[tokio::test]
async fn in_process_engine_fails_stop_when_the_ledger_stays_down() {
    let hub = Hub::new(HubConfig::default());
    hub.open_room("r", "alice", 0);
    let counters: Arc<dyn Counters> = Arc::new(MemoryCounters::new(CountersConfig::default(), hub));
    let ledger = flaky_ledger().await;
    accept_gifts(counters.as_ref(), ledger.as_ref()).await;
    let (worker, _) = Worker::new(
        counters.clone(),
        ledger.clone(),
        settlement_cfg(),
        QueueHome::Process,
    );
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        worker.run(CancellationToken::new()),
    )
    .await;
    let err = result
        .expect("the worker gives up within the retry limit")
        .expect_err("fail-stop");
    assert!(
        err.to_string().contains("not committed after 3 attempts"),
        "{err}"
    );
    assert_eq!(
        ledger.refused.load(Ordering::SeqCst),
        3,
        "exactly retry_len_max attempts"
    );
    assert_eq!(ledger.totals().await.unwrap().gifts, 0);
}

#[tokio::test]
async fn redis_engine_releases_the_batch_and_settles_it_once_the_ledger_is_back() {
    let Some(url) = common::services::fresh_redis_url().await else {
        return;
    };
    let hub = Hub::new(HubConfig::default());
    let counters = Arc::new(
        RedisCounters::connect(
            &url,
            CountersConfig {
                url: url.clone(),
                ..CountersConfig::default()
            },
            hub.config().clone(),
        )
        .await
        .expect("redis")
        .with_claim_idle_ms(settlement_cfg().claim_idle_ms),
    );
    let counters: Arc<dyn Counters> = counters;
    let ledger = flaky_ledger().await;
    accept_gifts(counters.as_ref(), ledger.as_ref()).await;
    let (worker, _) = Worker::new(
        counters.clone(),
        ledger.clone(),
        settlement_cfg(),
        QueueHome::Shared,
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    // Let it fail through several retry cycles: it must keep running.
    while ledger.refused.load(Ordering::SeqCst) < 9 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !task.is_finished(),
        "no fail-stop: the gifts are safe in Redis"
    );
    assert_eq!(
        counters.pending_diamonds("alice").await.unwrap(),
        5,
        "still pending, not lost"
    );
    assert_eq!(ledger.totals().await.unwrap().gifts, 0);
    ledger.failing.store(false, Ordering::SeqCst);
    for _ in 0..500 {
        if counters.pending_len().await.unwrap() == 0 && ledger.totals().await.unwrap().gifts == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = ledger.totals().await.unwrap();
    assert_eq!(
        (t.gifts, t.coins_spent, t.diamonds_credited),
        (5, 5, 5),
        "each gift settled exactly once"
    );
    assert_eq!(counters.pending_diamonds("alice").await.unwrap(), 0);
    stop.cancel();
    task.await.unwrap().unwrap();
}

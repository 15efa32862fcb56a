//! Found by the chaos campaign (docs/RELIABILITY.md, redis-flush): after
//! Redis lost its data, `reconcile --repair` (and a node's start) loads
//! wallets from a ledger snapshot. A coin purchase paid between the
//! snapshot and the load (ledger first, then the Redis credit) was
//! overwritten by the older balance while its op id stayed applied, so
//! the wallet stayed short for good. The load fence makes such a credit
//! wait (a retryable refusal) until the load is done.

use crate::common;

use std::sync::Arc;

use async_trait::async_trait;
use giftstream::config::{CountersConfig, HubConfig};
use giftstream::counters::redis::RedisCounters;
use giftstream::counters::Counters;
use giftstream::error::{ErrorCode, Result};
use giftstream::ledger::{self, CreditOp, Ledger};
use giftstream::model::{GiftRecords, Snapshot, Target};
use parking_lot::Mutex;

/// The ledger, except that a purchase is paid right after each snapshot
/// is read: in the ledger, then in Redis (as the webhook does).
struct PaidAfterSnapshot {
    inner: Arc<dyn Ledger>,
    red: Arc<RedisCounters>,
    op: CreditOp,
    /// What the racing Redis credit answered.
    answered: Mutex<Vec<std::result::Result<i64, ErrorCode>>>,
}

#[async_trait]
impl GiftRecords for PaidAfterSnapshot {
    async fn snapshot(&self, recent_ms: i64, seq_gap: u64) -> Result<Snapshot> {
        let s = GiftRecords::snapshot(self.inner.as_ref(), recent_ms, seq_gap).await?;
        if self.answered.lock().is_empty() {
            self.inner.credit(&self.op).await?;
            let r = self
                .red
                .credit(&self.op.user, self.op.coins, &self.op.op_id)
                .await
                .map_err(|e| e.code());
            self.answered.lock().push(r);
        }
        Ok(s)
    }
    async fn has_gift(&self, target: &str, seq: u64) -> Result<bool> {
        GiftRecords::has_gift(self.inner.as_ref(), target, seq).await
    }
    async fn follower_counts(&self) -> Result<Vec<(String, i64)>> {
        GiftRecords::follower_counts(self.inner.as_ref()).await
    }
}

/// A Redis engine on `url`, loaded from a fresh SQLite ledger, with a
/// room `room` and 100 coins granted to `user` in both.
async fn granted_100(url: &str, room: &str, user: &str) -> (Arc<dyn Ledger>, Arc<RedisCounters>) {
    let ledger = ledger::open("sqlite::memory:", 1).await.unwrap();
    let cfg = CountersConfig {
        url: "redis://unused".into(),
        ..CountersConfig::default()
    };
    let red = Arc::new(
        RedisCounters::connect(url, cfg, HubConfig::default())
            .await
            .unwrap(),
    );
    red.restore(ledger.snapshot(86_400_000, 0).await.unwrap())
        .await
        .unwrap();
    ledger.open_target(&Target::room(room), "cr").await.unwrap();
    let op = format!("grant:{user}");
    let grant = CreditOp {
        op_id: op.clone(),
        kind: "grant".into(),
        user: user.into(),
        coins: 100,
    };
    ledger.credit(&grant).await.unwrap();
    red.credit(user, 100, &op).await.unwrap();
    (ledger, red)
}

#[tokio::test]
async fn a_purchase_paid_during_the_repair_of_a_lost_redis_is_not_lost() {
    let Some((url, db)) = common::services::fresh_redis_db().await else {
        return;
    };
    let (ledger, red) = granted_100(&url, &format!("fence{db}"), "a").await;

    // Redis loses everything (FLUSHDB: FLUSHALL would hit other tests).
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("FLUSHDB").query_async(&mut c).await.unwrap();
    let racing = PaidAfterSnapshot {
        inner: ledger.clone(),
        red: red.clone(),
        op: CreditOp {
            op_id: "purchase:pi_race".into(),
            kind: "purchase".into(),
            user: "a".into(),
            coins: 70,
        },
        answered: Mutex::new(Vec::new()),
    };
    let fixed = red.reconcile(&racing, true).await.unwrap();
    assert!(fixed.repaired && fixed.redis_empty, "{fixed:?}");
    // The racing credit was told to wait (nothing changed, retry)...
    let answered = racing.answered.lock().clone();
    assert_eq!(
        answered,
        vec![Err(ErrorCode::Internal)],
        "the credit waits for the load"
    );
    // ...and its retry (the webhook's redelivery) applies it once.
    assert_eq!(red.credit("a", 70, "purchase:pi_race").await.unwrap(), 170);
    assert_eq!(red.credit("a", 70, "purchase:pi_race").await.unwrap(), 170);
    let in_ledger = ledger
        .balance(&ledger::account::wallet("a"), ledger::COIN)
        .await
        .unwrap();
    assert_eq!((red.balance("a").await.unwrap(), in_ledger), (170, 170));
    let after = red.reconcile(ledger.as_ref(), false).await.unwrap();
    assert_eq!(after.drift(), 0, "{after:?}");
    // The fence is gone: credits apply at once again.
    let late = CreditOp {
        op_id: "grant:a2".into(),
        kind: "grant".into(),
        user: "a".into(),
        coins: 5,
    };
    ledger.credit(&late).await.unwrap();
    assert_eq!(red.credit("a", 5, "grant:a2").await.unwrap(), 175);
}

/// Two loaders at once (two nodes starting after a loss, or a node and
/// `reconcile --repair`): each raises the fence before its snapshot. When
/// the first lifts its own, credits must still wait for the second, whose
/// load would overwrite them with its older snapshot. With one shared
/// flag, the first lift opened the fence for both.
#[tokio::test]
async fn a_second_loader_keeps_the_fence_up_after_the_first_lifts_its_own() {
    let Some((url, _db)) = common::services::fresh_redis_db().await else {
        return;
    };
    let cfg = CountersConfig {
        url: "redis://unused".into(),
        ..CountersConfig::default()
    };
    let a = RedisCounters::connect(&url, cfg.clone(), HubConfig::default())
        .await
        .unwrap();
    let b = RedisCounters::connect(&url, cfg, HubConfig::default())
        .await
        .unwrap();
    a.raise_load_fence().await.unwrap();
    b.raise_load_fence().await.unwrap();
    a.lift_load_fence().await.unwrap();
    // `b` still loads: the credit waits (retryable, nothing changed).
    assert_eq!(
        a.credit("u", 70, "purchase:pi_two")
            .await
            .map_err(|e| e.code()),
        Err(ErrorCode::Internal)
    );
    assert_eq!(a.balance("u").await.unwrap(), 0);
    // Raising again is idempotent per loader; lifting twice is harmless.
    b.raise_load_fence().await.unwrap();
    a.lift_load_fence().await.unwrap();
    assert_eq!(
        b.credit("u", 70, "purchase:pi_two")
            .await
            .map_err(|e| e.code()),
        Err(ErrorCode::Internal)
    );
    b.lift_load_fence().await.unwrap();
    assert_eq!(a.credit("u", 70, "purchase:pi_two").await.unwrap(), 70);
    assert_eq!(b.credit("u", 70, "purchase:pi_two").await.unwrap(), 70);
}

/// A fence whose loader died lapses after `counters.load_fence_ms`.
#[tokio::test]
async fn a_dead_loaders_fence_lapses_after_load_fence_ms() {
    let Some((url, _db)) = common::services::fresh_redis_db().await else {
        return;
    };
    let cfg = CountersConfig {
        url: "redis://unused".into(),
        load_fence_ms: 300,
        ..CountersConfig::default()
    };
    let dead = RedisCounters::connect(&url, cfg.clone(), HubConfig::default())
        .await
        .unwrap();
    dead.raise_load_fence().await.unwrap();
    drop(dead);
    let live = RedisCounters::connect(&url, cfg, HubConfig::default())
        .await
        .unwrap();
    assert_eq!(
        live.credit("u", 5, "grant:lapse")
            .await
            .map_err(|e| e.code()),
        Err(ErrorCode::Internal)
    );
    let t0 = std::time::Instant::now();
    loop {
        match live.credit("u", 5, "grant:lapse").await {
            Ok(b) => {
                assert_eq!(b, 5);
                break;
            }
            Err(_) => {
                assert!(t0.elapsed().as_secs() < 10, "the fence never lapsed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// The compare-and-set repair of a Redis that kept its data compares Redis
/// with a ledger snapshot read before it: a purchase paid in between
/// (ledger, then Redis) made Redis hold more than the snapshot, and the
/// repair set the wallet back to the snapshot's balance, losing the credit
/// for good (its op id stayed applied). Every repair now raises the fence.
#[tokio::test]
async fn a_purchase_paid_during_the_repair_of_a_loaded_redis_is_not_lost() {
    let Some((url, db)) = common::services::fresh_redis_db().await else {
        return;
    };
    let (ledger, red) = granted_100(&url, &format!("cas{db}"), "b").await;
    let racing = PaidAfterSnapshot {
        inner: ledger.clone(),
        red: red.clone(),
        op: CreditOp {
            op_id: "purchase:pi_cas".into(),
            kind: "purchase".into(),
            user: "b".into(),
            coins: 70,
        },
        answered: Mutex::new(Vec::new()),
    };
    let report = red.reconcile(&racing, true).await.unwrap();
    assert!(!report.redis_empty, "{report:?}");
    assert_eq!(
        racing.answered.lock().clone(),
        vec![Err(ErrorCode::Internal)],
        "the credit waits for the repair"
    );
    // The redelivery applies it once, and Redis agrees with the ledger.
    assert_eq!(red.credit("b", 70, "purchase:pi_cas").await.unwrap(), 170);
    let in_ledger = ledger
        .balance(&ledger::account::wallet("b"), ledger::COIN)
        .await
        .unwrap();
    assert_eq!((red.balance("b").await.unwrap(), in_ledger), (170, 170));
    let after = red.reconcile(ledger.as_ref(), false).await.unwrap();
    assert_eq!(after.drift(), 0, "{after:?}");
}

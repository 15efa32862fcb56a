//! The Redis counters engine against a real redis-server.
//!
//! Set `GIFTSTREAM_TEST_REDIS_URL=redis://127.0.0.1:PORT` (a server with
//! at least 1024 databases); without it each test prints why it is skipped,
//! or panics when `GIFTSTREAM_TEST_REQUIRE_SERVICES=1`. Each test takes its
//! own logical database (`INCR giftstream:test:next_db` on db 0) and
//! flushes it. Channel names carry the database number (pub/sub spans
//! databases); the tests also name their rooms after their database, so a
//! failure message says which test's room it was.

use crate::common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::hooked_ledger::{CommitHook, Hooked};
use giftstream::catalog::Gift;
use giftstream::config::{Config, CountersConfig, HubConfig, SettlementConfig};
use giftstream::counters::redis::RedisCounters;
use giftstream::counters::Counters;
use giftstream::error::{ErrorCode, Result as GsResult};
use giftstream::hub::Hub;
use giftstream::ledger::{self, CreditOp, Ledger};
use giftstream::model::{Batch, GiftRequest, Target};
use giftstream::protocol::now_ms;
use giftstream::relay::redis::RedisRelay;
use giftstream::settlement::{QueueHome, Worker};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// ---------------------------------------------------------------- services

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

fn counters_cfg() -> CountersConfig {
    CountersConfig {
        url: "redis://unused".into(),
        ..CountersConfig::default()
    }
}

async fn redis_engine(
    url: &str,
    cfg: CountersConfig,
    hub: Arc<Hub>,
    claim_idle_ms: u64,
) -> Arc<RedisCounters> {
    let engine = RedisCounters::connect(url, cfg, hub.config().clone())
        .await
        .expect("connect RedisCounters")
        .with_claim_idle_ms(claim_idle_ms);
    // The relay feeds `hub`'s rooms for the rest of the test (a server
    // keeps it in its state; dropping it would stop the feed).
    let relay = RedisRelay::connect(&engine, hub)
        .await
        .expect("connect RedisRelay");
    std::mem::forget(relay);
    Arc::new(engine)
}

fn gift(id: &str, coins: i64, diamonds: i64) -> Gift {
    Gift {
        id: id.into(),
        name: id.into(),
        coins,
        diamonds,
        animation: format!("{id}.webp"),
    }
}

fn req(sender: &str, target: Target, g: &Gift, count: u32, client_id: &str) -> GiftRequest {
    GiftRequest {
        sender: sender.into(),
        target,
        gift: g.clone(),
        count,
        client_id: client_id.into(),
        ts: now_ms(),
        message: None,
        kept: None,
    }
}

// ------------------------------------------------------- gift semantics
// The engine-generic cases (gift answers, idempotency ttl, overdraft, event
// order, credits) are in `counters_conformance.rs`, run on both engines.

#[tokio::test]
async fn idempotency_ids_are_capped_per_wallet() {
    let Some((url, db)) = common::services::fresh_redis_db().await else {
        return;
    };
    let room = format!("ttl{db}");
    let rose = gift("rose", 1, 1);
    // At most 2 ids per wallet: the oldest is forgotten first, even when
    // all of them arrive within one millisecond. A long TTL here, so only
    // the cap decides, not the clock of a loaded machine.
    let cfg = CountersConfig {
        idempotency_ttl_s: 3600,
        idempotency_keys_per_wallet_max: 2,
        ..counters_cfg()
    };
    let red = redis_engine(&url, cfg, Hub::new(HubConfig::default()), 30_000).await;
    red.open_target(&Target::room(&room), "cr", 0)
        .await
        .unwrap();
    red.credit("v", 10, "g").await.unwrap();
    let same_ms = now_ms();
    for id in ["c", "b", "a"] {
        let r = GiftRequest {
            ts: same_ms,
            ..req("v", Target::room(&room), &rose, 1, id)
        };
        red.gift(r).await.unwrap();
    }
    assert!(
        red.gift(req("v", Target::room(&room), &rose, 1, "a"))
            .await
            .unwrap()
            .duplicate
    );
    assert!(
        red.gift(req("v", Target::room(&room), &rose, 1, "b"))
            .await
            .unwrap()
            .duplicate
    );
    assert!(
        !red.gift(req("v", Target::room(&room), &rose, 1, "c"))
            .await
            .unwrap()
            .duplicate,
        "the oldest id was forgotten"
    );
}

/// A streak no node ended within `combo_end_late_ms_max` past its due time
/// is gone without a `combo_end`, whoever meets it next: the next gift (a
/// new streak, combo 1), the reaper, or the room's end. Its key outlives
/// that expiry (its TTL is twice the lifetime, renewed only once half is
/// spent), so each reader checks the streak's own `lt` + `tl`. A fresh
/// streak still ends once (the control). Gifts are dated 10 s back so their
/// streaks are past expiry at once while their keys still live.
#[tokio::test]
async fn a_streak_past_its_expiry_is_gone_without_a_combo_end() {
    let Some((url, db)) = common::services::fresh_redis_db().await else {
        return;
    };
    let rose = gift("rose", 1, 1);
    let cfg = |reap_ms| CountersConfig {
        combo_window_ms: 100,
        combo_end_late_ms_max: 2_000,
        combo_reap_interval_ms: reap_ms,
        ..counters_cfg()
    };
    let hub = Hub::new(HubConfig::default());
    let back = |r: GiftRequest| GiftRequest {
        ts: now_ms() - 10_000,
        ..r
    };
    let ended_combos = |ends: Vec<giftstream::model::StreakEnd>| {
        ends.into_iter()
            .map(|e| (e.end.room.clone(), e.end.count))
            .collect::<Vec<_>>()
    };

    // No reaper runs during these two cases.
    let quiet = redis_engine(&url, cfg(3_600_000), hub.clone(), 30_000).await;
    let (next, ended) = (format!("next{db}"), format!("end{db}"));
    for room in [&next, &ended] {
        quiet
            .open_target(&Target::room(room), "cr", 0)
            .await
            .unwrap();
    }
    quiet.credit("v", 100, "g").await.unwrap();
    quiet
        .gift(back(req("v", Target::room(&next), &rose, 3, "a1")))
        .await
        .unwrap();
    let later = quiet
        .gift(req("v", Target::room(&next), &rose, 1, "a2"))
        .await
        .unwrap();
    assert_eq!(
        later.ack.seq, 2,
        "no combo_end took a seq between the gifts"
    );
    quiet
        .gift(back(req("v", Target::room(&ended), &rose, 2, "b1")))
        .await
        .unwrap();
    quiet.end_room(&ended).await.unwrap();
    let mut conn = raw(&url).await;
    assert!(
        !streak_key_exists(&mut conn, &ended).await,
        "the room's end dropped the expired streak"
    );
    assert_eq!(
        ended_combos(quiet.streak_ends(100).await.unwrap()),
        Vec::<(String, u32)>::new(),
        "neither the next gift nor the room's end ended an expired streak"
    );

    // The reaper (of a second node on the same Redis): the expired streak
    // is dropped, the fresh ones ended: the new streak the later gift
    // began (combo 1, not 4) and one more.
    let reaping = redis_engine(&url, cfg(50), hub, 30_000).await;
    let (old, fresh) = (format!("old{db}"), format!("fresh{db}"));
    for room in [&old, &fresh] {
        reaping
            .open_target(&Target::room(room), "cr", 0)
            .await
            .unwrap();
    }
    reaping
        .gift(back(req("v", Target::room(&old), &rose, 4, "c1")))
        .await
        .unwrap();
    reaping
        .gift(req("v", Target::room(&fresh), &rose, 5, "d1"))
        .await
        .unwrap();
    let mut ends = Vec::new();
    for _ in 0..100 {
        ends.extend(ended_combos(reaping.streak_ends(100).await.unwrap()));
        if ends.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    ends.extend(ended_combos(reaping.streak_ends(100).await.unwrap()));
    ends.sort();
    let mut want = vec![(fresh.clone(), 5), (next.clone(), 1)];
    want.sort();
    assert_eq!(ends, want, "only the fresh streaks ended");
    assert!(
        !streak_key_exists(&mut conn, &old).await,
        "the reaper dropped the expired streak's key"
    );
}

/// Whether sender `v`'s streak key on room `room` exists.
async fn streak_key_exists(conn: &mut redis::aio::MultiplexedConnection, room: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(format!("{{gs}}:cs:room:{room}:v"))
        .query_async::<i64>(conn)
        .await
        .unwrap()
        == 1
}

#[tokio::test]
async fn credits_above_the_scripts_exact_range_are_refused() {
    let Some((url, _)) = common::services::fresh_redis_db().await else {
        return;
    };
    let red = redis_engine(&url, counters_cfg(), Hub::new(HubConfig::default()), 30_000).await;
    assert_eq!(red.credit("u", 75, "purchase:2").await.unwrap(), 75);
    let big = giftstream::counters::redis::AMOUNT_MAX;
    assert_eq!(
        red.credit("u", big, "purchase:3").await.unwrap_err().code(),
        ErrorCode::BadRequest
    );
    assert_eq!(
        red.balance("u").await.unwrap(),
        75,
        "a refused credit changes nothing"
    );
}

// --------------------------------------------------- exactly-once settlement

/// Where a ledger fault strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// The commit fails; nothing is written.
    Before,
    /// The commit is written, but the worker is told it failed.
    After,
}

/// A ledger's fault state: counts what it is given and fails on demand.
struct Faults {
    next: parking_lot::Mutex<Vec<Fault>>,
    gifts_committed: AtomicUsize,
}

/// A real ledger behind [`Faults`].
type FaultyLedger = Hooked<Faults>;

impl Faults {
    fn ledger(inner: Arc<dyn Ledger>) -> Arc<FaultyLedger> {
        Hooked::new(
            inner,
            Faults {
                next: parking_lot::Mutex::new(Vec::new()),
                gifts_committed: AtomicUsize::new(0),
            },
        )
    }
    fn fail_next(&self, faults: &[Fault]) {
        let mut n = self.next.lock();
        n.clear();
        n.extend(faults.iter().rev());
    }
}

#[async_trait]
impl CommitHook for Faults {
    async fn commit_batch(&self, inner: &dyn Ledger, batch: &Batch) -> GsResult<bool> {
        let fault = self.next.lock().pop().unwrap_or(Fault::None);
        if fault == Fault::Before {
            return Err(giftstream::error::Error::internal(
                "injected: commit failed",
            ));
        }
        let applied = inner.commit_batch(batch).await?;
        if applied {
            self.gifts_committed
                .fetch_add(batch.gifts.len(), Ordering::Relaxed);
        }
        if fault == Fault::After {
            return Err(giftstream::error::Error::internal(
                "injected: reply lost after the commit",
            ));
        }
        Ok(applied)
    }
}

/// Grant `coins` through the ledger first, then Redis (as ops::credit does).
async fn grant(ledger: &dyn Ledger, c: &dyn Counters, user: &str, coins: i64) {
    let op = CreditOp {
        op_id: format!("grant:{user}"),
        kind: "grant".into(),
        user: user.into(),
        coins,
    };
    let out = ledger.credit(&op).await.unwrap();
    c.credit(user, out.op.coins, &out.op.op_id).await.unwrap();
}

/// Send `n` random gifts; the accepted ones are added to `accepted`.
async fn send_some(
    c: &dyn Counters,
    rng: &mut StdRng,
    rooms: &[String],
    senders: &[String],
    n: usize,
    next_id: &mut usize,
    accepted: &mut BTreeSet<(String, u64)>,
) {
    let gifts = [
        gift("rose", 1, 1),
        gift("heart", 5, 2),
        gift("lion", 29, 14),
    ];
    for _ in 0..n {
        let room = &rooms[rng.gen_range(0..rooms.len())];
        let sender = &senders[rng.gen_range(0..senders.len())];
        let g = &gifts[rng.gen_range(0..gifts.len())];
        *next_id += 1;
        match c
            .gift(req(
                sender,
                Target::room(room),
                g,
                rng.gen_range(1..4),
                &format!("id{}", *next_id),
            ))
            .await
        {
            Ok(o) => {
                assert!(!o.duplicate);
                assert!(
                    accepted.insert((format!("room:{room}"), o.ack.seq)),
                    "a seq was handed out twice"
                );
            }
            Err(e) if e.code() == ErrorCode::InsufficientFunds => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

/// Check the ledger holds exactly `accepted`, once each, and that money
/// is conserved and Redis has nothing left pending.
async fn check_exactly_once(
    ledger: &dyn Ledger,
    red: &RedisCounters,
    accepted: &BTreeSet<(String, u64)>,
    senders: &[String],
    creators: &[&str],
) {
    let totals = ledger.totals().await.unwrap();
    assert_eq!(
        totals.gifts as usize,
        accepted.len(),
        "ledger gift rows = accepted gifts (nothing missing, nothing twice)"
    );
    for (target, seq) in accepted {
        assert!(
            ledger.has_gift(target, *seq).await.unwrap(),
            "gift {target}#{seq} missing in the ledger"
        );
    }
    assert_eq!(
        totals.coins_minted,
        totals.coins_in_wallets + totals.coins_spent,
        "coins conserved: {totals:?}"
    );
    assert_eq!(totals.coins_spent, totals.gift_coins);
    assert_eq!(totals.diamonds_credited, totals.gift_diamonds);
    for (cur, sum) in &totals.entry_sums {
        assert_eq!(*sum, 0, "entries of {cur} sum to zero");
    }
    for c in creators {
        assert_eq!(
            red.pending_diamonds(c).await.unwrap(),
            0,
            "pending diamonds of {c} all settled"
        );
    }
    for s in senders {
        let l = ledger
            .balance(&ledger::account::wallet(s), ledger::COIN)
            .await
            .unwrap();
        assert_eq!(
            red.balance(s).await.unwrap(),
            l,
            "Redis and ledger agree on {s}'s wallet"
        );
    }
    assert_eq!(red.pending_len().await.unwrap(), 0);
}

#[tokio::test]
async fn settlement_is_exactly_once_across_random_crash_points() {
    if common::services::fresh_redis_url().await.is_none() {
        return;
    }
    // GIFTSTREAM_TEST_CRASH_SEEDS=N runs N seeds (default 6) for a longer soak.
    let seeds: u64 = std::env::var("GIFTSTREAM_TEST_CRASH_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    for seed in 0..seeds {
        let (url, db) = common::services::fresh_redis_db().await.expect("redis");
        let mut rng = StdRng::seed_from_u64(seed);
        let inner = ledger::open("sqlite::memory:", 1).await.unwrap();
        let faulty = Faults::ledger(inner);
        let ledger: Arc<dyn Ledger> = faulty.clone();
        let cfg = counters_cfg();
        let hub = Hub::new(HubConfig::default());
        let front = redis_engine(&url, cfg.clone(), hub.clone(), 0).await;
        let rooms: Vec<String> = (0..3).map(|i| format!("x{db}r{i}")).collect();
        let creators = ["c0", "c1", "c2"];
        for (r, c) in rooms.iter().zip(creators) {
            ledger.open_target(&Target::room(r), c).await.unwrap();
            front.open_target(&Target::room(r), c, 0).await.unwrap();
        }
        let senders: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
        for s in &senders {
            grant(ledger.as_ref(), front.as_ref(), s, 400).await;
        }
        let mut accepted = BTreeSet::new();
        let mut next_id = 0;
        let mut crashes = 0;
        for _round in 0..40 {
            let n = rng.gen_range(0..25);
            send_some(
                front.as_ref(),
                &mut rng,
                &rooms,
                &senders,
                n,
                &mut next_id,
                &mut accepted,
            )
            .await;
            // A fresh worker process (its own consumer), claiming any entry
            // a dead one left behind (claim_idle_ms = 0).
            let worker = redis_engine(&url, cfg.clone(), Hub::new(HubConfig::default()), 0).await;
            let len_max = rng.gen_range(1..20);
            let point = rng.gen_range(0..7);
            let Some(batch) = worker.drain(len_max).await.unwrap() else {
                continue;
            };
            match point {
                0 => {
                    // Dies right after reading.
                    crashes += 1;
                }
                1 => {
                    // Dies during the commit (nothing written).
                    faulty.fail_next(&[Fault::Before]);
                    assert!(ledger.commit_batch(&batch).await.is_err());
                    crashes += 1;
                }
                2 => {
                    // Dies after the commit, before the acknowledgement.
                    ledger.commit_batch(&batch).await.unwrap();
                    crashes += 1;
                }
                3 => {
                    // Dies during a retry: first attempt wrote but answered
                    // an error, the retry is cut short.
                    faulty.fail_next(&[Fault::After]);
                    assert!(ledger.commit_batch(&batch).await.is_err());
                    crashes += 1;
                }
                4 => {
                    // Retries until it succeeds, then acknowledges.
                    faulty.fail_next(&[Fault::Before, Fault::After]);
                    let mut done = false;
                    for _ in 0..5 {
                        if ledger.commit_batch(&batch).await.is_ok() {
                            done = true;
                            break;
                        }
                    }
                    assert!(done);
                    worker.settled(&batch).await.unwrap();
                }
                5 => {
                    ledger.commit_batch(&batch).await.unwrap();
                    worker.settled(&batch).await.unwrap();
                }
                _ => {
                    // Taken for dead while still alive: a second worker
                    // claims the same entries (claim_idle_ms = 0); both
                    // commit and both acknowledge. The ledger skips the
                    // repeated gifts and only the first XACK decrements.
                    let thief =
                        redis_engine(&url, cfg.clone(), Hub::new(HubConfig::default()), 0).await;
                    let stolen = thief
                        .drain(len_max)
                        .await
                        .unwrap()
                        .expect("the entries are claimable");
                    ledger.commit_batch(&stolen).await.unwrap();
                    thief.settled(&stolen).await.unwrap();
                    ledger.commit_batch(&batch).await.unwrap();
                    worker.settled(&batch).await.unwrap();
                    for c in creators {
                        assert!(
                            worker.pending_diamonds(c).await.unwrap() >= 0,
                            "no double decrement"
                        );
                    }
                }
            }
            drop(worker);
        }
        assert!(crashes > 5, "the seed exercised crash points");
        // A clean worker (the real settlement loop) finishes the job,
        // re-claiming whatever the dead ones held.
        let last = redis_engine(&url, cfg.clone(), Hub::new(HubConfig::default()), 0).await;
        let (w, _) = Worker::new(
            last.clone(),
            ledger.clone(),
            SettlementConfig {
                batch_len_max: 7,
                ..SettlementConfig::default()
            },
            QueueHome::Shared,
        );
        let mut conn = raw(&url).await;
        for _ in 0..1000 {
            let xlen: usize = redis::cmd("XLEN")
                .arg("{gs}:pending")
                .query_async(&mut conn)
                .await
                .unwrap();
            if xlen == 0 {
                break;
            }
            w.flush_once().await.unwrap();
        }
        check_exactly_once(ledger.as_ref(), &last, &accepted, &senders, &creators).await;
        let xlen: usize = redis::cmd("XLEN")
            .arg("{gs}:pending")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(xlen, 0, "every entry acknowledged and deleted");
        let pel: (usize, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg("{gs}:pending")
            .arg("settle")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(pel.0, 0, "no entry left in any consumer's pending list");
    }
}

#[tokio::test]
async fn two_workers_draining_concurrently_settle_each_gift_once() {
    let Some((url, db)) = common::services::fresh_redis_db().await else {
        return;
    };
    let inner = ledger::open("sqlite::memory:", 1).await.unwrap();
    let faulty = Faults::ledger(inner);
    let ledger: Arc<dyn Ledger> = faulty.clone();
    let cfg = counters_cfg();
    let front = redis_engine(&url, cfg.clone(), Hub::new(HubConfig::default()), 30_000).await;
    let rooms: Vec<String> = (0..2).map(|i| format!("tw{db}r{i}")).collect();
    let creators = ["c0", "c1"];
    for (r, c) in rooms.iter().zip(creators) {
        ledger.open_target(&Target::room(r), c).await.unwrap();
        front.open_target(&Target::room(r), c, 0).await.unwrap();
    }
    let senders: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    for s in &senders {
        grant(ledger.as_ref(), front.as_ref(), s, 2000).await;
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    let mut engines = Vec::new();
    for _ in 0..2 {
        let e = redis_engine(&url, cfg.clone(), Hub::new(HubConfig::default()), 30_000).await;
        engines.push(e.clone());
        let (w, _) = Worker::new(
            e,
            ledger.clone(),
            SettlementConfig {
                batch_len_max: 5,
                flush_interval_ms: 1,
                ..SettlementConfig::default()
            },
            QueueHome::Shared,
        );
        workers.push(tokio::spawn(w.run(stop.clone())));
    }
    let mut rng = StdRng::seed_from_u64(42);
    let mut accepted = BTreeSet::new();
    let mut next_id = 0;
    for _ in 0..20 {
        send_some(
            front.as_ref(),
            &mut rng,
            &rooms,
            &senders,
            20,
            &mut next_id,
            &mut accepted,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.cancel();
    for w in workers {
        w.await.unwrap().unwrap();
    }
    // A stopping Redis worker leaves the rest in the shared stream; one of
    // them settles what is left, as the next worker would.
    let (w, _) = Worker::new(
        engines[0].clone(),
        ledger.clone(),
        SettlementConfig::default(),
        QueueHome::Shared,
    );
    let mut conn = raw(&url).await;
    for _ in 0..100 {
        let xlen: usize = redis::cmd("XLEN")
            .arg("{gs}:pending")
            .query_async(&mut conn)
            .await
            .unwrap();
        if xlen == 0 {
            break;
        }
        w.flush_once().await.unwrap();
    }
    assert_eq!(
        faulty.gifts_committed.load(Ordering::Relaxed),
        accepted.len(),
        "no gift handed to two workers"
    );
    check_exactly_once(ledger.as_ref(), &engines[0], &accepted, &senders, &creators).await;
}

// ----------------------------------------------------------------- reconcile

#[tokio::test]
async fn reconcile_detects_and_repairs_lost_redis_data() {
    let Some((url, db)) = common::services::fresh_redis_db().await else {
        return;
    };
    let ledger = ledger::open("sqlite::memory:", 1).await.unwrap();
    let red = redis_engine(&url, counters_cfg(), Hub::new(HubConfig::default()), 30_000).await;
    // As at start-up: load Redis from the (empty) ledger, which marks it.
    red.restore(ledger.snapshot(86_400_000, 0).await.unwrap())
        .await
        .unwrap();
    let room = format!("rc{db}");
    ledger
        .open_target(&Target::room(&room), "cr")
        .await
        .unwrap();
    red.open_target(&Target::room(&room), "cr", 0)
        .await
        .unwrap();
    for s in ["a", "b"] {
        grant(ledger.as_ref(), red.as_ref(), s, 100).await;
    }
    let rose = gift("rose", 3, 2);
    for i in 0..6 {
        red.gift(req(
            if i % 2 == 0 { "a" } else { "b" },
            Target::room(&room),
            &rose,
            1,
            &format!("k{i}"),
        ))
        .await
        .unwrap();
    }
    // Settle part of it; the rest stays pending in the stream.
    let b = red.drain(4).await.unwrap().unwrap();
    ledger.commit_batch(&b).await.unwrap();
    red.settled(&b).await.unwrap();
    let clean = red.reconcile(ledger.as_ref(), false).await.unwrap();
    assert_eq!(clean.drift(), 0, "{clean:?}");
    assert_eq!(clean.pending_gifts, 2);
    // One more is committed but not yet acknowledged (a worker died after
    // the commit): it is in the ledger, so it no longer counts as pending.
    let b2 = red.drain(1).await.unwrap().unwrap();
    ledger.commit_batch(&b2).await.unwrap();
    let mid = red.reconcile(ledger.as_ref(), false).await.unwrap();
    assert_eq!((mid.drift(), mid.pending_gifts), (0, 1), "{mid:?}");
    red.settled(&b2).await.unwrap();

    // A wallet drifts (someone wrote Redis by hand).
    let mut c = raw(&url).await;
    let _: () = redis::cmd("SET")
        .arg("{gs}:bal:a")
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    let r = red.reconcile(ledger.as_ref(), false).await.unwrap();
    assert_eq!(r.wallet_drift.len(), 1, "{r:?}");
    let r = red.reconcile(ledger.as_ref(), true).await.unwrap();
    assert!(r.repaired);
    assert_eq!(
        red.reconcile(ledger.as_ref(), false).await.unwrap().drift(),
        0
    );
    assert_eq!(red.balance("a").await.unwrap(), 91);

    // The settlement stream's gift count drifts (it bounds
    // counters.pending_len_max): reported against the entries, repaired.
    let _: () = redis::cmd("SET")
        .arg("{gs}:pending:n")
        .arg(7)
        .query_async(&mut c)
        .await
        .unwrap();
    let r = red.reconcile(ledger.as_ref(), false).await.unwrap();
    assert_eq!(
        r.stream_count_drift,
        vec![("{gs}:pending:n".to_string(), 7, 1)],
        "{r:?}"
    );
    assert!(red.reconcile(ledger.as_ref(), true).await.unwrap().repaired);
    assert_eq!(
        red.reconcile(ledger.as_ref(), false).await.unwrap().drift(),
        0
    );
    assert_eq!(
        red.pending_len().await.unwrap(),
        1,
        "1 gift, not yet drained"
    );

    // Redis loses everything (FLUSHDB here: FLUSHALL would hit other tests).
    let _: () = redis::cmd("FLUSHDB").query_async(&mut c).await.unwrap();
    // Credits keep coming before anyone repairs (ledger first, then Redis).
    let op = CreditOp {
        op_id: "grant:b2".into(),
        kind: "grant".into(),
        user: "b".into(),
        coins: 5,
    };
    ledger.credit(&op).await.unwrap();
    assert_eq!(red.credit("b", 5, "grant:b2").await.unwrap(), 5);
    assert_eq!(
        red.gift(req("a", Target::room(&room), &rose, 1, "lost"))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::UnknownRoom,
        "no target until the repair"
    );
    let lost = red.reconcile(ledger.as_ref(), false).await.unwrap();
    assert!(lost.redis_empty);
    assert!(lost.drift() > 0);
    assert!(!lost.repaired);
    let fixed = red.reconcile(ledger.as_ref(), true).await.unwrap();
    assert!(fixed.repaired);
    let after = red.reconcile(ledger.as_ref(), false).await.unwrap();
    assert_eq!(after.drift(), 0, "{after:?}");
    // Balances are the ledger's (the 2 unsettled gifts died with Redis).
    for s in ["a", "b"] {
        let l = ledger
            .balance(&ledger::account::wallet(s), ledger::COIN)
            .await
            .unwrap();
        assert_eq!(red.balance(s).await.unwrap(), l);
    }
    assert_eq!(red.pending_diamonds("cr").await.unwrap(), 0);
    // Credits stay applied once; the room works again and never reuses a seq.
    assert_eq!(
        red.credit("a", 100, "grant:a").await.unwrap(),
        red.balance("a").await.unwrap()
    );
    let o = red
        .gift(req("a", Target::room(&room), &rose, 1, "new"))
        .await
        .unwrap();
    assert!(
        o.ack.seq > 6,
        "seq {} must skip the seqs lost with Redis",
        o.ack.seq
    );
    // The idempotency memory of settled gifts came back from the ledger.
    let dup = red
        .gift(req("a", Target::room(&room), &rose, 1, "k0"))
        .await
        .unwrap();
    assert!(dup.duplicate);
}

// ------------------------------------------------------------------ the app

#[tokio::test]
async fn app_runs_on_redis_with_ledger_acks() {
    let Some((url, db)) = common::services::fresh_redis_db().await else {
        return;
    };
    let mut cfg = Config::default();
    cfg.counters.url = url.clone();
    cfg.ledger.url = "sqlite::memory:".into();
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.http.metrics_listen = "127.0.0.1:0".into();
    cfg.gift.ack = giftstream::config::AckMode::Ledger;
    cfg.settlement.flush_interval_ms = 5;
    let running = giftstream::server::start(cfg).await.unwrap();
    let st = running.state.clone();
    let room = format!("app{db}");
    giftstream::app::ops::open_room(&st, &room, "cr")
        .await
        .unwrap();
    giftstream::app::ops::register_video(&st, &format!("vid{db}"), "cr", None)
        .await
        .unwrap();
    let op = CreditOp {
        op_id: "grant:v".into(),
        kind: "grant".into(),
        user: "v".into(),
        coins: 50,
    };
    let (_, bal) = giftstream::app::ops::credit(&st, op).await.unwrap();
    assert_eq!(bal, 50);
    let who = giftstream::auth::Identity {
        user: "v".into(),
        role: giftstream::auth::Role::Viewer,
        account_created_s: None,
    };
    let ack = giftstream::app::ops::gift(&st, &who, Target::room(&room), "rose", 2, "g1", None)
        .await
        .unwrap();
    assert_eq!((ack.seq, ack.balance), (1, 48));
    assert!(
        st.ledger
            .has_gift(&format!("room:{room}"), 1)
            .await
            .unwrap(),
        "ledger ack waited for the commit"
    );
    let ack = giftstream::app::ops::gift(
        &st,
        &who,
        Target::video(format!("vid{db}")),
        "rose",
        1,
        "g2",
        None,
    )
    .await
    .unwrap();
    assert_eq!((ack.seq, ack.balance), (1, 47));
    assert!(st
        .ledger
        .has_gift(&format!("video:vid{db}"), 1)
        .await
        .unwrap());
    running.stop().await.unwrap();
}

// ---------------------------------------------------------------- round trips

#[tokio::test]
async fn concurrent_gifts_share_one_multiplexed_connection() {
    let Some((url, db)) = common::services::fresh_redis_db().await else {
        return;
    };
    let room = format!("rt{db}");
    let red = redis_engine(&url, counters_cfg(), Hub::new(HubConfig::default()), 30_000).await;
    red.open_target(&Target::room(&room), "cr", 0)
        .await
        .unwrap();
    let rose = gift("rose", 1, 1);
    let (tasks_len, per_task) = (64usize, 40usize);
    for t in 0..tasks_len {
        red.credit(&format!("u{t}"), per_task as i64, &format!("g{t}"))
            .await
            .unwrap();
    }
    let mut c = raw(&url).await;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..tasks_len {
        let red = red.clone();
        let rose = rose.clone();
        let room = room.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_task {
                red.gift(req(
                    &format!("u{t}"),
                    Target::room(&room),
                    &rose,
                    1,
                    &format!("{t}-{i}"),
                ))
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = started.elapsed();
    let n = tasks_len * per_task;
    eprintln!(
        "{n} gifts from {tasks_len} concurrent tasks in {took:?} ({:.0}/s)",
        n as f64 / took.as_secs_f64()
    );
    // One connection for commands, one for pub/sub, this test's own: no
    // pool, no connection per gift.
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut c)
        .await
        .unwrap();
    let on_db = clients
        .lines()
        .filter(|l| l.contains(&format!(" db={db} ")))
        .count();
    assert!(on_db <= 3, "{on_db} connections on this test's database");
    assert_eq!(
        red.target(&Target::room(&room)).await.unwrap().unwrap().seq,
        n as u64
    );
    assert_eq!(red.pending_len().await.unwrap(), n);
}

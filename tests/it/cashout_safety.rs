//! Issue 11's cash-out, ledger-lock and grant items, end to end: a real
//! server, the Stripe contract double (transfers, their list, forgotten
//! Idempotency-Keys, a Transfer nobody asked for), every ledger engine where
//! the behaviour depends on it.

use crate::common;

use std::time::Duration;

use common::server::{embedded, engines, test_config, EngineSpec, TestServer};
use common::stripe_double::{StripeDouble, TransferMode};
use giftstream::auth::Role;
use giftstream::config::Config;
use giftstream::ledger::{account, CashoutRecord, COIN};
use giftstream::payments::recover_cashouts;
use giftstream::payments::webhook::sign;
use giftstream::protocol::now_ms;
use serde_json::{json, Value};

const KEY: &str = "sk_test_giftstream_tests";

/// A server with payments on and its double.
pub(crate) struct Pay {
    pub(crate) s: TestServer,
    pub(crate) double: StripeDouble,
    secret: String,
}

impl Pay {
    pub(crate) async fn start(engine: &EngineSpec, tweak: impl FnOnce(&mut Config)) -> Pay {
        let double = StripeDouble::start(None).await;
        let secret = format!("whsec_{}", uuid::Uuid::new_v4().simple());
        let (url, sec) = (double.url.clone(), secret.clone());
        let s = TestServer::start(engine, move |c| {
            c.stripe.secret_key = KEY.into();
            c.stripe.webhook_secret = sec;
            c.stripe.api_base_url = url;
            c.stripe.retry_backoff_ms = 10;
            c.stripe.cashout_diamonds_min = 100;
            tweak(c);
        })
        .await;
        Pay { s, double, secret }
    }

    /// Onboard `creator` and enable payouts (a signed `account.updated`).
    pub(crate) async fn onboard(&self, creator: &str) -> String {
        let tok = self.s.token(creator, Role::Creator);
        let (st, v) = self
            .s
            .post("/v1/creators/me/payouts/onboard", &tok, json!({}))
            .await;
        assert_eq!(st, 200, "onboard: {v}");
        let acct = v["account"].as_str().unwrap().to_string();
        let body = json!({
            "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
            "object": "event", "api_version": "2026-09-30.endive",
            "created": now_ms() / 1000, "livemode": false, "pending_webhooks": 1,
            "type": "account.updated",
            "data": { "object": { "id": acct, "object": "account", "payouts_enabled": true } }
        })
        .to_string();
        let r = reqwest::Client::new()
            .post(self.s.url("/v1/stripe/webhook"))
            .header("content-type", "application/json")
            .header(
                "Stripe-Signature",
                sign(body.as_bytes(), &self.secret, now_ms() / 1000),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        acct
    }

    /// `creator` gets 500 diamonds per galaxy, settled.
    pub(crate) async fn earn(&self, creator: &str, room: &str, galaxies: u32) {
        self.s.open_room(creator, room).await;
        self.s
            .grant("fan", 1000 * galaxies as i64, &format!("g-{room}"))
            .await;
        let mut ws = self.s.ws("fan", Role::Viewer).await;
        ws.join(room).await;
        ws.gift(room, "galaxy", galaxies, &format!("gal-{room}"))
            .await;
        self.s.settled().await;
    }

    pub(crate) async fn cashout(&self, creator: &str, diamonds: i64, id: &str) -> (u16, Value) {
        self.s
            .post(
                "/v1/creators/me/cashouts",
                &self.s.token(creator, Role::Creator),
                json!({ "diamonds": diamonds, "id": id }),
            )
            .await
    }

    async fn record(&self, id: &str) -> CashoutRecord {
        let rec = self.s.state().ledger.cashout(id).await.unwrap();
        rec.expect("cash-out recorded")
    }

    /// POSTs to /v1/transfers that carried `key`.
    fn posts_with(&self, key: &str) -> usize {
        self.double
            .requests()
            .iter()
            .filter(|(m, p, k)| m == "POST" && p == "/v1/transfers" && k.as_deref() == Some(key))
            .count()
    }

    async fn assert_sums_zero(&self) {
        let t = self.s.state().ledger.totals().await.unwrap();
        for (cur, sum) in &t.entry_sums {
            assert_eq!(*sum, 0, "entries of {cur} sum to zero: {t:?}");
        }
    }

    async fn earnings(&self, creator: &str) -> (i64, i64, i64, i64) {
        let e = self.s.earnings(creator).await;
        (
            e["diamonds_settled"].as_i64().unwrap(),
            e["diamonds_cashout_pending"].as_i64().unwrap(),
            e["diamonds_cashed_out"].as_i64().unwrap(),
            e["cashed_out_cents"].as_i64().unwrap(),
        )
    }
}

/// The sum of the samples of metric `name` in /metrics (process-wide: the
/// tests of this binary share one recorder, so compare deltas).
async fn metric(s: &TestServer, name: &str) -> f64 {
    let text = reqwest::get(s.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split([' ', '{']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Run `sql` on the test's ledger database directly.
async fn ledger_sql(ledger_url: &str, sql: &str) {
    if ledger_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(ledger_url).await.unwrap();
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(ledger_url).await.unwrap();
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

// ---- critical 1: unambiguous cash-out keys, a recovery that goes on ----------------------

/// Issue 11, critical 1: the start of cash-out `x:done` was the ledger
/// operation that completes cash-out `x`; the second one's ledger write
/// rolled back after Stripe paid (a 500, pending forever). Fails on the old
/// code (the second cash-out answers 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cashout_x_done_then_x_both_complete_with_one_transfer_each() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = Pay::start(&engine, |_| {}).await;
        p.earn("cat", "collide-room", 2).await;
        let acct = p.onboard("cat").await;
        for (id, diamonds) in [("x:done", 400), ("x", 300), ("x:reversed", 100)] {
            let (st, v) = p.cashout("cat", diamonds, id).await;
            assert_eq!(
                (st, v["status"].as_str(), v["diamonds"].as_i64()),
                (200, Some("completed"), Some(diamonds)),
                "{id}: {v}"
            );
        }
        let tr = p.double.transfers();
        assert_eq!(tr.len(), 3, "one Transfer each: {tr:?}");
        let mut amounts: Vec<i64> = tr.iter().map(|t| t["amount"].as_i64().unwrap()).collect();
        amounts.sort();
        assert_eq!(amounts, vec![50, 150, 200]);
        assert!(tr.iter().all(|t| t["destination"] == acct.as_str()));
        for id in ["cat:x:done", "cat:x", "cat:x:reversed"] {
            let rec = p.record(id).await;
            assert_eq!(rec.status, "completed", "{id}");
            let t = tr
                .iter()
                .find(|t| t["metadata"]["giftstream_cashout"] == id);
            assert_eq!(rec.transfer.as_deref(), t.and_then(|t| t["id"].as_str()));
            assert_eq!(
                t.unwrap()["transfer_group"].as_str(),
                Some(rec.transfer_group.as_str()),
                "the Transfer carries its group"
            );
        }
        assert_eq!(p.earnings("cat").await, (200, 0, 800, 400));
        p.assert_sums_zero().await;
        p.s.stop().await;
    }
}

/// Issue 11, critical 1: a pending cash-out whose recovery fails (here its
/// ledger write is made to fail) no longer stops the pass: the later one is
/// recovered, the failing one is backed off, counted and logged. Fails on
/// the old code (the pass returned at the first error).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_failing_pending_cashout_does_not_stop_recovery_of_a_later_one() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = Pay::start(&engine, |c| {
            c.stripe.retry_len_max = 0;
            c.stripe.cashout_retry_backoff_ms = 60_000;
        })
        .await;
        p.earn("dan", "stuck-room", 2).await;
        p.onboard("dan").await;
        // Neither Transfer is made: both stay pending, `bad` first.
        p.double.set_transfer_mode(TransferMode::Failing(500, 2));
        for id in ["bad", "good"] {
            let (st, v) = p.cashout("dan", 300, id).await;
            assert_eq!((st, v["status"].as_str()), (200, Some("pending")), "{v}");
        }
        // `bad` cannot end in the ledger.
        let trigger = if engine.ledger_url.starts_with("sqlite:") {
            "CREATE TRIGGER fail_bad BEFORE UPDATE OF status ON cashouts \
             WHEN NEW.cashout_id = 'dan:bad' AND NEW.status <> 'pending' \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        } else {
            "CREATE FUNCTION fail_bad() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'injected failure'; END $$; \
             CREATE TRIGGER fail_bad BEFORE UPDATE OF status ON cashouts FOR EACH ROW \
             WHEN (NEW.cashout_id = 'dan:bad' AND NEW.status <> 'pending') \
             EXECUTE FUNCTION fail_bad();"
        };
        ledger_sql(&engine.ledger_url, trigger).await;
        let failures_before = metric(&p.s, "giftstream_cashout_recovery_failures_total").await;
        let ended = recover_cashouts(p.s.state())
            .await
            .expect("the pass goes on");
        assert_eq!(ended, 1);
        assert_eq!(p.record("dan:good").await.status, "completed");
        let bad = p.record("dan:bad").await;
        assert_eq!((bad.status.as_str(), bad.failures), ("pending", 1));
        assert!(bad.next_try_ms >= now_ms() + 50_000, "backed off: {bad:?}");
        assert!(
            metric(&p.s, "giftstream_cashout_recovery_failures_total").await
                >= failures_before + 1.0
        );
        // Within its backoff the next pass leaves it alone.
        assert_eq!(recover_cashouts(p.s.state()).await.unwrap(), 0);
        assert_eq!(p.record("dan:bad").await.failures, 1);
        // Bad Transfer made (the pass reached Stripe), good's too.
        assert_eq!(p.double.transfers().len(), 2);
        assert_eq!(p.earnings("dan").await.1, 300, "bad still pending");
        p.assert_sums_zero().await;
        p.s.stop().await;
    }
}

// ---- high 3: Idempotency-Keys expire; look the Transfer up --------------------------------

fn lookup_config(c: &mut Config) {
    c.stripe.request_timeout_ms = 300;
    c.stripe.retry_len_max = 0;
    c.stripe.transfer_lookup_after_s = 1;
}

/// Issue 11, high 3: the Transfer was made but its answer lost, and Stripe
/// has since forgotten the Idempotency-Key. Retrying with the key would pay
/// twice (it does on the old code: two Transfers); the lookup finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_old_pending_transfer_found_at_stripe_completes_without_a_second_one() {
    let p = Pay::start(&embedded(), lookup_config).await;
    p.earn("eve", "lookup-room", 1).await;
    p.onboard("eve").await;
    p.double
        .set_transfer_mode(TransferMode::ApplyThenHang(Duration::from_secs(2)));
    let (st, v) = p.cashout("eve", 400, "l1").await;
    assert_eq!((st, v["status"].as_str()), (200, Some("pending")), "{v}");
    assert_eq!(p.double.transfers().len(), 1, "the money moved");
    p.double.set_transfer_mode(TransferMode::Normal);
    p.double.forget_idempotency_keys();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(recover_cashouts(p.s.state()).await.unwrap(), 1);
    let rec = p.record("eve:l1").await;
    let tr = p.double.transfers();
    assert_eq!(tr.len(), 1, "no second Transfer: {tr:?}");
    assert_eq!(rec.status, "completed");
    assert_eq!(rec.transfer.as_deref(), tr[0]["id"].as_str());
    assert_eq!(rec.attempt, 1);
    assert_eq!(p.posts_with(&rec.transfer_key), 1, "not sent again");
    assert!(p
        .double
        .requests()
        .iter()
        .any(|(m, path, _)| m == "GET" && path == "/v1/transfers"));
    assert_eq!(p.earnings("eve").await, (100, 0, 400, 200));
    p.assert_sums_zero().await;
    p.s.stop().await;
}

/// Issue 11, high 3: no Transfer at Stripe after the bound: sent once more
/// under a new key (attempt 2, recorded), completed, one Transfer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_old_pending_transfer_not_found_at_stripe_is_made_once_under_a_new_key() {
    let p = Pay::start(&embedded(), lookup_config).await;
    p.earn("fay", "again-room", 1).await;
    p.onboard("fay").await;
    p.double.set_transfer_mode(TransferMode::Failing(500, 1));
    let (st, v) = p.cashout("fay", 400, "n1").await;
    assert_eq!((st, v["status"].as_str()), (200, Some("pending")), "{v}");
    let first = p.record("fay:n1").await;
    assert!(p.double.transfers().is_empty());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(recover_cashouts(p.s.state()).await.unwrap(), 1);
    let rec = p.record("fay:n1").await;
    assert_eq!(rec.status, "completed");
    assert_eq!(rec.attempt, 2, "the new attempt is recorded");
    assert_ne!(rec.transfer_key, first.transfer_key);
    assert_eq!(rec.transfer_group, first.transfer_group);
    assert_eq!(
        (
            p.posts_with(&first.transfer_key),
            p.posts_with(&rec.transfer_key)
        ),
        (1, 1)
    );
    let tr = p.double.transfers();
    assert_eq!(tr.len(), 1, "{tr:?}");
    assert_eq!(rec.transfer.as_deref(), tr[0]["id"].as_str());
    assert_eq!(
        tr[0]["transfer_group"].as_str(),
        Some(rec.transfer_group.as_str())
    );
    // Another pass changes nothing.
    assert_eq!(recover_cashouts(p.s.state()).await.unwrap(), 0);
    assert_eq!(p.double.transfers().len(), 1);
    p.assert_sums_zero().await;
    p.s.stop().await;
}

/// Issue 11, high 3: a Transfer in the cash-out's group that does not match
/// it (another amount) is never taken as its completion: flagged, the
/// diamonds back, counted in `giftstream_cashout_mismatch_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mismatching_transfer_is_flagged_reversed_and_counted() {
    let p = Pay::start(&embedded(), lookup_config).await;
    p.earn("gus", "odd-room", 1).await;
    let acct = p.onboard("gus").await;
    p.double.set_transfer_mode(TransferMode::Failing(500, 1));
    let (st, v) = p.cashout("gus", 400, "m1").await;
    assert_eq!((st, v["status"].as_str()), (200, Some("pending")), "{v}");
    let rec = p.record("gus:m1").await;
    let odd = p.double.add_transfer(
        &acct,
        rec.amount_cents + 1,
        Some(&rec.transfer_group),
        json!({ "giftstream_cashout": "gus:m1" }),
    );
    let before = metric(&p.s, "giftstream_cashout_mismatch_total").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(recover_cashouts(p.s.state()).await.unwrap(), 1);
    let rec = p.record("gus:m1").await;
    assert_eq!(
        (rec.status.as_str(), rec.transfer.as_deref()),
        ("flagged", odd["id"].as_str())
    );
    assert_eq!(p.earnings("gus").await, (500, 0, 0, 0), "diamonds back");
    assert!(metric(&p.s, "giftstream_cashout_mismatch_total").await >= before + 1.0);
    assert_eq!(p.double.transfers().len(), 1, "nothing sent on top");
    let (st, v) = p.cashout("gus", 400, "m1").await;
    assert_eq!((st, v["status"].as_str()), (200, Some("flagged")), "{v}");
    p.assert_sums_zero().await;
    p.s.stop().await;
}

// ---- medium: one process per ledger with the in-process counters -------------------------

/// Issue 11: two processes with `memory` counters on one ledger would each
/// hand out seqs and spend coins on their own. The second refuses to start,
/// naming the lock; once the first stops, it starts. Redis counters share
/// (two start). Fails on the old code (the second started).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_process_with_memory_counters_on_one_ledger_refuses_to_start() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let a = TestServer::start(&engine, |_| {}).await;
        let second = giftstream::server::start(test_config(&engine)).await;
        if engine.counters_url == "memory" {
            let e = match second {
                Ok(_) => panic!("{}: a second process started", engine.name),
                Err(e) => format!("{e:#}"),
            };
            assert!(e.contains("exclusive lock"), "{e}");
            assert!(e.contains("held by another process"), "{e}");
            if engine.ledger_url.starts_with("sqlite:") {
                assert!(e.contains("ledger.db.lock"), "names the lock file: {e}");
            } else {
                assert!(e.contains("advisory lock"), "{e}");
            }
            a.stop().await;
            let b = TestServer::start(&engine, |_| {}).await;
            b.stop().await;
        } else {
            let b = second.expect("redis counters: several nodes");
            b.stop().await.unwrap();
            a.stop().await;
        }
    }
}

// ---- medium: grants name their admin, and stop at a daily cap -----------------------------

/// Issue 11: a grant records its admin (read back from the database), and
/// an admin's grants stop at `admin.grant_coins_per_day_max`: beyond,
/// `rate_limited`, wallet and ledger unchanged. Fails on the old code (no
/// cap, no admin recorded).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grants_name_their_admin_and_stop_at_the_daily_cap() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let s = TestServer::start(&engine, |c| c.admin.grant_coins_per_day_max = 1000).await;
        let root = s.token("root", Role::Admin);
        let grant = |coins: i64, id: &str| {
            s.post(
                "/v1/admin/grants",
                &root,
                json!({ "user": "vic", "coins": coins, "id": id }),
            )
        };
        let (st, v) = grant(700, "cap-1").await;
        assert_eq!((st, v["balance"].as_i64()), (200, Some(700)), "{v}");
        let totals = s.state().ledger.totals().await.unwrap();
        let (st, v) = grant(400, "cap-2").await;
        assert_eq!((st, v["code"].as_str()), (429, Some("rate_limited")), "{v}");
        assert_eq!(s.wallet("vic").await, 700, "wallet unchanged");
        assert_eq!(
            s.state()
                .ledger
                .balance(&account::wallet("vic"), COIN)
                .await
                .unwrap(),
            700
        );
        assert_eq!(
            s.state().ledger.totals().await.unwrap(),
            totals,
            "ledger unchanged"
        );
        // A replay of the first is answered, not counted.
        let (st, v) = grant(700, "cap-1").await;
        assert_eq!((st, v["replayed"].as_bool()), (200, Some(true)), "{v}");
        let (st, _) = grant(300, "cap-3").await;
        assert_eq!(st, 200, "up to the cap");
        let q = "SELECT admin, grantee, coins FROM grants ORDER BY created_ms";
        let rows: Vec<(String, String, i64)> = if engine.ledger_url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&engine.ledger_url).await.unwrap();
            sqlx::query_as(q).fetch_all(&pool).await.unwrap()
        } else {
            let pool = sqlx::PgPool::connect(&engine.ledger_url).await.unwrap();
            sqlx::query_as(q).fetch_all(&pool).await.unwrap()
        };
        assert_eq!(
            rows,
            vec![
                ("root".to_string(), "vic".to_string(), 700),
                ("root".to_string(), "vic".to_string(), 300)
            ]
        );
        s.stop().await;
    }
}

// ---- cash-outs started before migration 0006 ---------------------------------------------

/// A cash-out row written by the 0005 schema reads after migration 0006
/// with its first Idempotency-Key (its id, as the old code sent it) and no
/// group, on every ledger engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cashouts_written_before_migration_0006_keep_their_key() {
    let sqlite = embedded(); // keeps its folder while the test runs
    let mut urls = vec![sqlite.ledger_url.clone()];
    if let Some(pg) = common::services::fresh_postgres_url().await {
        urls.push(pg);
    }
    let insert = "INSERT INTO cashouts (cashout_id, creator, diamonds, amount_cents, status, created_ms) \
                  VALUES ('hal:old', 'hal', 400, 200, 'pending', 1700000000000); \
                  INSERT INTO cashouts (cashout_id, creator, diamonds, amount_cents, status, transfer, created_ms, finished_ms) \
                  VALUES ('hal:done', 'hal', 100, 50, 'completed', 'tr_old', 1700000000000, 1700000000001);";
    for url in urls {
        let (dir, take) = if url.starts_with("sqlite:") {
            ("migrations/sqlite", 5)
        } else {
            ("migrations/postgres", 5)
        };
        let mut m = sqlx::migrate::Migrator::new(std::path::Path::new(dir))
            .await
            .unwrap();
        m.migrations = m
            .migrations
            .iter()
            .take(take)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        if url.starts_with("sqlite:") {
            let opts = url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
            m.run(&pool).await.unwrap();
            sqlx::raw_sql(insert).execute(&pool).await.unwrap();
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            m.run(&pool).await.unwrap();
            sqlx::raw_sql(insert).execute(&pool).await.unwrap();
            pool.close().await;
        }
        let l = giftstream::ledger::open(&url, 2).await.expect("migrates");
        let old = l.cashout("hal:old").await.unwrap().unwrap();
        assert_eq!(
            (
                old.status.as_str(),
                old.transfer_key.as_str(),
                old.transfer_group.as_str(),
                old.attempt,
                old.attempt_ms
            ),
            ("pending", "hal:old", "", 1, 1_700_000_000_000),
            "{url}"
        );
        let done = l.cashout("hal:done").await.unwrap().unwrap();
        assert_eq!(
            (done.status.as_str(), done.transfer.as_deref()),
            ("completed", Some("tr_old"))
        );
        assert_eq!(l.cashouts_pending(10).await.unwrap().len(), 1);
    }
}

/// A pending cash-out started before migration 0006 is retried with its
/// first key and the same parameters (no `transfer_group`), and once old
/// it is looked up by destination and metadata, not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cashout_started_before_0006_is_retried_with_its_key_then_looked_up() {
    let p = Pay::start(&embedded(), lookup_config).await;
    p.earn("hal", "legacy-room", 1).await;
    let acct = p.onboard("hal").await;
    let legacy = |id: &str| CashoutRecord {
        cashout_id: id.into(),
        creator: "hal".into(),
        diamonds: 200,
        amount_cents: 100,
        status: "pending".into(),
        transfer_key: id.into(),
        ..Default::default()
    };
    let l = &p.s.state().ledger;
    // Recent: sent again under its first key, without a group.
    l.cashout_begin(&legacy("hal:old2")).await.unwrap();
    assert_eq!(recover_cashouts(p.s.state()).await.unwrap(), 1);
    assert_eq!(p.posts_with("hal:old2"), 1);
    let tr = p.double.transfers();
    assert_eq!(tr.len(), 1);
    assert_eq!(tr[0]["transfer_group"], Value::Null);
    assert_eq!(p.record("hal:old2").await.status, "completed");
    // Old, made by the old code and its answer lost: found by destination.
    l.cashout_begin(&legacy("hal:old1")).await.unwrap();
    let made = p.double.add_transfer(
        &acct,
        100,
        None,
        json!({ "giftstream_cashout": "hal:old1" }),
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(recover_cashouts(p.s.state()).await.unwrap(), 1);
    let rec = p.record("hal:old1").await;
    assert_eq!(
        (rec.status.as_str(), rec.transfer.as_deref()),
        ("completed", made["id"].as_str())
    );
    assert_eq!(p.posts_with("hal:old1"), 0, "not sent again");
    assert_eq!(p.double.transfers().len(), 2);
    p.assert_sums_zero().await;
    p.s.stop().await;
}

/// The new limits are validated at start with an error naming the key.
#[test]
fn new_limits_are_validated_naming_their_key() {
    type Tweak = fn(&mut Config);
    let cases: [(&str, Tweak); 5] = [
        ("stripe.transfer_lookup_after_s", |c| {
            c.stripe.transfer_lookup_after_s = 86_400
        }),
        ("stripe.transfer_lookup_after_s", |c| {
            c.stripe.transfer_lookup_after_s = 0
        }),
        ("stripe.cashout_retry_backoff_ms", |c| {
            c.stripe.cashout_retry_backoff_ms = 0
        }),
        ("stripe.cashout_retry_backoff_ms_max", |c| {
            c.stripe.cashout_retry_backoff_ms_max = c.stripe.cashout_retry_backoff_ms - 1
        }),
        ("admin.grant_coins_per_day_max", |c| {
            c.admin.grant_coins_per_day_max = 0
        }),
    ];
    for (key, tweak) in cases {
        let mut c = Config::default();
        tweak(&mut c);
        let e = c.validate().expect_err(key);
        assert_eq!(e.key, key);
    }
    Config::default().validate().expect("defaults are valid");
}

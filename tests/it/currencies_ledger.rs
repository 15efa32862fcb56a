//! Currencies in the ledger: purchases, refunds, tips, tip disputes and
//! cash-outs in USD and EUR, each currency's money in its own accounts
//! (entries sum to zero per currency), and the daily cash-out cap of each
//! currency. Run on every ledger engine (SQLite in memory, in a file,
//! PostgreSQL). The server's side: `currencies.rs`.

use crate::common;

use std::sync::Arc;

use giftstream::error::ErrorCode;
use giftstream::ledger::{
    self, account, CashoutEnd, CashoutRecord, CreditOp, Ledger, PurchaseOp, RefundOp,
    StripeEventRef, TipRecord, TipReversalOp, COIN, EUR, USD,
};
use giftstream::model::{Batch, Fiat, PayoutLimits, PendingGift};
use giftstream::protocol::now_ms;

// ---- the ledger, on every engine -------------------------------------------------

async fn sqlite_memory() -> Option<(Arc<dyn Ledger>, Option<tempfile::TempDir>)> {
    Some((ledger::open("sqlite::memory:", 8).await.unwrap(), None))
}

async fn sqlite_file() -> Option<(Arc<dyn Ledger>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
    Some((ledger::open(&url, 8).await.unwrap(), Some(dir)))
}

async fn postgres() -> Option<(Arc<dyn Ledger>, Option<tempfile::TempDir>)> {
    let url = common::services::fresh_postgres_url().await?;
    Some((ledger::open(&url, 8).await.unwrap(), None))
}

/// One `#[tokio::test]` per engine and test: `<engine>::<test>`.
macro_rules! on_every_ledger {
    ($($engine:ident),*; $tests:tt) => {
        $(on_every_ledger!(@one $engine $tests);)*
    };
    (@one $engine:ident [$($test:ident),*]) => {
        mod $engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some((l, _dir)) = super::$engine().await else { return };
                    super::$test(l).await;
                }
            )*
        }
    };
}

on_every_ledger!(sqlite_memory, sqlite_file, postgres; [
    purchases_refunds_and_tips_post_in_their_own_currency,
    cashouts_post_and_are_capped_per_currency
]);

fn ev(id: &str, kind: &str) -> StripeEventRef {
    StripeEventRef {
        id: id.into(),
        kind: kind.into(),
    }
}

pub(crate) fn tip(pi: &str, cents: i64, currency: Fiat) -> TipRecord {
    TipRecord {
        payment_intent: pi.into(),
        tip_key: format!("tom:{pi}"),
        sender: "tom".into(),
        creator: "tia".into(),
        target: "room:r".into(),
        amount_cents: cents,
        message: String::new(),
        currency,
    }
}

/// Every currency's entries sum to zero, and EUR and USD both have some.
async fn assert_zero_per_currency(l: &Arc<dyn Ledger>) {
    let t = l.totals().await.unwrap();
    for (cur, sum) in &t.entry_sums {
        assert_eq!(*sum, 0, "entries of {cur} sum to zero: {t:?}");
    }
    assert!(
        t.entry_sums.contains_key(EUR) && t.entry_sums.contains_key(USD),
        "{t:?}"
    );
}

async fn purchases_refunds_and_tips_post_in_their_own_currency(l: Arc<dyn Ledger>) {
    let bal = |a: String, c: &'static str| {
        let l = l.clone();
        async move { l.balance(&a, c).await.unwrap() }
    };
    // A purchase made in EUR is credited only when paid in EUR.
    let op = PurchaseOp {
        event: ev("evt_p", "payment_intent.succeeded"),
        payment_intent: "pi_eur".into(),
        user: "ann".into(),
        coins: 70,
        amount_cents: 99,
        currency: Fiat::Eur,
    };
    l.purchase_created(&op).await.unwrap();
    let in_usd = PurchaseOp {
        event: ev("evt_p_usd", "payment_intent.succeeded"),
        currency: Fiat::Usd,
        ..op.clone()
    };
    assert!(
        !l.purchase(&in_usd).await.unwrap(),
        "paid in another currency"
    );
    assert!(l.purchase(&op).await.unwrap());
    assert_eq!(bal(account::wallet("ann"), COIN).await, 70);
    assert_eq!(bal(account::STRIPE_PLATFORM.into(), EUR).await, 99);
    assert_eq!(bal(account::STRIPE_CUSTOMERS.into(), EUR).await, -99);
    assert_eq!(bal(account::STRIPE_PLATFORM.into(), USD).await, 0);
    let rec = l.purchase_record("pi_eur").await.unwrap().unwrap();
    assert_eq!((rec.currency, rec.paid), (Fiat::Eur, true));
    // Its refund gives euros back.
    let refund = RefundOp {
        event: ev("evt_r", "charge.refunded"),
        payment_intent: "pi_eur".into(),
        cents_refunded_total: 50,
        coins_reversed: 35,
        coins_taken: 35,
    };
    assert!(l.refund(&refund).await.unwrap());
    assert_eq!(bal(account::STRIPE_PLATFORM.into(), EUR).await, 49);
    assert_eq!(bal(account::STRIPE_PLATFORM.into(), USD).await, 0);

    // One creator tipped in both currencies: two accounts.
    for (pi, cents, cur) in [("pi_te", 300, Fiat::Eur), ("pi_tu", 500, Fiat::Usd)] {
        l.tip_created(&tip(pi, cents, cur)).await.unwrap();
        let got = l
            .tip_succeeded(&ev(&format!("evt_{pi}"), "payment_intent.succeeded"), pi)
            .await
            .unwrap();
        assert_eq!(got.map(|t| t.currency), Some(cur));
    }
    assert_eq!(bal(account::tips("tia"), EUR).await, 300);
    assert_eq!(bal(account::tips("tia"), USD).await, 500);
    let e = l.earnings("tia").await.unwrap();
    assert_eq!(e.tips_cents, 500, "the USD field stays USD");
    assert_eq!(
        (
            e.currencies[&Fiat::Eur].tips_cents,
            e.currencies[&Fiat::Usd].tips_cents
        ),
        (300, 500)
    );
    // The EUR tip is disputed; the transfer reversal recovered 100: the
    // rest is the platform's loss, in euros.
    let dp = TipReversalOp {
        event: ev("evt_td", "charge.dispute.funds_withdrawn"),
        payment_intent: "pi_te".into(),
        op_id: "tip_dispute:dp_e".into(),
        cents: 300,
        recovered: 100,
    };
    assert!(l.tip_reversed(&dp).await.unwrap());
    assert_eq!(bal(account::PLATFORM_LOSS.into(), EUR).await, 200);
    assert_eq!(bal(account::PLATFORM_LOSS.into(), USD).await, 0);
    assert_eq!(bal(account::tips("tia"), EUR).await, 200);
    let f = l.payout_funds("tia").await.unwrap();
    assert_eq!((f.tips_reversed_cents, f.tips_recovered_cents), (0, 0));
    assert_eq!(f.tips_reversed_by_currency[&Fiat::Eur], (300, 100));
    assert_eq!(
        l.tip_dispute_amounts("dp_e").await.unwrap(),
        Some((300, 100))
    );
    assert_zero_per_currency(&l).await;
    // Won, and the creator repaid: undone whole, in euros.
    assert!(l
        .tip_dispute_reinstated(
            &ev("evt_tw", "charge.dispute.funds_reinstated"),
            "pi_te",
            "dp_e",
            true
        )
        .await
        .unwrap());
    assert_eq!(bal(account::PLATFORM_LOSS.into(), EUR).await, 0);
    assert_eq!(bal(account::tips("tia"), EUR).await, 300);

    // The studio's reads carry each tip's currency, and a day per currency.
    let rows = l.creator_tips("tia", 10, None).await.unwrap();
    let mut cur: Vec<_> = rows.iter().map(|t| (t.amount_cents, t.currency)).collect();
    cur.sort();
    assert_eq!(cur, vec![(300, Fiat::Eur), (500, Fiat::Usd)]);
    let days = l.creator_daily("tia", now_ms()).await.unwrap();
    assert_eq!(days.len(), 1, "{days:?}");
    assert_eq!(days[0].tips_cents, 500);
    assert_eq!(
        days[0].tips.clone().into_iter().collect::<Vec<_>>(),
        vec![(Fiat::Usd, 500), (Fiat::Eur, 300)]
    );
    assert_zero_per_currency(&l).await;
}

fn cashout(id: &str, diamonds: i64, cents: i64, currency: Fiat) -> CashoutRecord {
    CashoutRecord {
        cashout_id: format!("cat:{id}"),
        creator: "cat".into(),
        diamonds,
        amount_cents: cents,
        currency,
        status: "pending".into(),
        transfer_key: format!("key-{id}"),
        transfer_group: format!("group-{id}"),
        ..Default::default()
    }
}

async fn cashouts_post_and_are_capped_per_currency(l: Arc<dyn Ledger>) {
    let mut caps = [None; Fiat::ALL.len()];
    caps[Fiat::Eur.index()] = Some(200);
    l.set_payout_limits(PayoutLimits {
        hold_ms: 0,
        cashouts_per_day_max: 10,
        cashout_cents_per_day_max: 1000,
        fiat_cents_per_day_max: caps,
    });
    l.credit(&CreditOp {
        op_id: "grant:v".into(),
        kind: "grant".into(),
        user: "vic".into(),
        coins: 10_000,
    })
    .await
    .unwrap();
    let gift = PendingGift {
        target: "room:c".into(),
        seq: 1,
        sender: "vic".into(),
        client_id: "c1".into(),
        creator: "cat".into(),
        gift: "rose".into(),
        count: 1,
        coins: 10_000,
        diamonds: 5_000,
        balance_after: 0,
        ts: now_ms(),
        message: None,
    };
    let batch = Batch {
        id: "b1".into(),
        gifts: vec![gift],
        ticket_max: 1,
    };
    assert!(l.commit_batch(&batch).await.unwrap());
    // 184 euro cents, completed: the euros leave in EUR accounts.
    let eur = l
        .cashout_begin(&cashout("e1", 400, 184, Fiat::Eur))
        .await
        .unwrap();
    assert_eq!(eur.currency, Fiat::Eur);
    assert!(l
        .cashout_end(
            "cat:e1",
            &CashoutEnd::Completed {
                transfer: "tr_e1".into()
            }
        )
        .await
        .unwrap());
    let bal = |a: String, c: &'static str| {
        let l = l.clone();
        async move { l.balance(&a, c).await.unwrap() }
    };
    assert_eq!(bal(account::payouts("cat"), EUR).await, 184);
    assert_eq!(bal(account::STRIPE_PLATFORM.into(), EUR).await, -184);
    assert_eq!(bal(account::payouts("cat"), USD).await, 0);
    // EUR's own cap (200) refuses 184 more; USD's (1000) does not count
    // the euros.
    let err = l
        .cashout_begin(&cashout("e2", 400, 184, Fiat::Eur))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::RateLimited, "{err:?}");
    assert!(l.cashout("cat:e2").await.unwrap().is_none());
    l.cashout_begin(&cashout("u1", 1600, 800, Fiat::Usd))
        .await
        .unwrap();
    assert!(l
        .cashout_end(
            "cat:u1",
            &CashoutEnd::Completed {
                transfer: "tr_u1".into()
            }
        )
        .await
        .unwrap());
    let e = l.earnings("cat").await.unwrap();
    assert_eq!(e.cashed_out_cents, 800, "the USD field stays USD");
    assert_eq!(
        (
            e.currencies[&Fiat::Eur].cashed_out_cents,
            e.currencies[&Fiat::Usd].cashed_out_cents
        ),
        (184, 800)
    );
    // The same id again in another currency is not a replay.
    let err = l
        .cashout_begin(&cashout("e1", 400, 200, Fiat::Usd))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest, "{err:?}");
    let rows = l.creator_cashouts("cat", 10, None).await.unwrap();
    let mut cur: Vec<_> = rows.iter().map(|c| (c.amount_cents, c.currency)).collect();
    cur.sort();
    assert_eq!(cur, vec![(184, Fiat::Eur), (800, Fiat::Usd)]);
    assert_zero_per_currency(&l).await;
}

// ---- migration 0013 on a ledger written before it ------------------------------------

/// Money a ledger recorded before migration 0013 (a paid tip and a
/// completed cash-out, all USD): rows without a currency.
const BEFORE_0013: &str = "
INSERT INTO operations (op_id, kind, detail, created_ms) VALUES ('tip:pi_old', 'tip', '{}', 1), ('cashout_end:old', 'cashout_end', '{}', 1);
INSERT INTO entries (op_id, account, currency, amount) VALUES
  ('tip:pi_old', 'stripe:customers', 'USD', -500), ('tip:pi_old', 'tips:olga', 'USD', 500),
  ('cashout_end:old', 'stripe:platform', 'USD', -200), ('cashout_end:old', 'payouts:olga', 'USD', 200);
INSERT INTO balances (account, currency, kind, amount) VALUES
  ('stripe:customers', 'USD', 'external', -500), ('tips:olga', 'USD', 'tips', 500),
  ('stripe:platform', 'USD', 'external', -200), ('payouts:olga', 'USD', 'payouts', 200);
INSERT INTO tips (payment_intent, tip_key, sender, creator, target, amount_cents, message, status, created_ms)
  VALUES ('pi_old', 'tom:old', 'tom', 'olga', 'room:r', 500, 'hi', 'succeeded', 1);
";

/// The migrations of `engine` before 0013.
async fn migrator_before_0013(engine: &str) -> sqlx::migrate::Migrator {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(engine);
    let mut m = sqlx::migrate::Migrator::new(dir).await.unwrap();
    let before: Vec<_> = m
        .migrations
        .iter()
        .filter(|x| x.version < 13)
        .cloned()
        .collect();
    m.migrations = before.into();
    m
}

/// After 0013 the old rows read as USD, their balances and sums unchanged,
/// and EUR money can be posted beside them.
async fn old_money_reads_as_usd(l: Arc<dyn Ledger>) {
    let (t, _, _, _) = l.tip_record("pi_old").await.unwrap().unwrap();
    assert_eq!((t.currency, t.amount_cents), (Fiat::Usd, 500));
    let e = l.earnings("olga").await.unwrap();
    assert_eq!((e.tips_cents, e.cashed_out_cents), (500, 200));
    assert_eq!(e.currencies[&Fiat::Eur].tips_cents, 0);
    l.tip_created(&TipRecord {
        creator: "olga".into(),
        ..tip("pi_new", 300, Fiat::Eur)
    })
    .await
    .unwrap();
    assert!(l
        .tip_succeeded(&ev("evt_new", "payment_intent.succeeded"), "pi_new")
        .await
        .unwrap()
        .is_some());
    assert_eq!(l.balance(&account::tips("olga"), EUR).await.unwrap(), 300);
    assert_eq!(l.balance(&account::tips("olga"), USD).await.unwrap(), 500);
    assert_zero_per_currency(&l).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_ledger_written_before_0013_keeps_its_usd() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    migrator_before_0013("sqlite")
        .await
        .run(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(BEFORE_0013).execute(&pool).await.unwrap();
    pool.close().await;
    let l = ledger::open(&url, 8).await.unwrap();
    old_money_reads_as_usd(l).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_ledger_written_before_0013_keeps_its_usd() {
    let Some(url) = common::services::fresh_postgres_url().await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    migrator_before_0013("postgres")
        .await
        .run(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(BEFORE_0013).execute(&pool).await.unwrap();
    pool.close().await;
    let l = ledger::open(&url, 8).await.unwrap();
    old_money_reads_as_usd(l).await;
}

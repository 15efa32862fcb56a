//! Currencies: coin packages, tips and cash-outs in USD and EUR, each
//! currency's money in its own accounts (entries sum to zero per currency).
//!
//! The ledger tests run on every ledger engine (SQLite in memory, in a file,
//! PostgreSQL); the server tests on every engine pair, with the Stripe
//! contract double (and localstripe where a customer pays).

use crate::common;
use crate::payments::{earn, evt_id, wait_until, Pay};

use std::sync::Arc;

use common::server::engines;
use common::services::stripe_url;
use giftstream::auth::Role;
use giftstream::error::ErrorCode;
use giftstream::ledger::{
    self, account, CashoutEnd, CashoutRecord, CreditOp, Ledger, PurchaseOp, RefundOp,
    StripeEventRef, TipRecord, TipReversalOp, COIN, EUR, USD,
};
use giftstream::model::{Batch, Fiat, PayoutLimits, PendingGift};
use giftstream::protocol::now_ms;
use serde_json::json;

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

fn tip(pi: &str, cents: i64, currency: Fiat) -> TipRecord {
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

// ---- the server, on every engine pair ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eur_package_is_paid_in_eur_and_credits_its_coins() {
    let Some(ls) = stripe_url() else { return };
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = Pay::start(&engine, Some(ls.clone()), |_| {}).await;
        let (st, v) =
            p.s.request(reqwest::Method::GET, "/v1/coins/packages", None, None)
                .await;
        assert_eq!(st, 200);
        assert_eq!(v["currencies"], json!(["usd", "eur"]), "{v}");
        assert!(
            v["packages"].as_array().unwrap().contains(
                &json!({ "id": "coins_70_eur", "coins": 70, "price_cents": 99, "currency": "eur" })
            ),
            "{v}"
        );
        let a = p.purchase("ann", "coins_70_eur", "buy-eur").await;
        assert_eq!(
            (
                a["coins"].as_i64(),
                a["amount_cents"].as_i64(),
                a["currency"].as_str()
            ),
            (Some(70), Some(99), Some("eur")),
            "{a}"
        );
        p.pay(a["payment_intent"].as_str().unwrap()).await;
        wait_until("EUR coins credited", || async {
            p.s.wallet("ann").await == 70
        })
        .await;
        assert_eq!(p.ledger_balance(account::STRIPE_PLATFORM, EUR).await, 99);
        assert_eq!(p.ledger_balance(account::STRIPE_PLATFORM, USD).await, 0);
        let sums = p.assert_sums_zero().await;
        assert_eq!(sums[EUR], 0, "{sums}");
        p.s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tips_in_eur_and_usd_land_in_separate_accounts_and_the_studio_shows_each() {
    let Some(ls) = stripe_url() else { return };
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = Pay::start(&engine, Some(ls.clone()), |_| {}).await;
        p.s.open_room("tia", "cur-room").await;
        p.onboard("tia").await;
        let mut watcher = p.s.ws("wanda", Role::Viewer).await;
        watcher.join("cur-room").await;
        let tok = p.s.token("tom", Role::Viewer);
        let (st, v) =
            p.s.post(
                "/v1/rooms/cur-room/tips",
                &tok,
                json!({ "amount_cents": 300, "currency": "gbp", "id": "t0" }),
            )
            .await;
        assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")), "{v}");
        let mut pis = Vec::new();
        for (cents, cur, id) in [(300, Some("eur"), "te"), (500, None, "tu")] {
            let mut body = json!({ "amount_cents": cents, "message": id, "id": id });
            if let Some(c) = cur {
                body["currency"] = json!(c);
            }
            let (st, t) = p.s.post("/v1/rooms/cur-room/tips", &tok, body).await;
            assert_eq!(st, 201, "{t}");
            assert_eq!(t["currency"], cur.unwrap_or("usd"), "{t}");
            pis.push(t["payment_intent"].as_str().unwrap().to_string());
        }
        p.pay(&pis[0]).await;
        let (ev, _) = watcher.until("tip_event").await;
        assert_eq!(
            (ev["amount_cents"].as_i64(), ev["currency"].as_str()),
            (Some(300), Some("eur")),
            "{ev}"
        );
        p.pay(&pis[1]).await;
        wait_until("both tips in earnings", || async {
            let e = p.s.earnings("tia").await;
            e["currencies"]["eur"]["tips_cents"] == 300
                && e["currencies"]["usd"]["tips_cents"] == 500
        })
        .await;
        let e = p.s.earnings("tia").await;
        assert_eq!(e["tips_cents"], 500, "USD as before: {e}");
        assert_eq!(p.ledger_balance(&account::tips("tia"), EUR).await, 300);
        assert_eq!(p.ledger_balance(&account::tips("tia"), USD).await, 500);
        p.assert_sums_zero().await;
        // The studio: each tip with its currency, each day per currency.
        let ctok = p.s.token("tia", Role::Creator);
        let (st, v) = p.s.get("/v1/creators/me/tips", &ctok).await;
        assert_eq!(st, 200, "{v}");
        let mut rows: Vec<_> = v["tips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["amount_cents"].as_i64().unwrap(),
                    t["currency"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            vec![(300, "eur".to_string()), (500, "usd".to_string())]
        );
        let (st, v) =
            p.s.get("/v1/creators/me/earnings/daily?days=1", &ctok)
                .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(
            v["days"][0]["tips"],
            json!({ "usd": 500, "eur": 300 }),
            "{v}"
        );
        assert_eq!(v["days"][0]["tips_cents"], 500, "{v}");
        p.s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eur_tip_dispute_is_reversed_and_won_back_in_eur() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = Pay::start(&engine, None, |_| {}).await;
        p.s.open_room("tara", "eur-tip-room").await;
        let acct = p.onboard("tara").await;
        p.s.state()
            .ledger
            .tip_created(&TipRecord {
                target: "room:eur-tip-room".into(),
                creator: "tara".into(),
                ..tip("pi_tip_eur", 500, Fiat::Eur)
            })
            .await
            .unwrap();
        let paid = json!({ "id": "pi_tip_eur", "object": "payment_intent", "amount": 500,
                           "amount_received": 500, "currency": "eur", "status": "succeeded",
                           "metadata": { "giftstream_kind": "tip" } });
        let (st, v) = p
            .send_event(&evt_id(), "payment_intent.succeeded", paid)
            .await;
        assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
        let tr = p.double.make_transfer(&acct, 500);
        let ch = json!({ "id": "ch_pi_tip_eur", "object": "charge", "amount": 500,
                         "amount_refunded": 0, "currency": "eur", "payment_intent": "pi_tip_eur",
                         "transfer": tr, "refunded": false });
        let (st, _) = p.send_event(&evt_id(), "charge.succeeded", ch).await;
        assert_eq!(st, 200);
        let dispute = json!({ "id": "dp_eur", "object": "dispute", "amount": 500,
                              "currency": "eur", "charge": "ch_pi_tip_eur",
                              "payment_intent": "pi_tip_eur", "status": "needs_response",
                              "reason": "fraudulent" });
        let (st, v) = p
            .send_event(&evt_id(), "charge.dispute.funds_withdrawn", dispute.clone())
            .await;
        assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
        assert_eq!(p.double.reversals(), vec![(tr.clone(), 500)]);
        assert_eq!(p.ledger_balance(&account::tips("tara"), EUR).await, 0);
        assert_eq!(p.ledger_balance(account::STRIPE_PLATFORM, EUR).await, 0);
        assert_eq!(p.ledger_balance(account::STRIPE_CUSTOMERS, EUR).await, 0);
        let e = p.s.earnings("tara").await;
        assert_eq!(e["currencies"]["eur"]["tips_reversed_cents"], 500, "{e}");
        assert_eq!(e["tips_reversed_cents"], 0, "USD: {e}");
        p.assert_sums_zero().await;
        // Won: the creator's share goes back to them by a Transfer in EUR.
        let before = p.double.transfers().len();
        let (st, v) = p
            .send_event(&evt_id(), "charge.dispute.funds_reinstated", dispute)
            .await;
        assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
        let transfers = p.double.transfers();
        assert_eq!(transfers.len(), before + 1);
        let back = transfers.last().unwrap();
        assert_eq!(
            (
                back["amount"].as_i64(),
                back["currency"].as_str(),
                back["destination"].as_str()
            ),
            (Some(500), Some("eur"), Some(acct.as_str())),
            "{back}"
        );
        assert_eq!(p.ledger_balance(&account::tips("tara"), EUR).await, 500);
        assert_eq!(p.ledger_balance(&account::tips("tara"), USD).await, 0);
        p.assert_sums_zero().await;
        p.s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cashout_in_eur_transfers_eur_at_its_rate_within_its_cap() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = Pay::start(&engine, None, |c| {
            c.payouts.rates.get_mut("eur").unwrap().cents_per_day_max = 200;
        })
        .await;
        earn(&p, "cal", "eur-cash-room", 2).await;
        p.onboard("cal").await;
        let tok = p.s.token("cal", Role::Creator);
        let post = |body: serde_json::Value| {
            let tok = tok.clone();
            let p = &p;
            async move { p.s.post("/v1/creators/me/cashouts", &tok, body).await }
        };
        let (st, v) = post(json!({ "diamonds": 400, "id": "c0", "currency": "gbp" })).await;
        assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")), "{v}");
        // 400 diamonds at 46 euro cents per 100: 184 euro cents.
        let (st, v) = post(json!({ "diamonds": 400, "id": "c1", "currency": "eur" })).await;
        assert_eq!((st, v["status"].as_str()), (200, Some("completed")), "{v}");
        assert_eq!(
            (v["amount_cents"].as_i64(), v["currency"].as_str()),
            (Some(184), Some("eur")),
            "{v}"
        );
        let tr = p.double.transfers();
        assert_eq!(tr.len(), 1);
        assert_eq!(
            (tr[0]["amount"].as_i64(), tr[0]["currency"].as_str()),
            (Some(184), Some("eur"))
        );
        // EUR's daily cap (200 cents) is reached; a cash-out in the default
        // currency (USD, none named) is not limited by it.
        let (st, v) = post(json!({ "diamonds": 400, "id": "c2", "currency": "eur" })).await;
        assert_eq!((st, v["code"].as_str()), (429, Some("rate_limited")), "{v}");
        let (st, v) = post(json!({ "diamonds": 400, "id": "c3" })).await;
        assert_eq!((st, v["status"].as_str()), (200, Some("completed")), "{v}");
        assert_eq!(
            (v["amount_cents"].as_i64(), v["currency"].as_str()),
            (Some(200), Some("usd")),
            "{v}"
        );
        assert_eq!(p.double.transfers()[1]["currency"], "usd");
        let e = p.s.earnings("cal").await;
        assert_eq!(
            (
                e["cashed_out_cents"].as_i64(),
                e["currencies"]["eur"]["cashed_out_cents"].as_i64(),
                e["currencies"]["usd"]["cashed_out_cents"].as_i64(),
                e["diamonds_cashed_out"].as_i64(),
            ),
            (Some(200), Some(184), Some(200), Some(800)),
            "{e}"
        );
        assert_eq!(p.ledger_balance(&account::payouts("cal"), EUR).await, 184);
        // The studio lists each cash-out with its currency, and each rate.
        let (st, v) = p.s.get("/v1/creators/me/cashouts", &tok).await;
        assert_eq!(st, 200, "{v}");
        let mut rows: Vec<_> = v["cashouts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["amount_cents"].as_i64().unwrap(),
                    c["currency"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            vec![(184, "eur".to_string()), (200, "usd".to_string())]
        );
        assert_eq!(
            v["terms"]["currencies"]["eur"],
            json!({ "cents_per_100_diamonds": 46, "cents_per_day_max": 200 }),
            "{v}"
        );
        p.assert_sums_zero().await;
        p.s.stop().await;
    }
}

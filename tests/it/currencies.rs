//! Currencies through the server: coin packages, tips and cash-outs in USD
//! and EUR on every engine pair, with the Stripe contract double (and
//! localstripe where a customer pays). The ledger's side:
//! `currencies_ledger.rs`.

use crate::currencies_ledger::tip;
use crate::payments::{earn, evt_id, wait_until, Pay};

use common::server::engines;
use common::services::stripe_url;
use giftstream::auth::Role;
use giftstream::ledger::{account, TipRecord, EUR, USD};
use giftstream::model::Fiat;
use serde_json::json;

use crate::common;

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

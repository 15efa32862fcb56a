//! Escrow and payout of marketplace contracts (issue 14 item 5), on every
//! engine pair, against localstripe (the brand's PaymentIntent and its
//! signed `payment_intent.succeeded`) and the Stripe contract double
//! (Connect accounts, Transfers, Refunds): one contract from application
//! to Transfer with the ledger summing to zero and the creator's
//! `marketplace_cents`; one rejected and refunded; the automatic approval
//! once the review time passed; a crash between the ledger step and the
//! Transfer recovered with exactly one Transfer; a dispute holding the
//! payout (won: released; lost: the escrow pays the chargeback); and the
//! refused moves (409 naming the state).

use std::time::Duration;

use super::{apply, brand, conflict, creator, followers, open_campaign};
use crate::common;
use crate::payments::{evt_id, wait_until, Pay};

use common::server::{engines, EngineSpec};
use common::services::stripe_url;
use common::stripe_double::TransferMode;
use giftstream::config::Config;
use giftstream::ledger::{account, USD};
use reqwest::Method;
use serde_json::{json, Value};

/// Payments on (localstripe behind the double), one follower enough to
/// join, and `tweak`.
async fn start(engine: &EngineSpec, ls: &str, tweak: impl FnOnce(&mut Config)) -> Pay {
    Pay::start(engine, Some(ls.to_string()), |c| {
        c.marketplace.followers_min = 1;
        tweak(c);
    })
    .await
}

/// `who` joins (one follower, a Connect account with payouts), applies to
/// a new campaign of BRAND at `price`, and BRAND accepts: the accept's
/// answer.
async fn deal(p: &Pay, who: &str, price: i64) -> Value {
    followers(&p.s, Method::POST, who, &format!("{who}-f"), 0, 1).await;
    p.onboard(who).await;
    let (st, v) = creator(&p.s, who, Method::POST, "/v1/marketplace/creators/me", None).await;
    assert_eq!(st, 200, "{who} joins: {v}");
    let campaign = open_campaign(&p.s, price * 2).await;
    let (st, v) = apply(&p.s, who, &campaign, price).await;
    assert_eq!(st, 201, "{v}");
    let app = v["application"].as_str().unwrap().to_string();
    let (st, v) = brand(
        &p.s,
        Method::POST,
        &format!("/v1/brands/me/applications/{app}/accept"),
        None,
    )
    .await;
    assert_eq!(st, 200, "accept: {v}");
    assert_eq!(v["contract"]["state"], "awaiting_payment", "{v}");
    v
}

/// The brand pays at localstripe; the contract is funded by the webhook.
async fn fund(p: &Pay, accepted: &Value) -> (String, String) {
    let k = accepted["contract"]["contract"]
        .as_str()
        .unwrap()
        .to_string();
    let pi = accepted["payment"]["payment_intent"]
        .as_str()
        .unwrap_or_else(|| panic!("accept answers the payment: {accepted}"))
        .to_string();
    assert_eq!(accepted["payment"]["currency"], "usd", "{accepted}");
    assert!(accepted["payment"]["client_secret"].as_str().is_some());
    p.pay(&pi).await;
    wait_until("the contract is funded", || async {
        contract(p, &k).await["state"] == "funded"
    })
    .await;
    (k, pi)
}

/// The contract as its brand reads it.
async fn contract(p: &Pay, k: &str) -> Value {
    let (st, v) = brand(
        &p.s,
        Method::GET,
        &format!("/v1/brands/me/contracts/{k}"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v
}

async fn submit(p: &Pay, who: &str, k: &str) -> (u16, Value) {
    creator(
        &p.s,
        who,
        Method::POST,
        &format!("/v1/marketplace/contracts/{k}/deliverable"),
        Some(json!({ "url": "https://video.example/summer", "note": "Live at 9" })),
    )
    .await
}

async fn brand_move(p: &Pay, k: &str, what: &str, body: Option<Value>) -> (u16, Value) {
    brand(
        &p.s,
        Method::POST,
        &format!("/v1/brands/me/contracts/{k}/{what}"),
        body,
    )
    .await
}

async fn balance(p: &Pay, acct: &str) -> i64 {
    p.ledger_balance(acct, USD).await
}

async fn dispute(p: &Pay, kind: &str, pi: &str, status: &str, cents: i64) {
    let (st, v) = p
        .send_event(
            &evt_id(),
            kind,
            json!({ "id": format!("dp_{pi}"), "object": "dispute", "amount": cents,
                    "currency": "usd", "charge": format!("ch_{pi}"), "payment_intent": pi,
                    "status": status }),
        )
        .await;
    assert_eq!(st, 200, "{kind}: {v}");
}

async fn walk_to_transfer(engine: &EngineSpec, ls: &str) {
    let p = start(engine, ls, |c| c.marketplace.fee_bps = 1_000).await;
    let acc = deal(&p, "esc-amy", 10_000).await;
    let k = acc["contract"]["contract"].as_str().unwrap().to_string();
    // Refused before payment: the deliverable, approve.
    let (st, v) = submit(&p, "esc-amy", &k).await;
    conflict(st, &v, "awaiting_payment");
    let (st, v) = brand_move(&p, &k, "approve", None).await;
    conflict(st, &v, "awaiting_payment");
    // The payment route answers the same PaymentIntent.
    let (st, again) = brand_move(&p, &k, "payment", None).await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(again["payment_intent"], acc["payment"]["payment_intent"]);
    assert_eq!(again["amount_cents"], 10_000);
    let (k, pi) = fund(&p, &acc).await;
    let c = contract(&p, &k).await;
    assert_eq!(c["payment_intent"], pi.as_str(), "{c}");
    assert!(c["paid_ms"].as_i64().is_some(), "{c}");
    assert_eq!(
        (c["payout"].clone(), c["disputed"].clone()),
        (Value::Null, json!(false))
    );
    assert_eq!(balance(&p, &account::escrow(&k)).await, 10_000);
    p.assert_sums_zero().await;
    // Refused while funded: payment again, approve.
    let (st, v) = brand_move(&p, &k, "payment", None).await;
    conflict(st, &v, "funded");
    let (st, v) = brand_move(&p, &k, "approve", None).await;
    conflict(st, &v, "funded");
    // Bad deliverables: typed errors, nothing moved.
    let (st, v) = creator(
        &p.s,
        "esc-amy",
        Method::POST,
        &format!("/v1/marketplace/contracts/{k}/deliverable"),
        Some(json!({ "url": "ftp://x", "note": "n" })),
    )
    .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")), "{v}");
    let (st, v) = submit(&p, "esc-amy", &k).await;
    assert_eq!((st, v["state"].as_str()), (200, Some("submitted")), "{v}");
    let sub = v["deliverable"]["submitted_ms"].as_i64().unwrap();
    assert_eq!(v["deliverable"]["url"], "https://video.example/summer");
    assert_eq!(v["review_due_ms"].as_i64(), Some(sub + 604_800_000), "{v}");
    let (st, v) = submit(&p, "esc-amy", &k).await;
    conflict(st, &v, "submitted");
    // Approve: completed, Transfer of price - fee.
    let (st, v) = brand_move(&p, &k, "approve", None).await;
    assert_eq!((st, v["state"].as_str()), (200, Some("completed")), "{v}");
    assert_eq!(v["payout"]["kind"], "transfer", "{v}");
    assert_eq!(v["payout"]["status"], "completed", "{v}");
    assert_eq!(v["payout"]["amount_cents"], 9_000);
    assert_eq!(v["payout"]["fee_cents"], 1_000);
    let tr = p.double.transfers();
    assert_eq!(tr.len(), 1, "{tr:?}");
    assert_eq!(v["payout"]["stripe_id"], tr[0]["id"]);
    assert_eq!(tr[0]["amount"], 9_000);
    assert_eq!(tr[0]["metadata"]["giftstream_contract"], k.as_str());
    let (st, v) = brand_move(&p, &k, "approve", None).await;
    conflict(st, &v, "completed");
    let (st, v) = brand_move(&p, &k, "reject", None).await;
    conflict(st, &v, "completed");
    // The ledger: escrow empty, the fee kept, the creator paid; zero sums.
    assert_eq!(balance(&p, &account::escrow(&k)).await, 0);
    assert_eq!(balance(&p, &account::escrow_release(&k)).await, 0);
    assert_eq!(balance(&p, account::MARKET_FEES).await, 1_000);
    assert_eq!(balance(&p, &account::marketplace("esc-amy")).await, 9_000);
    assert_eq!(balance(&p, account::STRIPE_CUSTOMERS).await, -10_000);
    p.assert_sums_zero().await;
    let e = p.s.earnings("esc-amy").await;
    assert_eq!(e["marketplace_cents"], json!({ "usd": 9_000 }), "{e}");
    // Both parties read it; the brand's list has it.
    let (st, mine) = creator(
        &p.s,
        "esc-amy",
        Method::GET,
        &format!("/v1/marketplace/contracts/{k}"),
        None,
    )
    .await;
    assert_eq!((st, mine["state"].as_str()), (200, Some("completed")));
    let (st, list) = brand(&p.s, Method::GET, "/v1/brands/me/contracts", None).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["contracts"][0]["contract"], k.as_str(), "{list}");
    let (st, _) = creator(
        &p.s,
        "esc-other",
        Method::GET,
        &format!("/v1/marketplace/contracts/{k}"),
        None,
    )
    .await;
    assert_eq!(st, 404, "another creator's contract");
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn escrow_contract_from_application_to_transfer() {
    let Some(ls) = stripe_url() else { return };
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        walk_to_transfer(&engine, &ls).await;
    }
}

async fn walk_to_refund(engine: &EngineSpec, ls: &str) {
    let p = start(engine, ls, |_| {}).await;
    let acc = deal(&p, "esc-bob", 5_000).await;
    let (k, pi) = fund(&p, &acc).await;
    let (st, v) = brand_move(&p, &k, "reject", None).await;
    conflict(st, &v, "funded");
    let (st, v) = submit(&p, "esc-bob", &k).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = brand_move(&p, &k, "reject", Some(json!({ "reason": "off brief" }))).await;
    assert_eq!((st, v["state"].as_str()), (200, Some("cancelled")), "{v}");
    assert_eq!(v["payout"]["kind"], "refund", "{v}");
    assert_eq!(v["payout"]["status"], "completed", "{v}");
    assert_eq!(v["payout"]["amount_cents"], 5_000);
    let r = p.double.refunds();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0]["payment_intent"].as_str(), r[0]["amount"].as_i64()),
        (Some(pi.as_str()), Some(5_000))
    );
    assert_eq!(v["payout"]["stripe_id"], r[0]["id"]);
    assert!(p.double.transfers().is_empty());
    assert_eq!(balance(&p, &account::escrow(&k)).await, 0);
    assert_eq!(
        balance(&p, account::STRIPE_CUSTOMERS).await,
        0,
        "the brand has its money back"
    );
    let e = p.s.earnings("esc-bob").await;
    assert_eq!(e["marketplace_cents"], json!({}), "{e}");
    let (st, v) = brand_move(&p, &k, "cancel", None).await;
    conflict(st, &v, "cancelled");
    // A contract cancelled before payment moves no money; the creator may
    // cancel a funded one (refunded).
    let acc2 = deal(&p, "esc-cid", 3_000).await;
    let k2 = acc2["contract"]["contract"].as_str().unwrap().to_string();
    let (st, v) = brand_move(&p, &k2, "cancel", None).await;
    assert_eq!(
        (st, v["state"].as_str(), v["payout"].clone()),
        (200, Some("cancelled"), Value::Null),
        "{v}"
    );
    let acc3 = deal(&p, "esc-dee", 4_000).await;
    let (k3, _) = fund(&p, &acc3).await;
    let (st, v) = creator(
        &p.s,
        "esc-dee",
        Method::POST,
        &format!("/v1/marketplace/contracts/{k3}/cancel"),
        None,
    )
    .await;
    assert_eq!((st, v["state"].as_str()), (200, Some("cancelled")), "{v}");
    assert_eq!(v["payout"]["kind"], "refund", "{v}");
    assert_eq!(p.double.refunds().len(), 2);
    assert_eq!(balance(&p, account::STRIPE_CUSTOMERS).await, 0);
    p.assert_sums_zero().await;
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn escrow_rejected_deliverable_is_refunded() {
    let Some(ls) = stripe_url() else { return };
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        walk_to_refund(&engine, &ls).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn escrow_review_due_is_approved_automatically() {
    let Some(ls) = stripe_url() else { return };
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = start(&engine, &ls, |c| {
            c.marketplace.review_s_max = 1;
            c.marketplace.review_sweep_interval_ms = 200;
        })
        .await;
        let acc = deal(&p, "esc-eve", 2_500).await;
        let (k, _) = fund(&p, &acc).await;
        let (st, v) = submit(&p, "esc-eve", &k).await;
        assert_eq!((st, v["state"].as_str()), (200, Some("submitted")), "{v}");
        wait_until("approved after the review time", || async {
            contract(&p, &k).await["payout"]["status"] == "completed"
        })
        .await;
        let c = contract(&p, &k).await;
        assert_eq!(c["state"], "completed", "{c}");
        assert!(c["updated_ms"].as_i64().unwrap() >= c["review_due_ms"].as_i64().unwrap());
        assert_eq!(p.double.transfers().len(), 1);
        assert_eq!(
            p.s.earnings("esc-eve").await["marketplace_cents"]["usd"],
            2_500
        );
        p.assert_sums_zero().await;
        p.s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn escrow_crash_between_ledger_and_transfer_recovers_one_transfer() {
    let Some(ls) = stripe_url() else { return };
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = start(&engine, &ls, |c| {
            c.stripe.request_timeout_ms = 300;
            c.stripe.retry_len_max = 1;
        })
        .await;
        let acc = deal(&p, "esc-fay", 7_000).await;
        let (k, _) = fund(&p, &acc).await;
        submit(&p, "esc-fay", &k).await;
        // Stripe makes the Transfer but its answer never arrives in time.
        p.double
            .set_transfer_mode(TransferMode::ApplyThenHang(Duration::from_secs(2)));
        let (st, v) = brand_move(&p, &k, "approve", None).await;
        assert_eq!((st, v["state"].as_str()), (200, Some("completed")), "{v}");
        assert_eq!(v["payout"]["status"], "pending", "{v}");
        assert_eq!(p.double.transfers().len(), 1, "the money moved at Stripe");
        assert_eq!(balance(&p, &account::escrow_release(&k)).await, 7_000);
        // The process dies; Stripe answers again; the node restarts and
        // its recovery pass sends the same key.
        p.double.set_transfer_mode(TransferMode::Normal);
        let p = p.crash_and_restart().await;
        wait_until("the pending payout completes", || async {
            contract(&p, &k).await["payout"]["status"] == "completed"
        })
        .await;
        let tr = p.double.transfers();
        assert_eq!(tr.len(), 1, "exactly one Transfer: {tr:?}");
        let job =
            p.s.state()
                .ledger
                .contract_payout(&k)
                .await
                .unwrap()
                .unwrap();
        let sent = p
            .double
            .requests()
            .iter()
            .filter(|(m, path, key)| {
                m == "POST"
                    && path == "/v1/transfers"
                    && key.as_deref() == Some(job.idem_key.as_str())
            })
            .count();
        assert!(sent >= 2, "retried with the same Idempotency-Key ({sent})");
        assert_eq!(job.stripe_id.as_deref(), tr[0]["id"].as_str());
        assert_eq!(balance(&p, &account::escrow_release(&k)).await, 0);
        assert_eq!(
            p.s.earnings("esc-fay").await["marketplace_cents"]["usd"],
            7_000
        );
        p.assert_sums_zero().await;
        p.s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn escrow_dispute_holds_the_payout() {
    let Some(ls) = stripe_url() else { return };
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = start(&engine, &ls, |_| {}).await;
        // Won: held, then released.
        let acc = deal(&p, "esc-gus", 6_000).await;
        let (k, pi) = fund(&p, &acc).await;
        submit(&p, "esc-gus", &k).await;
        dispute(&p, "charge.dispute.created", &pi, "needs_response", 6_000).await;
        assert_eq!(contract(&p, &k).await["disputed"], true);
        let (st, v) = brand_move(&p, &k, "approve", None).await;
        conflict(st, &v, "disputed");
        assert!(p.double.transfers().is_empty());
        dispute(&p, "charge.dispute.closed", &pi, "won", 6_000).await;
        assert_eq!(contract(&p, &k).await["disputed"], false);
        let (st, v) = brand_move(&p, &k, "approve", None).await;
        assert_eq!(
            (st, v["payout"]["status"].as_str()),
            (200, Some("completed")),
            "{v}"
        );
        // Lost before the payout: the escrow pays the chargeback, the
        // contract is cancelled, nothing is paid out.
        let acc = deal(&p, "esc-hal", 4_000).await;
        let (k2, pi2) = fund(&p, &acc).await;
        dispute(&p, "charge.dispute.created", &pi2, "needs_response", 4_000).await;
        dispute(&p, "charge.dispute.closed", &pi2, "lost", 4_000).await;
        let c = contract(&p, &k2).await;
        assert_eq!(
            (c["state"].as_str(), c["disputed"].clone()),
            (Some("cancelled"), json!(false)),
            "{c}"
        );
        assert_eq!(balance(&p, &account::escrow(&k2)).await, 0);
        assert_eq!(balance(&p, account::PLATFORM_LOSS).await, 0);
        // Lost after the payout: the platform's loss.
        dispute(&p, "charge.dispute.closed", &pi, "lost", 6_000).await;
        assert_eq!(balance(&p, account::PLATFORM_LOSS).await, 6_000);
        assert_eq!(balance(&p, &account::unrecovered("esc-gus")).await, -6_000);
        assert_eq!(contract(&p, &k).await["state"], "completed");
        assert_eq!(p.double.transfers().len(), 1);
        p.assert_sums_zero().await;
        p.s.stop().await;
    }
}

//! Payments end to end: a real server, the Stripe contract double
//! (accounts, account links, transfers, destination charges, idempotency)
//! in front of localstripe (PaymentIntents, refunds, signed webhooks).
//!
//! localstripe comes from `GIFTSTREAM_TEST_STRIPE_URL` (scripts/test starts
//! it); a test that needs it skips without it on a plain `cargo test` and
//! fails under scripts/test. Events localstripe does not send
//! (`charge.refunded`, `account.updated`) are built and signed by the test
//! with the endpoint secret, as Stripe's docs test webhooks.

use crate::common;

use std::future::Future;
use std::time::Duration;

use common::server::{embedded, engines, test_config, EngineSpec, TestServer};
use common::services::stripe_url;
use common::stripe_double::{StripeDouble, TransferMode};
use giftstream::auth::Role;
use giftstream::config::Config;
use giftstream::ledger::{account, PurchaseOp, StripeEventRef, TipRecord, COIN, USD};
use giftstream::payments::webhook::{read_event, sign, Decoder, Object};
use giftstream::protocol::now_ms;
use serde_json::{json, Value};

const KEY: &str = "sk_test_giftstream_tests";

/// A server with payments on, its double, and localstripe if configured.
pub(crate) struct Pay {
    pub(crate) s: TestServer,
    pub(crate) double: StripeDouble,
    secret: String,
    ls: Option<String>,
    /// This server's webhook endpoint at localstripe, turned off on drop.
    hook: Option<LsHook>,
    http: reqwest::Client,
}

/// A webhook endpoint registered at localstripe. localstripe has no way
/// to delete one and delivers each event to every endpoint in turn, one
/// at a time, with aiohttp's 5-minute timeout: an endpoint left behind by
/// a finished test whose port a later test's listener took (one that
/// answers slowly or not at all) would hold up every later delivery. So on
/// drop (a panic's unwind included) the endpoint is re-registered under
/// the same id for an event type Stripe never sends, which localstripe
/// skips.
struct LsHook {
    ls: String,
    id: String,
}

impl LsHook {
    fn new(ls: String) -> LsHook {
        let id = uuid::Uuid::new_v4().simple().to_string();
        LsHook { ls, id }
    }

    /// Point this endpoint at `url` for `event`, signed with `secret`.
    async fn register(&self, http: &reqwest::Client, url: &str, secret: &str, event: &str) {
        register_ls_webhook(http, &self.ls, &self.id, url, secret, event).await;
    }
}

async fn register_ls_webhook(
    http: &reqwest::Client,
    ls: &str,
    id: &str,
    url: &str,
    secret: &str,
    event: &str,
) {
    let r = http
        .post(format!("{ls}/_config/webhooks/{id}"))
        .form(&[("url", url), ("secret", secret), ("events[0]", event)])
        .send()
        .await
        .expect("localstripe webhook config");
    assert!(r.status().is_success(), "webhook config: {}", r.status());
}

impl Drop for LsHook {
    fn drop(&mut self) {
        // A Drop cannot await: the request runs on a thread of its own.
        let (ls, id) = (self.ls.clone(), self.id.clone());
        let off = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .expect("client");
                let (url, event) = ("http://127.0.0.1:9/ended", "giftstream.test.endpoint_ended");
                register_ls_webhook(&http, &ls, &id, url, "ended", event).await;
            });
        });
        if off.join().is_err() {
            eprintln!(
                "turning off localstripe webhook {}: failed (above)",
                self.id
            );
        }
    }
}

fn payments_config(c: &mut Config, double_url: &str, secret: &str) {
    c.stripe.secret_key = KEY.into();
    c.stripe.webhook_secret = secret.into();
    c.stripe.api_base_url = double_url.into();
    c.stripe.retry_backoff_ms = 10;
    c.stripe.cashout_diamonds_min = 100;
}

impl Pay {
    pub(crate) async fn start(
        engine: &EngineSpec,
        ls: Option<String>,
        tweak: impl FnOnce(&mut Config),
    ) -> Pay {
        let double = StripeDouble::start(ls.clone()).await;
        let secret = format!("whsec_{}", uuid::Uuid::new_v4().simple());
        let url = double.url.clone();
        let sec = secret.clone();
        let s = TestServer::start(engine, move |c| {
            payments_config(c, &url, &sec);
            tweak(c);
        })
        .await;
        let hook = ls.clone().map(LsHook::new);
        let p = Pay {
            s,
            double,
            secret,
            ls,
            hook,
            http: reqwest::Client::new(),
        };
        p.register_webhook().await;
        p
    }

    /// Have localstripe send its signed webhooks to this server.
    async fn register_webhook(&self) {
        let Some(hook) = &self.hook else { return };
        let url = self.s.url("/v1/stripe/webhook");
        hook.register(&self.http, &url, &self.secret, "payment_intent.succeeded")
            .await;
    }

    pub(crate) async fn crash_and_restart(self) -> Pay {
        let Pay {
            s,
            double,
            secret,
            ls,
            hook,
            http,
        } = self;
        let s = s.crash_and_restart().await;
        let p = Pay {
            s,
            double,
            secret,
            ls,
            hook,
            http,
        };
        p.register_webhook().await;
        p
    }

    /// POST raw bytes to the webhook with `header` as Stripe-Signature.
    async fn post_webhook(&self, body: &[u8], header: Option<String>) -> (u16, Value) {
        let mut req = self
            .http
            .post(self.s.url("/v1/stripe/webhook"))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(h) = header {
            req = req.header("Stripe-Signature", h);
        }
        let r = req.send().await.expect("webhook post");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Build, sign (now, with the endpoint secret) and deliver an event.
    pub(crate) async fn send_event(&self, id: &str, kind: &str, object: Value) -> (u16, Value) {
        let body = event(id, kind, object).to_string();
        let h = sign(body.as_bytes(), &self.secret, now_ms() / 1000);
        self.post_webhook(body.as_bytes(), Some(h)).await
    }

    pub(crate) async fn purchase(&self, user: &str, package: &str, id: &str) -> Value {
        let (st, v) = self
            .s
            .post(
                "/v1/coins/purchases",
                &self.s.token(user, Role::Viewer),
                json!({ "package": package, "id": id }),
            )
            .await;
        assert_eq!(st, 200, "purchase: {v}");
        v
    }

    /// `POST /v1/creators/me/cashouts` with the creator's token `tok`.
    async fn cashout(&self, tok: &str, diamonds: i64, id: &str) -> (u16, Value) {
        self.s
            .post(
                "/v1/creators/me/cashouts",
                tok,
                json!({ "diamonds": diamonds, "id": id }),
            )
            .await
    }

    /// The customer pays at localstripe (Stripe.js's part): a card payment
    /// method, attached, confirmed. localstripe then sends the signed
    /// `payment_intent.succeeded`.
    pub(crate) async fn pay(&self, pi: &str) {
        let ls = self.ls.as_ref().expect("localstripe");
        let pm: Value = self
            .http
            .post(format!("{ls}/v1/payment_methods"))
            .basic_auth(KEY, Some(""))
            .form(&[
                ("type", "card"),
                ("card[number]", "4242424242424242"),
                ("card[exp_month]", "12"),
                ("card[exp_year]", "2034"),
                ("card[cvc]", "123"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let pm = pm["id"].as_str().expect("payment method id").to_string();
        let r = self
            .http
            .post(format!("{ls}/v1/payment_intents/{pi}"))
            .basic_auth(KEY, Some(""))
            .form(&[("payment_method", pm.as_str())])
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "attach: {}",
            r.text().await.unwrap_or_default()
        );
        let r = self
            .http
            .post(format!("{ls}/v1/payment_intents/{pi}/confirm"))
            .basic_auth(KEY, Some(""))
            .send()
            .await
            .unwrap();
        let st = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(st.is_success(), "confirm: {v}");
        assert_eq!(v["status"], "succeeded", "{v}");
    }

    /// Onboard `creator` (Connect account + link at the double) and enable
    /// payouts with a signed `account.updated`.
    pub(crate) async fn onboard(&self, creator: &str) -> String {
        let tok = self.s.token(creator, Role::Creator);
        let (st, v) = self
            .s
            .post("/v1/creators/me/payouts/onboard", &tok, json!({}))
            .await;
        assert_eq!(st, 200, "onboard: {v}");
        let acct = v["account"].as_str().unwrap().to_string();
        assert!(v["url"].as_str().unwrap().contains(&acct), "{v}");
        assert_eq!(v["payouts_enabled"], false);
        let (st, again) = self
            .s
            .post("/v1/creators/me/payouts/onboard", &tok, json!({}))
            .await;
        assert_eq!(st, 200);
        assert_eq!(again["account"], acct.as_str(), "one account per creator");
        let (st, _) = self
            .send_event(
                &evt_id(),
                "account.updated",
                json!({ "id": acct, "object": "account", "payouts_enabled": true }),
            )
            .await;
        assert_eq!(st, 200);
        let (_, status) = self.s.get("/v1/creators/me/payouts", &tok).await;
        assert_eq!(status["payouts_enabled"], true, "{status}");
        acct
    }

    /// The Idempotency-Key of cash-out `id`'s current Transfer attempt.
    async fn transfer_key(&self, id: &str) -> String {
        let rec = self.s.state().ledger.cashout(id).await.unwrap();
        rec.expect("cash-out recorded").transfer_key
    }

    pub(crate) async fn ledger_balance(&self, acct: &str, cur: &str) -> i64 {
        self.s.state().ledger.balance(acct, cur).await.unwrap()
    }

    pub(crate) async fn assert_sums_zero(&self) -> Value {
        let t = self.s.state().ledger.totals().await.unwrap();
        for (cur, sum) in &t.entry_sums {
            assert_eq!(*sum, 0, "entries of {cur} sum to zero: {t:?}");
        }
        assert_eq!(
            t.coins_minted,
            t.coins_in_wallets + t.coins_spent + t.coins_in_debts,
            "{t:?}"
        );
        json!(t.entry_sums)
    }
}

pub(crate) fn evt_id() -> String {
    format!("evt_{}", uuid::Uuid::new_v4().simple())
}

fn event(id: &str, kind: &str, object: Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": now_ms() / 1000,
        "livemode": false,
        "pending_webhooks": 1,
        "type": kind,
        "data": { "object": object }
    })
}

/// A purchase's succeeded PaymentIntent with every field Stripe's API
/// reference marks as always present (async-stripe's types read it whole).
fn purchase_pi(pi: &str, user: &str, coins: i64, cents: i64) -> Value {
    json!({
        "id": pi, "object": "payment_intent", "amount": cents, "amount_capturable": 0,
        "amount_received": cents, "capture_method": "automatic_async",
        "client_secret": format!("{pi}_secret_test"), "confirmation_method": "automatic",
        "created": now_ms() / 1000, "currency": "usd", "latest_charge": null,
        "livemode": false, "payment_method_types": ["card"], "status": "succeeded",
        "metadata": { "giftstream_kind": "purchase", "giftstream_user": user,
                      "giftstream_coins": coins.to_string(), "giftstream_package": "coins_70" }
    })
}

/// The same in the smaller shape of an older API version: async-stripe's
/// types refuse it, giftstream's envelope reads it.
fn purchase_pi_old_shape(pi: &str, user: &str, coins: i64, cents: i64) -> Value {
    json!({
        "id": pi, "object": "payment_intent", "amount": cents, "amount_received": cents,
        "currency": "usd", "status": "succeeded",
        "metadata": { "giftstream_kind": "purchase", "giftstream_user": user,
                      "giftstream_coins": coins.to_string(), "giftstream_package": "coins_70" }
    })
}

/// Poll `f` until it is true, at most 15 s.
pub(crate) async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..300 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

// ---- webhook signatures --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_or_stale_signature_changes_nothing() {
    let p = Pay::start(&embedded(), None, |_| {}).await;
    // The purchase as POST /v1/coins/purchases records it.
    p.s.state()
        .ledger
        .purchase_created(&PurchaseOp {
            currency: giftstream::model::Fiat::Usd,
            event: StripeEventRef {
                id: String::new(),
                kind: String::new(),
            },
            payment_intent: "pi_forged".into(),
            user: "mallory".into(),
            coins: 1400,
            amount_cents: 1999,
        })
        .await
        .unwrap();
    let body = event(
        "evt_forged",
        "payment_intent.succeeded",
        purchase_pi("pi_forged", "mallory", 1400, 1999),
    )
    .to_string();
    let now = now_ms() / 1000;
    let cases = [
        ("no header", None),
        (
            "other secret",
            Some(sign(body.as_bytes(), "whsec_not_ours", now)),
        ),
        (
            "older than 300 s",
            Some(sign(body.as_bytes(), &p.secret, now - 301)),
        ),
        (
            "tampered body",
            Some(sign(b"{\"id\":\"evt_other\"}", &p.secret, now)),
        ),
        ("garbage", Some("t=abc,v1=zz".to_string())),
    ];
    for (what, h) in cases {
        let (st, v) = p.post_webhook(body.as_bytes(), h).await;
        assert_eq!(st, 400, "{what}: {v}");
        assert_eq!(v["code"], "bad_request", "{what}: {v}");
    }
    assert_eq!(p.s.wallet("mallory").await, 0);
    assert!(!p
        .s
        .state()
        .ledger
        .stripe_event_seen("evt_forged")
        .await
        .unwrap());
    // The same body, correctly signed, is applied.
    let (st, v) = p
        .post_webhook(body.as_bytes(), Some(sign(body.as_bytes(), &p.secret, now)))
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
    assert_eq!(p.s.wallet("mallory").await, 1400);
    // A correctly signed event in an older shape (which async-stripe's
    // types refuse) is applied all the same, never refused forever.
    p.s.state()
        .ledger
        .purchase_created(&PurchaseOp {
            currency: giftstream::model::Fiat::Usd,
            event: StripeEventRef {
                id: String::new(),
                kind: String::new(),
            },
            payment_intent: "pi_old_shape".into(),
            user: "mallory".into(),
            coins: 70,
            amount_cents: 99,
        })
        .await
        .unwrap();
    let old = event(
        "evt_old_shape",
        "payment_intent.succeeded",
        purchase_pi_old_shape("pi_old_shape", "mallory", 70, 99),
    )
    .to_string();
    let h = sign(old.as_bytes(), &p.secret, now);
    let read = read_event(old.as_bytes(), &h, &p.secret, 300, now).unwrap();
    assert_eq!(read.decoder, Decoder::Envelope);
    let (st, v) = p.post_webhook(old.as_bytes(), Some(h)).await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
    assert_eq!(p.s.wallet("mallory").await, 1470);
    // A payment for a PaymentIntent not created here credits nothing.
    let (st, v) = p
        .send_event(
            &evt_id(),
            "payment_intent.succeeded",
            purchase_pi("pi_elsewhere", "mallory", 1400, 1999),
        )
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("ignored")), "{v}");
    assert_eq!(p.s.wallet("mallory").await, 1470);
    // A large event (above http.body_len_max) is still read.
    let mut big = purchase_pi("pi_elsewhere2", "mallory", 1400, 1999);
    big["description"] = json!("x".repeat(40_000));
    let (st, v) = p
        .send_event(&evt_id(), "payment_intent.succeeded", big)
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("ignored")), "{v}");
    // Unknown types are acknowledged and ignored.
    let (st, v) = p
        .send_event(&evt_id(), "customer.created", json!({ "id": "cus_1" }))
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("ignored")), "{v}");
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payments_off_without_a_key_answer_a_typed_error() {
    let s = TestServer::start(&embedded(), |_| {}).await;
    let (st, v) = s
        .post(
            "/v1/coins/purchases",
            &s.token("v", Role::Viewer),
            json!({ "package": "coins_70", "id": "p1" }),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")), "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("not configured"),
        "{v}"
    );
    s.stop().await;
}

// ---- purchases -------------------------------------------------------------------

async fn replayed_purchase_webhook_credits_once_on(engine: &EngineSpec, ls: String) {
    let p = Pay::start(engine, Some(ls.clone()), |_| {}).await;
    let since = now_ms() / 1000 - 1;
    let a = p.purchase("ann", "coins_70", "buy-1").await;
    assert_eq!(
        (a["coins"].as_i64(), a["amount_cents"].as_i64()),
        (Some(70), Some(99)),
        "{a}"
    );
    assert!(
        a["client_secret"].as_str().unwrap().starts_with("pi_"),
        "{a}"
    );
    // The same request id answers the same PaymentIntent (Idempotency-Key).
    let again = p.purchase("ann", "coins_70", "buy-1").await;
    assert_eq!(again["payment_intent"], a["payment_intent"]);
    let pi = a["payment_intent"].as_str().unwrap();
    assert_eq!(p.s.wallet("ann").await, 0, "nothing before the webhook");
    p.pay(pi).await;
    wait_until("localstripe's webhook credits the coins", || async {
        p.s.wallet("ann").await == 70
    })
    .await;
    // Replay the very event localstripe sent, twice, and another event for
    // the same PaymentIntent: credited once. (localstripe lists oldest
    // first and every test shares it: only this test's events are asked
    // for, or one page of 100 misses this event once the suite sent more.)
    let events: Value = p
        .http
        .get(format!(
            "{ls}/v1/events?type=payment_intent.succeeded&limit=100&created%5Bgt%5D={since}"
        ))
        .basic_auth(KEY, Some(""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sent = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["data"]["object"]["id"] == pi)
        .expect("localstripe's event")
        .clone();
    let body = sent.to_string();
    // localstripe's event (with the fields scripts/services.sh adds) is
    // read whole by async-stripe's generated types.
    let now = now_ms() / 1000;
    let read = read_event(
        body.as_bytes(),
        &sign(body.as_bytes(), &p.secret, now),
        &p.secret,
        300,
        now,
    )
    .expect("localstripe's event reads");
    assert_eq!(read.decoder, Decoder::Typed, "{body}");
    let Object::PaymentIntent(facts) = &read.object else {
        panic!("{read:?}")
    };
    assert_eq!(
        (
            facts.id.as_deref(),
            facts.amount_received,
            facts.currency.as_deref()
        ),
        (Some(pi), Some(99), Some("usd"))
    );
    assert_eq!(facts.metadata["giftstream_kind"], "purchase");
    for _ in 0..2 {
        let (st, v) = p
            .post_webhook(
                body.as_bytes(),
                Some(sign(body.as_bytes(), &p.secret, now_ms() / 1000)),
            )
            .await;
        assert_eq!((st, v["outcome"].as_str()), (200, Some("replayed")), "{v}");
    }
    let (st, v) = p
        .send_event(
            &evt_id(),
            "payment_intent.succeeded",
            sent["data"]["object"].clone(),
        )
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("replayed")), "{v}");
    assert_eq!(p.s.wallet("ann").await, 70);
    assert_eq!(p.ledger_balance(&account::wallet("ann"), COIN).await, 70);
    if p.ledger_balance(account::STRIPE_PLATFORM, USD).await != 99 {
        for e in entries(&p.s.cfg.ledger.url).await {
            eprintln!("{e:?}");
        }
    }
    assert_eq!(p.ledger_balance(account::STRIPE_PLATFORM, USD).await, 99);
    p.assert_sums_zero().await;
    // Idempotency-Key went with the PaymentIntent request.
    assert!(p.double.requests().iter().any(|(m, path, k)| m == "POST"
        && path == "/v1/payment_intents"
        && k.as_deref() == Some("purchase:ann:buy-1")));
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replayed_purchase_webhook_credits_once() {
    let Some(ls) = stripe_url() else { return };
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        replayed_purchase_webhook_credits_once_on(&engine, ls.clone()).await;
    }
}

/// `user` buys the 70-coin package (paid at localstripe, credited by its
/// webhook) and spends 50 of them in `room` (settled); answers the
/// PaymentIntent.
async fn buy_70_and_spend_50(p: &Pay, user: &str, room: &str, buy: &str) -> String {
    p.s.open_room("cora", room).await;
    let a = p.purchase(user, "coins_70", buy).await;
    let pi = a["payment_intent"].as_str().unwrap().to_string();
    p.pay(&pi).await;
    wait_until("coins credited", || async { p.s.wallet(user).await == 70 }).await;
    let mut ws = p.s.ws(user, Role::Viewer).await;
    ws.join(room).await;
    assert_eq!(ws.gift(room, "perfume", 2, "g1").await["balance"], 30);
    assert_eq!(ws.gift(room, "finger_heart", 2, "g2").await["balance"], 20);
    p.s.settled().await;
    pi
}

async fn refund_after_spending_records_a_debt_on(engine: &EngineSpec, ls: String) {
    let p = Pay::start(engine, Some(ls.clone()), |_| {}).await;
    let pi = buy_70_and_spend_50(&p, "ben", "refund-room", "buy-r").await;
    // A full refund at localstripe; Stripe then sends charge.refunded.
    let r: Value = p
        .http
        .post(format!("{ls}/v1/refunds"))
        .basic_auth(KEY, Some(""))
        .form(&[("payment_intent", pi.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "succeeded", "{r}");
    let charge = json!({
        "id": r["charge"], "object": "charge", "amount": 99, "amount_refunded": r["amount"],
        "currency": "usd", "payment_intent": pi, "refunded": true
    });
    let id = evt_id();
    let (st, v) = p.send_event(&id, "charge.refunded", charge.clone()).await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
    let (st, v) = p.send_event(&id, "charge.refunded", charge).await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("replayed")), "{v}");
    assert_eq!(p.s.wallet("ben").await, 0, "what was left is taken");
    p.s.settled().await;
    assert_eq!(
        p.ledger_balance(&account::wallet("ben"), COIN).await,
        0,
        "never negative"
    );
    assert_eq!(
        p.ledger_balance(&account::debt("ben"), COIN).await,
        -50,
        "the spent 50 are a debt"
    );
    assert_eq!(p.ledger_balance(account::STRIPE_PLATFORM, USD).await, 0);
    p.assert_sums_zero().await;

    // The next purchase repays the debt first; the wallet gets the rest,
    // also when the webhook comes again.
    let b = p.purchase("ben", "coins_70", "buy-after-debt").await;
    let pi2 = b["payment_intent"].as_str().unwrap().to_string();
    p.pay(&pi2).await;
    wait_until("the purchase after the debt is applied", || async {
        p.ledger_balance(&account::debt("ben"), COIN).await == 0
    })
    .await;
    wait_until("the rest reaches the wallet", || async {
        p.s.wallet("ben").await == 20
    })
    .await;
    let paid = json!({
        "id": pi2, "object": "payment_intent", "amount": 99, "amount_received": 99,
        "currency": "usd", "status": "succeeded",
        "metadata": { "giftstream_kind": "purchase" }
    });
    let (st, v) = p
        .send_event(&evt_id(), "payment_intent.succeeded", paid)
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("replayed")), "{v}");
    assert_eq!(p.s.wallet("ben").await, 20, "credited once");
    p.s.settled().await;
    assert_eq!(p.ledger_balance(&account::wallet("ben"), COIN).await, 20);
    assert_eq!(p.ledger_balance(account::STRIPE_PLATFORM, USD).await, 99);
    p.assert_sums_zero().await;
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refund_after_coins_were_spent_records_a_debt_the_next_purchase_repays() {
    let Some(ls) = stripe_url() else { return };
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        refund_after_spending_records_a_debt_on(&engine, ls.clone()).await;
    }
}

async fn chargeback_then_won_dispute_on(engine: &EngineSpec, ls: String) {
    let p = Pay::start(engine, Some(ls.clone()), |_| {}).await;
    let pi = buy_70_and_spend_50(&p, "dan", "dispute-room", "buy-d").await;
    // Dan's bank disputes the charge; Stripe withdraws the funds.
    let dispute = json!({
        "id": "dp_test_1", "object": "dispute", "amount": 99, "currency": "usd",
        "charge": "ch_test_1", "payment_intent": pi, "status": "needs_response",
        "reason": "fraudulent"
    });
    let id = evt_id();
    let (st, v) = p
        .send_event(&id, "charge.dispute.funds_withdrawn", dispute.clone())
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
    let (st, v) = p
        .send_event(&id, "charge.dispute.funds_withdrawn", dispute.clone())
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("replayed")), "{v}");
    let (st, v) = p
        .send_event(&evt_id(), "charge.dispute.funds_withdrawn", dispute.clone())
        .await;
    assert_eq!(
        (st, v["outcome"].as_str()),
        (200, Some("replayed")),
        "another event, same dispute: {v}"
    );
    assert_eq!(p.s.wallet("dan").await, 0, "what was left is taken");
    p.s.settled().await;
    assert_eq!(p.ledger_balance(&account::wallet("dan"), COIN).await, 0);
    assert_eq!(p.ledger_balance(&account::debt("dan"), COIN).await, -50);
    assert_eq!(p.ledger_balance(account::STRIPE_PLATFORM, USD).await, 0);
    p.assert_sums_zero().await;
    // Other dispute events are acknowledged and change nothing.
    let (st, v) = p
        .send_event(&evt_id(), "charge.dispute.created", dispute.clone())
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("ignored")), "{v}");

    // The platform wins: the money and the coins come back, debt first.
    let won = evt_id();
    let (st, v) = p
        .send_event(&won, "charge.dispute.funds_reinstated", dispute.clone())
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
    let (st, v) = p
        .send_event(&won, "charge.dispute.funds_reinstated", dispute)
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("replayed")), "{v}");
    assert_eq!(p.s.wallet("dan").await, 20, "70 back: 50 repay the debt");
    p.s.settled().await;
    assert_eq!(p.ledger_balance(&account::wallet("dan"), COIN).await, 20);
    assert_eq!(p.ledger_balance(&account::debt("dan"), COIN).await, 0);
    assert_eq!(p.ledger_balance(account::STRIPE_PLATFORM, USD).await, 99);
    p.assert_sums_zero().await;
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chargeback_reverses_coins_and_a_won_dispute_gives_them_back() {
    let Some(ls) = stripe_url() else { return };
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        chargeback_then_won_dispute_on(&engine, ls.clone()).await;
    }
}

// ---- tips -----------------------------------------------------------------------------

async fn tip_on(engine: &EngineSpec, ls: String) {
    let p = Pay::start(engine, Some(ls), |_| {}).await;
    p.s.open_room("tia", "tip-room").await;
    let acct = p.onboard("tia").await;
    let mut watcher = p.s.ws("wanda", Role::Viewer).await;
    watcher.join("tip-room").await;
    let mut inbox = p.s.ws("tia", Role::Creator).await;
    inbox.send(json!({ "type": "join", "inbox": true })).await;
    assert_eq!(inbox.expect("joined").await["inbox"], "tia");
    let tok = p.s.token("tom", Role::Viewer);
    // Bad input: typed errors, nothing charged.
    for (body, what) in [
        (
            json!({ "amount_cents": 50, "currency": "usd", "message": "hi", "id": "t0" }),
            "below min",
        ),
        (
            json!({ "amount_cents": 5_000_000, "currency": "usd", "message": "hi", "id": "t0" }),
            "above max",
        ),
        (
            json!({ "amount_cents": 500, "currency": "gbp", "message": "hi", "id": "t0" }),
            "currency",
        ),
        (
            json!({ "amount_cents": 500, "currency": "usd", "message": "x".repeat(151), "id": "t0" }),
            "long message",
        ),
        (
            json!({ "amount_cents": 500, "currency": "usd", "message": "a\u{7}b", "id": "t0" }),
            "control char",
        ),
        (
            json!({ "amount_cents": "5", "currency": "usd", "id": "t0" }),
            "type",
        ),
    ] {
        let (st, v) = p.s.post("/v1/rooms/tip-room/tips", &tok, body).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (400, Some("bad_request")),
            "{what}: {v}"
        );
    }
    let (st, v) =
        p.s.post(
            "/v1/rooms/nope/tips",
            &tok,
            json!({ "amount_cents": 500, "currency": "usd", "id": "t0" }),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (404, Some("unknown_room")), "{v}");
    let (st, t) = p
        .s
        .post("/v1/rooms/tip-room/tips", &tok, json!({ "amount_cents": 500, "currency": "usd", "message": "great stream 🎉", "id": "t1" }))
        .await;
    assert_eq!(st, 201, "{t}");
    let pi = t["payment_intent"].as_str().unwrap().to_string();
    // A destination charge to the creator's account, no application fee.
    let charges = p.double.destination_charges();
    let c = charges
        .iter()
        .find(|c| c.payment_intent == pi)
        .expect("destination charge");
    assert_eq!(
        (c.destination.as_str(), c.amount, c.application_fee),
        (acct.as_str(), 500, None)
    );
    p.pay(&pi).await;
    let (ev, _) = watcher.until("tip_event").await;
    assert_eq!(
        (
            ev["room"].as_str(),
            ev["sender"].as_str(),
            ev["amount_cents"].as_i64(),
            ev["currency"].as_str(),
            ev["message"].as_str()
        ),
        (
            Some("tip-room"),
            Some("tom"),
            Some(500),
            Some("usd"),
            Some("great stream 🎉")
        )
    );
    // The creator's inbox gets the same message once, with its own seq.
    let boxed = inbox.expect("inbox_event").await;
    assert_eq!(
        (boxed["seq"].as_u64(), &boxed["event"]),
        (Some(1), &ev),
        "{boxed}"
    );
    inbox.send(json!({ "type": "ping" })).await;
    assert_eq!(inbox.recv().await["type"], "pong", "the tip once");
    // The whole amount is the creator's: at the destination and in earnings.
    let at_destination = c.amount - c.application_fee.unwrap_or(0);
    assert_eq!(at_destination, 500);
    wait_until("tip in earnings", || async {
        p.s.earnings("tia").await["tips_cents"] == 500
    })
    .await;
    assert_eq!(p.ledger_balance(&account::tips("tia"), USD).await, 500);
    p.assert_sums_zero().await;
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tip_reaches_the_creator_in_full_and_the_room_sees_tip_event() {
    let Some(ls) = stripe_url() else { return };
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        tip_on(&engine, ls.clone()).await;
    }
}

// ---- cash-outs ------------------------------------------------------------------------

/// A finished test's localstripe endpoint is turned off: localstripe
/// delivers each event to every endpoint in turn, so one left behind
/// whose port now belongs to a listener that never answers would hold up
/// every later test's webhooks (aiohttp waits 5 minutes). Here that
/// listener is real and registered first, so without `LsHook`'s drop the
/// credit below would wait behind it and time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_tests_localstripe_endpoint_gets_no_more_events() {
    let Some(ls) = stripe_url() else { return };
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    silent.set_nonblocking(true).unwrap();
    let hook = LsHook::new(ls.clone());
    let url = format!("http://{}/v1/stripe/webhook", silent.local_addr().unwrap());
    let http = reqwest::Client::new();
    hook.register(&http, &url, "whsec_ended", "payment_intent.succeeded")
        .await;
    drop(hook);
    let p = Pay::start(&embedded(), Some(ls), |_| {}).await;
    let a = p.purchase("ann", "coins_70_eur", "buy-after-ended").await;
    p.pay(a["payment_intent"].as_str().unwrap()).await;
    wait_until("coins credited past the ended endpoint", || async {
        p.s.wallet("ann").await == 70
    })
    .await;
    match silent.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the ended endpoint was called: {other:?}"),
    }
    p.s.stop().await;
}

/// `creator` gets `diamonds` settled diamonds from a granted viewer.
pub(crate) async fn earn(p: &Pay, creator: &str, room: &str, galaxies: u32) {
    p.s.open_room(creator, room).await;
    p.s.grant("fan", 1000 * galaxies as i64, &format!("g-{room}"))
        .await;
    let mut ws = p.s.ws("fan", Role::Viewer).await;
    ws.join(room).await;
    let ack = ws
        .gift(room, "galaxy", galaxies, &format!("gal-{room}"))
        .await;
    assert_eq!(ack["type"], "gift_ack", "{ack}");
    p.s.settled().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cashout_failing_at_stripe_returns_the_diamonds() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = Pay::start(&engine, None, |_| {}).await;
        earn(&p, "cal", "cash-room", 1).await;
        assert_eq!(p.s.earnings("cal").await["diamonds_settled"], 500);
        let tok = p.s.token("cal", Role::Creator);
        let (st, v) = p.cashout(&tok, 400, "c1").await;
        assert_eq!(
            (st, v["code"].as_str()),
            (400, Some("bad_request")),
            "not onboarded: {v}"
        );
        p.onboard("cal").await;
        let (st, v) = p.cashout(&tok, 50, "c1").await;
        assert_eq!(st, 400, "below the minimum: {v}");
        let (st, v) = p.cashout(&tok, 600, "c1").await;
        assert_eq!(
            (st, v["code"].as_str()),
            (402, Some("insufficient_funds")),
            "{v}"
        );
        p.double.set_transfer_mode(TransferMode::Refuse);
        let (st, v) = p.cashout(&tok, 400, "c2").await;
        assert_eq!((st, v["status"].as_str()), (200, Some("reversed")), "{v}");
        let e = p.s.earnings("cal").await;
        assert_eq!(
            (
                e["diamonds_settled"].as_i64(),
                e["diamonds_cashout_pending"].as_i64(),
                e["diamonds_cashed_out"].as_i64()
            ),
            (Some(500), Some(0), Some(0)),
            "{e}"
        );
        assert!(p.double.transfers().is_empty());
        // Stripe works again: a new cash-out completes.
        p.double.set_transfer_mode(TransferMode::Normal);
        let (st, v) = p.cashout(&tok, 400, "c3").await;
        assert_eq!((st, v["status"].as_str()), (200, Some("completed")), "{v}");
        let e = p.s.earnings("cal").await;
        assert_eq!(
            (
                e["diamonds_settled"].as_i64(),
                e["diamonds_cashed_out"].as_i64(),
                e["cashed_out_cents"].as_i64()
            ),
            (Some(100), Some(400), Some(200)),
            "{e}"
        );
        let tr = p.double.transfers();
        assert_eq!(tr.len(), 1);
        assert_eq!(
            (tr[0]["amount"].as_i64(), tr[0]["currency"].as_str()),
            (Some(200), Some("usd"))
        );
        p.assert_sums_zero().await;
        p.s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_between_ledger_and_transfer_is_recovered_on_restart() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = Pay::start(&engine, None, |c| {
            c.stripe.request_timeout_ms = 300;
            c.stripe.retry_len_max = 1;
        })
        .await;
        earn(&p, "cid", "crash-room", 1).await;
        let acct = p.onboard("cid").await;
        // Stripe makes the transfer but the answer never arrives in time.
        p.double
            .set_transfer_mode(TransferMode::ApplyThenHang(Duration::from_secs(2)));
        let tok = p.s.token("cid", Role::Creator);
        let (st, v) = p.cashout(&tok, 400, "k1").await;
        assert_eq!((st, v["status"].as_str()), (200, Some("pending")), "{v}");
        assert_eq!(p.s.earnings("cid").await["diamonds_cashout_pending"], 400);
        assert_eq!(p.double.transfers().len(), 1, "the money moved at Stripe");
        // The process dies; Stripe answers again; the node restarts.
        p.double.set_transfer_mode(TransferMode::Normal);
        let p = p.crash_and_restart().await;
        wait_until("the pending cash-out completes", || async {
            p.s.earnings("cid").await["diamonds_cashed_out"] == 400
        })
        .await;
        let e = p.s.earnings("cid").await;
        assert_eq!(
            (
                e["diamonds_cashout_pending"].as_i64(),
                e["diamonds_settled"].as_i64()
            ),
            (Some(0), Some(100)),
            "{e}"
        );
        // One transfer, however many requests carried its key.
        let tr = p.double.transfers();
        assert_eq!(tr.len(), 1, "{tr:?}");
        assert_eq!(tr[0]["destination"], acct.as_str());
        let key = p.transfer_key("cid:k1").await;
        let sent = p
            .double
            .requests()
            .iter()
            .filter(|(_, path, k)| path == "/v1/transfers" && k.as_deref() == Some(key.as_str()))
            .count();
        assert!(sent >= 2, "retried with the same Idempotency-Key ({sent})");
        p.assert_sums_zero().await;
        p.s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unanswered_cashout_is_retried_without_a_restart() {
    let p = Pay::start(&embedded(), None, |c| {
        c.stripe.request_timeout_ms = 300;
        c.stripe.retry_len_max = 0;
        c.stripe.cashout_retry_interval_ms = 1000;
    })
    .await;
    earn(&p, "ria", "retry-room", 1).await;
    p.onboard("ria").await;
    p.double
        .set_transfer_mode(TransferMode::ApplyThenHang(Duration::from_secs(2)));
    let tok = p.s.token("ria", Role::Creator);
    let (st, v) = p.cashout(&tok, 200, "r1").await;
    assert_eq!((st, v["status"].as_str()), (200, Some("pending")), "{v}");
    p.double.set_transfer_mode(TransferMode::Normal);
    wait_until("the periodic pass completes it", || async {
        p.s.earnings("ria").await["diamonds_cashed_out"] == 200
    })
    .await;
    assert_eq!(p.double.transfers().len(), 1);
    // The same request again answers the completed cash-out.
    let (st, v) = p.cashout(&tok, 200, "r1").await;
    assert_eq!((st, v["status"].as_str()), (200, Some("completed")), "{v}");
    assert_eq!(p.double.transfers().len(), 1);
    p.assert_sums_zero().await;
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_errors_and_conflicts_are_retried_with_the_same_key_at_most_retry_len_max_times() {
    let p = Pay::start(&embedded(), None, |c| c.stripe.retry_len_max = 2).await;
    earn(&p, "sam", "five-room", 2).await;
    p.onboard("sam").await;
    let tok = p.s.token("sam", Role::Creator);
    let pr = &p;
    let sent = |id: &'static str| async move {
        let p = pr;
        let key = p.transfer_key(id).await;
        p.double
            .requests()
            .iter()
            .filter(|(m, path, k)| {
                m == "POST" && path == "/v1/transfers" && k.as_deref() == Some(key.as_str())
            })
            .count()
    };
    // Two 500s, then an answer: the third attempt, same key, completes it.
    p.double.set_transfer_mode(TransferMode::Failing(500, 2));
    let (st, v) = p.cashout(&tok, 200, "s1").await;
    assert_eq!((st, v["status"].as_str()), (200, Some("completed")), "{v}");
    assert_eq!(sent("sam:s1").await, 3);
    assert_eq!(p.double.transfers().len(), 1);
    // Three 500s: after 1 + 2 attempts the outcome is unknown: pending.
    p.double.set_transfer_mode(TransferMode::Failing(500, 3));
    let (st, v) = p.cashout(&tok, 200, "s2").await;
    assert_eq!((st, v["status"].as_str()), (200, Some("pending")), "{v}");
    assert_eq!(sent("sam:s2").await, 3);
    assert_eq!(p.double.transfers().len(), 1);
    assert_eq!(p.s.earnings("sam").await["diamonds_cashout_pending"], 200);
    // The same request again sends the same key once more: completed.
    let (st, v) = p.cashout(&tok, 200, "s2").await;
    assert_eq!((st, v["status"].as_str()), (200, Some("completed")), "{v}");
    assert_eq!(sent("sam:s2").await, 4);
    assert_eq!(p.double.transfers().len(), 2);
    // 409 (the same key still in flight, e.g. another node's recovery
    // pass) and 429 say nothing about the outcome: retried, not reversed.
    for (status, id) in [(409, "s3"), (429, "s4")] {
        p.double.set_transfer_mode(TransferMode::Failing(status, 1));
        let (st, v) = p.cashout(&tok, 100, id).await;
        assert_eq!(
            (st, v["status"].as_str()),
            (200, Some("completed")),
            "{status}: {v}"
        );
        let key = p.transfer_key(&format!("sam:{id}")).await;
        let n = p
            .double
            .requests()
            .iter()
            .filter(|(m, path, k)| {
                m == "POST" && path == "/v1/transfers" && k.as_deref() == Some(key.as_str())
            })
            .count();
        assert_eq!(n, 2, "{status}");
    }
    assert_eq!(p.double.transfers().len(), 4);
    let e = p.s.earnings("sam").await;
    assert_eq!(
        (
            e["diamonds_settled"].as_i64(),
            e["diamonds_cashout_pending"].as_i64(),
            e["diamonds_cashed_out"].as_i64()
        ),
        (Some(400), Some(0), Some(600)),
        "{e}"
    );
    p.assert_sums_zero().await;
    p.s.stop().await;
}

// ---- the walk-through --------------------------------------------------------------------

/// Every ledger entry, in commit order, as `op | account | currency | amount`.
async fn entries(ledger_url: &str) -> Vec<(String, String, String, i64)> {
    use sqlx::Row;
    let q = "SELECT e.op_id, e.account, e.currency, e.amount FROM entries e JOIN operations o ON o.op_id = e.op_id ORDER BY o.created_ms, e.op_id, e.currency, e.account";
    let rows: Vec<(String, String, String, i64)> = if ledger_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(ledger_url).await.unwrap();
        sqlx::query(q)
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    } else {
        let pool = sqlx::PgPool::connect(ledger_url).await.unwrap();
        sqlx::query(q)
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    };
    rows
}

async fn walkthrough_on(engine: &EngineSpec, ls: String) {
    let p = Pay::start(engine, Some(ls), |_| {}).await;
    p.s.open_room("wes", "walk-room").await;
    p.onboard("wes").await;
    // 1. Purchase: 1400 coins for $19.99.
    let a = p.purchase("vera", "coins_1400", "walk-buy").await;
    p.pay(a["payment_intent"].as_str().unwrap()).await;
    wait_until("purchase credited", || async {
        p.s.wallet("vera").await == 1400
    })
    .await;
    // 2. Gifts: a galaxy (1000 coins → 500 diamonds) and 2 roses.
    let mut ws = p.s.ws("vera", Role::Viewer).await;
    ws.join("walk-room").await;
    assert_eq!(
        ws.gift("walk-room", "galaxy", 1, "w1").await["balance"],
        400
    );
    assert_eq!(ws.gift("walk-room", "rose", 2, "w2").await["balance"], 398);
    // 3. Settlement.
    p.s.settled().await;
    // 4. Cash-out: 400 diamonds at 50 cents per 100 → $2.00.
    let tok = p.s.token("wes", Role::Creator);
    let (st, c) = p.cashout(&tok, 400, "walk-cash").await;
    assert_eq!((st, c["status"].as_str()), (200, Some("completed")), "{c}");
    // 5. A $5.00 tip.
    let (st, t) = p
        .s
        .post("/v1/rooms/walk-room/tips", &p.s.token("vera", Role::Viewer), json!({ "amount_cents": 500, "currency": "usd", "message": "thanks", "id": "walk-tip" }))
        .await;
    assert_eq!(st, 201, "{t}");
    p.pay(t["payment_intent"].as_str().unwrap()).await;
    ws.until("tip_event").await;
    wait_until("tip posted", || async {
        p.s.earnings("wes").await["tips_cents"] == 500
    })
    .await;
    let sums = p.assert_sums_zero().await;
    eprintln!("== walk-through ledger entries ({}):", engine.name);
    for (op, acct, cur, amount) in entries(&p.s.cfg.ledger.url).await {
        eprintln!("   {op:<44} {acct:<26} {cur:<8} {amount:>7}");
    }
    eprintln!("== per-currency sums: {sums}");
    eprintln!("== earnings: {}", p.s.earnings("wes").await);
    let e = p.s.earnings("wes").await;
    assert_eq!(
        (
            e["diamonds_settled"].as_i64(),
            e["diamonds_cashed_out"].as_i64(),
            e["cashed_out_cents"].as_i64(),
            e["tips_cents"].as_i64()
        ),
        (Some(102), Some(400), Some(200), Some(500)),
        "{e}"
    );
    assert_eq!(
        p.ledger_balance(account::STRIPE_PLATFORM, USD).await,
        1999 - 200
    );
    // Every POST the app made carried an Idempotency-Key. (Other requests
    // can reach the double: localstripe still delivers events to ports of
    // finished tests' servers, which a double may be listening on now.)
    let app_paths = [
        "/v1/accounts",
        "/v1/account_links",
        "/v1/payment_intents",
        "/v1/transfers",
    ];
    let posts: Vec<_> = p
        .double
        .requests()
        .into_iter()
        .filter(|(m, path, _)| m == "POST" && app_paths.contains(&path.as_str()))
        .collect();
    assert!(posts.len() >= 5, "{posts:?}");
    assert!(posts.iter().all(|(_, _, k)| k.is_some()), "{posts:?}");
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn walkthrough_purchase_gifts_settlement_cashout_and_tip_sum_to_zero() {
    let Some(ls) = stripe_url() else { return };
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        walkthrough_on(&engine, ls.clone()).await;
    }
}

// ---- the contract double itself ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_double_checks_shapes_and_idempotency_keys_as_stripe_documents() {
    let d = StripeDouble::start(None).await;
    let http = reqwest::Client::new();
    let post = |path: &str, key: Option<&str>, form: Vec<(&str, String)>| {
        let mut r = http
            .post(format!("{}{path}", d.url))
            .bearer_auth(KEY)
            .form(&form);
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        r.send()
    };
    // No key: 401.
    let r = http
        .post(format!("{}/v1/accounts", d.url))
        .form(&[("type", "express")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Unknown and missing parameters are refused and not saved.
    let r = post(
        "/v1/accounts",
        Some("k-acct"),
        vec![("type", "express".into()), ("colour", "red".into())],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "parameter_unknown"
    );
    let r = post("/v1/accounts", Some("k-acct"), vec![]).await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "parameter_missing"
    );
    // Same key, same parameters: the same account, replayed.
    let form = vec![
        ("type", "express".to_string()),
        ("capabilities[transfers][requested]", "true".into()),
    ];
    let a: Value = post("/v1/accounts", Some("k-acct"), form.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = post("/v1/accounts", Some("k-acct"), form).await.unwrap();
    assert_eq!(
        r.headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_eq!(r.json::<Value>().await.unwrap()["id"], a["id"]);
    assert_eq!(d.accounts().len(), 1);
    // Same key, other parameters: idempotency_error.
    let r = post(
        "/v1/accounts",
        Some("k-acct"),
        vec![("type", "standard".into())],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "idempotency_error"
    );
    // Transfers: a positive amount, a currency, an existing destination.
    let acct = a["id"].as_str().unwrap().to_string();
    for (form, what) in [
        (
            vec![
                ("amount", "-5".to_string()),
                ("currency", "usd".into()),
                ("destination", acct.clone()),
            ],
            "amount",
        ),
        (
            vec![
                ("amount", "5".to_string()),
                ("currency", "USD".into()),
                ("destination", acct.clone()),
            ],
            "currency",
        ),
        (
            vec![
                ("amount", "5".to_string()),
                ("currency", "usd".into()),
                ("destination", "acct_nope".into()),
            ],
            "destination",
        ),
    ] {
        let r = post("/v1/transfers", None, form).await.unwrap();
        assert_eq!(r.status(), 400, "{what}");
    }
    let t = vec![
        ("amount", "5".to_string()),
        ("currency", "usd".into()),
        ("destination", acct.clone()),
    ];
    let t1: Value = post("/v1/transfers", Some("k-tr"), t.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t2: Value = post("/v1/transfers", Some("k-tr"), t)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t1["id"], t2["id"]);
    assert_eq!(d.transfers().len(), 1);
    // A destination charge (a tip) with no localstripe behind the double
    // (the chaos campaign): made here, once per key, to the account.
    let tip = vec![
        ("amount", "700".to_string()),
        ("currency", "usd".into()),
        ("transfer_data[destination]", acct.clone()),
        ("metadata[giftstream_kind]", "tip".into()),
    ];
    let r = post("/v1/payment_intents", Some("k-tip"), tip.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pi1: Value = r.json().await.unwrap();
    assert_eq!(pi1["amount"], 700);
    assert_eq!(pi1["status"], "requires_payment_method");
    assert_eq!(pi1["transfer_data"]["destination"], acct.as_str());
    assert_eq!(pi1["metadata"]["giftstream_kind"], "tip");
    let pi2: Value = post("/v1/payment_intents", Some("k-tip"), tip)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pi1["id"], pi2["id"]);
    let charges = d.destination_charges();
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0].destination, acct);
    assert_eq!(charges[0].amount, 700);
    // Account links need a known account and both URLs.
    let r = post(
        "/v1/account_links",
        None,
        vec![
            ("account", acct.clone()),
            ("type", "account_onboarding".into()),
            ("return_url", "http://x/".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
}

// ---- across nodes, and partial refunds ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tip_event_reaches_viewers_on_another_node() {
    let Some(engine) = engines()
        .await
        .into_iter()
        .find(|e| e.name == "redis+postgres")
    else {
        return;
    };
    // Node A gets Stripe's webhook; the viewer watches on node B.
    let a = Pay::start(&engine, None, |_| {}).await;
    let mut cfg_b = test_config(&engine);
    payments_config(&mut cfg_b, &a.double.url, &a.secret);
    let b = TestServer::start_with(engine.clone(), cfg_b).await;
    let room = format!("tipx-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    a.s.open_room("nia", &room).await;
    let mut on_b = b.ws("bea", Role::Viewer).await;
    on_b.join(&room).await;
    // The tip as POST .../tips records it (its PaymentIntent made at Stripe).
    a.s.state()
        .ledger
        .tip_created(&TipRecord {
            currency: giftstream::model::Fiat::Usd,
            payment_intent: "pi_tipx".into(),
            tip_key: "tom:x1".into(),
            sender: "tom".into(),
            creator: "nia".into(),
            target: format!("room:{room}"),
            amount_cents: 700,
            message: "from far away".into(),
        })
        .await
        .unwrap();
    let pi = json!({ "id": "pi_tipx", "object": "payment_intent", "amount": 700, "currency": "usd",
                     "status": "succeeded", "metadata": { "giftstream_kind": "tip", "giftstream_tip": "tom:x1" } });
    let (st, v) = a
        .send_event(&evt_id(), "payment_intent.succeeded", pi)
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
    let (ev, _) = on_b.until("tip_event").await;
    assert_eq!(
        (
            ev["room"].as_str(),
            ev["sender"].as_str(),
            ev["amount_cents"].as_i64(),
            ev["message"].as_str()
        ),
        (
            Some(room.as_str()),
            Some("tom"),
            Some(700),
            Some("from far away")
        )
    );
    assert_eq!(
        b.earnings("nia").await["tips_cents"],
        700,
        "one ledger for both nodes"
    );
    b.stop().await;
    a.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_refunds_reverse_their_share_of_the_coins_once() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = Pay::start(&engine, None, |_| {}).await;
        p.s.state()
            .ledger
            .purchase_created(&PurchaseOp {
                currency: giftstream::model::Fiat::Usd,
                event: StripeEventRef {
                    id: String::new(),
                    kind: String::new(),
                },
                payment_intent: "pi_part".into(),
                user: "pat".into(),
                coins: 1400,
                amount_cents: 1999,
            })
            .await
            .unwrap();
        let (st, _) = p
            .send_event(
                &evt_id(),
                "payment_intent.succeeded",
                purchase_pi("pi_part", "pat", 1400, 1999),
            )
            .await;
        assert_eq!(st, 200);
        assert_eq!(p.s.wallet("pat").await, 1400);
        // As Stripe sends it (read by async-stripe's types) ...
        let charge = |refunded: i64| {
            json!({ "id": "ch_part", "object": "charge", "amount": 1999,
            "amount_captured": 1999, "amount_refunded": refunded,
            "billing_details": { "address": null, "email": null, "name": null, "phone": null },
            "captured": true, "created": now_ms() / 1000, "currency": "usd", "disputed": false,
            "livemode": false, "metadata": {}, "paid": true, "payment_intent": "pi_part",
            "refunded": refunded == 1999, "status": "succeeded" })
        };
        // ... and in an older, smaller shape (read by giftstream's envelope).
        let charge_old_shape = |refunded: i64| {
            json!({ "id": "ch_part", "object": "charge", "amount": 1999,
            "amount_refunded": refunded, "currency": "usd", "payment_intent": "pi_part" })
        };
        // $10.00 of $19.99 back: floor(1400 * 1000 / 1999) = 700 coins.
        let (_, v) = p
            .send_event(&evt_id(), "charge.refunded", charge(1000))
            .await;
        assert_eq!(v["outcome"], "applied", "{v}");
        assert_eq!(p.s.wallet("pat").await, 700);
        // Stripe's cumulative amount again under another event id: nothing.
        let (_, v) = p
            .send_event(&evt_id(), "charge.refunded", charge_old_shape(1000))
            .await;
        assert_eq!(v["outcome"], "replayed", "{v}");
        assert_eq!(p.s.wallet("pat").await, 700);
        // The rest: every coin reversed, nothing owed.
        let (_, v) = p
            .send_event(&evt_id(), "charge.refunded", charge(1999))
            .await;
        assert_eq!(v["outcome"], "applied", "{v}");
        assert_eq!(p.s.wallet("pat").await, 0);
        assert_eq!(p.ledger_balance(&account::debt("pat"), COIN).await, 0);
        assert_eq!(p.ledger_balance(account::STRIPE_PLATFORM, USD).await, 0);
        p.assert_sums_zero().await;
        p.s.stop().await;
    }
}

// ---- money safety (issue 11) -------------------------------------------------------

/// A purchase recorded as `POST /v1/coins/purchases` records it.
async fn created_purchase(p: &Pay, pi: &str, user: &str, coins: i64, cents: i64) {
    p.s.state()
        .ledger
        .purchase_created(&PurchaseOp {
            currency: giftstream::model::Fiat::Usd,
            event: StripeEventRef {
                id: String::new(),
                kind: String::new(),
            },
            payment_intent: pi.into(),
            user: user.into(),
            coins,
            amount_cents: cents,
        })
        .await
        .unwrap();
}

/// A signed event with its own `created` (seconds).
async fn send_event_created(p: &Pay, kind: &str, created: i64, object: Value) -> (u16, Value) {
    let mut e = event(&evt_id(), kind, object);
    e["created"] = json!(created);
    let body = e.to_string();
    let h = sign(body.as_bytes(), &p.secret, now_ms() / 1000);
    p.post_webhook(body.as_bytes(), Some(h)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refund_and_dispute_before_their_purchase_are_applied_when_it_is_paid() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = Pay::start(&engine, None, |_| {}).await;
        created_purchase(&p, "pi_early_r", "eli", 70, 99).await;
        created_purchase(&p, "pi_early_d", "eli", 70, 99).await;
        // Stripe delivers the refund (and a chargeback of another
        // purchase) before the payments themselves.
        let charge = json!({ "id": "ch_early", "object": "charge", "amount": 99,
                             "amount_refunded": 99, "currency": "usd",
                             "payment_intent": "pi_early_r", "refunded": true });
        let refund_evt = evt_id();
        let (st, v) = p
            .send_event(&refund_evt, "charge.refunded", charge.clone())
            .await;
        assert_eq!((st, v["outcome"].as_str()), (200, Some("ignored")), "{v}");
        let dispute = json!({ "id": "dp_early", "object": "dispute", "amount": 99,
                              "currency": "usd", "charge": "ch_d",
                              "payment_intent": "pi_early_d", "status": "needs_response",
                              "reason": "fraudulent" });
        let (st, v) = p
            .send_event(&evt_id(), "charge.dispute.funds_withdrawn", dispute)
            .await;
        assert_eq!((st, v["outcome"].as_str()), (200, Some("ignored")), "{v}");
        assert_eq!(p.s.wallet("eli").await, 0);
        // The payments arrive: credited, then the parked reversals apply.
        for pi in ["pi_early_r", "pi_early_d"] {
            let (st, v) = p
                .send_event(
                    &evt_id(),
                    "payment_intent.succeeded",
                    purchase_pi(pi, "eli", 70, 99),
                )
                .await;
            assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
        }
        assert_eq!(p.s.wallet("eli").await, 0, "both purchases were reversed");
        p.s.settled().await;
        let l = &p.s.state().ledger;
        let r = l.purchase_record("pi_early_r").await.unwrap().unwrap();
        assert_eq!((r.coins_reversed, r.cents_refunded), (70, 99));
        let d = l.purchase_record("pi_early_d").await.unwrap().unwrap();
        assert_eq!(d.coins_reversed, 70);
        assert!(l.dispute_record("dp_early").await.unwrap().is_some());
        assert!(l.parked_reversals("pi_early_r").await.unwrap().is_empty());
        assert_eq!(p.ledger_balance(&account::wallet("eli"), COIN).await, 0);
        assert_eq!(p.ledger_balance(account::STRIPE_PLATFORM, USD).await, 0);
        // The refund's event again: once.
        let (st, v) = p.send_event(&refund_evt, "charge.refunded", charge).await;
        assert_eq!((st, v["outcome"].as_str()), (200, Some("replayed")), "{v}");
        p.assert_sums_zero().await;
        p.s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn account_updated_out_of_order_keeps_payouts_disabled() {
    let p = Pay::start(&embedded(), None, |_| {}).await;
    let acct = p.onboard("oona").await;
    let now = now_ms() / 1000;
    let obj = |on: bool| json!({ "id": acct, "object": "account", "payouts_enabled": on });
    // Stripe disabled payouts (newer event) ...
    let (st, v) = send_event_created(&p, "account.updated", now + 20, obj(false)).await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
    // ... and an older "enabled" arrives after it.
    let (st, v) = send_event_created(&p, "account.updated", now + 10, obj(true)).await;
    assert_eq!(st, 200, "{v}");
    assert_ne!(v["outcome"].as_str(), Some("applied"), "{v}");
    let tok = p.s.token("oona", Role::Creator);
    let (_, status) = p.s.get("/v1/creators/me/payouts", &tok).await;
    assert_eq!(status["payouts_enabled"], false, "stays disabled: {status}");
    let (st, v) = p.cashout(&tok, 100, "c1").await;
    assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")), "{v}");
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stripe_error_text_is_not_passed_to_clients() {
    let p = Pay::start(&embedded(), None, |_| {}).await;
    p.s.open_room("sid", "err-room").await;
    // An account Stripe does not know: the double refuses the destination
    // charge with a message naming it.
    p.s.state()
        .ledger
        .put_payout_account("sid", "acct_secret_internal")
        .await
        .unwrap();
    let (st, _) = p
        .send_event(
            &evt_id(),
            "account.updated",
            json!({ "id": "acct_secret_internal", "object": "account", "payouts_enabled": true }),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) =
        p.s.post(
            "/v1/rooms/err-room/tips",
            &p.s.token("tess", Role::Viewer),
            json!({ "amount_cents": 500, "currency": "usd", "message": "hi", "id": "t1" }),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")), "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(!msg.contains("acct_secret_internal"), "{v}");
    assert!(!msg.contains("No such destination"), "{v}");
    assert_eq!(msg, "the payment provider refused the request");
    p.s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tip_refund_reverses_the_transfer_and_an_unrecoverable_dispute_is_a_platform_loss() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = Pay::start(&engine, None, |_| {}).await;
        p.s.open_room("tara", "tipr-room").await;
        let acct = p.onboard("tara").await;
        for (pi, id) in [("pi_tip_r", "t1"), ("pi_tip_d", "t2")] {
            p.s.state()
                .ledger
                .tip_created(&TipRecord {
                    currency: giftstream::model::Fiat::Usd,
                    payment_intent: pi.into(),
                    tip_key: format!("tod:{id}"),
                    sender: "tod".into(),
                    creator: "tara".into(),
                    target: "room:tipr-room".into(),
                    amount_cents: 500,
                    message: String::new(),
                })
                .await
                .unwrap();
            let paid = json!({ "id": pi, "object": "payment_intent", "amount": 500,
                               "amount_received": 500, "currency": "usd", "status": "succeeded",
                               "metadata": { "giftstream_kind": "tip" } });
            let (st, v) = p
                .send_event(&evt_id(), "payment_intent.succeeded", paid)
                .await;
            assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
        }
        // The destination charges' Transfers to the creator's account.
        let tr_r = p.double.make_transfer(&acct, 500);
        let tr_d = p.double.make_transfer(&acct, 500);
        let ch = |pi: &str, tr: &str, refunded: i64| {
            json!({ "id": format!("ch_{pi}"), "object": "charge", "amount": 500,
                    "amount_refunded": refunded, "currency": "usd", "payment_intent": pi,
                    "transfer": tr, "refunded": refunded == 500 })
        };
        let (st, _) = p
            .send_event(&evt_id(), "charge.succeeded", ch("pi_tip_d", &tr_d, 0))
            .await;
        assert_eq!(st, 200);
        // 200 of the first tip refunded from the dashboard: the Transfer
        // is reversed by 200, once.
        let refund_evt = evt_id();
        let (st, v) = p
            .send_event(&refund_evt, "charge.refunded", ch("pi_tip_r", &tr_r, 200))
            .await;
        assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
        let (st, v) = p
            .send_event(&refund_evt, "charge.refunded", ch("pi_tip_r", &tr_r, 200))
            .await;
        assert_eq!((st, v["outcome"].as_str()), (200, Some("replayed")), "{v}");
        assert_eq!(p.double.reversals(), vec![(tr_r.clone(), 200)]);
        // The second tip is charged back, and the creator's account
        // cannot cover the reversal: the platform's loss, recorded.
        p.double.set_transfer_mode(TransferMode::Refuse);
        let dispute = json!({ "id": "dp_tip", "object": "dispute", "amount": 500,
                              "currency": "usd", "charge": "ch_pi_tip_d",
                              "payment_intent": "pi_tip_d", "status": "needs_response",
                              "reason": "fraudulent" });
        let dispute_won = dispute.clone();
        let (st, v) = p
            .send_event(&evt_id(), "charge.dispute.funds_withdrawn", dispute)
            .await;
        assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
        p.double.set_transfer_mode(TransferMode::Normal);
        assert_eq!(
            p.double.reversals().len(),
            1,
            "the refused one made nothing"
        );
        let e = p.s.earnings("tara").await;
        assert_eq!(
            (
                e["tips_cents"].as_i64(),
                e["tips_reversed_cents"].as_i64(),
                e["tips_recovered_cents"].as_i64()
            ),
            (Some(800), Some(700), Some(200)),
            "{e}"
        );
        assert_eq!(p.ledger_balance(account::PLATFORM_LOSS, USD).await, 500);
        assert_eq!(p.ledger_balance(account::STRIPE_PLATFORM, USD).await, -500);
        p.assert_sums_zero().await;
        // The platform wins that dispute: the cents are back, no loss.
        let (st, v) = p
            .send_event(&evt_id(), "charge.dispute.funds_reinstated", dispute_won)
            .await;
        assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
        assert_eq!(p.ledger_balance(account::PLATFORM_LOSS, USD).await, 0);
        assert_eq!(p.ledger_balance(account::STRIPE_PLATFORM, USD).await, 0);
        let e = p.s.earnings("tara").await;
        assert_eq!(e["tips_cents"].as_i64(), Some(800), "{e}");
        p.assert_sums_zero().await;
        p.s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gifted_diamonds_are_held_then_cashable_within_daily_limits() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = Pay::start(&engine, None, |c| {
            c.payouts.hold_s = 2;
            c.payouts.cashouts_per_day_max = 2;
            c.payouts.cashout_cents_per_day_max = 150;
        })
        .await;
        p.onboard("hana").await;
        earn(&p, "hana", "hold-room", 1).await;
        let e = p.s.earnings("hana").await;
        assert_eq!(
            (
                e["diamonds_settled"].as_i64(),
                e["diamonds_held"].as_i64(),
                e["diamonds_available"].as_i64()
            ),
            (Some(500), Some(500), Some(0)),
            "{e}"
        );
        let tok = p.s.token("hana", Role::Creator);
        // A gift, then at once a cash-out: held.
        let (st, v) = p.cashout(&tok, 200, "now").await;
        assert_eq!(
            (st, v["code"].as_str()),
            (402, Some("insufficient_funds")),
            "{v}"
        );
        assert!(p.double.transfers().is_empty());
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let e = p.s.earnings("hana").await;
        assert_eq!(
            (
                e["diamonds_held"].as_i64(),
                e["diamonds_available"].as_i64()
            ),
            (Some(0), Some(500)),
            "{e}"
        );
        let (st, v) = p.cashout(&tok, 200, "a").await;
        assert_eq!((st, v["status"].as_str()), (200, Some("completed")), "{v}");
        // 100 + 100 cents would pass 150 a day; then the count.
        let (st, v) = p.cashout(&tok, 200, "b").await;
        assert_eq!((st, v["code"].as_str()), (429, Some("rate_limited")), "{v}");
        let (st, v) = p.cashout(&tok, 100, "c").await;
        assert_eq!((st, v["status"].as_str()), (200, Some("completed")), "{v}");
        let (st, v) = p.cashout(&tok, 100, "d").await;
        assert_eq!((st, v["code"].as_str()), (429, Some("rate_limited")), "{v}");
        assert_eq!(p.double.transfers().len(), 2);
        let e = p.s.earnings("hana").await;
        assert_eq!(
            (
                e["diamonds_settled"].as_i64(),
                e["diamonds_cashed_out"].as_i64(),
                e["diamonds_available"].as_i64()
            ),
            (Some(200), Some(300), Some(200)),
            "{e}"
        );
        p.assert_sums_zero().await;
        p.s.stop().await;
    }
}

#[test]
fn payout_limits_are_validated_by_key() {
    let base = test_config(&embedded());
    type Tweak = fn(&mut Config);
    let cases: [(&str, Tweak); 3] = [
        ("payouts.cashouts_per_day_max", |c| {
            c.payouts.cashouts_per_day_max = 0
        }),
        ("payouts.cashout_cents_per_day_max", |c| {
            c.payouts.cashout_cents_per_day_max = 0
        }),
        ("payouts.hold_s", |c| c.payouts.hold_s = 400 * 86_400),
    ];
    for (key, bad) in cases {
        let mut c = base.clone();
        bad(&mut c);
        assert_eq!(c.validate().unwrap_err().key, key);
    }
    assert_eq!(Config::default().payouts.hold_s, 604_800, "7 days");
    base.validate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refund_webhook_claws_back_held_diamonds_newest_first_and_records_the_rest() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        let p = Pay::start(&engine, None, |c| c.payouts.hold_s = 3600).await;
        created_purchase(&p, "pi_claw", "gus", 70, 99).await;
        let (st, v) = p
            .send_event(
                &evt_id(),
                "payment_intent.succeeded",
                purchase_pi("pi_claw", "gus", 70, 99),
            )
            .await;
        assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
        p.s.open_room("ivy", "claw-a").await;
        p.s.open_room("jon", "claw-b").await;
        let mut ws = p.s.ws("gus", Role::Viewer).await;
        ws.join("claw-a").await;
        ws.join("claw-b").await;
        // 40 coins to ivy (20 diamonds), then 10 to jon (4 diamonds).
        assert_eq!(ws.gift("claw-a", "perfume", 2, "g1").await["balance"], 30);
        p.s.settled().await;
        assert_eq!(
            ws.gift("claw-b", "finger_heart", 2, "g2").await["balance"],
            20
        );
        p.s.settled().await;
        let charge = |refunded: i64| {
            json!({ "id": "ch_claw", "object": "charge", "amount": 99,
                    "amount_refunded": refunded, "currency": "usd",
                    "payment_intent": "pi_claw", "refunded": refunded == 99 })
        };
        // 50 of 99 cents refunded: 35 coins; the wallet's 20 are taken, the
        // 15 spent claw back jon's newest gift whole (10 coins, 4
        // diamonds), then 5 of ivy's 40 coins (2 diamonds): all on hold.
        let (st, v) = p.send_event(&evt_id(), "charge.refunded", charge(50)).await;
        assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
        let (ivy, jon) = (p.s.earnings("ivy").await, p.s.earnings("jon").await);
        assert_eq!(
            (
                jon["diamonds_settled"].as_i64(),
                jon["diamonds_reversed"].as_i64()
            ),
            (Some(0), Some(4)),
            "{jon}"
        );
        assert_eq!(
            (
                ivy["diamonds_settled"].as_i64(),
                ivy["diamonds_held"].as_i64(),
                ivy["diamonds_reversed"].as_i64(),
                ivy["diamonds_unrecovered"].as_i64()
            ),
            (Some(18), Some(18), Some(2), Some(0)),
            "{ivy}"
        );
        // The hold passes (limits as a later clock would see them); the
        // rest is refunded: 35 spent coins, ivy's 35 open coins = 17
        // diamonds no longer held: the platform's loss, recorded.
        p.s.state()
            .ledger
            .set_payout_limits(giftstream::model::PayoutLimits {
                hold_ms: 0,
                ..p.s.cfg.payouts.limits()
            });
        let (st, v) = p.send_event(&evt_id(), "charge.refunded", charge(99)).await;
        assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
        let ivy = p.s.earnings("ivy").await;
        assert_eq!(
            (
                ivy["diamonds_settled"].as_i64(),
                ivy["diamonds_available"].as_i64(),
                ivy["diamonds_reversed"].as_i64(),
                ivy["diamonds_unrecovered"].as_i64()
            ),
            (Some(18), Some(18), Some(2), Some(17)),
            "{ivy}"
        );
        assert_eq!(
            p.ledger_balance(account::PLATFORM_LOSS, "DIAMOND").await,
            17
        );
        assert_eq!(p.ledger_balance(&account::debt("gus"), COIN).await, -50);
        assert_eq!(p.s.wallet("gus").await, 0);
        let sums = p.assert_sums_zero().await;
        assert_eq!(sums["DIAMOND"], 0, "{sums}");
        p.s.stop().await;
    }
}

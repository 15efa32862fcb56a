//! The creator studio's reads (issue 15 item 5): a creator's own gifts,
//! tips and cash-outs page by page under a cursor, daily earnings and top
//! supporters, on every engine pair; cash-outs and the Express dashboard
//! link through the Stripe contract double, tips through localstripe.

use crate::common;

use crate::cashout_safety::Pay as CashPay;
use crate::payments::{wait_until, Pay as TipPay};
use common::server::{embedded, engines, TestServer};
use common::services::stripe_url;
use giftstream::auth::Role;
use serde_json::{json, Value};

/// Every row of a history, following `next_cursor` with `limit`.
async fn all_pages(
    s: &TestServer,
    token: &str,
    path: &str,
    field: &str,
    limit: u32,
) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        let (st, v) = s
            .get(&format!("{path}?limit={limit}&cursor={cursor}"), token)
            .await;
        assert_eq!(st, 200, "{path}: {v}");
        pages.push(v[field].as_array().expect("rows").clone());
        match v["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => return pages,
        }
        assert!(pages.len() < 50, "{path}: endless pages");
    }
}

#[tokio::test]
async fn a_creator_reads_their_gifts_page_by_page_with_daily_sums_and_supporters() {
    for engine in engines().await {
        let s = TestServer::start(&engine, |_| {}).await;
        let name = engine.name;
        s.open_room("sara", "sara-live").await;
        let (st, v) = s
            .post(
                "/v1/videos",
                &s.token("sara", Role::Creator),
                json!({ "video": "sara-clip" }),
            )
            .await;
        assert_eq!(st, 201, "{name}: {v}");
        // Another creator's gift must never show in sara's studio.
        s.open_room("otto", "otto-live").await;
        s.grant("fan", 1000, "g-fan").await;
        s.grant("big", 1000, "g-big").await;

        let mut fan = s.ws("fan", Role::Viewer).await;
        fan.join("sara-live").await;
        for i in 0..3 {
            let ack = fan.gift("sara-live", "rose", 1, &format!("r{i}")).await;
            assert_eq!(ack["type"], "gift_ack", "{name}: {ack}");
            // Apart in time, so "newest first" has one answer.
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        let ack = fan.gift("otto-live", "rose", 1, "o1").await;
        assert_eq!(ack["type"], "gift_ack", "{name}: {ack}");
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        let evil = "<img src=x onerror=alert(1)>";
        let (st, ack) = s
            .post(
                "/v1/videos/sara-clip/gifts",
                &s.token("big", Role::Viewer),
                json!({ "gift": "rose", "count": 5, "id": "v1", "message": evil }),
            )
            .await;
        assert_eq!(st, 200, "{name}: {ack}");
        s.settled().await;

        let sara = s.token("sara", Role::Creator);
        let pages = all_pages(&s, &sara, "/v1/creators/me/gifts", "gifts", 2).await;
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [2, 2],
            "{name}: 4 gifts in pages of 2: {pages:?}"
        );
        let rows: Vec<&Value> = pages.iter().flatten().collect();
        // Newest first: the video gift, then the room's r2, r1, r0.
        assert_eq!(rows[0]["target"], "video:sara-clip", "{name}: {rows:?}");
        assert_eq!(rows[0]["sender"], "big", "{name}");
        assert_eq!(rows[0]["count"], 5, "{name}");
        assert_eq!(
            rows[0]["message"], evil,
            "{name}: stored and answered as text"
        );
        let room_seqs: Vec<i64> = rows[1..]
            .iter()
            .map(|r| {
                assert_eq!(r["target"], "room:sara-live", "{name}: {r}");
                assert_eq!(r["sender"], "fan", "{name}: {r}");
                assert!(r["message"].is_null(), "{name}: {r}");
                r["seq"].as_i64().unwrap()
            })
            .collect();
        assert_eq!(room_seqs, [3, 2, 1], "{name}");
        let total: i64 = rows.iter().map(|r| r["diamonds"].as_i64().unwrap()).sum();
        let earned = s.earnings("sara").await;
        assert_eq!(
            total,
            earned["diamonds_settled"].as_i64().unwrap(),
            "{name}"
        );
        assert!(total > 0, "{name}");

        // Daily: 30 days, oldest first, all of it today.
        let (st, v) = s.get("/v1/creators/me/earnings/daily", &sara).await;
        assert_eq!(st, 200, "{name}: {v}");
        let days = v["days"].as_array().unwrap();
        assert_eq!(days.len(), 30, "{name}");
        let day_ms: Vec<i64> = days.iter().map(|d| d["day_ms"].as_i64().unwrap()).collect();
        assert!(
            day_ms.windows(2).all(|w| w[1] - w[0] == 86_400_000),
            "{name}"
        );
        assert_eq!(days[29]["diamonds"], total, "{name}: {v}");
        assert!(days[..29].iter().all(|d| d["diamonds"] == 0), "{name}");
        let (st, v) = s.get("/v1/creators/me/earnings/daily?days=7", &sara).await;
        assert_eq!(
            (st, v["days"].as_array().map(Vec::len)),
            (200, Some(7)),
            "{name}"
        );

        // Supporters of all time: big (5 roses) before fan (3).
        let (st, v) = s.get("/v1/creators/me/supporters", &sara).await;
        assert_eq!(st, 200, "{name}: {v}");
        let sup: Vec<(&str, i64)> = v["supporters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["user"].as_str().unwrap(), x["diamonds"].as_i64().unwrap()))
            .collect();
        assert_eq!(
            sup.iter().map(|x| x.0).collect::<Vec<_>>(),
            ["big", "fan"],
            "{name}"
        );
        assert_eq!(sup.iter().map(|x| x.1).sum::<i64>(), total, "{name}");

        // No tips, no cash-outs yet; the cash-out terms are the config's.
        let (st, v) = s.get("/v1/creators/me/tips", &sara).await;
        assert_eq!(
            (st, v["tips"].as_array().map(Vec::len)),
            (200, Some(0)),
            "{name}: {v}"
        );
        assert!(v["next_cursor"].is_null(), "{name}");
        let (st, v) = s.get("/v1/creators/me/cashouts", &sara).await;
        assert_eq!(st, 200, "{name}: {v}");
        assert_eq!(v["cashouts"], json!([]), "{name}");
        let cfg = &s.state().cfg;
        assert_eq!(
            v["terms"],
            json!({
                "currency": cfg.stripe.currency,
                "cents_per_100_diamonds": cfg.stripe.cashout_cents_per_100_diamonds,
                "diamonds_min": cfg.stripe.cashout_diamonds_min,
                "hold_s": cfg.payouts.hold_s,
                "cashouts_per_day_max": cfg.payouts.cashouts_per_day_max,
                "cents_per_day_max": cfg.payouts.cashout_cents_per_day_max,
                "currencies": {
                    "usd": {
                        "cents_per_100_diamonds": cfg.stripe.cashout_cents_per_100_diamonds,
                        "cents_per_day_max": cfg.payouts.cashout_cents_per_day_max,
                    },
                    "eur": {
                        "cents_per_100_diamonds": cfg.payouts.rates["eur"].cents_per_100_diamonds,
                        "cents_per_day_max": cfg.payouts.rates["eur"].cents_per_day_max,
                    },
                },
            }),
            "{name}"
        );

        // otto sees only his own gift.
        let otto = s.token("otto", Role::Creator);
        let pages = all_pages(&s, &otto, "/v1/creators/me/gifts", "gifts", 20).await;
        assert_eq!(pages.len(), 1, "{name}");
        assert_eq!(pages[0].len(), 1, "{name}: {pages:?}");
        assert_eq!(pages[0][0]["target"], "room:otto-live", "{name}");
        s.stop().await;
    }
}

#[tokio::test]
async fn studio_reads_refuse_viewers_bad_limits_and_bad_cursors() {
    let engine = engines().await.remove(0);
    let s = TestServer::start(&engine, |_| {}).await;
    let viewer = s.token("fan", Role::Viewer);
    let sara = s.token("sara", Role::Creator);
    for path in [
        "/v1/creators/me/gifts",
        "/v1/creators/me/tips",
        "/v1/creators/me/cashouts",
        "/v1/creators/me/earnings/daily",
        "/v1/creators/me/supporters",
    ] {
        let (st, v) = s.get(path, &viewer).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (403, Some("forbidden")),
            "{path}: {v}"
        );
    }
    for path in [
        "/v1/creators/me/gifts?limit=0",
        "/v1/creators/me/tips?limit=101",
        "/v1/creators/me/cashouts?limit=x",
        "/v1/creators/me/gifts?cursor=%25%25",
        "/v1/creators/me/tips?cursor=bm90LWEtY3Vyc29y",
        "/v1/creators/me/earnings/daily?days=0",
        "/v1/creators/me/earnings/daily?days=31",
    ] {
        let (st, v) = s.get(path, &sara).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (400, Some("bad_request")),
            "{path}: {v}"
        );
    }
    s.stop().await;
}

/// Issue 15 item 5: the studio's cash-out history lists a creator's
/// cash-outs newest first, page by page, with their states and amounts,
/// and nobody else's.
#[tokio::test]
async fn the_studio_lists_cashouts_page_by_page_with_their_states() {
    for engine in engines().await {
        let name = engine.name;
        let p = CashPay::start(&engine, |_| {}).await;
        p.earn("cat", "hist-room", 2).await;
        p.onboard("cat").await;
        for (id, diamonds) in [("h1", 100), ("h2", 200), ("h3", 300)] {
            let (st, v) = p.cashout("cat", diamonds, id).await;
            assert_eq!(st, 200, "{name} {id}: {v}");
            // Apart in time, so "newest first" has one answer.
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        let tok = p.s.token("cat", Role::Creator);
        let (st, first) = p.s.get("/v1/creators/me/cashouts?limit=2", &tok).await;
        assert_eq!(st, 200, "{name}: {first}");
        let cursor = first["next_cursor"].as_str().expect("a second page");
        let (st, second) =
            p.s.get(
                &format!("/v1/creators/me/cashouts?limit=2&cursor={cursor}"),
                &tok,
            )
            .await;
        assert_eq!(st, 200, "{name}: {second}");
        assert!(second["next_cursor"].is_null(), "{name}: {second}");
        let rows: Vec<(String, i64, i64, String)> = [&first, &second]
            .iter()
            .flat_map(|v| v["cashouts"].as_array().unwrap().clone())
            .map(|c| {
                assert!(c["finished_ms"].as_i64().is_some(), "{name}: {c}");
                (
                    c["cashout_id"].as_str().unwrap().to_string(),
                    c["diamonds"].as_i64().unwrap(),
                    c["amount_cents"].as_i64().unwrap(),
                    c["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let done = |id: &str, d: i64, c: i64| (id.to_string(), d, c, "completed".to_string());
        assert_eq!(
            rows,
            [
                done("cat:h3", 300, 150),
                done("cat:h2", 200, 100),
                done("cat:h1", 100, 50)
            ],
            "{name}"
        );
        assert_eq!(first["terms"]["diamonds_min"], 100, "{name}");
        let (st, other) =
            p.s.get("/v1/creators/me/cashouts", &p.s.token("dog", Role::Creator))
                .await;
        assert_eq!(
            (st, other["cashouts"].as_array().map(Vec::len)),
            (200, Some(0)),
            "{name}"
        );
        p.s.stop().await;
    }
}

/// Issue 15 item 5 ("get paid"): a creator who started onboarding gets a
/// fresh login link into their Express dashboard, for their own account;
/// one who did not is told to set up payouts first.
#[tokio::test]
async fn a_creator_gets_a_login_link_into_their_express_dashboard() {
    let p = CashPay::start(&embedded(), |_| {}).await;
    let tok = p.s.token("cat", Role::Creator);
    let (st, v) =
        p.s.post("/v1/creators/me/payouts/dashboard", &tok, json!({}))
            .await;
    assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("set up payouts first"),
        "{v}"
    );
    let acct = p.onboard("cat").await;
    let mut urls = Vec::new();
    for _ in 0..2 {
        let (st, v) =
            p.s.post("/v1/creators/me/payouts/dashboard", &tok, json!({}))
                .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["account"], acct.as_str(), "{v}");
        urls.push(v["url"].as_str().unwrap().to_string());
    }
    assert_eq!(
        urls[0],
        format!("https://connect.stripe.com/express/{acct}/double")
    );
    let asked: Vec<_> = p
        .double
        .requests()
        .into_iter()
        .filter(|(m, path, _)| m == "POST" && path.ends_with("/login_links"))
        .collect();
    assert_eq!(asked.len(), 2, "a fresh link each time: {asked:?}");
    assert!(asked
        .iter()
        .all(|(_, path, _)| *path == format!("/v1/accounts/{acct}/login_links")));
    let keys: std::collections::HashSet<_> = asked.iter().map(|(_, _, k)| k.clone()).collect();
    assert_eq!(keys.len(), 2, "one Idempotency-Key per link: {asked:?}");
    p.s.stop().await;
}

/// Issue 15 item 5: the studio's tip history lists a creator's tips newest
/// first, page by page, paid and not yet paid, messages as sent; the daily
/// sums count the paid ones only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_studio_lists_tips_page_by_page_and_sums_the_paid_ones_per_day() {
    let Some(ls) = stripe_url() else { return };
    for engine in engines().await {
        let name = engine.name;
        let p = TipPay::start(&engine, Some(ls.clone()), |_| {}).await;
        p.s.open_room("tia", "hist-tips").await;
        p.onboard("tia").await;
        let tok = p.s.token("tom", Role::Viewer);
        let evil = "<img src=x onerror=alert(1)>";
        let mut pis = Vec::new();
        for (id, cents, msg) in [("h1", 700, evil), ("h2", 300, "")] {
            let (st, t) =
                p.s.post(
                    "/v1/rooms/hist-tips/tips",
                    &tok,
                    json!({ "amount_cents": cents, "currency": "usd", "message": msg, "id": id }),
                )
                .await;
            assert_eq!(st, 201, "{name}: {t}");
            pis.push(t["payment_intent"].as_str().unwrap().to_string());
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        p.pay(&pis[0]).await;
        wait_until("tip in earnings", || async {
            p.s.earnings("tia").await["tips_cents"] == 700
        })
        .await;
        let tia = p.s.token("tia", Role::Creator);
        let (st, first) = p.s.get("/v1/creators/me/tips?limit=1", &tia).await;
        assert_eq!(st, 200, "{name}: {first}");
        let cursor = first["next_cursor"].as_str().expect("a second page");
        let (st, second) =
            p.s.get(
                &format!("/v1/creators/me/tips?limit=1&cursor={cursor}"),
                &tia,
            )
            .await;
        assert_eq!(st, 200, "{name}: {second}");
        assert!(second["next_cursor"].is_null(), "{name}: {second}");
        let row = |v: &Value| {
            let t = &v["tips"][0];
            (
                t["payment_intent"].as_str().unwrap().to_string(),
                t["sender"].as_str().unwrap().to_string(),
                t["target"].as_str().unwrap().to_string(),
                t["amount_cents"].as_i64().unwrap(),
                t["message"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
            )
        };
        let tip = |pi: &str, c: i64, m: &str, s: &str| {
            (
                pi.to_string(),
                "tom".to_string(),
                "room:hist-tips".to_string(),
                c,
                m.to_string(),
                s.to_string(),
            )
        };
        assert_eq!(row(&first), tip(&pis[1], 300, "", "pending"), "{name}");
        assert_eq!(row(&second), tip(&pis[0], 700, evil, "succeeded"), "{name}");
        let (st, v) = p.s.get("/v1/creators/me/earnings/daily?days=1", &tia).await;
        assert_eq!(st, 200, "{name}: {v}");
        assert_eq!(v["days"][0]["tips_cents"], 700, "{name}: {v}");
        p.s.stop().await;
    }
}

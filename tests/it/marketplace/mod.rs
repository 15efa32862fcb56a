//! The Creator Marketplace (issue 14 items 2-4) over HTTP, on every engine
//! pair: brand and creator profiles; eligibility (9,999 followers is
//! `not_eligible` with `missing.followers == 1`, 10,000 joins; payouts
//! missing is `missing.payouts`; a creator who falls below stays listed
//! but cannot apply until back above); the campaign and application state
//! machines walked through their routes, refused moves included (409
//! `conflict` naming the state); role refusals; and racing accepts (and
//! an accept against a withdraw) making exactly one contract.
//!
//! Followers are set up with the admin's NDJSON import route; payouts are
//! enabled through the ledger (`account.updated` as the webhook applies it).

use crate::common;

mod campaigns;
mod escrow;

use common::server::{engines, EngineSpec, TestServer};
use giftstream::auth::Role;
use giftstream::ledger::StripeEventRef;
use reqwest::Method;
use serde_json::{json, Value};

/// Run `case` once per available engine pair, naming the pair on failure.
macro_rules! each_engine {
    ($case:ident) => {
        for engine in engines().await {
            eprintln!("-- engines: {}", engine.name);
            $case(&engine).await;
        }
    };
}
pub(super) use each_engine;

pub(super) const BRAND: &str = "mk-brand";
pub(super) const OTHER_BRAND: &str = "mk-brand-2";

pub(super) async fn call(
    s: &TestServer,
    method: Method,
    path: &str,
    user: &str,
    role: Role,
    body: Option<Value>,
) -> (u16, Value) {
    s.request(method, path, Some(&s.token(user, role)), body)
        .await
}

pub(super) async fn brand(
    s: &TestServer,
    m: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call(s, m, path, BRAND, Role::Brand, body).await
}

pub(super) async fn creator(
    s: &TestServer,
    who: &str,
    m: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call(s, m, path, who, Role::Creator, body).await
}

/// `n` followers `PREFIX<i>` for `creator` from `from`, through the
/// admin's import route (`DELETE` removes them).
pub(super) async fn followers(
    s: &TestServer,
    m: Method,
    creator: &str,
    prefix: &str,
    from: usize,
    n: usize,
) {
    let body: String = (from..from + n)
        .map(|i| format!("{{\"follower\":\"{prefix}{i}\",\"creator\":\"{creator}\"}}\n"))
        .collect();
    let resp = reqwest::Client::new()
        .request(m, s.url("/v1/admin/followers/import"))
        .bearer_auth(s.token("mk-admin", Role::Admin))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("import request");
    let st = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(st, 200, "import: {v}");
}

/// Payouts enabled for `creator`, as `account.updated` applies it.
pub(super) async fn enable_payouts(s: &TestServer, creator: &str) {
    let ledger = &s.state().ledger;
    let acct = format!("acct_{creator}");
    ledger.put_payout_account(creator, &acct).await.unwrap();
    let ev = StripeEventRef {
        id: format!("evt_{creator}"),
        kind: "account.updated".into(),
    };
    assert!(ledger.account_updated(&ev, &acct, true, 1).await.unwrap());
}

/// A creator with 10,000 followers and payouts, joined.
pub(super) async fn joined_creator(s: &TestServer, who: &str) {
    followers(s, Method::POST, who, &format!("{who}-f"), 0, 10_000).await;
    enable_payouts(s, who).await;
    let (st, v) = creator(s, who, Method::POST, "/v1/marketplace/creators/me", None).await;
    assert_eq!(st, 200, "{who} joins: {v}");
    assert_eq!(v["joined"], true, "{v}");
}

pub(super) fn campaign_body(budget: i64) -> Value {
    json!({
        "title": "Summer drop",
        "brief": "Show the new bottle\nin one live.",
        "deliverables": ["60 s in a live"],
        "budget_cents": budget,
        "currency": "USD",
        "deadline_ms": giftstream::protocol::now_ms() + 86_400_000,
        "niches": ["Fitness", "outdoor"],
    })
}

/// A published campaign of BRAND; its id.
pub(super) async fn open_campaign(s: &TestServer, budget: i64) -> String {
    let (st, v) = brand(
        s,
        Method::POST,
        "/v1/brands/me/campaigns",
        Some(campaign_body(budget)),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let id = v["campaign"].as_str().unwrap().to_string();
    let (st, v) = brand(
        s,
        Method::POST,
        &format!("/v1/brands/me/campaigns/{id}/publish"),
        None,
    )
    .await;
    assert_eq!((st, v["state"].as_str()), (200, Some("open")), "{v}");
    id
}

pub(super) async fn apply(s: &TestServer, who: &str, campaign: &str, price: i64) -> (u16, Value) {
    creator(
        s,
        who,
        Method::POST,
        &format!("/v1/marketplace/campaigns/{campaign}/applications"),
        Some(json!({ "pitch": format!("{who} fits"), "price_cents": price })),
    )
    .await
}

pub(super) fn conflict(st: u16, v: &Value, state: &str) {
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["code"], "conflict", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains(state),
        "names {state}: {v}"
    );
}

async fn eligibility(engine: &EngineSpec) {
    let s = TestServer::start(engine, |_| {}).await;
    let join = |who: &'static str| {
        let s = &s;
        async move { creator(s, who, Method::POST, "/v1/marketplace/creators/me", None).await }
    };
    // Nothing yet: both requirements missing.
    let (st, v) = join("mk-c1").await;
    assert_eq!((st, v["code"].as_str()), (403, Some("not_eligible")), "{v}");
    assert_eq!(v["missing"], json!({ "followers": 10000, "payouts": true }));
    // 9,999 followers and payouts: one follower missing.
    followers(&s, Method::POST, "mk-c1", "mk-c1-f", 0, 9_999).await;
    enable_payouts(&s, "mk-c1").await;
    let (st, v) = join("mk-c1").await;
    assert_eq!((st, v["code"].as_str()), (403, Some("not_eligible")), "{v}");
    assert_eq!(v["missing"], json!({ "followers": 1 }));
    assert_eq!(v["missing"]["followers"], 1);
    // Not listed while refused.
    let (st, _) = s
        .request(Method::GET, "/v1/marketplace/creators/mk-c1", None, None)
        .await;
    assert_eq!(st, 404);
    // The 10,000th: joined (at the threshold is eligible).
    followers(&s, Method::POST, "mk-c1", "mk-c1-f", 9_999, 1).await;
    let (st, v) = join("mk-c1").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["joined"].as_bool(), v["stats"]["followers"].as_i64()),
        (Some(true), Some(10_000))
    );
    // 10,000 followers without payouts: only payouts missing.
    followers(&s, Method::POST, "mk-c2", "mk-c2-f", 0, 10_000).await;
    let (st, v) = join("mk-c2").await;
    assert_eq!(
        (st, &v["missing"]),
        (403, &json!({ "payouts": true })),
        "{v}"
    );

    // Profiles: the creator's (bounded, validated), public once joined.
    let (st, v) = creator(
        &s,
        "mk-c1",
        Method::PUT,
        "/v1/marketplace/creators/me",
        Some(json!({
            "bio": "Trail runner", "niches": ["Fitness"], "languages": ["en"],
            "rate_card": [{"deliverable": "live mention", "cents": 50000}],
            "samples": ["https://example.com/clip"],
        })),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["niches"].clone(), v["joined"].as_bool()),
        (json!(["fitness"]), Some(true))
    );
    let (st, v) = s
        .request(Method::GET, "/v1/marketplace/creators/mk-c1", None, None)
        .await;
    assert_eq!((st, v["bio"].as_str()), (200, Some("Trail runner")), "{v}");
    assert_eq!(v["stats"]["followers"], 10_000, "{v}");
    let too_many: Vec<String> = (0..21).map(|i| format!("n{i}")).collect();
    for bad in [
        json!({ "niches": too_many }),
        json!({ "samples": ["ftp://example.com/x"] }),
        json!({ "bio": "x".repeat(2001) }),
        json!({ "rate_card": [{"deliverable": "x", "cents": 0}] }),
    ] {
        let (st, v) = creator(
            &s,
            "mk-c1",
            Method::PUT,
            "/v1/marketplace/creators/me",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(
            (st, v["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {v}"
        );
    }
    // The brand's profile: website http(s) only; public.
    let (st, v) = brand(
        &s,
        Method::PUT,
        "/v1/brands/me",
        Some(json!({
            "name": "Acme", "website": "javascript:alert(1)", "industry": "Drinks"
        })),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let (st, _) = brand(&s, Method::GET, "/v1/brands/me", None).await;
    assert_eq!(st, 404);
    let (st, v) = brand(
        &s,
        Method::PUT,
        "/v1/brands/me",
        Some(json!({
            "name": "Acme", "website": "https://acme.example", "industry": "Drinks"
        })),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s
        .request(Method::GET, &format!("/v1/brands/{BRAND}"), None, None)
        .await;
    assert_eq!((st, v["name"].as_str()), (200, Some("Acme")), "{v}");

    // Stats: a live with two viewers at most, ended, and a settled gift.
    s.open_room("mk-c1", "mk-live").await;
    let mut w1 = s.ws("mk-v1", Role::Viewer).await;
    w1.join("mk-live").await;
    let mut w2 = s.ws("mk-v2", Role::Viewer).await;
    w2.join("mk-live").await;
    s.grant("mk-v1", 100, "mk-grant").await;
    let ack = w1.gift("mk-live", "rose", 1, "mk-gift-1").await;
    assert_eq!(ack["type"], "gift_ack", "{ack}");
    // The room saw both viewers once a room_stats says so.
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let v = w2.recv_any().await;
            if v["type"] == "room_stats" && v["viewers"] == 2 {
                break;
            }
        }
    })
    .await
    .expect("room_stats with 2 viewers");
    s.settled().await;
    let (st, v) = s
        .request(
            Method::DELETE,
            "/v1/rooms/mk-live",
            Some(&s.token("mk-c1", Role::Creator)),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = s
        .request(Method::GET, "/v1/marketplace/creators/mk-c1", None, None)
        .await;
    let stats = &v["stats"];
    assert_eq!(
        (
            stats["lives_30d"].as_i64(),
            stats["peak_viewers_30d"].as_i64()
        ),
        (Some(1), Some(2)),
        "{v}"
    );
    assert!(
        (0..=2).contains(&stats["avg_viewers_30d"].as_i64().unwrap()),
        "{v}"
    );
    assert_eq!(stats["gifts"], 1, "{v}");
    assert!(stats["gift_diamonds"].as_i64().unwrap() > 0, "{v}");

    // Falling below: still listed, cannot apply; back above: can.
    let c = open_campaign(&s, 100_000).await;
    followers(&s, Method::DELETE, "mk-c1", "mk-c1-f", 0, 1).await;
    let (st, _) = s
        .request(Method::GET, "/v1/marketplace/creators/mk-c1", None, None)
        .await;
    assert_eq!(st, 200, "still listed");
    let (st, v) = apply(&s, "mk-c1", &c, 1000).await;
    assert_eq!(
        (st, &v["missing"]),
        (403, &json!({ "followers": 1 })),
        "{v}"
    );
    let (st, v) = creator(&s, "mk-c1", Method::GET, "/v1/marketplace/campaigns", None).await;
    assert_eq!(
        (st, v["campaigns"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
    followers(&s, Method::POST, "mk-c1", "mk-c1-f", 0, 1).await;
    let (st, v) = apply(&s, "mk-c1", &c, 1000).await;
    assert_eq!((st, v["state"].as_str()), (201, Some("applied")), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marketplace_eligibility_9999_refused_10000_joined() {
    each_engine!(eligibility);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marketplace_routes_refuse_the_wrong_roles() {
    let s = TestServer::start(&common::server::embedded(), |_| {}).await;
    let brand_routes = [
        (Method::PUT, "/v1/brands/me"),
        (Method::GET, "/v1/brands/me"),
        (Method::POST, "/v1/brands/me/campaigns"),
        (Method::GET, "/v1/brands/me/campaigns"),
        (Method::POST, "/v1/brands/me/campaigns/x/publish"),
        (Method::POST, "/v1/brands/me/applications/x/accept"),
    ];
    for (m, p) in brand_routes {
        for role in [Role::Viewer, Role::Creator, Role::Admin] {
            let (st, v) = call(&s, m.clone(), p, "mk-r", role, Some(json!({}))).await;
            assert_eq!(
                (st, v["code"].as_str()),
                (403, Some("forbidden")),
                "{role:?} {m} {p}: {v}"
            );
        }
    }
    let creator_routes = [
        (Method::PUT, "/v1/marketplace/creators/me"),
        (Method::GET, "/v1/marketplace/creators/me"),
        (Method::POST, "/v1/marketplace/creators/me"),
        (Method::GET, "/v1/marketplace/campaigns"),
        (Method::POST, "/v1/marketplace/campaigns/x/applications"),
        (Method::POST, "/v1/marketplace/applications/x/withdraw"),
    ];
    for (m, p) in creator_routes {
        for role in [Role::Viewer, Role::Brand, Role::Admin] {
            let (st, v) = call(&s, m.clone(), p, "mk-r", role, Some(json!({}))).await;
            assert_eq!(
                (st, v["code"].as_str()),
                (403, Some("forbidden")),
                "{role:?} {m} {p}: {v}"
            );
        }
    }
    // A brand's token reaches its routes.
    let (st, v) = call(
        &s,
        Method::GET,
        "/v1/brands/me/campaigns",
        "mk-r",
        Role::Brand,
        None,
    )
    .await;
    assert_eq!((st, &v["campaigns"]), (200, &json!([])), "{v}");
}

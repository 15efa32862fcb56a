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

use common::server::{engines, EngineSpec, TestServer};
use futures_util::future::join_all;
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

const BRAND: &str = "mk-brand";
const OTHER_BRAND: &str = "mk-brand-2";

async fn call(
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

async fn brand(s: &TestServer, m: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    call(s, m, path, BRAND, Role::Brand, body).await
}

async fn creator(
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
async fn followers(s: &TestServer, m: Method, creator: &str, prefix: &str, from: usize, n: usize) {
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
async fn enable_payouts(s: &TestServer, creator: &str) {
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
async fn joined_creator(s: &TestServer, who: &str) {
    followers(s, Method::POST, who, &format!("{who}-f"), 0, 10_000).await;
    enable_payouts(s, who).await;
    let (st, v) = creator(s, who, Method::POST, "/v1/marketplace/creators/me", None).await;
    assert_eq!(st, 200, "{who} joins: {v}");
    assert_eq!(v["joined"], true, "{v}");
}

fn campaign_body(budget: i64) -> Value {
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
async fn open_campaign(s: &TestServer, budget: i64) -> String {
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

async fn apply(s: &TestServer, who: &str, campaign: &str, price: i64) -> (u16, Value) {
    creator(
        s,
        who,
        Method::POST,
        &format!("/v1/marketplace/campaigns/{campaign}/applications"),
        Some(json!({ "pitch": format!("{who} fits"), "price_cents": price })),
    )
    .await
}

fn conflict(st: u16, v: &Value, state: &str) {
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

async fn walk(engine: &EngineSpec) {
    let s = TestServer::start(engine, |_| {}).await;
    joined_creator(&s, "mk-w1").await;
    joined_creator(&s, "mk-w2").await;
    // Create: a draft; followers_min below the marketplace's is refused.
    let mut low = campaign_body(50_000);
    low["followers_min"] = json!(9_999);
    let (st, v) = brand(&s, Method::POST, "/v1/brands/me/campaigns", Some(low)).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = brand(
        &s,
        Method::POST,
        "/v1/brands/me/campaigns",
        Some(campaign_body(50_000)),
    )
    .await;
    assert_eq!((st, v["state"].as_str()), (201, Some("draft")), "{v}");
    assert_eq!(
        (v["currency"].as_str(), v["followers_min"].as_i64()),
        (Some("usd"), Some(10_000))
    );
    let id = v["campaign"].as_str().unwrap().to_string();
    let base = format!("/v1/brands/me/campaigns/{id}");
    // A draft: editable, invisible to creators, closed to applications.
    let mut edited = campaign_body(60_000);
    edited["title"] = json!("Autumn drop");
    let (st, v) = brand(&s, Method::PUT, &base, Some(edited.clone())).await;
    assert_eq!(
        (st, v["title"].as_str(), v["budget_cents"].as_i64()),
        (200, Some("Autumn drop"), Some(60_000)),
        "{v}"
    );
    let (st, v) = apply(&s, "mk-w1", &id, 1000).await;
    assert_eq!(st, 404, "{v}");
    let (st, v) = brand(
        &s,
        Method::POST,
        &format!("/v1/brands/me/campaigns/{id}/invitations"),
        Some(json!({"creator": "mk-w2"})),
    )
    .await;
    conflict(st, &v, "draft");
    // Another brand does not see it.
    let (st, _) = call(&s, Method::GET, &base, OTHER_BRAND, Role::Brand, None).await;
    assert_eq!(st, 404);
    // Publish: open; publish and edit again are refused, naming `open`.
    let (st, v) = brand(&s, Method::POST, &format!("{base}/publish"), None).await;
    assert_eq!((st, v["state"].as_str()), (200, Some("open")), "{v}");
    let (st, v) = brand(&s, Method::POST, &format!("{base}/publish"), None).await;
    conflict(st, &v, "open");
    let (st, v) = brand(&s, Method::PUT, &base, Some(edited)).await;
    conflict(st, &v, "open");
    // Creators list it, filtered by niche and budget.
    let list = |q: &'static str| {
        let s = &s;
        async move {
            let (st, v) = creator(
                s,
                "mk-w1",
                Method::GET,
                &format!("/v1/marketplace/campaigns{q}"),
                None,
            )
            .await;
            assert_eq!(st, 200, "{v}");
            v["campaigns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["campaign"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("").await, vec![id.clone()]);
    assert_eq!(
        list("?niche=FITNESS&budget_min_cents=60000").await,
        vec![id.clone()]
    );
    assert!(list("?niche=cooking").await.is_empty());
    assert!(list("?budget_min_cents=60001").await.is_empty());
    // Apply: price at most the budget; once.
    let (st, v) = apply(&s, "mk-w1", &id, 60_001).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = apply(&s, "mk-w1", &id, 55_000).await;
    assert_eq!((st, v["state"].as_str()), (201, Some("applied")), "{v}");
    let a1 = v["application"].as_str().unwrap().to_string();
    let (st, v) = apply(&s, "mk-w1", &id, 55_000).await;
    conflict(st, &v, "applied");
    // Invite w2; w2 answers by applying, then withdraws.
    let (st, v) = brand(
        &s,
        Method::POST,
        &format!("{base}/invitations"),
        Some(json!({"creator": "mk-w2"})),
    )
    .await;
    assert_eq!(
        (st, v["state"].as_str(), v["origin"].as_str()),
        (201, Some("invited"), Some("invited")),
        "{v}"
    );
    let a2 = v["application"].as_str().unwrap().to_string();
    let (st, v) = brand(
        &s,
        Method::POST,
        &format!("/v1/brands/me/applications/{a2}/accept"),
        None,
    )
    .await;
    conflict(st, &v, "invited");
    let (st, v) = apply(&s, "mk-w2", &id, 40_000).await;
    assert_eq!(
        (st, v["state"].as_str(), v["application"].as_str()),
        (201, Some("applied"), Some(a2.as_str())),
        "{v}"
    );
    let withdraw = format!("/v1/marketplace/applications/{a2}/withdraw");
    let (st, v) = creator(&s, "mk-w1", Method::POST, &withdraw, None).await;
    assert_eq!(st, 404, "not w1's: {v}");
    let (st, v) = creator(&s, "mk-w2", Method::POST, &withdraw, None).await;
    assert_eq!(
        (st, v["application"]["state"].as_str()),
        (200, Some("withdrawn")),
        "{v}"
    );
    let (st, v) = creator(&s, "mk-w2", Method::POST, &withdraw, None).await;
    conflict(st, &v, "withdrawn");
    let (st, v) = brand(
        &s,
        Method::POST,
        &format!("/v1/brands/me/applications/{a2}/accept"),
        None,
    )
    .await;
    conflict(st, &v, "withdrawn");
    let (st, v) = brand(
        &s,
        Method::POST,
        &format!("/v1/brands/me/applications/{a2}/decline"),
        None,
    )
    .await;
    conflict(st, &v, "withdrawn");
    // The brand's applicants, with stats.
    let (st, v) = brand(&s, Method::GET, &format!("{base}/applications"), None).await;
    assert_eq!(st, 200, "{v}");
    let apps = v["applications"].as_array().unwrap();
    assert_eq!(apps.len(), 2, "{v}");
    assert!(
        apps.iter().all(|a| a["stats"]["followers"] == 10_000),
        "{v}"
    );
    // Accept: a contract awaiting payment; accept and decline again refused.
    let accept = format!("/v1/brands/me/applications/{a1}/accept");
    let (st, _) = call(&s, Method::POST, &accept, OTHER_BRAND, Role::Brand, None).await;
    assert_eq!(st, 404, "another brand's application");
    let (st, v) = brand(&s, Method::POST, &accept, None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["application"]["state"], "accepted");
    assert_eq!(
        (
            v["contract"]["state"].as_str(),
            v["contract"]["price_cents"].as_i64(),
            v["contract"]["creator"].as_str()
        ),
        (Some("awaiting_payment"), Some(55_000), Some("mk-w1"))
    );
    let (st, v) = brand(&s, Method::POST, &accept, None).await;
    conflict(st, &v, "accepted");
    let (st, v) = brand(
        &s,
        Method::POST,
        &format!("/v1/brands/me/applications/{a1}/decline"),
        None,
    )
    .await;
    conflict(st, &v, "accepted");
    let (st, v) = creator(
        &s,
        "mk-w1",
        Method::POST,
        &format!("/v1/marketplace/applications/{a1}/withdraw"),
        None,
    )
    .await;
    conflict(st, &v, "accepted");
    let (st, v) = brand(&s, Method::GET, &base, None).await;
    assert_eq!(
        (st, v["contracts"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{v}"
    );
    // The creator's own list.
    let (st, v) = creator(
        &s,
        "mk-w1",
        Method::GET,
        "/v1/marketplace/applications",
        None,
    )
    .await;
    assert_eq!(
        (st, v["applications"][0]["state"].as_str()),
        (200, Some("accepted")),
        "{v}"
    );
    // Close: no more applications or invitations; close again refused.
    let (st, v) = brand(&s, Method::POST, &format!("{base}/close"), None).await;
    assert_eq!((st, v["state"].as_str()), (200, Some("closed")), "{v}");
    let (st, v) = brand(&s, Method::POST, &format!("{base}/close"), None).await;
    conflict(st, &v, "closed");
    let (st, v) = brand(&s, Method::POST, &format!("{base}/publish"), None).await;
    conflict(st, &v, "closed");
    joined_creator(&s, "mk-w3").await;
    let (st, v) = apply(&s, "mk-w3", &id, 1000).await;
    conflict(st, &v, "closed");
    let (st, v) = brand(
        &s,
        Method::POST,
        &format!("{base}/invitations"),
        Some(json!({"creator": "mk-w3"})),
    )
    .await;
    conflict(st, &v, "closed");
    // A draft closed directly.
    let (_, v) = brand(
        &s,
        Method::POST,
        "/v1/brands/me/campaigns",
        Some(campaign_body(1000)),
    )
    .await;
    let d = v["campaign"].as_str().unwrap();
    let (st, v) = brand(
        &s,
        Method::POST,
        &format!("/v1/brands/me/campaigns/{d}/close"),
        None,
    )
    .await;
    assert_eq!((st, v["state"].as_str()), (200, Some("closed")), "{v}");
    // The brand's list: both, newest first, paged.
    let (st, v) = brand(&s, Method::GET, "/v1/brands/me/campaigns?limit=1", None).await;
    assert_eq!(
        (st, v["campaigns"][0]["campaign"].as_str()),
        (200, Some(d)),
        "{v}"
    );
    let cursor = v["next_cursor"].as_str().unwrap().to_string();
    let (_, v) = brand(
        &s,
        Method::GET,
        &format!("/v1/brands/me/campaigns?limit=1&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(
        (v["campaigns"][0]["campaign"].as_str(), &v["next_cursor"]),
        (Some(id.as_str()), &Value::Null),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marketplace_state_machine_walk_over_http() {
    each_engine!(walk);
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

async fn races(engine: &EngineSpec) {
    let s = TestServer::start(engine, |_| {}).await;
    joined_creator(&s, "mk-x1").await;
    joined_creator(&s, "mk-x2").await;
    let id = open_campaign(&s, 10_000).await;
    let (_, v) = apply(&s, "mk-x1", &id, 9_000).await;
    let a1 = v["application"].as_str().unwrap().to_string();
    let (_, v) = apply(&s, "mk-x2", &id, 8_000).await;
    let a2 = v["application"].as_str().unwrap().to_string();
    // Eight accepts of one application at once: one contract.
    let accept = format!("/v1/brands/me/applications/{a1}/accept");
    let got = join_all((0..8).map(|_| brand(&s, Method::POST, &accept, None))).await;
    let won: Vec<_> = got.iter().filter(|(st, _)| *st == 200).collect();
    assert_eq!(won.len(), 1, "{got:?}");
    for (st, v) in got.iter().filter(|(st, _)| *st != 200) {
        conflict(*st, v, "accepted");
    }
    // An accept against a withdraw: exactly one wins.
    let accept = format!("/v1/brands/me/applications/{a2}/accept");
    let withdraw = format!("/v1/marketplace/applications/{a2}/withdraw");
    let (x, y) = tokio::join!(
        brand(&s, Method::POST, &accept, None),
        creator(&s, "mk-x2", Method::POST, &withdraw, None)
    );
    assert_eq!(
        [x.0, y.0].iter().filter(|st| **st == 200).count(),
        1,
        "{x:?} {y:?}"
    );
    assert!([x.0, y.0].contains(&409), "{x:?} {y:?}");
    let contracts = s.state().ledger.campaign_contracts(&id).await.unwrap();
    let want = if x.0 == 200 { 2 } else { 1 };
    assert_eq!(contracts.len(), want, "{contracts:?}");
    assert_eq!(contracts.iter().filter(|c| c.application == a1).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marketplace_racing_accepts_make_one_contract() {
    each_engine!(races);
}

//! The campaign and application state machines walked over HTTP (every
//! allowed and refused move), and racing moves making one contract.

use super::*;
use crate::marketplace::each_engine;
use futures_util::future::join_all;

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
    // Their contracts (the /marketplace page's read): the one made, and
    // none for a creator whose application was not accepted.
    let (st, v) = creator(&s, "mk-w1", Method::GET, "/v1/marketplace/contracts", None).await;
    let k = &v["contracts"];
    assert_eq!(
        (
            st,
            k.as_array().map(Vec::len),
            k[0]["contract"].as_str(),
            k[0]["state"].as_str(),
            k[0]["price_cents"].as_i64(),
            k[0]["brand"].as_str()
        ),
        (
            200,
            Some(1),
            Some(a1.as_str()),
            Some("awaiting_payment"),
            Some(55_000),
            Some(BRAND)
        ),
        "{v}"
    );
    let (st, v) = creator(&s, "mk-w2", Method::GET, "/v1/marketplace/contracts", None).await;
    assert_eq!((st, &v), (200, &json!({ "contracts": [] })), "{v}");
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

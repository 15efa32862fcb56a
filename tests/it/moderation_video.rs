//! Issue 17: a video's public feed (`GET /v1/videos/{video}`, Super
//! Thanks style) shows a held message once it is approved, on its gift,
//! and never a rejected one (the gift's row never holds a kept-back text;
//! the feed reads the approved one from `moderated_messages`). On every
//! engine pair.

use crate::common;

use common::server::{engines, EngineSpec, TestServer};
use giftstream::auth::Role;
use reqwest::Method;
use serde_json::json;

async fn approved_video_messages_show_in_the_feed(engine: &EngineSpec) {
    let a = TestServer::start(engine, |_| {}).await;
    let (st, v) = a
        .post(
            "/v1/videos",
            &a.token("vera", Role::Creator),
            json!({ "video": "va" }),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let tok = a.token("vera", Role::Creator);
    let (st, v) = a
        .request(
            Method::PUT,
            "/v1/creators/me/moderation/settings",
            Some(&tok),
            Some(json!({ "review_coins_below": 5 })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    a.grant("v", 100, "gv").await;
    for (id, text) in [("va1", "thank you!"), ("va2", "not this one")] {
        let (st, v) = a
            .post(
                "/v1/videos/va/gifts",
                &a.token("v", Role::Viewer),
                json!({ "gift": "rose", "count": 1, "id": id, "message": text }),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    a.settled().await;
    let (_, held) = a.get("/v1/creators/me/messages?state=held", &tok).await;
    let held = held["messages"].as_array().unwrap().clone();
    assert_eq!(held.len(), 2, "{held:?}");
    let id_of = |text: &str| {
        let m = held.iter().find(|m| m["message"] == text).unwrap();
        m["id"].as_str().unwrap().to_string()
    };
    for (id, verb) in [
        (id_of("thank you!"), "approve"),
        (id_of("not this one"), "reject"),
    ] {
        let (st, v) = a
            .post(
                &format!("/v1/creators/me/messages/{id}/{verb}"),
                &tok,
                json!({}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    // The public feed: the approved message on its gift, the rejected never.
    let (st, page) = a.get("/v1/videos/va", &a.token("x", Role::Viewer)).await;
    assert_eq!(st, 200, "{page}");
    let latest = page["latest"].as_array().unwrap();
    assert_eq!(latest.len(), 2, "{page}");
    assert_eq!(
        (latest[0]["seq"].as_i64(), latest[1]["seq"].as_i64()),
        (Some(2), Some(1))
    );
    assert!(latest[0]["message"].is_null(), "{page}");
    assert_eq!(latest[1]["message"], "thank you!", "{page}");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approved_video_message_shows_in_the_feed_a_rejected_one_never() {
    for engine in engines().await {
        eprintln!("-- engines: {}", engine.name);
        approved_video_messages_show_in_the_feed(&engine).await;
    }
}

//! The static assets the binary serves: gift art (`/assets/gifts/{id}.svg`),
//! the JavaScript SDK (`/sdk/giftstream.js`) and each catalog gift's `art`
//! URL. Engine-independent (no engine is involved): the embedded default only.

use crate::common;

use common::server::{embedded, TestServer};

async fn get(srv: &TestServer, path: &str) -> reqwest::Response {
    reqwest::get(srv.url(path)).await.expect("http get")
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("header {name}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn gift_art_and_sdk_are_served_with_their_headers() {
    let srv = TestServer::start(&embedded(), |_| {}).await;

    let r = get(&srv, "/assets/gifts/rose.svg").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "image/svg+xml");
    assert_eq!(header(&r, "cache-control"), "public, max-age=86400");
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&r, "content-security-policy"),
        "default-src 'none'; style-src 'unsafe-inline'"
    );
    let body = r.text().await.unwrap();
    assert!(body.starts_with("<svg"), "{body:.40}");
    assert!(body.contains("<title>Rose</title>"));

    let r = get(&srv, "/sdk/giftstream.js").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/javascript; charset=utf-8");
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert!(header(&r, "cache-control").starts_with("public, max-age="));
    let body = r.text().await.unwrap();
    assert!(body.contains("export class Giftstream"));

    // Anyone may fetch them: no token above. Unknown ids are the contract's 404.
    for path in [
        "/assets/gifts/no-such-gift.svg",
        "/assets/gifts/rose.png",
        "/assets/gifts/rose",
        "/assets/gifts/..%2Fsdk.svg",
    ] {
        let r = get(&srv, path).await;
        assert_eq!(r.status(), 404, "{path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["code"], "unknown_gift", "{path}");
        assert!(v["message"].is_string());
    }
    srv.stop().await;
}

#[tokio::test]
async fn the_catalog_gives_each_gift_its_art_url() {
    let srv = TestServer::start(&embedded(), |_| {}).await;
    let r = get(&srv, "/v1/catalog").await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let gifts = v["gifts"].as_array().unwrap();
    assert_eq!(gifts.len(), 11);
    for g in gifts {
        let id = g["id"].as_str().unwrap();
        assert_eq!(g["art"], format!("/assets/gifts/{id}.svg"));
        // v1 fields stay.
        assert!(g["coins"].is_i64() && g["animation"].is_string());
        let art = get(&srv, g["art"].as_str().unwrap()).await;
        assert_eq!(art.status(), 200, "{id}");
    }
    srv.stop().await;
}

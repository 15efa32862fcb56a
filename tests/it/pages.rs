//! Page sessions (`/v1/sessions`: cookie, CSRF, expiry, sockets signed in
//! by cookie), the demo login, and the pages' headers and languages. What
//! the pages do in a browser is tested by `scripts/browser-test`.

use crate::common;

use common::server::{embedded, engines, EngineSpec, TestServer, SECRET};
use futures_util::{SinkExt, StreamExt};
use giftstream::auth::Role;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// `gs_session=VALUE` and the whole Set-Cookie line.
fn session_cookie(h: &HeaderMap) -> (String, String) {
    let line = h
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|l| l.starts_with("gs_session="))
        .expect("a gs_session cookie is set");
    let pair = line.split(';').next().unwrap().to_string();
    (pair, line)
}

async fn sign_in(
    s: &TestServer,
    token: &str,
    extra: &[(&str, &str)],
) -> (u16, Value, String, String) {
    let mut req = reqwest::Client::new()
        .post(s.url("/v1/sessions"))
        .bearer_auth(token);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let st = r.status().as_u16();
    let (pair, line) = if st == 201 {
        session_cookie(r.headers())
    } else {
        (String::new(), String::new())
    };
    (st, r.json().await.unwrap(), pair, line)
}

/// A request signed in by cookie, with an optional CSRF header.
async fn by_cookie(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, s.url(path))
        .header("cookie", cookie);
    if let Some(c) = csrf {
        req = req.header("x-csrf-token", c);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn session_cookie_needs_csrf_to_change_state_on(engine: &EngineSpec) {
    let s = TestServer::start(engine, |_| {}).await;
    let creator = s.token("cora", Role::Creator);
    let (st, v, cookie, line) = sign_in(&s, &creator, &[]).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        (v["user"].as_str(), v["role"].as_str()),
        (Some("cora"), Some("creator"))
    );
    let csrf = v["csrf"].as_str().unwrap().to_string();
    assert!(csrf.len() >= 32, "{v}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(line.contains(attr), "{attr} in {line}");
    }
    assert!(!line.contains("Secure"), "plain http: not Secure: {line}");
    assert!(!cookie.contains(&creator), "the cookie is not the token");

    // Reads need no CSRF token; the session shows who and its CSRF token.
    let (st, me) = by_cookie(
        &s,
        reqwest::Method::GET,
        "/v1/sessions",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(
        (st, me["user"].as_str(), me["csrf"].as_str()),
        (200, Some("cora"), Some(csrf.as_str()))
    );
    let (st, w) = by_cookie(&s, reqwest::Method::GET, "/v1/wallet", &cookie, None, None).await;
    assert_eq!((st, w["user"].as_str()), (200, Some("cora")), "{w}");

    // A state change by cookie: 403 without the CSRF token or with a wrong one.
    let open = json!({ "room": "cookie-room" });
    for bad in [None, Some("not-the-token"), Some("")] {
        let (st, e) = by_cookie(
            &s,
            reqwest::Method::POST,
            "/v1/rooms",
            &cookie,
            bad,
            Some(open.clone()),
        )
        .await;
        assert_eq!(
            (st, e["code"].as_str()),
            (403, Some("forbidden")),
            "{bad:?}: {e}"
        );
    }
    let (st, r) = s.get("/v1/rooms/cookie-room", &creator).await;
    assert_eq!(
        (st, r["code"].as_str()),
        (404, Some("unknown_room")),
        "nothing opened: {r}"
    );
    let (st, r) = by_cookie(
        &s,
        reqwest::Method::POST,
        "/v1/rooms",
        &cookie,
        Some(&csrf),
        Some(open.clone()),
    )
    .await;
    assert_eq!((st, r["creator"].as_str()), (201, Some("cora")), "{r}");
    // Bearer requests need no CSRF token (unchanged).
    let (st, _) = s.post("/v1/rooms", &creator, open).await;
    assert_eq!(st, 200);

    // A tampered cookie, another server's session: 401.
    let tampered = format!("{}x", cookie);
    let (st, e) = by_cookie(
        &s,
        reqwest::Method::GET,
        "/v1/wallet",
        &tampered,
        None,
        None,
    )
    .await;
    assert_eq!((st, e["code"].as_str()), (401, Some("unauthorized")), "{e}");

    // A scoped (overlay) token cannot become a session.
    let overlay = s
        .state()
        .auth
        .issue_scoped(
            "cora",
            Role::Creator,
            Some(&giftstream::auth::Scope::overlay("cookie-room")),
            60,
        )
        .unwrap();
    let (st, e, _, _) = sign_in(&s, &overlay, &[]).await;
    assert_eq!((st, e["code"].as_str()), (403, Some("forbidden")), "{e}");

    // Signing out clears the cookie.
    let r = reqwest::Client::new()
        .delete(s.url("/v1/sessions"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (pair, line) = session_cookie(r.headers());
    assert_eq!(pair, "gs_session=");
    assert!(line.contains("Max-Age=0"), "{line}");
    s.stop().await;
}

#[tokio::test]
async fn session_cookie_needs_csrf_to_change_state() {
    for e in engines().await {
        session_cookie_needs_csrf_to_change_state_on(&e).await;
    }
}

#[tokio::test]
async fn session_expires_with_its_token_and_is_secure_over_https() {
    let s = TestServer::start(&embedded(), |c| c.pages.session_ttl_s_max = 600).await;
    let now = giftstream::auth::unix_s();
    let short = giftstream::auth::Auth::new(SECRET, 0)
        .issue("vic", Role::Viewer, 90)
        .unwrap();
    let (st, v, _, line) = sign_in(&s, &short, &[("x-forwarded-proto", "https")]).await;
    assert_eq!(st, 201, "{v}");
    let exp = v["exp"].as_u64().unwrap();
    assert!(
        exp <= now + 91 && exp >= now + 85,
        "ends with the token: {exp} vs {now}"
    );
    assert!(line.contains("; Secure"), "{line}");
    let max_age: u64 = line
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age <= 91, "{line}");
    // A long token: the session is capped at pages.session_ttl_s_max.
    let (_, v, _, _) = sign_in(&s, &s.token("vic", Role::Viewer), &[]).await;
    assert!(
        v["exp"].as_u64().unwrap() <= giftstream::auth::unix_s() + 600,
        "{v}"
    );
    // Without a token: 401, no cookie.
    let r = reqwest::Client::new()
        .post(s.url("/v1/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get(SET_COOKIE).is_none());
    s.stop().await;
}

#[tokio::test]
async fn a_socket_signs_in_by_cookie_from_its_own_origin_only() {
    let s = TestServer::start(&embedded(), |_| {}).await;
    s.open_room("cora", "sock-room").await;
    s.grant("vic", 100, "g-vic").await;
    let (_, _, cookie, _) = sign_in(&s, &s.token("vic", Role::Viewer), &[]).await;
    let connect = |origin: Option<String>, query: &str| {
        let mut req = format!("ws://{}/v1/ws{query}", s.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };
    for bad in [None, Some("http://evil.example".to_string())] {
        match connect(bad.clone(), "").await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 403, "{bad:?}")
            }
            other => panic!("{bad:?}: refused, got {:?}", other.map(|_| ())),
        }
    }
    // The SDK's `?token=` with an empty token falls back to the cookie.
    let (mut ws, _) = connect(Some(format!("http://{}", s.addr)), "?token=")
        .await
        .expect("same origin: 101");
    let send =
        json!({ "type": "gift", "room": "sock-room", "gift": "rose", "count": 1, "id": "c1" });
    ws.send(Message::text(send.to_string())).await.unwrap();
    let ack: Value = loop {
        let m = ws.next().await.unwrap().unwrap();
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] != "room_stats" {
                break v;
            }
        }
    };
    assert_eq!(
        (ack["type"].as_str(), ack["balance"].as_i64()),
        (Some("gift_ack"), Some(99)),
        "{ack}"
    );
    s.stop().await;
}

#[tokio::test]
async fn demo_login_only_in_demo_mode() {
    let s = TestServer::start(&embedded(), |_| {}).await;
    let r = reqwest::get(s.url("/demo/login")).await.unwrap();
    assert_eq!(r.status(), 404);
    let (st, _) = s
        .request(
            reqwest::Method::POST,
            "/demo/login",
            None,
            Some(json!({ "user": "viewer-1" })),
        )
        .await;
    assert_eq!(st, 404);
    s.stop().await;

    let s = TestServer::start(&embedded(), |c| c.pages.demo = true).await;
    let r = reqwest::get(s.url("/demo/login")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    let html = r.text().await.unwrap();
    assert!(html.contains("data-user=\"demo-creator\""), "{html}");
    let post = |body: Value, json_type: bool| {
        let req = reqwest::Client::new().post(s.url("/demo/login"));
        let req = if json_type {
            req.json(&body)
        } else {
            req.header("content-type", "text/plain")
                .body(body.to_string())
        };
        req.send()
    };
    let r = post(json!({ "user": "demo-creator" }), true).await.unwrap();
    assert_eq!(r.status(), 201);
    let (cookie, _) = session_cookie(r.headers());
    let (st, me) = by_cookie(
        &s,
        reqwest::Method::GET,
        "/v1/sessions",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!((st, me["role"].as_str()), (200, Some("creator")), "{me}");
    // The demo brand (for /brand) signs in with role brand.
    assert!(html.contains("data-user=\"demo-brand\""), "{html}");
    let r = post(json!({ "user": "demo-brand" }), true).await.unwrap();
    assert_eq!(r.status(), 201);
    let (cookie, _) = session_cookie(r.headers());
    let (st, me) = by_cookie(
        &s,
        reqwest::Method::GET,
        "/v1/sessions",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(
        (st, me["user"].as_str(), me["role"].as_str()),
        (200, Some("demo-brand"), Some("brand")),
        "{me}"
    );
    // The marketplace pages are served under the page CSP.
    for page in ["/marketplace", "/brand"] {
        let r = reqwest::get(s.url(page)).await.unwrap();
        assert_eq!(r.status(), 200, "{page}");
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
    }
    for (body, json_type) in [
        (json!({ "user": "admin" }), true),
        (json!({ "user": "viewer-1" }), false),
    ] {
        let r = post(body.clone(), json_type).await.unwrap();
        assert_eq!(r.status(), 400, "{body} json={json_type}");
        assert!(r.headers().get(SET_COOKIE).is_none());
    }
    s.stop().await;
}

#[tokio::test]
async fn viewer_page_speaks_the_visitors_language_under_a_strict_csp() {
    let s = TestServer::start(&embedded(), |_| {}).await;
    let get = |lang: Option<&'static str>, cookie: Option<&'static str>| {
        let mut req = reqwest::Client::new().get(s.url("/live/demo"));
        if let Some(l) = lang {
            req = req.header("accept-language", l);
        }
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send()
    };
    let r = get(None, None).await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    for d in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(d), "{d} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let en = r.text().await.unwrap();
    assert!(
        en.contains("<html lang=\"en\">") && en.contains("Send a gift"),
        "{en}"
    );
    let fr = get(Some("fr-FR,fr;q=0.9,en;q=0.5"), None)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        fr.contains("<html lang=\"fr\">") && fr.contains("Envoyer un cadeau"),
        "{fr}"
    );
    let switched = get(Some("fr-FR"), Some("gs_lang=en"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(switched.contains("<html lang=\"en\">"), "the switch wins");
    for (path, ctype) in [
        ("/ui/app.css", "text/css"),
        ("/ui/live.js", "text/javascript"),
        ("/ui/common.js", "text/javascript"),
        ("/ui/i18n/fr.json", "application/json"),
    ] {
        let r = reqwest::get(s.url(path)).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(ctype),
            "{path}"
        );
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    }
    assert_eq!(
        reqwest::get(s.url("/ui/nope.js")).await.unwrap().status(),
        404
    );
    assert_eq!(
        reqwest::get(s.url("/live/bad%20room"))
            .await
            .unwrap()
            .status(),
        404
    );
    s.stop().await;
}

#[tokio::test]
async fn coin_packages_and_stripe_js_for_the_pages() {
    let s = TestServer::start(&embedded(), |_| {}).await;
    let (st, v) = s
        .request(reqwest::Method::GET, "/v1/coins/packages", None, None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["stripe"], Value::Null, "no payments: {v}");
    assert_eq!(
        v["packages"][0],
        json!({ "id": "coins_70", "coins": 70, "price_cents": 99, "currency": "usd" })
    );
    s.stop().await;

    let s = TestServer::start(&embedded(), |c| {
        c.stripe.secret_key = "sk_test_pages".into();
        c.stripe.webhook_secret = "whsec_pages".into();
        c.stripe.publishable_key = "pk_test_pages".into();
        c.stripe.js_url = "http://127.0.0.1:9/js.stripe.com/v3/".into();
    })
    .await;
    let (_, v) = s
        .request(reqwest::Method::GET, "/v1/coins/packages", None, None)
        .await;
    assert_eq!(
        v["stripe"],
        json!({ "publishable_key": "pk_test_pages", "js_url": "http://127.0.0.1:9/js.stripe.com/v3/" })
    );
    let r = reqwest::get(s.url("/live/demo")).await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self' http://127.0.0.1:9;"),
        "{csp}"
    );
    assert!(csp.contains("frame-src http://127.0.0.1:9;"), "{csp}");
    // The brand page pays contracts into escrow with the same Stripe.js.
    let r = reqwest::get(s.url("/brand")).await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self' http://127.0.0.1:9;"),
        "{csp}"
    );
    assert!(csp.contains("frame-src http://127.0.0.1:9;"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"pay-go\""), "the pay dialog: {html}");
    s.stop().await;
    let mut bad = common::server::test_config(&embedded());
    bad.stripe.publishable_key = "sk_live_oops".into();
    assert_eq!(bad.validate().unwrap_err().key, "stripe.publishable_key");
}

//! Tokens (issue 11, items Critical 2 and High 6, and secrets in Debug):
//! `serve` refuses weak secrets, scoped overlay tokens, `?token=` only where
//! a browser needs it, `nbf`/`aud`/`iss`/lifetime checks, the platform's
//! public keys (PEM and JWKS), the separate admin key, and sockets that do
//! not outlive their token (`refresh`, close 4001). Over real sockets on
//! 127.0.0.1:0, and the real binary where start-up is the subject.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{embedded, TestServer, Ws, SECRET};
use giftstream::auth::{Auth, Claims, Role, Scope};
use giftstream::config::{Config, DEV_JWT_SECRET};
use giftstream::protocol::Encoding;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const ADMIN_SECRET: &str = "admin-only-secret-for-the-tests-0123456789";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name)
}

fn now() -> u64 {
    giftstream::auth::unix_s()
}

fn claims(sub: &str, role: Role) -> Claims {
    Claims {
        sub: sub.into(),
        role,
        exp: now() + 600,
        iat: Some(now()),
        nbf: None,
        scope: None,
        iss: None,
        aud: None,
        acct_created: None,
    }
}

fn hs256(c: &Claims, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        c,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn signed(c: &Claims, alg: Algorithm, kid: Option<&str>, private_pem: &str) -> String {
    let pem = std::fs::read(fixture(private_pem)).unwrap();
    let key = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    };
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, c, &key).unwrap()
}

/// Status and `code` of `GET /v1/wallet` with a Bearer token.
async fn wallet_with(s: &TestServer, token: &str) -> (u16, String) {
    let (st, v) = s.get("/v1/wallet", token).await;
    (st, v["code"].as_str().unwrap_or("").to_string())
}

/// Run the binary in an empty directory (built-in defaults) until it
/// exits; panics if it is still running after `wait` (then it started).
fn run_binary(args: &[&str], env: &[(&str, &str)], wait: Duration) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_giftstream"));
    cmd.args(args)
        .current_dir(dir.path())
        .env_remove("GIFTSTREAM_AUTH__JWT_SECRET")
        .env_remove("GIFTSTREAM_CONFIG")
        // Tests run side by side: no fixed metrics port.
        .env("GIFTSTREAM_HTTP__METRICS_LISTEN", "127.0.0.1:0")
        .env(
            "GIFTSTREAM_LEDGER__URL",
            format!("sqlite://{}", dir.path().join("l.db").display()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + wait;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into(),
                String::from_utf8_lossy(&out.stderr).into(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "`giftstream {}` still running after {wait:?} (it started): {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Critical 2: `serve` refuses the development secret and short secrets
/// whatever the config, payments refuse them even with `--demo`, and a
/// production server refuses tokens signed with the development secret.
#[tokio::test]
async fn serve_refuses_weak_jwt_secrets() {
    let wait = Duration::from_secs(60);
    let listen = ["serve", "--listen", "127.0.0.1:0"];
    // Payments configured, no secret given.
    let stripe = [
        ("GIFTSTREAM_STRIPE__SECRET_KEY", "sk_test_x"),
        ("GIFTSTREAM_STRIPE__WEBHOOK_SECRET", "whsec_x"),
    ];
    for args in [&listen[..], &["serve", "--demo", "--listen", "127.0.0.1:0"]] {
        let (code, _, err) = run_binary(args, &stripe, wait);
        assert_ne!(code, 0, "{args:?}: {err}");
        assert!(err.contains("auth.jwt_secret"), "{args:?}: {err}");
    }
    // No payments: the built-in default, the shipped default.toml, a short one.
    let default_toml = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    let with_file = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        default_toml.to_str().unwrap(),
    ];
    for (args, env) in [
        (&listen[..], vec![]),
        (&with_file[..], vec![]),
        (
            &listen[..],
            vec![("GIFTSTREAM_AUTH__JWT_SECRET", "only-twenty-bytes-xx")],
        ),
    ] {
        let (code, _, err) = run_binary(args, &env, wait);
        assert_ne!(code, 0, "{args:?} {env:?}: {err}");
        assert!(err.contains("auth.jwt_secret"), "{args:?} {env:?}: {err}");
    }
    // In process: the same refusal, by Config.
    let mut c = Config::default();
    c.stripe.secret_key = "sk_test_x".into();
    c.stripe.webhook_secret = "whsec_x".into();
    assert_eq!(c.validate().unwrap_err().key, "auth.jwt_secret");
    assert_eq!(
        Config::default().check_serve(false).unwrap_err().key,
        "auth.jwt_secret"
    );
    assert!(Config::default().check_serve(true).is_ok(), "--demo may");

    // A production-configured server refuses development-secret tokens.
    let s = TestServer::start(&embedded(), |c| c.auth.require_strong_secret = true).await;
    let dev = Auth::new(DEV_JWT_SECRET, 0)
        .issue("admin", Role::Admin, 600)
        .unwrap();
    let (st, v) = s
        .post(
            "/v1/admin/grants",
            &dev,
            json!({"user": "x", "coins": 1, "id": "g"}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (401, Some("unauthorized")), "{v}");
    s.stop().await;
}

/// High 6: `giftstream token --scope` mints an overlay token; `serve --demo`
/// prints the overlay URL with one (not a creator token) and says its
/// secret is the development one.
#[tokio::test]
async fn cli_and_demo_banner_mint_overlay_tokens() {
    let (code, out, err) = run_binary(
        &["token", "alice", "--scope", "overlay:r1"],
        &[("GIFTSTREAM_AUTH__JWT_SECRET", SECRET)],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{err}");
    let t = Auth::new(SECRET, 0).decode(out.trim()).unwrap();
    assert_eq!(t.scope, Some(Scope::overlay("r1")));
    assert_eq!(t.identity.role, Role::Creator);

    // The demo: read its banner, then stop it.
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_giftstream"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("GIFTSTREAM_AUTH__JWT_SECRET")
        // Tests run side by side: no fixed metrics port.
        .env("GIFTSTREAM_HTTP__METRICS_LISTEN", "127.0.0.1:0")
        .env(
            "GIFTSTREAM_LEDGER__URL",
            format!("sqlite://{}", dir.path().join("l.db").display()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut banner = String::new();
        for l in std::io::BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            banner.push_str(&l);
            banner.push('\n');
            if l.contains("DEVELOPMENT") {
                break;
            }
        }
        let _ = tx.send(banner);
    });
    let banner = rx.recv_timeout(Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    let banner = banner.expect("the demo banner");
    let url = banner
        .lines()
        .find(|l| l.contains("/overlay/demo?token="))
        .unwrap_or_else(|| panic!("no overlay URL in {banner}"));
    let token = url.split("token=").nth(1).unwrap().trim();
    let t = Auth::new(DEV_JWT_SECRET, 0).decode(token).unwrap();
    assert_eq!(t.scope, Some(Scope::overlay("demo")), "{banner}");
}

/// High 6: an overlay-scoped token opens its room's overlay and joins or
/// resumes its room over /v1/ws; every HTTP route and every other socket
/// message answers `forbidden`. The creator mints it over HTTP.
#[tokio::test]
async fn overlay_scoped_tokens_open_only_their_room() {
    let s = TestServer::start(&embedded(), |_| {}).await;
    s.open_room("alice", "r1").await;
    s.open_room("bob", "r2").await;
    let path = "/v1/creators/me/overlay-tokens";
    let (st, v) = s
        .post(
            path,
            &s.token("alice", Role::Creator),
            json!({"room": "r1"}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let scoped = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["url"], format!("/overlay/r1?token={scoped}"));
    let t = s.state().auth.decode(&scoped).unwrap();
    assert_eq!(t.scope, Some(Scope::overlay("r1")));
    assert!(t.exp <= now() + s.cfg.auth.overlay_token_ttl_s + 1);
    for (tok, room, want) in [
        (s.token("bob", Role::Creator), "r1", 403),
        (s.token("alice", Role::Viewer), "r1", 403),
        (s.token("alice", Role::Creator), "nope", 404),
        (scoped.clone(), "r1", 403),
    ] {
        let (st, v) = s.post(path, &tok, json!({ "room": room })).await;
        assert_eq!(st, want, "{room}: {v}");
    }

    // Every HTTP route: 403 forbidden, also those that need no token.
    use reqwest::Method;
    for (m, p) in [
        (Method::GET, "/v1/wallet"),
        (Method::GET, "/v1/catalog"),
        (Method::GET, "/healthz"),
        (Method::POST, "/v1/rooms"),
        (Method::GET, "/v1/rooms/r1"),
        (Method::DELETE, "/v1/rooms/r1"),
        (Method::GET, "/v1/creators/alice/earnings"),
        (Method::POST, "/v1/admin/grants"),
        (Method::POST, "/v1/videos/v/gifts"),
        (Method::POST, "/v1/creators/me/cashouts"),
    ] {
        let (st, v) = s
            .request(m.clone(), p, Some(&scoped), Some(json!({})))
            .await;
        assert_eq!(
            (st, v["code"].as_str()),
            (403, Some("forbidden")),
            "{m} {p}: {v}"
        );
    }
    // The overlay page: its room yes, another room no.
    let (st, _) = s
        .request(
            Method::GET,
            &format!("/overlay/r1?token={scoped}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = s
        .request(
            Method::GET,
            &format!("/overlay/r2?token={scoped}"),
            None,
            None,
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (403, Some("forbidden")));

    // The socket: join/resume of r1 only.
    let mut ws = Ws::connect(
        &format!("ws://{}/v1/ws?token={scoped}", s.addr),
        Encoding::Json,
    )
    .await
    .unwrap();
    ws.send(json!({"type": "join", "room": "r2"})).await;
    let e = ws.expect("error").await;
    assert_eq!(e["code"], "forbidden", "{e}");
    ws.send(json!({"type": "gift", "room": "r1", "gift": "rose", "count": 1, "id": "g1"}))
        .await;
    let e = ws.expect("error").await;
    assert_eq!(
        (e["code"].as_str(), e["id"].as_str()),
        (Some("forbidden"), Some("g1"))
    );
    ws.send(json!({"type": "resume", "room": "r2", "since": 0}))
        .await;
    assert_eq!(ws.expect("error").await["code"], "forbidden");
    let joined = ws.join("r1").await;
    assert_eq!(joined["room"], "r1");
    ws.send(json!({"type": "resume", "room": "r1", "since": 0}))
        .await;
    ws.expect("resumed").await;
    // It sees the room's gifts.
    s.grant("fan", 100, "g-fan").await;
    let mut fan = s.ws("fan", Role::Viewer).await;
    assert_eq!(fan.gift("r1", "rose", 1, "f1").await["type"], "gift_ack");
    assert_eq!(ws.expect("gift_event").await["id"], "f1");
    ws.ping().await;
    s.stop().await;
}

/// High 6: `?token=` is read only on /v1/ws and /overlay; every other
/// route wants `Authorization: Bearer` (401 otherwise).
#[tokio::test]
async fn query_tokens_only_on_the_socket_and_the_overlay() {
    let s = TestServer::start(&embedded(), |_| {}).await;
    let tok = s.token("v", Role::Viewer);
    let (st, v) = s
        .request(
            reqwest::Method::GET,
            &format!("/v1/wallet?token={tok}"),
            None,
            None,
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (401, Some("unauthorized")), "{v}");
    assert_eq!(wallet_with(&s, &tok).await.0, 200);
    let (st, _) = s
        .request(
            reqwest::Method::GET,
            &format!("/overlay/r?token={tok}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, 200);
    let mut ws = Ws::connect(
        &format!("ws://{}/v1/ws?token={tok}", s.addr),
        Encoding::Json,
    )
    .await
    .unwrap();
    ws.ping().await;
    // A bad token on the overlay is refused.
    let (st, _) = s
        .request(reqwest::Method::GET, "/overlay/r?token=garbage", None, None)
        .await;
    assert_eq!(st, 401);
    s.stop().await;
}

/// High 6: `nbf`, `aud`, `iss` and the lifetime bound are checked.
#[tokio::test]
async fn nbf_audience_issuer_and_lifetime_are_checked() {
    let s = TestServer::start(&embedded(), |c| {
        c.auth.audience = "giftstream".into();
        c.auth.issuer = "https://platform.example".into();
        c.auth.token_lifetime_s_max = 3600;
        c.auth.overlay_token_ttl_s = 600;
        c.auth.leeway_s = 0;
    })
    .await;
    let good = || {
        let mut c = claims("v", Role::Viewer);
        c.aud = Some(json!("giftstream"));
        c.iss = Some("https://platform.example".into());
        c
    };
    assert_eq!(wallet_with(&s, &hs256(&good(), SECRET)).await.0, 200);
    let minted = s.state().auth.issue("v", Role::Viewer, 600).unwrap();
    assert_eq!(
        wallet_with(&s, &minted).await.0,
        200,
        "minted tokens carry aud/iss"
    );
    let mut list_aud = good();
    list_aud.aud = Some(json!(["other", "giftstream"]));
    assert_eq!(wallet_with(&s, &hs256(&list_aud, SECRET)).await.0, 200);

    let mut cases: Vec<(&str, Claims)> = Vec::new();
    let mut c = good();
    c.nbf = Some(now() + 600);
    cases.push(("nbf in the future", c));
    let mut c = good();
    c.aud = Some(json!("someone-else"));
    cases.push(("wrong aud", c));
    let mut c = good();
    c.aud = None;
    cases.push(("no aud", c));
    let mut c = good();
    c.iss = Some("https://evil.example".into());
    cases.push(("wrong iss", c));
    let mut c = good();
    c.iss = None;
    cases.push(("no iss", c));
    let mut c = good();
    c.exp = now() + 7200;
    cases.push(("exp - iat over the bound", c));
    let mut c = good();
    c.iat = None;
    c.exp = now() + 7200;
    cases.push(("no iat, exp - now over the bound", c));
    let mut c = good();
    c.iat = Some(now() + 86_400);
    c.exp = now() + 86_400 + 600;
    cases.push(("iat in the future", c));
    for (why, c) in cases {
        assert_eq!(
            wallet_with(&s, &hs256(&c, SECRET)).await,
            (401, "unauthorized".to_string()),
            "{why}"
        );
    }
    let mut c = good();
    c.iat = None;
    assert_eq!(
        wallet_with(&s, &hs256(&c, SECRET)).await.0,
        200,
        "no iat, short"
    );
    // Minting beyond the bound is refused too.
    assert!(s.state().auth.issue("v", Role::Viewer, 7200).is_err());
    s.stop().await;
}

/// High 6: tokens signed by the platform (RS256, EdDSA) verify with its
/// public keys from a PEM file or a JWKS (by `kid`); with no
/// `auth.jwt_secret`, HS256 is refused and nothing is minted.
#[tokio::test]
async fn platform_public_keys_verify_pem_and_jwks() {
    let c = claims("v", Role::Viewer);
    // PEM, no shared secret: only the platform's key.
    for (pem, alg, private) in [
        (
            "ed25519_public.pem",
            Algorithm::EdDSA,
            "ed25519_private.pem",
        ),
        ("rsa_public.pem", Algorithm::RS256, "rsa_private.pem"),
    ] {
        let s = TestServer::start(&embedded(), |cfg| {
            cfg.auth.jwt_secret = String::new();
            cfg.auth.public_keys_path = fixture(pem).display().to_string();
        })
        .await;
        assert_eq!(
            wallet_with(&s, &signed(&c, alg, None, private)).await.0,
            200,
            "{pem}"
        );
        assert_eq!(
            wallet_with(&s, &hs256(&c, SECRET)).await,
            (401, "unauthorized".into()),
            "HS256 without auth.jwt_secret"
        );
        let mut ws = Ws::connect(
            &format!(
                "ws://{}/v1/ws?token={}",
                s.addr,
                signed(&c, alg, None, private)
            ),
            Encoding::Json,
        )
        .await
        .unwrap();
        ws.ping().await;
        let (st, v) = s
            .post(
                "/v1/creators/me/overlay-tokens",
                &signed(&claims("alice", Role::Creator), alg, None, private),
                json!({"room": "x"}),
            )
            .await;
        assert_eq!(st, 404, "{v}"); // no room x; minting is checked below
        let (st, v) = s
            .post(
                "/v1/rooms",
                &signed(&claims("alice", Role::Creator), alg, None, private),
                json!({"room": "x"}),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        let (st, v) = s
            .post(
                "/v1/creators/me/overlay-tokens",
                &signed(&claims("alice", Role::Creator), alg, None, private),
                json!({"room": "x"}),
            )
            .await;
        assert_eq!((st, v["code"].as_str()), (400, Some("bad_request")), "{v}");
        s.stop().await;
    }
    // JWKS beside the shared secret: both verify; `kid` picks the key.
    let s = TestServer::start(&embedded(), |cfg| {
        cfg.auth.public_keys_path = fixture("jwks.json").display().to_string();
    })
    .await;
    let ok = [
        signed(&c, Algorithm::RS256, Some("rsa-1"), "rsa_private.pem"),
        signed(&c, Algorithm::EdDSA, Some("ed-1"), "ed25519_private.pem"),
        signed(&c, Algorithm::RS256, None, "rsa_private.pem"),
        hs256(&c, SECRET),
    ];
    for t in ok {
        assert_eq!(wallet_with(&s, &t).await.0, 200);
    }
    for t in [
        signed(&c, Algorithm::RS256, Some("ed-1"), "rsa_private.pem"),
        signed(&c, Algorithm::RS256, Some("nope"), "rsa_private.pem"),
        hs256(&c, DEV_JWT_SECRET),
    ] {
        assert_eq!(wallet_with(&s, &t).await.0, 401);
    }
    s.stop().await;
    // A bad key file stops the start with the key's name.
    let mut cfg = common::server::test_config(&embedded());
    cfg.auth.public_keys_path = fixture("README.md").display().to_string();
    let e = giftstream::server::start(cfg).await.err().expect("refused");
    assert!(format!("{e:#}").contains("auth.public_keys_path"), "{e:#}");
}

/// High 6: with `auth.admin_jwt_secret`, admin tokens verify only with it
/// (and it verifies nothing else).
#[tokio::test]
async fn admin_tokens_need_the_admin_key() {
    let s = TestServer::start(&embedded(), |c| {
        c.auth.admin_jwt_secret = ADMIN_SECRET.into();
    })
    .await;
    let grant = json!({"user": "v", "coins": 5, "id": "g1"});
    let (st, v) = s
        .post(
            "/v1/admin/grants",
            &hs256(&claims("root", Role::Admin), SECRET),
            grant.clone(),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (401, Some("unauthorized")), "{v}");
    let (st, v) = s
        .post(
            "/v1/admin/grants",
            &hs256(&claims("root", Role::Admin), ADMIN_SECRET),
            grant,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        wallet_with(&s, &hs256(&claims("v", Role::Viewer), ADMIN_SECRET))
            .await
            .0,
        401
    );
    assert_eq!(
        wallet_with(&s, &hs256(&claims("v", Role::Viewer), SECRET))
            .await
            .0,
        200
    );
    // What giftstream mints for an admin is signed with the admin key.
    let minted = s.state().auth.issue("root", Role::Admin, 600).unwrap();
    let (st, v) = s
        .post(
            "/v1/admin/grants",
            &minted,
            json!({"user": "v", "coins": 5, "id": "g2"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    s.stop().await;
}

/// High 6: a socket closes with 4001 at its token's `exp`; `refresh`
/// extends it (same sub, same or narrower role and scope, else `forbidden`
/// and the old token stays).
#[tokio::test]
async fn sockets_close_at_exp_unless_refreshed() {
    let s = TestServer::start(&embedded(), |_| {}).await;
    s.open_room("alice", "r1").await;
    let a = Auth::new(SECRET, 0);
    let short = a.issue("v", Role::Viewer, 4).unwrap();
    let url = |t: &str| format!("ws://{}/v1/ws?token={t}", s.addr);
    let mut refreshed = Ws::connect(&url(&short), Encoding::Json).await.unwrap();
    let mut lapsing = Ws::connect(&url(&short), Encoding::Json).await.unwrap();

    // Refusals first: the socket keeps its token.
    for (tok, code) in [
        (a.issue("w", Role::Viewer, 600).unwrap(), "forbidden"),
        (a.issue("v", Role::Creator, 600).unwrap(), "forbidden"),
        (
            hs256(&claims("v", Role::Viewer), DEV_JWT_SECRET),
            "unauthorized",
        ),
    ] {
        refreshed
            .send(json!({"type": "refresh", "token": tok}))
            .await;
        let e = refreshed.expect("error").await;
        assert_eq!(e["code"], code, "{e}");
    }
    let long = a.issue("v", Role::Viewer, 600).unwrap();
    refreshed
        .send(json!({"type": "refresh", "token": long}))
        .await;
    let r = refreshed.expect("refreshed").await;
    assert!(r["exp"].as_u64().unwrap() >= now() + 590, "{r}");
    refreshed.join("r1").await;

    let closed = lapsing.closed().await.expect("a close frame");
    assert_eq!(u16::from(closed.code), 4001);
    assert_eq!(closed.reason.as_str(), "token expired");
    tokio::time::sleep(Duration::from_millis(500)).await;
    refreshed.ping().await;

    // A scoped socket may not widen its scope.
    let scoped = a
        .issue_scoped("alice", Role::Creator, Some(&Scope::overlay("r1")), 600)
        .unwrap();
    let mut overlay = Ws::connect(&url(&scoped), Encoding::Json).await.unwrap();
    overlay
        .send(json!({"type": "refresh", "token": a.issue("alice", Role::Creator, 600).unwrap()}))
        .await;
    assert_eq!(overlay.expect("error").await["code"], "forbidden");
    overlay
        .send(json!({"type": "refresh", "token": scoped}))
        .await;
    overlay.expect("refreshed").await;
    s.stop().await;
}

/// Medium: secrets never show in `Debug` output or config errors.
#[test]
fn secrets_never_show_in_debug_or_config_errors() {
    let mut c = Config::default();
    c.ledger.url = "postgres://giftstream:pg-PASSWORD-1@pg.internal/giftstream".into();
    c.counters.url = "rediss://:redis-PASSWORD-2@redis.internal:6380/0".into();
    c.auth.jwt_secret = "jwt-SECRET-3-0123456789abcdefghijklmnop".into();
    c.auth.admin_jwt_secret = "admin-SECRET-4-0123456789abcdefghijklmnop".into();
    c.stripe.secret_key = "sk_live_SECRET-5".into();
    c.stripe.webhook_secret = "whsec_SECRET-6".into();
    c.stripe.api_base_url = "https://user:api-PASSWORD-7@stripe.internal".into();
    let secrets = [
        "PASSWORD-1",
        "PASSWORD-2",
        "SECRET-3",
        "SECRET-4",
        "SECRET-5",
        "SECRET-6",
        "PASSWORD-7",
    ];
    let auth = giftstream::auth::Auth::from_config(&c.auth).unwrap();
    for text in [format!("{c:?}"), format!("{c:#?}"), format!("{auth:?}")] {
        for s in secrets {
            assert!(!text.contains(s), "{s} in {text}");
        }
        assert!(
            text.contains("<redacted>") || text.starts_with("Auth("),
            "{text}"
        );
    }
    assert!(
        format!("{c:?}").contains("pg.internal"),
        "the rest still shows"
    );
    // A bad URL is named in the error, without its password.
    c.ledger.url = "mysql://u:pg-PASSWORD-1@h/db".into();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("ledger.url") && !e.contains("PASSWORD-1"), "{e}");
    c.ledger.url = "postgres://h/db?user=u&password=pg-PASSWORD-1".into();
    assert!(!format!("{c:?}").contains("PASSWORD-1"));
}

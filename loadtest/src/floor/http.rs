//! The floor server's HTTP side: request heads, the set-up routes the load
//! generator calls, and the WebSocket upgrade answer.
//!
//! Owns: [`Head`] (parsing a request head), [`route`] (`/healthz`, the
//! catalog, opening rooms, grants, wallets, earnings: just enough for a
//! scenario's set-up and its conservation check), [`upgrade_answer`], and
//! reading a token's `sub` without verifying it.
//! Must not: verify tokens or keep a ledger: the floor measures the cost of
//! moving bytes, not of money.

use std::sync::Mutex;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::Books;
use crate::wire::SUBPROTOCOL_JSON;

/// Longest request head accepted.
pub const HEAD_LEN_MAX: usize = 16 * 1024;
/// Longest request body accepted.
pub const BODY_LEN_MAX: usize = 64 * 1024;

/// The one gift of the floor's catalog (the load generator's default).
pub const GIFT: &str = "rose";
/// Its price in coins and diamonds.
pub const GIFT_COINS: i64 = 1;
/// Diamonds per unit.
pub const GIFT_DIAMONDS: i64 = 1;
/// Its animation asset (sent in every event, as giftstream does).
pub const GIFT_ANIMATION: &str = "rose.webp";

/// A parsed request head.
#[derive(Debug, Default)]
pub struct Head {
    /// Method.
    pub method: String,
    /// Path (query removed).
    pub path: String,
    /// Body length.
    pub content_len: usize,
    /// The token of `Authorization: Bearer`.
    pub token: Option<String>,
    /// `Sec-WebSocket-Key`, when an upgrade.
    pub ws_key: Option<String>,
    /// `Sec-WebSocket-Protocol`.
    pub protocols: String,
}

/// Parse `head` (up to and without the blank line).
pub fn parse_head(head: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let mut h = Head {
        method: first.next()?.to_string(),
        path: first.next()?.split('?').next()?.to_string(),
        ..Head::default()
    };
    let mut upgrade = false;
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => h.content_len = value.parse().ok()?,
            "authorization" => h.token = value.strip_prefix("Bearer ").map(str::to_string),
            "sec-websocket-key" => h.ws_key = Some(value.to_string()),
            "sec-websocket-protocol" => h.protocols = value.to_string(),
            "upgrade" => upgrade = value.eq_ignore_ascii_case("websocket"),
            _ => {}
        }
    }
    if !upgrade {
        h.ws_key = None;
    }
    Some(h)
}

/// The `sub` of a JWT, read without checking its signature.
pub fn token_sub(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Claims {
        sub: String,
    }
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.insecure_disable_signature_validation();
    v.validate_exp = false;
    v.required_spec_claims.clear();
    let key = jsonwebtoken::DecodingKey::from_secret(b"");
    jsonwebtoken::decode::<Claims>(token, &key, &v)
        .ok()
        .map(|d| d.claims.sub)
}

/// A whole HTTP/1.1 response (keep-alive).
pub fn response(status: u16, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Error",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The 101 answer to an upgrade with `key`, or None when the client does
/// not speak JSON (the floor speaks no MessagePack).
pub fn upgrade_answer(h: &Head) -> Option<Vec<u8>> {
    let key = h.ws_key.as_deref()?;
    if !h.protocols.split(',').any(|p| p.trim() == SUBPROTOCOL_JSON) {
        return None;
    }
    Some(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-accept: {}\r\nsec-websocket-protocol: {SUBPROTOCOL_JSON}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        )
        .into_bytes(),
    )
}

/// Answer one plain HTTP request.
pub fn route(books: &Mutex<Books>, h: &Head, body: &[u8]) -> Vec<u8> {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let user = h.token.as_deref().and_then(token_sub);
    let mut b = books.lock().unwrap_or_else(|e| e.into_inner());
    match (h.method.as_str(), h.path.as_str()) {
        ("GET", "/healthz") => response(200, &json!({ "ok": true })),
        ("GET", "/v1/catalog") => response(
            200,
            &json!({ "gifts": [{ "id": GIFT, "name": "Rose", "coins": GIFT_COINS,
                "diamonds": GIFT_DIAMONDS, "animation": GIFT_ANIMATION }] }),
        ),
        ("POST", "/v1/rooms") => match (user, body["room"].as_str()) {
            (Some(creator), Some(room)) => {
                b.open_room(room, &creator);
                response(200, &json!({ "room": room }))
            }
            _ => response(400, &json!({ "code": "bad_request" })),
        },
        ("POST", "/v1/admin/grants") => {
            match (
                body["user"].as_str(),
                body["coins"].as_i64(),
                body["id"].as_str(),
            ) {
                (Some(u), Some(c), Some(id)) => {
                    if b.grant_ids.insert(id.to_string()) {
                        *b.wallets.entry(u.to_string()).or_default() += c;
                    }
                    response(200, &json!({ "user": u, "coins": c, "id": id }))
                }
                _ => response(400, &json!({ "code": "bad_request" })),
            }
        }
        ("GET", "/v1/wallet") => match user {
            Some(u) => {
                let coins = b.wallets.get(&u).copied().unwrap_or(0);
                response(200, &json!({ "user": u, "coins": coins }))
            }
            None => response(401, &json!({ "code": "unauthorized" })),
        },
        ("GET", p) if p.starts_with("/v1/creators/") && p.ends_with("/earnings") => {
            let c = &p["/v1/creators/".len()..p.len() - "/earnings".len()];
            let d = b.earnings.get(c).copied().unwrap_or(0);
            response(
                200,
                &json!({ "creator": c, "diamonds_pending": d, "diamonds_settled": 0 }),
            )
        }
        _ => response(404, &json!({ "code": "not_found" })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_upgrades_parse() {
        let h = parse_head(
            b"GET /v1/ws?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: giftstream.v1.json\r\n\
              Authorization: Bearer t.u.v",
        )
        .unwrap();
        assert_eq!((h.method.as_str(), h.path.as_str()), ("GET", "/v1/ws"));
        assert_eq!(h.token.as_deref(), Some("t.u.v"));
        let a = String::from_utf8(upgrade_answer(&h).unwrap()).unwrap();
        assert!(a.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{a}");
        let tokens = crate::token::Tokens::new("s");
        let t = tokens.sign("alice", crate::token::Role::Viewer).unwrap();
        assert_eq!(token_sub(&t).as_deref(), Some("alice"));
    }
}

//! Page sessions: the signed cookie a browser holds after trading a token
//! for it (`POST /v1/sessions`), and its CSRF token.
//!
//! Owns: the session's claims, minting and verifying the cookie value (an
//! HS256 JWT under a key derived from `auth.jwt_secret`, so a session
//! cookie never verifies as a bearer token nor a token as a cookie), and
//! the CSRF check. A session carries the identity of the token it came
//! from (full-privilege tokens only) and expires no later than it. No
//! server-side store: signing out clears the cookie in the browser.
//! Must not: read requests or set headers (`http::session` does), or make
//! a session for a scoped token.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{unix_s, Identity, Role};
use crate::error::{Error, Result};
use crate::protocol::valid_name;

/// The cookie's name.
pub const COOKIE: &str = "gs_session";
/// The header carrying the CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// `typ` of a session's claims.
const TYP: &str = "gs_session";

/// What the session cookie holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionClaims {
    typ: String,
    sub: String,
    role: Role,
    exp: u64,
    iat: u64,
    /// Random; the CSRF token is this value (the cookie is HttpOnly, so
    /// only the page that was answered it knows it).
    csrf: String,
}

/// A verified session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Who.
    pub identity: Identity,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// The CSRF token state-changing requests must carry.
    pub csrf: String,
}

/// Signs and verifies session cookies.
pub struct SessionKeys {
    enc: EncodingKey,
    dec: DecodingKey,
}

impl SessionKeys {
    /// Keys derived from `jwt_secret`; with an empty secret (tokens come
    /// from the platform's public keys only), a random key of this
    /// process (sessions then end with it, and do not span nodes).
    pub fn new(jwt_secret: &str) -> SessionKeys {
        let key: Vec<u8> = if jwt_secret.is_empty() {
            // Two v4 UUIDs: 244 random bits from the OS generator.
            static RANDOM: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            RANDOM
                .get_or_init(|| {
                    let mut k = uuid::Uuid::new_v4().as_bytes().to_vec();
                    k.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
                    k
                })
                .clone()
        } else {
            format!("giftstream-session-v1\0{jwt_secret}").into_bytes()
        };
        SessionKeys {
            enc: EncodingKey::from_secret(&key),
            dec: DecodingKey::from_secret(&key),
        }
    }

    /// A session for `identity` until `exp` (seconds since the epoch):
    /// the cookie value and the session.
    pub fn issue(&self, identity: &Identity, exp: u64) -> Result<(String, Session)> {
        let csrf = uuid::Uuid::new_v4().simple().to_string();
        let claims = SessionClaims {
            typ: TYP.into(),
            sub: identity.user.clone(),
            role: identity.role,
            exp,
            iat: unix_s(),
            csrf: csrf.clone(),
        };
        let value = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .map_err(Error::internal)?;
        Ok((
            value,
            Session {
                identity: identity.clone(),
                exp,
                csrf,
            },
        ))
    }

    /// Verify a cookie value: signature, expiry (no leeway), `typ`.
    pub fn verify(&self, value: &str) -> Result<Session> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp", "sub"]);
        let c = jsonwebtoken::decode::<SessionClaims>(value, &self.dec, &v)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    Error::unauthorized("session expired: sign in again")
                }
                _ => Error::unauthorized("invalid session cookie: sign in again"),
            })?
            .claims;
        if c.typ != TYP || !valid_name(&c.sub) || c.csrf.is_empty() {
            return Err(Error::unauthorized("invalid session cookie: sign in again"));
        }
        Ok(Session {
            identity: Identity {
                user: c.sub,
                role: c.role,
                account_created_s: None,
            },
            exp: c.exp,
            csrf: c.csrf,
        })
    }
}

impl Session {
    /// `forbidden` unless `given` (the `X-CSRF-Token` header) is this
    /// session's CSRF token; compared in constant time.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<()> {
        let ok = given.is_some_and(|g| {
            let (a, b) = (g.as_bytes(), self.csrf.as_bytes());
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
        });
        if ok {
            Ok(())
        } else {
            Err(Error::forbidden(
                "a request signed in by cookie must carry the session's X-CSRF-Token header",
            ))
        }
    }
}

/// When a session made now from a token expiring at `token_exp` ends:
/// no later than the token, nor `ttl_s_max` from now.
pub fn session_exp(token_exp: u64, ttl_s_max: u64) -> u64 {
    token_exp.min(unix_s() + ttl_s_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who() -> Identity {
        Identity {
            user: "viewer-1".into(),
            role: Role::Viewer,
            account_created_s: None,
        }
    }

    #[test]
    fn cookie_round_trip_tamper_and_csrf() {
        let k = SessionKeys::new("a-secret-of-some-length-0123456789");
        let (v, s) = k.issue(&who(), unix_s() + 60).unwrap();
        let back = k.verify(&v).unwrap();
        assert_eq!(back, s);
        assert!(back.check_csrf(Some(&s.csrf)).is_ok());
        assert!(back.check_csrf(None).is_err());
        assert!(back.check_csrf(Some("nope")).is_err());
        // Another server's key, a bearer token, an expired session: refused.
        let other = SessionKeys::new("another-secret-0123456789abcdefgh");
        assert!(other.verify(&v).is_err());
        let auth = crate::auth::Auth::new("a-secret-of-some-length-0123456789", 0);
        let token = auth.issue("viewer-1", Role::Viewer, 60).unwrap();
        assert!(k.verify(&token).is_err(), "a token is no session");
        assert!(auth.verify(&v).is_err(), "a session is no token");
        let (old, _) = k.issue(&who(), unix_s() - 1).unwrap();
        assert_eq!(
            k.verify(&old).unwrap_err().message,
            "session expired: sign in again"
        );
    }

    #[test]
    fn session_ends_with_its_token() {
        let now = unix_s();
        assert_eq!(session_exp(now + 30, 3600), now + 30);
        assert!(session_exp(now + 86_400, 3600) <= now + 3600);
    }
}

//! Authentication: HS256 JWTs carrying `sub`, `role` and `exp`.
//!
//! Owns: [`Auth`] (signing and verifying with the configured secret),
//! [`Identity`] (who is calling), [`Role`], and extracting the token from an
//! `Authorization: Bearer` header or a `?token=` query parameter.
//! Must not: decide what a role may do beyond the helpers here; each
//! endpoint states its own rule with [`Identity::require`] and friends.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::protocol::valid_name;

/// What a caller is allowed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watches rooms, holds a wallet, sends gifts.
    Viewer,
    /// Opens rooms, registers videos, earns diamonds (and may gift too).
    Creator,
    /// Operates the system: grants, anyone's earnings.
    Admin,
}

/// The claims of a giftstream token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Role.
    pub role: Role,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id (`sub`).
    pub user: String,
    /// Role.
    pub role: Role,
}

impl Identity {
    /// `forbidden` unless the caller has `role`.
    pub fn require(&self, role: Role) -> Result<()> {
        if self.role == role {
            Ok(())
        } else {
            Err(Error::forbidden(
                format!("needs role {role:?}").to_lowercase(),
            ))
        }
    }

    /// `forbidden` unless the caller is `user` or an admin.
    pub fn require_self_or_admin(&self, user: &str) -> Result<()> {
        if self.role == Role::Admin || self.user == user {
            Ok(())
        } else {
            Err(Error::forbidden("not yours"))
        }
    }
}

/// Signs and verifies tokens with one HS256 secret.
#[derive(Clone)]
pub struct Auth {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(HS256)")
    }
}

impl Auth {
    /// Keys from the shared secret; `leeway_s` of clock skew on `exp`.
    pub fn new(secret: &str, leeway_s: u64) -> Auth {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway_s;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Auth {
            enc: EncodingKey::from_secret(secret.as_bytes()),
            dec: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// A token for `user` with `role`, valid for `ttl_s` seconds.
    pub fn issue(&self, user: &str, role: Role, ttl_s: u64) -> Result<String> {
        if !valid_name(user) {
            return Err(Error::bad_request(
                "user must be 1..=64 characters of [A-Za-z0-9_.-]",
            ));
        }
        let claims = Claims {
            sub: user.to_string(),
            role,
            exp: unix_s() + ttl_s,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .map_err(Error::internal)
    }

    /// The identity in `token`, or `unauthorized` saying why not.
    pub fn verify(&self, token: &str) -> Result<Identity> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.dec, &self.validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::InvalidSignature => "bad signature",
                    ErrorKind::InvalidAlgorithm => "algorithm not allowed",
                    _ => "malformed token",
                };
                Error::unauthorized(why)
            })?;
        if !valid_name(&data.claims.sub) {
            return Err(Error::unauthorized("malformed sub"));
        }
        Ok(Identity {
            user: data.claims.sub,
            role: data.claims.role,
        })
    }

    /// Verify the token of a request: `Authorization: Bearer`, else `?token=`.
    pub fn from_request(&self, headers: &HeaderMap, query_token: Option<&str>) -> Result<Identity> {
        let header = headers.get(axum::http::header::AUTHORIZATION);
        let token = match (header, query_token) {
            (Some(h), _) => {
                let h = h
                    .to_str()
                    .map_err(|_| Error::unauthorized("malformed Authorization header"))?;
                h.strip_prefix("Bearer ")
                    .ok_or_else(|| Error::unauthorized("expected `Authorization: Bearer <jwt>`"))?
                    .trim()
            }
            (None, Some(t)) => t,
            (None, None) => return Err(Error::unauthorized("no token")),
        };
        self.verify(token)
    }
}

fn unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    const SECRET: &str = "test-secret-0123456789";

    #[test]
    fn round_trip_and_refusals() {
        let a = Auth::new(SECRET, 0);
        let t = a.issue("viewer-1", Role::Viewer, 60).unwrap();
        assert_eq!(
            a.verify(&t).unwrap(),
            Identity {
                user: "viewer-1".into(),
                role: Role::Viewer
            }
        );

        let other = Auth::new("another-secret-0123456789", 0);
        assert_eq!(other.verify(&t).unwrap_err().message, "bad signature");

        let expired = Claims {
            sub: "u".into(),
            role: Role::Viewer,
            exp: unix_s() - 3600,
        };
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &expired,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(a.verify(&t).unwrap_err().message, "token expired");

        // alg: none, hand-made (jsonwebtoken refuses to make one).
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&format!(
                r#"{{"sub":"u","role":"admin","exp":{}}}"#,
                unix_s() + 60
            ))
        );
        assert_eq!(a.verify(&none).unwrap_err().code, ErrorCode::Unauthorized);

        let bad_sub = Claims {
            sub: "a b/c".into(),
            role: Role::Viewer,
            exp: unix_s() + 60,
        };
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &bad_sub,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(a.verify(&t).unwrap_err().message, "malformed sub");
        assert_eq!(
            a.verify("garbage").unwrap_err().code,
            ErrorCode::Unauthorized
        );
    }
}

//! Authentication: JWTs carrying `sub`, `role`, `exp`, and optionally
//! `scope`, `iat`, `nbf`, `aud` and `iss`.
//!
//! Owns: [`Auth`] (minting with the HS256 `auth.jwt_secret`; verifying with
//! it, with the separate admin secret and with the platform's public keys
//! of `auth.public_keys_path`), the claim checks (`exp`, `nbf`, `aud`, `iss`,
//! lifetime, admin key), [`Identity`] (who is calling), [`Role`], [`Scope`]
//! (a token limited to one room's overlay), and where a token may come
//! from: HTTP routes read `Authorization: Bearer` only; `/v1/ws` and
//! `/overlay/...` also read `?token=` (browsers cannot set headers there).
//! Must not: decide what a role may do beyond the helpers here; each
//! endpoint states its own rule with [`Identity::require`] and friends.
//! Never mints with a public key (giftstream holds none of the private
//! ones), and never prints a secret (its `Debug` names no key material).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::config::{AuthConfig, ConfigError};
use crate::error::{Error, Result};
use crate::protocol::valid_name;

mod claims;
mod keys;
pub mod session;
mod verify;

pub use claims::{Claims, Identity, Role, Scope, Token};
pub use verify::{bearer, scoped_refusal};

use keys::{load_public_keys, PublicKey};

/// Signs tokens with the HS256 secret; verifies them with it, with the
/// admin secret and with the platform's public keys.
#[derive(Clone)]
pub struct Auth {
    /// `auth.jwt_secret`; `None` when empty (HS256 is then refused, and
    /// nothing is minted).
    signer: Option<(EncodingKey, DecodingKey)>,
    /// `auth.admin_jwt_secret`: when set, admin tokens are minted with it
    /// and verify only with it.
    admin: Option<(EncodingKey, DecodingKey)>,
    public: std::sync::Arc<Vec<PublicKey>>,
    base: Validation,
    audience: Option<String>,
    issuer: Option<String>,
    lifetime_s_max: u64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Auth(hs256: {}, admin key: {}, public keys: {})",
            self.signer.is_some(),
            self.admin.is_some(),
            self.public.len()
        )
    }
}

impl Auth {
    /// HS256 with the shared secret only; `leeway_s` of clock skew on
    /// `exp` and `nbf`; no audience, issuer or lifetime checks.
    pub fn new(secret: &str, leeway_s: u64) -> Auth {
        Auth::build(secret, None, Vec::new(), leeway_s, None, None, 0)
    }

    /// Everything `[auth]` configures; reads `auth.public_keys_path`.
    pub fn from_config(cfg: &AuthConfig) -> std::result::Result<Auth, ConfigError> {
        let public = if cfg.public_keys_path.is_empty() {
            Vec::new()
        } else {
            load_public_keys(&cfg.public_keys_path).map_err(|message| ConfigError {
                key: "auth.public_keys_path".into(),
                message,
            })?
        };
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Ok(Auth::build(
            &cfg.jwt_secret,
            nonempty(&cfg.admin_jwt_secret),
            public,
            cfg.leeway_s,
            nonempty(&cfg.audience),
            nonempty(&cfg.issuer),
            cfg.token_lifetime_s_max,
        ))
    }

    fn build(
        secret: &str,
        admin_secret: Option<String>,
        public: Vec<PublicKey>,
        leeway_s: u64,
        audience: Option<String>,
        issuer: Option<String>,
        lifetime_s_max: u64,
    ) -> Auth {
        let mut base = Validation::new(Algorithm::HS256);
        base.leeway = leeway_s;
        base.validate_exp = true;
        base.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &audience {
            Some(a) => {
                base.set_audience(&[a]);
                required.push("aud");
            }
            // Without a configured audience, `aud` is not checked (a
            // platform's tokens may carry one for their own services).
            None => base.validate_aud = false,
        }
        if let Some(i) = &issuer {
            base.set_issuer(&[i]);
            required.push("iss");
        }
        base.set_required_spec_claims(&required);
        let signer = (!secret.is_empty()).then(|| {
            (
                EncodingKey::from_secret(secret.as_bytes()),
                DecodingKey::from_secret(secret.as_bytes()),
            )
        });
        Auth {
            signer,
            admin: admin_secret.map(|s| {
                (
                    EncodingKey::from_secret(s.as_bytes()),
                    DecodingKey::from_secret(s.as_bytes()),
                )
            }),
            public: std::sync::Arc::new(public),
            base,
            audience,
            issuer,
            lifetime_s_max,
        }
    }

    /// Whether this server can mint tokens (`auth.jwt_secret` is set).
    pub fn can_mint(&self) -> bool {
        self.signer.is_some()
    }

    /// A full-privilege token for `user` with `role`, valid for `ttl_s`
    /// seconds.
    pub fn issue(&self, user: &str, role: Role, ttl_s: u64) -> Result<String> {
        self.issue_scoped(user, role, None, ttl_s)
    }

    /// A token for `user` with `role` and `scope`, valid for `ttl_s`
    /// seconds, signed with `auth.jwt_secret` (HS256; an admin token with
    /// `auth.admin_jwt_secret` when that is set), with `iat` and the
    /// configured `iss`/`aud`.
    pub fn issue_scoped(
        &self,
        user: &str,
        role: Role,
        scope: Option<&Scope>,
        ttl_s: u64,
    ) -> Result<String> {
        if !valid_name(user) {
            return Err(Error::bad_request(
                "user must be 1..=64 characters of [A-Za-z0-9_.-]",
            ));
        }
        let signer = match (&self.admin, role) {
            (Some(admin), Role::Admin) => Some(admin),
            _ => self.signer.as_ref(),
        };
        let Some((enc, _)) = signer else {
            return Err(Error::bad_request(
                "this server mints no tokens: auth.jwt_secret is empty (tokens come from the platform's keys)",
            ));
        };
        if self.lifetime_s_max > 0 && ttl_s > self.lifetime_s_max {
            return Err(Error::bad_request(format!(
                "ttl {ttl_s} s exceeds auth.token_lifetime_s_max ({} s)",
                self.lifetime_s_max
            )));
        }
        let now = unix_s();
        let claims = Claims {
            sub: user.to_string(),
            role,
            exp: now + ttl_s,
            iat: Some(now),
            nbf: None,
            scope: scope.map(|s| s.to_string()),
            iss: self.issuer.clone(),
            aud: self.audience.clone().map(serde_json::Value::String),
            acct_created: None,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, enc).map_err(Error::internal)
    }
}

/// Seconds since the Unix epoch, server time.
pub fn unix_s() -> u64 {
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

    fn claims(sub: &str, role: Role, exp: u64) -> Claims {
        Claims {
            sub: sub.into(),
            role,
            exp,
            iat: None,
            nbf: None,
            scope: None,
            iss: None,
            aud: None,
            acct_created: None,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let a = Auth::new(SECRET, 0);
        let t = a.issue("viewer-1", Role::Viewer, 60).unwrap();
        assert_eq!(
            a.verify(&t).unwrap(),
            Identity {
                user: "viewer-1".into(),
                role: Role::Viewer,
                account_created_s: None,
            }
        );

        let other = Auth::new("another-secret-0123456789", 0);
        assert_eq!(other.verify(&t).unwrap_err().message, "bad signature");

        let expired = claims("u", Role::Viewer, unix_s() - 3600);
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

        let bad_sub = claims("a b/c", Role::Viewer, unix_s() + 60);
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

    #[test]
    fn scoped_tokens_decode_but_do_not_verify_for_http() {
        let a = Auth::new(SECRET, 0);
        let t = a
            .issue_scoped("alice", Role::Creator, Some(&Scope::overlay("r1")), 60)
            .unwrap();
        let d = a.decode(&t).unwrap();
        assert_eq!(d.scope, Some(Scope::overlay("r1")));
        assert_eq!(a.verify(&t).unwrap_err().code, ErrorCode::Forbidden);
        assert_eq!(a.scope_of(&t), Some(Scope::overlay("r1")));
        assert_eq!(Scope::parse("overlay:a b"), None);
        assert_eq!(Scope::parse("admin"), None);
    }
}

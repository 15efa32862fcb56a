//! `[auth]`: token secrets and key files, and what counts as a weak secret.
//!
//! Owns: [`AuthConfig`], its defaults, the development secret and the
//! secret-strength rule.
//! Must not: read key files or verify tokens (that is `crate::auth`).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::redact::redacted_debug;

/// The secret shipped in `config/default.toml`; fine on a laptop, refused by
/// `production.toml` (which requires the env override).
pub const DEV_JWT_SECRET: &str = "giftstream-dev-secret-change-me-in-production";

/// `[auth]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 secret (env `GIFTSTREAM_AUTH__JWT_SECRET`): mints and
    /// verifies. Empty turns HS256 off (then `public_keys_path` is
    /// required and this server mints nothing).
    pub jwt_secret: String,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway_s: u64,
    /// Refuse the development secret and secrets under 32 bytes even for
    /// `serve --demo` (plain `serve` and payments always refuse them).
    pub require_strong_secret: bool,
    /// When set (at least 32 bytes, env `GIFTSTREAM_AUTH__ADMIN_JWT_SECRET`),
    /// admin tokens are accepted only when signed with it (HS256), and it
    /// verifies admin tokens only.
    pub admin_jwt_secret: String,
    /// A PEM file (one or more `PUBLIC KEY` blocks) or a JWKS file of the
    /// host platform's public keys (RS256, ES256, EdDSA; a token's `kid`
    /// picks the key when both carry one). giftstream verifies with them,
    /// never mints. Empty: none.
    pub public_keys_path: String,
    /// When set, tokens must carry this `aud`; empty: `aud` is not checked.
    pub audience: String,
    /// When set, tokens must carry this `iss`; empty: `iss` is not checked.
    pub issuer: String,
    /// Longest token lifetime accepted, seconds: `exp - iat`, or `exp -
    /// now` for a token without `iat` (or with one in the future). 0: no
    /// bound.
    pub token_lifetime_s_max: u64,
    /// Lifetime of the overlay tokens giftstream mints (`POST
    /// /v1/creators/me/overlay-tokens`, the demo banner), seconds.
    pub overlay_token_ttl_s: u64,
    /// Prefix of the overlay URL answered with an overlay token, e.g.
    /// `https://gifts.example.com`; empty: the URL is a path
    /// (`/overlay/ROOM?token=...`).
    pub overlay_url_base: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: DEV_JWT_SECRET.to_string(),
            leeway_s: 5,
            require_strong_secret: false,
            admin_jwt_secret: String::new(),
            public_keys_path: String::new(),
            audience: String::new(),
            issuer: String::new(),
            token_lifetime_s_max: 7 * 86_400,
            overlay_token_ttl_s: 86_400,
            overlay_url_base: String::new(),
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted_debug(
            f,
            "AuthConfig",
            self,
            &["jwt_secret", "admin_jwt_secret"],
            &[],
        )
    }
}

/// The minimum length of a secret `serve` accepts, bytes.
pub const JWT_SECRET_LEN_MIN: usize = 32;

/// Why `secret` is too weak to serve with, if it is.
pub(super) fn weak_secret(secret: &str) -> Option<&'static str> {
    if secret == DEV_JWT_SECRET {
        Some("the public development secret")
    } else if secret.len() < JWT_SECRET_LEN_MIN {
        Some("shorter than 32 bytes")
    } else {
        None
    }
}

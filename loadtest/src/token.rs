//! Tokens: HS256 JWTs signed by the load tester itself.
//!
//! Owns: [`Tokens`], which signs `{sub, role, exp}` claims with the secret
//! the server was started with (`--jwt-secret`, by default the development
//! secret of `config/default.toml`), so no round trip is needed per user.
//! Must not: verify anything; the server is the judge.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// The development secret shipped in `config/default.toml`.
pub const DEV_JWT_SECRET: &str = "giftstream-dev-secret-change-me-in-production";

/// Lifetime of every token this tool signs, seconds.
const TOKEN_TTL_S: u64 = 6 * 3600;

/// A role in the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watches and gifts.
    Viewer,
    /// Opens rooms, earns diamonds.
    Creator,
    /// Grants coins, reads anyone's earnings.
    Admin,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    role: Role,
    exp: u64,
}

/// Signs tokens with one HS256 secret.
#[derive(Clone)]
pub struct Tokens {
    key: EncodingKey,
}

impl Tokens {
    /// A signer for `secret`.
    pub fn new(secret: &str) -> Tokens {
        Tokens {
            key: EncodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// A token for `user` in `role`, valid for six hours.
    pub fn sign(&self, user: &str, role: Role) -> anyhow::Result<String> {
        let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + TOKEN_TTL_S;
        let claims = Claims {
            sub: user,
            role,
            exp,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.key,
        )?)
    }
}

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

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{AuthConfig, ConfigError};
use crate::error::{Error, Result};
use crate::protocol::valid_name;

pub mod session;

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
    /// A brand (protocol v1 additions); no routes of its own yet, so it
    /// may do what any authenticated user may.
    Brand,
}

/// What a scoped token is limited to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `overlay:ROOM`: `join`/`resume` (and `leave`) of ROOM over `/v1/ws`
    /// and loading `/overlay/ROOM`; nothing else.
    Overlay(String),
}

impl Scope {
    /// `overlay:ROOM` for a valid room name.
    pub fn overlay(room: &str) -> Scope {
        Scope::Overlay(room.to_string())
    }

    /// The scope of a claim; `None` when it is not one giftstream knows.
    pub fn parse(claim: &str) -> Option<Scope> {
        let room = claim.strip_prefix("overlay:")?;
        valid_name(room).then(|| Scope::Overlay(room.to_string()))
    }

    /// Whether this scope lets the token use `room`.
    pub fn allows_room(&self, room: &str) -> bool {
        match self {
            Scope::Overlay(r) => r == room,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Overlay(room) => write!(f, "overlay:{room}"),
        }
    }
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
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// `overlay:ROOM`; absent: the role's full privilege.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Issuer (checked against `auth.issuer` when that is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience: a string or a list (checked against `auth.audience`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id (`sub`).
    pub user: String,
    /// Role.
    pub role: Role,
}

/// A verified token: who, what it is limited to, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The caller.
    pub identity: Identity,
    /// The token's scope; `None` is the role's full privilege.
    pub scope: Option<Scope>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
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

/// A platform public key (`auth.public_keys_path`): verifies, never signs.
struct PublicKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

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
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, enc).map_err(Error::internal)
    }

    /// Verify `token`: signature (HS256 with `auth.jwt_secret`, or
    /// `auth.admin_jwt_secret`, or a public key matched by `alg` and
    /// `kid`), `exp`, `nbf`, `aud`/`iss` when configured, the lifetime
    /// bound, the admin-key rule and the scope. `unauthorized` saying why
    /// not.
    pub fn decode(&self, token: &str) -> Result<Token> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Error::unauthorized("malformed token"))?;
        let (claims, by_admin_key) = if header.alg == Algorithm::HS256 {
            self.decode_hs256(token)?
        } else {
            (self.decode_public(token, &header)?, false)
        };
        self.check(claims, by_admin_key)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = self.base.clone();
        v.algorithms = vec![alg];
        v
    }

    fn decode_hs256(&self, token: &str) -> Result<(Claims, bool)> {
        let v = self.validation(Algorithm::HS256);
        let mut last = Error::unauthorized("algorithm not allowed");
        if let Some((_, dec)) = &self.signer {
            match jsonwebtoken::decode::<Claims>(token, dec, &v) {
                Ok(d) => return Ok((d.claims, false)),
                Err(e) if is_bad_signature(&e) => last = refusal(&e),
                Err(e) => return Err(refusal(&e)),
            }
        }
        if let Some((_, dec)) = &self.admin {
            return jsonwebtoken::decode::<Claims>(token, dec, &v)
                .map(|d| (d.claims, true))
                .map_err(|e| refusal(&e));
        }
        Err(last)
    }

    fn decode_public(&self, token: &str, header: &Header) -> Result<Claims> {
        let mut last = Error::unauthorized("algorithm not allowed");
        for k in self.public.iter().filter(|k| k.alg == header.alg) {
            if let (Some(want), Some(have)) = (&header.kid, &k.kid) {
                if want != have {
                    last = Error::unauthorized("unknown key id (kid)");
                    continue;
                }
            }
            match jsonwebtoken::decode::<Claims>(token, &k.key, &self.validation(k.alg)) {
                Ok(d) => return Ok(d.claims),
                Err(e) if is_bad_signature(&e) => last = refusal(&e),
                Err(e) => return Err(refusal(&e)),
            }
        }
        Err(last)
    }

    fn check(&self, c: Claims, by_admin_key: bool) -> Result<Token> {
        if !valid_name(&c.sub) {
            return Err(Error::unauthorized("malformed sub"));
        }
        if self.admin.is_some() {
            if c.role == Role::Admin && !by_admin_key {
                return Err(Error::unauthorized(
                    "admin tokens must be signed with auth.admin_jwt_secret",
                ));
            }
            if by_admin_key && c.role != Role::Admin {
                return Err(Error::unauthorized("the admin key signs admin tokens only"));
            }
        }
        if self.lifetime_s_max > 0 {
            // Without `iat` (or with one in the future) the token counts as
            // issued now: what is left of it must fit the bound.
            let now = unix_s();
            let start = c.iat.map_or(now, |i| i.min(now));
            if c.exp.saturating_sub(start) > self.lifetime_s_max {
                return Err(Error::unauthorized(
                    "token lifetime exceeds auth.token_lifetime_s_max",
                ));
            }
        }
        let scope = match c.scope.as_deref() {
            None => None,
            Some(s) => Some(Scope::parse(s).ok_or_else(|| Error::unauthorized("unknown scope"))?),
        };
        Ok(Token {
            identity: Identity {
                user: c.sub,
                role: c.role,
            },
            scope,
            exp: c.exp,
        })
    }

    /// The identity in a full-privilege `token`: `unauthorized` if it does
    /// not verify, `forbidden` if it is scoped (a scoped token opens only
    /// `/v1/ws` and `/overlay/ROOM`).
    pub fn verify(&self, token: &str) -> Result<Identity> {
        let t = self.decode(token)?;
        match t.scope {
            None => Ok(t.identity),
            Some(s) => Err(scoped_refusal(&s)),
        }
    }

    /// Whether `token` verifies and is scoped (HTTP routes refuse it with
    /// `forbidden`, also the ones that need no token). Only tokens whose
    /// unverified payload names a scope are verified.
    pub fn scope_of(&self, token: &str) -> Option<Scope> {
        if !payload_mentions_scope(token) {
            return None;
        }
        self.decode(token).ok().and_then(|t| t.scope)
    }

    /// Verify the token of an HTTP request: `Authorization: Bearer` only.
    pub fn from_request(&self, headers: &HeaderMap) -> Result<Identity> {
        match bearer(headers)? {
            Some(t) => self.verify(t),
            None => Err(Error::unauthorized(
                "no token: send `Authorization: Bearer <jwt>` (`?token=` is read only on /v1/ws and /overlay)",
            )),
        }
    }

    /// Verify the token of a socket or overlay request: `Authorization:
    /// Bearer`, else `?token=`. Scoped tokens are answered as such.
    pub fn from_socket_request(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<Token> {
        match (bearer(headers)?, query_token) {
            (Some(t), _) | (None, Some(t)) => self.decode(t),
            (None, None) => Err(Error::unauthorized("no token")),
        }
    }
}

/// `forbidden` for a scoped token used beyond its scope.
pub fn scoped_refusal(scope: &Scope) -> Error {
    Error::forbidden(format!(
        "this token is scoped to {scope}: it opens only /v1/ws (join/resume of that room) and /overlay of that room"
    ))
}

/// The `Authorization: Bearer` token of a request, if it has the header;
/// `unauthorized` when the header is malformed.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>> {
    let Some(h) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let h = h
        .to_str()
        .map_err(|_| Error::unauthorized("malformed Authorization header"))?;
    h.strip_prefix("Bearer ")
        .map(|t| Some(t.trim()))
        .ok_or_else(|| Error::unauthorized("expected `Authorization: Bearer <jwt>`"))
}

fn payload_mentions_scope(token: &str) -> bool {
    // Unverified peek: only decides whether the real check runs.
    let mut v = Validation::new(Algorithm::HS256);
    v.insecure_disable_signature_validation();
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let Ok(h) = jsonwebtoken::decode_header(token) else {
        return false;
    };
    v.algorithms = vec![h.alg];
    jsonwebtoken::decode::<serde_json::Value>(token, &DecodingKey::from_secret(&[]), &v)
        .is_ok_and(|d| d.claims.get("scope").is_some())
}

fn is_bad_signature(e: &jsonwebtoken::errors::Error) -> bool {
    use jsonwebtoken::errors::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::InvalidSignature
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidEcdsaKey
    )
}

fn refusal(e: &jsonwebtoken::errors::Error) -> Error {
    use jsonwebtoken::errors::ErrorKind;
    let why = match e.kind() {
        ErrorKind::ExpiredSignature => "token expired".to_string(),
        ErrorKind::ImmatureSignature => "token not yet valid (nbf)".to_string(),
        ErrorKind::InvalidSignature => "bad signature".to_string(),
        ErrorKind::InvalidAlgorithm => "algorithm not allowed".to_string(),
        ErrorKind::InvalidAudience => "wrong audience (aud)".to_string(),
        ErrorKind::InvalidIssuer => "wrong issuer (iss)".to_string(),
        ErrorKind::MissingRequiredClaim(c) => format!("missing claim `{c}`"),
        _ => "malformed token".to_string(),
    };
    Error::unauthorized(why)
}

/// Read a PEM file (one or more `PUBLIC KEY` blocks: RSA, EC P-256 or
/// Ed25519) or a JWKS (`{"keys": [...]}`; `kid` and `alg` kept).
fn load_public_keys(path: &str) -> std::result::Result<Vec<PublicKey>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let keys = if text.trim_start().starts_with('{') {
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(&text).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let alg = jwk_algorithm(jwk).ok_or_else(|| {
                format!("keys[{i}]: not an RS256, ES256 or EdDSA verification key")
            })?;
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("keys[{i}]: {e}"))?;
            keys.push(PublicKey {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            });
        }
        keys
    } else {
        let mut keys = Vec::new();
        for block in text.split("-----BEGIN ").skip(1) {
            let pem = format!("-----BEGIN {block}");
            let pem = pem.as_bytes();
            let (alg, key) = if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
                (Algorithm::RS256, k)
            } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
                (Algorithm::ES256, k)
            } else if let Ok(k) = DecodingKey::from_ed_pem(pem) {
                (Algorithm::EdDSA, k)
            } else {
                return Err(format!(
                    "key {} is not an RSA, EC P-256 or Ed25519 public key",
                    keys.len() + 1
                ));
            };
            keys.push(PublicKey {
                kid: None,
                alg,
                key,
            });
        }
        keys
    };
    if keys.is_empty() {
        return Err(format!("no public key in {path}"));
    }
    Ok(keys)
}

fn jwk_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, KeyAlgorithm};
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(by_type),
        Some(KeyAlgorithm::RS256) if by_type == Algorithm::RS256 => Some(by_type),
        Some(KeyAlgorithm::ES256) if by_type == Algorithm::ES256 => Some(by_type),
        Some(KeyAlgorithm::EdDSA) if by_type == Algorithm::EdDSA => Some(by_type),
        Some(_) => None,
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
                role: Role::Viewer
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

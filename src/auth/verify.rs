//! Verification of tokens: signature (HS256 secrets or a public key), the
//! claim checks, scopes, and where a request's token comes from.
//!
//! Owns: [`Auth::decode`], [`Auth::verify`] and friends, [`bearer`],
//! [`scoped_refusal`], and turning `jsonwebtoken` failures into
//! `unauthorized` with a reason.
//! Must not: mint tokens (see the parent module), or let a scoped token
//! through an HTTP route.

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};

use crate::error::{Error, Result};
use crate::protocol::valid_name;

use super::{unix_s, Auth, Claims, Identity, Role, Scope, Token};

impl Auth {
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
                account_created_s: c.acct_created,
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

//! Request extractors: the authenticated caller (HTTP and socket) and
//! JSON bodies whose failures are typed errors.
//!
//! Owns: [`Caller`], [`SocketCaller`] and [`JsonBody`].
//! Must not: check roles or owners (handlers do).

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::auth::{Identity, Token};
use crate::error::Error;

use super::Shared;

/// The authenticated caller of an HTTP request: `Authorization: Bearer`
/// only (`?token=` is ignored here), full-privilege tokens only (a scoped
/// token is `forbidden`).
pub struct Caller(pub Identity);

#[derive(Deserialize)]
pub(super) struct TokenQuery {
    pub(super) token: Option<String>,
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Error> {
        // A page's session cookie, when the request has no Authorization.
        if let Some(who) = super::session::caller(parts, state)? {
            return Ok(Caller(who));
        }
        state.auth.from_request(&parts.headers).map(Caller)
    }
}

/// The verified token of a socket or overlay request: `Authorization:
/// Bearer`, else `?token=` (browsers cannot set headers there); scoped
/// tokens included.
pub struct SocketCaller(pub Token);

impl FromRequestParts<Shared> for SocketCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Error> {
        let q: Option<TokenQuery> = Query::<TokenQuery>::try_from_uri(&parts.uri)
            .ok()
            .map(|q| q.0);
        let token = q
            .as_ref()
            .and_then(|q| q.token.as_deref())
            .filter(|t| !t.is_empty());
        // A page's socket: the session cookie (same origin only).
        if token.is_none() && crate::auth::bearer(&parts.headers)?.is_none() {
            if let Some(t) = super::session::socket(parts, state)? {
                return Ok(SocketCaller(t));
            }
        }
        state
            .auth
            .from_socket_request(&parts.headers, token)
            .map(SocketCaller)
    }
}

/// A JSON body whose every failure is a typed `bad_request`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let bytes = bytes::Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| Error::bad_request(format!("body: {}", e.body_text())))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| Error::bad_request(format!("body: {e}")))
    }
}

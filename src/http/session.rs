//! Page sessions over HTTP: `POST/GET/DELETE /v1/sessions`, the demo
//! login (`POST /demo/login`, `serve --demo` only), and reading the
//! session cookie for [`super::Caller`] and [`super::SocketCaller`].
//!
//! Owns: the cookie's attributes (`HttpOnly`, `SameSite=Strict`, `Path=/`,
//! `Secure` over https or with `pages.cookie_secure`), the CSRF rule (a
//! request signed in by cookie whose method changes state must carry
//! `X-CSRF-Token`; a Bearer request need not), and the `Origin` rule of a
//! socket signed in by cookie (same origin only).
//! Must not: mint sessions for scoped tokens, or accept a token in a URL.

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{JsonBody, Shared};
use crate::app::AppState;
use crate::auth::session::{session_exp, Session, SessionKeys, COOKIE, CSRF_HEADER};
use crate::auth::{unix_s, Identity, Role, Token};
use crate::error::Error;

/// The users `/demo/login` may sign in as.
pub const DEMO_USERS: [(&str, Role); 5] = [
    ("viewer-1", Role::Viewer),
    ("viewer-2", Role::Viewer),
    ("viewer-3", Role::Viewer),
    ("demo-creator", Role::Creator),
    ("demo-brand", Role::Brand),
];

fn keys(state: &AppState) -> SessionKeys {
    SessionKeys::new(&state.cfg.auth.jwt_secret)
}

/// The value of the session cookie, if the request has one.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The session of a request that has a session cookie and no
/// `Authorization` header (a Bearer token wins). A method that changes
/// state must carry the session's CSRF token.
pub fn caller(parts: &Parts, state: &AppState) -> Result<Option<Identity>, Error> {
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return Ok(None);
    }
    let Some(value) = cookie(&parts.headers) else {
        return Ok(None);
    };
    let s = keys(state).verify(value)?;
    if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let given = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        s.check_csrf(given)?;
    }
    Ok(Some(s.identity))
}

/// The token of a socket signed in by cookie: only from a page of this
/// origin (`Origin` names the `Host` the request was sent to), else
/// `forbidden` (another site's page cannot use the viewer's session).
pub fn socket(parts: &Parts, state: &AppState) -> Result<Option<Token>, Error> {
    let Some(value) = cookie(&parts.headers) else {
        return Ok(None);
    };
    let s = keys(state).verify(value)?;
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    let origin_host = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .and_then(|o| o.split_once("://").map(|(_, h)| h));
    match (host, origin_host) {
        (Some(h), Some(o)) if h.eq_ignore_ascii_case(o) => Ok(Some(Token {
            identity: s.identity,
            scope: None,
            exp: s.exp,
        })),
        _ => Err(Error::forbidden(
            "a socket signed in by cookie must come from a page of this origin",
        )),
    }
}

fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.cfg.pages.cookie_secure
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

fn set_cookie(value: &str, max_age_s: u64, secure: bool) -> Result<HeaderValue, Error> {
    let s = format!(
        "{COOKIE}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&s).map_err(Error::internal)
}

/// 201 with the session cookie and `{user, role, exp, csrf}`.
fn answer(state: &AppState, headers: &HeaderMap, identity: &Identity, exp: u64) -> Response {
    let made = keys(state).issue(identity, exp).and_then(|(value, s)| {
        let c = set_cookie(&value, exp.saturating_sub(unix_s()), secure(state, headers))?;
        Ok((c, s))
    });
    match made {
        Ok((c, s)) => (
            StatusCode::CREATED,
            [
                (header::SET_COOKIE, c),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            Json(describe(&s)),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

fn describe(s: &Session) -> serde_json::Value {
    json!({
        "user": s.identity.user,
        "role": s.identity.role,
        "exp": s.exp,
        "csrf": s.csrf,
    })
}

/// `POST /v1/sessions` with `Authorization: Bearer` (a full-privilege
/// token): sets the session cookie, answers 201 `{user, role, exp, csrf}`.
/// The session ends with the token, or `pages.session_ttl_s_max` from now.
pub async fn create(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, Error> {
    let Some(t) = crate::auth::bearer(&headers)? else {
        return Err(Error::unauthorized(
            "send the platform's token as `Authorization: Bearer <jwt>` to sign in",
        ));
    };
    let token = state.auth.decode(t)?;
    if let Some(scope) = &token.scope {
        return Err(crate::auth::scoped_refusal(scope));
    }
    let exp = session_exp(token.exp, state.cfg.pages.session_ttl_s_max);
    Ok(answer(&state, &headers, &token.identity, exp))
}

/// `GET /v1/sessions`: the signed-in session `{user, role, exp, csrf}`
/// (pages read their CSRF token here); 401 without a valid cookie.
pub async fn show(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, Error> {
    let Some(value) = cookie(&headers) else {
        return Err(Error::unauthorized("not signed in (no session cookie)"));
    };
    let s = keys(&state).verify(value)?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(describe(&s)),
    )
        .into_response())
}

/// `DELETE /v1/sessions`: signs out (clears the cookie); always 200.
pub async fn delete(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, Error> {
    let c = set_cookie("", 0, secure(&state, &headers))?;
    Ok((
        [(header::SET_COOKIE, c)],
        Json(json!({ "signed_in": false })),
    )
        .into_response())
}

/// `None` under `serve --demo`; else the answer: 404 (`bad_request`, as
/// an unknown route).
pub fn not_demo(state: &AppState) -> Option<Response> {
    (!state.cfg.pages.demo).then(|| {
        Error::bad_request("no such route (/demo/login exists only with `serve --demo`)")
            .with_status(StatusCode::NOT_FOUND)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoLogin {
    user: String,
}

/// `POST /demo/login {user}` (`serve --demo` only; JSON only, so another
/// site's form cannot post it): a session for one of [`DEMO_USERS`].
pub async fn demo_login(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: axum::extract::Request,
) -> Result<Response, Error> {
    if let Some(r) = not_demo(&state) {
        return Ok(r);
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(Error::bad_request(
            "send JSON (Content-Type: application/json)",
        ));
    }
    let JsonBody(b) =
        <JsonBody<DemoLogin> as axum::extract::FromRequest<Shared>>::from_request(body, &state)
            .await?;
    let Some((user, role)) = DEMO_USERS.iter().find(|(u, _)| *u == b.user) else {
        return Err(Error::bad_request(
            "user must be one of viewer-1, viewer-2, viewer-3, demo-creator, demo-brand",
        ));
    };
    let identity = Identity {
        user: (*user).to_string(),
        role: *role,
        account_created_s: None,
    };
    let exp = unix_s() + state.cfg.pages.session_ttl_s_max;
    Ok(answer(&state, &headers, &identity, exp))
}

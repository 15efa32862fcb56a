//! The creator's OBS overlay: the page, its assets, and the overlay-scoped
//! token.
//!
//! Owns: `/overlay/...` and `POST /v1/creators/me/overlay-tokens`.
//! Must not: serve any data in the page (its socket authenticates itself).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Role, Scope};
use crate::error::{Error, ErrorCode};
use crate::model::Target;
use crate::protocol::check_name;

use super::{extract::Caller, extract::JsonBody, extract::TokenQuery, Shared};

/// The creator's OBS browser-source overlay: `/overlay/ROOM?token=JWT`.
/// A static page; it authenticates its own socket with the token. A token
/// given here (`?token=` or Bearer) is checked: 401 if it does not verify,
/// 403 if it is scoped to another room; without one the page is served
/// (it holds no data).
pub(super) async fn overlay(
    State(state): State<Shared>,
    Path(room): Path<String>,
    headers: axum::http::HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Result<Response, Error> {
    check_name("room", &room)?;
    if crate::auth::bearer(&headers)?.is_some() || q.token.is_some() {
        let t = state
            .auth
            .from_socket_request(&headers, q.token.as_deref())?;
        if let Some(scope) = &t.scope {
            if !scope.allows_room(&room) {
                return Err(crate::auth::scoped_refusal(scope));
            }
        }
    }
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {}",
        state.cfg.http.overlay_frame_ancestors.trim()
    );
    let csp = HeaderValue::from_str(&csp)
        .map_err(|_| Error::internal("http.overlay_frame_ancestors is no header value"))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        include_str!("overlay.html"),
    )
        .into_response())
}

pub(super) async fn overlay_js() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        include_str!("overlay.js"),
    )
        .into_response()
}

pub(super) async fn overlay_css() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        )],
        include_str!("overlay.css"),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OverlayTokenReq {
    room: String,
}

/// A token scoped to `overlay:ROOM` for the creator who owns ROOM, and the
/// overlay URL carrying it (`auth.overlay_token_ttl_s`).
pub(super) async fn overlay_token(
    State(state): State<Shared>,
    Caller(who): Caller,
    JsonBody(b): JsonBody<OverlayTokenReq>,
) -> Result<Response, Error> {
    who.require(Role::Creator)?;
    check_name("room", &b.room)?;
    let info = state
        .counters
        .target(&Target::room(&b.room))
        .await?
        .ok_or_else(|| Error::new(ErrorCode::UnknownRoom, format!("no room `{}`", b.room)))?;
    if info.creator != who.user {
        return Err(Error::forbidden(
            "only the room's creator may mint its overlay token",
        ));
    }
    let ttl = state.cfg.auth.overlay_token_ttl_s;
    let token = state.auth.issue_scoped(
        &who.user,
        Role::Creator,
        Some(&Scope::overlay(&b.room)),
        ttl,
    )?;
    let url = format!(
        "{}/overlay/{}?token={token}",
        state.cfg.auth.overlay_url_base.trim_end_matches('/'),
        b.room
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "room": b.room,
            "token": token,
            "url": url,
            "expires_in_s": ttl,
        })),
    )
        .into_response())
}

//! The webhook routes of a creator (`/v1/creators/me/webhooks...`):
//! register (the secret is answered once), list, delete, recent attempts.
//!
//! Owns: those handlers (role check, body shape). Must not: hold the
//! registration rules ([`crate::webhooks::register`] does).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Caller, JsonBody, Shared};
use crate::auth::Role;
use crate::error::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewWebhook {
    url: String,
    events: Vec<String>,
}

fn no_such_endpoint() -> Response {
    Error::bad_request("no such webhook endpoint").with_status(StatusCode::NOT_FOUND)
}

/// `POST /v1/creators/me/webhooks`.
pub(super) async fn create(
    State(state): State<Shared>,
    Caller(who): Caller,
    JsonBody(b): JsonBody<NewWebhook>,
) -> Result<(StatusCode, Json<crate::webhooks::Registered>), Error> {
    who.require(Role::Creator)?;
    let store = state.ledger.webhooks();
    let r = crate::webhooks::register(
        store.as_ref(),
        &state.cfg.webhooks,
        &who.user,
        &b.url,
        &b.events,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// `GET /v1/creators/me/webhooks`.
pub(super) async fn list(
    State(state): State<Shared>,
    Caller(who): Caller,
) -> Result<Json<Value>, Error> {
    who.require(Role::Creator)?;
    let endpoints = state.ledger.webhooks().list(&who.user).await?;
    Ok(Json(json!({ "endpoints": endpoints })))
}

/// `DELETE /v1/creators/me/webhooks/{id}`.
pub(super) async fn delete(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Response> {
    who.require(Role::Creator)
        .map_err(IntoResponse::into_response)?;
    let deleted = state.ledger.webhooks().delete(&who.user, &id).await;
    if !deleted.map_err(IntoResponse::into_response)? {
        return Err(no_such_endpoint());
    }
    Ok(Json(json!({ "deleted": id })))
}

/// `GET /v1/creators/me/webhooks/{id}/deliveries`: newest first.
pub(super) async fn deliveries(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Response> {
    who.require(Role::Creator)
        .map_err(IntoResponse::into_response)?;
    let len = state.cfg.webhooks.deliveries_per_endpoint_max;
    let found = state
        .ledger
        .webhooks()
        .deliveries(&who.user, &id, len)
        .await;
    let Some(d) = found.map_err(IntoResponse::into_response)? else {
        return Err(no_such_endpoint());
    };
    Ok(Json(json!({ "deliveries": d })))
}

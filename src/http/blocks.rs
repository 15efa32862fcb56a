//! The moderation routes of issue 17 that are about people: blocks,
//! moderators and the audit (the message rules are elsewhere).
//!
//! Owns: `/v1/creators/me/blocks...`, `/v1/creators/{creator}/blocks/{user}`,
//! `/v1/creators/me/moderators...`, `/v1/users/me/moderating` and
//! `/v1/creators/me/moderation/audit`, their answers and their pages (the
//! studio's `limit`/`cursor`).
//! Must not: hold the rules (who may block whom: the ledger; the order of
//! a block: [`crate::app::moderation`]).

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};

use super::extract::Caller;
use super::studio::{page, PageQuery};
use super::Shared;
use crate::app::moderation;
use crate::auth::Role;
use crate::error::Error;
use crate::ledger::studio::StudioCursor;
use crate::protocol::check_name;

/// The answer of a block or unblock.
fn blocked_answer(user: &str, blocked: bool) -> Json<Value> {
    Json(json!({ "user": user, "blocked": blocked }))
}

/// `PUT /v1/creators/me/blocks/{user}` (creator): block.
pub(super) async fn block_me(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(user): Path<String>,
) -> Result<Json<Value>, Error> {
    who.require(Role::Creator)?;
    moderation::set_block(&state, &who, &who.user, &user, true).await?;
    Ok(blocked_answer(&user, true))
}

/// `DELETE /v1/creators/me/blocks/{user}` (creator): unblock.
pub(super) async fn unblock_me(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(user): Path<String>,
) -> Result<Json<Value>, Error> {
    who.require(Role::Creator)?;
    moderation::set_block(&state, &who, &who.user, &user, false).await?;
    Ok(blocked_answer(&user, false))
}

/// `PUT /v1/creators/{creator}/blocks/{user}` (the creator or one of
/// their moderators): block.
pub(super) async fn block_for(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path((creator, user)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    moderation::set_block(&state, &who, &creator, &user, true).await?;
    Ok(blocked_answer(&user, true))
}

/// `DELETE /v1/creators/{creator}/blocks/{user}` (the creator or one of
/// their moderators): unblock.
pub(super) async fn unblock_for(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path((creator, user)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    moderation::set_block(&state, &who, &creator, &user, false).await?;
    Ok(blocked_answer(&user, false))
}

/// `GET /v1/creators/me/blocks?limit=&cursor=` (creator): newest first.
pub(super) async fn blocks(
    State(state): State<Shared>,
    Caller(who): Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, Error> {
    who.require(Role::Creator)?;
    let (limit, after) = q.parse()?;
    let rows = state
        .ledger
        .blocks(&who.user, limit + 1, after.map(|c| (c.ms, c.key)))
        .await?;
    Ok(page("blocks", rows, limit, |b| StudioCursor {
        ms: b.created_ms,
        n: 0,
        key: b.user.clone(),
    }))
}

/// `PUT /v1/creators/me/moderators/{user}` (creator): add a moderator.
pub(super) async fn moderator_add(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(user): Path<String>,
) -> Result<Json<Value>, Error> {
    moderation::set_moderator(&state, &who, &user, true).await?;
    Ok(Json(json!({ "user": user, "moderator": true })))
}

/// `DELETE /v1/creators/me/moderators/{user}` (creator): remove one.
pub(super) async fn moderator_remove(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(user): Path<String>,
) -> Result<Json<Value>, Error> {
    moderation::set_moderator(&state, &who, &user, false).await?;
    Ok(Json(json!({ "user": user, "moderator": false })))
}

/// `GET /v1/creators/me/moderators` (creator): oldest first.
pub(super) async fn moderators(
    State(state): State<Shared>,
    Caller(who): Caller,
) -> Result<Json<Value>, Error> {
    who.require(Role::Creator)?;
    let rows = state.ledger.moderators(&who.user).await?;
    Ok(Json(json!({ "moderators": rows })))
}

/// `GET /v1/users/me/moderating` (anyone): the creators the caller
/// moderates.
pub(super) async fn moderating(
    State(state): State<Shared>,
    Caller(who): Caller,
) -> Result<Json<Value>, Error> {
    check_name("user", &who.user)?;
    let rows = state.ledger.moderating(&who.user).await?;
    Ok(Json(json!({ "creators": rows })))
}

/// `GET /v1/creators/me/moderation/audit?limit=&cursor=` (creator): every
/// moderation action, newest first.
pub(super) async fn audit(
    State(state): State<Shared>,
    Caller(who): Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, Error> {
    who.require(Role::Creator)?;
    let (limit, after) = q.parse()?;
    let rows = state
        .ledger
        .audit(&who.user, limit + 1, after.map(|c| c.n))
        .await?;
    Ok(page("actions", rows, limit, |a| StudioCursor {
        ms: a.at_ms,
        n: a.id,
        key: "audit".into(),
    }))
}

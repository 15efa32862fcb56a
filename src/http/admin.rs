//! Admin routes: coin grants.
//!
//! Owns: `POST /v1/admin/grants`.
//! Must not: let any but an admin token through.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::app::ops;
use crate::auth::Role;
use crate::error::Error;
use crate::ledger::{CreditOp, OpKey};
use crate::protocol::{check_name, valid_client_id};

use super::{extract::Caller, extract::JsonBody, Shared};

#[derive(Deserialize)]
pub(super) struct Grant {
    user: String,
    coins: i64,
    id: String,
}

pub(super) async fn grant(
    State(state): State<Shared>,
    Caller(who): Caller,
    JsonBody(g): JsonBody<Grant>,
) -> Result<Json<serde_json::Value>, Error> {
    who.require(Role::Admin)?;
    check_name("user", &g.user)?;
    if !valid_client_id(&g.id) {
        return Err(Error::bad_request("id must be 1..=64 characters"));
    }
    if !(1..=1_000_000_000).contains(&g.coins) {
        return Err(Error::bad_request("coins must be 1..=1000000000"));
    }
    let op = CreditOp {
        op_id: OpKey::Grant(&g.id).op_id(),
        kind: "grant".into(),
        user: g.user,
        coins: g.coins,
    };
    let (outcome, balance) = ops::grant(&state, &who.user, op).await?;
    Ok(Json(json!({
        "user": outcome.op.user,
        "coins": outcome.op.coins,
        "id": g.id,
        "balance": balance,
        "replayed": !outcome.applied_now,
    })))
}

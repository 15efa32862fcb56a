//! The caller's wallet and coin purchases.
//!
//! Owns: `GET /v1/wallet` and `POST /v1/coins/purchases`.
//! Must not: credit coins (only the payments webhook does).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::error::Error;
use crate::payments;
use crate::payments::PaymentsApp;

use super::{extract::Caller, extract::JsonBody, limits::payment_intents_per_hour, Shared};

pub(super) async fn wallet(
    State(state): State<Shared>,
    Caller(who): Caller,
) -> Result<Json<serde_json::Value>, Error> {
    let coins = state.counters.balance(&who.user).await?;
    Ok(Json(json!({ "user": who.user, "coins": coins })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Purchase {
    package: String,
    id: String,
}

pub(super) async fn purchase(
    State(state): State<Shared>,
    Caller(who): Caller,
    JsonBody(b): JsonBody<Purchase>,
) -> Result<Json<payments::PurchaseAnswer>, Error> {
    payment_intents_per_hour(&state, &who).await?;
    payments::create_purchase(&state.payments(), &who, &b.package, &b.id)
        .await
        .map(Json)
}

//! Creator routes: earnings, payout onboarding and status, cash-outs.
//!
//! Owns: `/v1/creators/...` but the overlay token.
//! Must not: move money itself (`crate::payments` does).

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Role;
use crate::error::Error;
use crate::payments;
use crate::payments::PaymentsApp;
use crate::protocol::check_name;

use super::{extract::Caller, extract::JsonBody, Shared};

pub(super) async fn earnings(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(creator): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    check_name("creator", &creator)?;
    if who.role != Role::Admin && !(who.role == Role::Creator && who.user == creator) {
        return Err(Error::forbidden(
            "only that creator or an admin may read these earnings",
        ));
    }
    let pending = state.counters.pending_diamonds(&creator).await?;
    let l = state.ledger.earnings(&creator).await?;
    Ok(Json(json!({
        "creator": creator,
        "diamonds_pending": pending,
        "diamonds_settled": l.diamonds_settled,
        "diamonds_cashed_out": l.diamonds_cashed_out,
        "tips_cents": l.tips_cents,
        "diamonds_cashout_pending": l.diamonds_cashout_pending,
        "cashed_out_cents": l.cashed_out_cents,
        "diamonds_held": l.funds.diamonds_held,
        "diamonds_available": l.funds.diamonds_available,
        "diamonds_reversed": l.funds.diamonds_reversed,
        "diamonds_unrecovered": l.funds.diamonds_unrecovered,
        "tips_reversed_cents": l.funds.tips_reversed_cents,
        "tips_recovered_cents": l.funds.tips_recovered_cents,
        // The money fields above are USD; every currency's, apart:
        "currencies": l.currencies,
        // Completed marketplace payouts (net of the fee), per currency.
        "marketplace_cents": state
            .ledger
            .marketplace_cents(&creator)
            .await?
            .into_iter()
            .map(|(f, v)| (f.lower(), v))
            .collect::<std::collections::BTreeMap<_, _>>(),
    })))
}

pub(super) async fn payouts_onboard(
    State(state): State<Shared>,
    Caller(who): Caller,
) -> Result<Json<payments::OnboardAnswer>, Error> {
    who.require(Role::Creator)?;
    payments::onboard(&state.payments(), &who.user)
        .await
        .map(Json)
}

pub(super) async fn payouts(
    State(state): State<Shared>,
    Caller(who): Caller,
) -> Result<Json<payments::PayoutStatus>, Error> {
    who.require(Role::Creator)?;
    payments::payout_status(&state.payments(), &who.user)
        .await
        .map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Cashout {
    diamonds: i64,
    id: String,
    /// One of `stripe.currencies`; absent: `stripe.currency`.
    #[serde(default)]
    currency: Option<String>,
}

pub(super) async fn cashout(
    State(state): State<Shared>,
    Caller(who): Caller,
    JsonBody(c): JsonBody<Cashout>,
) -> Result<Json<crate::ledger::CashoutRecord>, Error> {
    who.require(Role::Creator)?;
    payments::cashout(
        &state.payments(),
        &who.user,
        c.diamonds,
        &c.id,
        c.currency.as_deref(),
    )
    .await
    .map(Json)
}

//! Stripe's webhook and tips (rooms and videos).
//!
//! Owns: `POST /v1/stripe/webhook` and the two tip routes.
//! Must not: trust a webhook body before `crate::payments` verified it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::auth::Identity;
use crate::error::Error;
use crate::model::Target;
use crate::payments;
use crate::payments::PaymentsApp;
use crate::protocol::check_name;

use super::{extract::Caller, extract::JsonBody, limits::payment_intents_per_hour, Shared};

/// Stripe calls this; it authenticates by signature, not by token.
pub(super) async fn stripe_webhook(
    State(state): State<Shared>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Result<Json<serde_json::Value>, Error> {
    let sig = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::bad_request("missing Stripe-Signature header"))?;
    let outcome = payments::webhook(&state.payments(), sig, &body).await?;
    Ok(Json(json!({ "received": true, "outcome": outcome })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Tip {
    amount_cents: i64,
    // Absent: the default currency (`stripe.currency`).
    #[serde(default)]
    currency: String,
    #[serde(default)]
    message: String,
    id: String,
}

pub(super) async fn tip(
    state: &AppState,
    who: &Identity,
    target: Target,
    t: Tip,
) -> Result<Response, Error> {
    payment_intents_per_hour(state, who).await?;
    // The creator's message rules, before the PaymentIntent: the
    // per-viewer rate limit refuses, filter or review keep the message
    // back (a tip counts its cents as coins for `review_coins_below`).
    let kept = match t.message.as_str() {
        "" => None,
        text => crate::app::ops::message_check(state, who, &target, text, t.amount_cents)
            .await?
            .and_then(|(_, c)| c.kept.map(|k| (k, c.reason))),
    };
    let answer = payments::create_tip(
        &state.payments(),
        who,
        target,
        payments::TipRequest {
            amount_cents: t.amount_cents,
            currency: t.currency,
            message: t.message,
            id: t.id,
            kept,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

pub(super) async fn room_tip(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(room): Path<String>,
    JsonBody(t): JsonBody<Tip>,
) -> Result<Response, Error> {
    check_name("room", &room)?;
    tip(&state, &who, Target::room(room), t).await
}

pub(super) async fn video_tip(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(video): Path<String>,
    JsonBody(t): JsonBody<Tip>,
) -> Result<Response, Error> {
    check_name("video", &video)?;
    tip(&state, &who, Target::video(video), t).await
}

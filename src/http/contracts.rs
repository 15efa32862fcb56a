//! The Creator Marketplace's contract routes (issue 14 item 5): the brand
//! lists its contracts, pays, approves, rejects and cancels
//! (`/v1/brands/me/contracts/...`); the creator reads theirs, submits the
//! deliverable and cancels (`/v1/marketplace/contracts/...`).
//!
//! Owns: these handlers and who may call them ([`BrandCaller`],
//! [`MarketCreator`]: checked before the body is read).
//! Must not: hold rules, SQL or money flows ([`crate::app::contracts`],
//! [`crate::payments`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::extract::JsonBody;
use super::marketplace::{answer, page, BrandCaller, MarketCreator, PageQuery};
use super::Shared;
use crate::app::contracts::{self as app, Party};
use crate::error::Error;
use crate::ledger::market_states::ContractAction;
use crate::ledger::marketplace::MarketCursor;

/// `GET /v1/brands/me/contracts?limit=&cursor=`: newest first.
pub(super) async fn brand_list(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    Query(q): Query<PageQuery>,
) -> Response {
    let r = async {
        let (limit, after) = q.parse()?;
        let rows = app::brand_contracts(&st, &me, limit + 1, after.as_ref()).await?;
        page("contracts", rows, limit, |k| MarketCursor {
            ms: k.created_ms,
            key: k.contract.clone(),
        })
    };
    answer(r.await, StatusCode::OK)
}

/// `GET /v1/brands/me/contracts/{contract}`.
pub(super) async fn brand_get(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    Path(id): Path<String>,
) -> Response {
    answer(
        app::contract_of(&st, Party::Brand(&me), &id).await,
        StatusCode::OK,
    )
}

/// `POST /v1/brands/me/contracts/{contract}/payment`: the PaymentIntent.
pub(super) async fn payment(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    Path(id): Path<String>,
) -> Response {
    answer(app::payment(&st, &me, &id).await, StatusCode::OK)
}

/// `POST /v1/brands/me/contracts/{contract}/approve`: submitted →
/// completed, and the Transfer.
pub(super) async fn approve(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    Path(id): Path<String>,
) -> Response {
    let r = app::brand_release(&st, &me, &id, ContractAction::Approve, None).await;
    answer(r, StatusCode::OK)
}

/// `POST /v1/brands/me/contracts/{contract}/reject` (`{"reason"}`
/// optional): submitted → cancelled, and the Refund.
pub(super) async fn reject(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let r = async {
        // No body (or an empty one): no reason.
        let input: app::RejectInput = if body.iter().all(u8::is_ascii_whitespace) {
            app::RejectInput::default()
        } else {
            serde_json::from_slice(&body).map_err(|e| Error::bad_request(format!("body: {e}")))?
        };
        app::brand_release(&st, &me, &id, ContractAction::Reject, input.reason).await
    };
    answer(r.await, StatusCode::OK)
}

/// `POST /v1/brands/me/contracts/{contract}/cancel`: before payment, or
/// funded (refunded).
pub(super) async fn brand_cancel(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    Path(id): Path<String>,
) -> Response {
    let r = app::brand_release(&st, &me, &id, ContractAction::Cancel, None).await;
    answer(r, StatusCode::OK)
}

/// `GET /v1/marketplace/contracts/{contract}`.
pub(super) async fn creator_get(
    State(st): State<Shared>,
    MarketCreator(me): MarketCreator,
    Path(id): Path<String>,
) -> Response {
    answer(
        app::contract_of(&st, Party::Creator(&me), &id).await,
        StatusCode::OK,
    )
}

/// `POST /v1/marketplace/contracts/{contract}/deliverable`
/// (`{"url", "note"}`): funded → submitted.
pub(super) async fn deliverable(
    State(st): State<Shared>,
    MarketCreator(me): MarketCreator,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<app::DeliverableInput>,
) -> Response {
    answer(app::submit(&st, &me, &id, input).await, StatusCode::OK)
}

/// `POST /v1/marketplace/contracts/{contract}/cancel`.
pub(super) async fn creator_cancel(
    State(st): State<Shared>,
    MarketCreator(me): MarketCreator,
    Path(id): Path<String>,
) -> Response {
    answer(app::creator_cancel(&st, &me, &id).await, StatusCode::OK)
}

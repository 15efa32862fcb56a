//! The Creator Marketplace's brand routes (`/v1/brands/...`): the brand's
//! profile, its campaigns (write, edit while a draft, publish, close),
//! their applicants with stats, invitations, accepting and declining.
//!
//! Owns: these handlers and who may call them ([`BrandCaller`]: brands
//! only, checked before the body is read; `GET /v1/brands/{brand}`:
//! anyone).
//! Must not: hold rules or SQL ([`crate::app::marketplace`],
//! [`crate::app::campaigns`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::extract::JsonBody;
use super::marketplace::{answer, page, BrandCaller, PageQuery};
use super::Shared;
use crate::app::{campaigns, marketplace as app};
use crate::ledger::market_states::{ApplicationAction, CampaignAction};
use crate::ledger::marketplace::MarketCursor;
use crate::protocol::check_name;

/// `PUT /v1/brands/me`: write the profile.
pub(super) async fn put_me(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    JsonBody(input): JsonBody<app::BrandInput>,
) -> Response {
    answer(app::put_brand(&st, &me, input).await, StatusCode::OK)
}

/// `GET /v1/brands/me`: the profile (404 before it is written).
pub(super) async fn get_me(State(st): State<Shared>, BrandCaller(me): BrandCaller) -> Response {
    answer(app::brand(&st, &me).await, StatusCode::OK)
}

/// `GET /v1/brands/{brand}` (anyone): a brand's profile.
pub(super) async fn brand(State(st): State<Shared>, Path(brand): Path<String>) -> Response {
    let r = async {
        check_name("brand", &brand)?;
        app::brand(&st, &brand).await
    };
    answer(r.await, StatusCode::OK)
}

/// `POST /v1/brands/me/campaigns`: a new draft (201).
pub(super) async fn create(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    JsonBody(input): JsonBody<campaigns::CampaignInput>,
) -> Response {
    answer(
        campaigns::create(&st, &me, input).await,
        StatusCode::CREATED,
    )
}

/// `GET /v1/brands/me/campaigns?limit=&cursor=`: newest first.
pub(super) async fn list(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    Query(q): Query<PageQuery>,
) -> Response {
    let r = async {
        let (limit, after) = q.parse()?;
        let rows = campaigns::brand_campaigns(&st, &me, limit + 1, after.as_ref()).await?;
        page("campaigns", rows, limit, |c| MarketCursor {
            ms: c.created_ms,
            key: c.campaign.clone(),
        })
    };
    answer(r.await, StatusCode::OK)
}

/// `GET /v1/brands/me/campaigns/{campaign}`: with its contracts.
pub(super) async fn get(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    Path(id): Path<String>,
) -> Response {
    answer(campaigns::view(&st, &me, &id).await, StatusCode::OK)
}

/// `PUT /v1/brands/me/campaigns/{campaign}`: rewrite a draft (`conflict`
/// once published).
pub(super) async fn edit(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<campaigns::CampaignInput>,
) -> Response {
    answer(campaigns::edit(&st, &me, &id, input).await, StatusCode::OK)
}

/// `POST /v1/brands/me/campaigns/{campaign}/publish`.
pub(super) async fn publish(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    Path(id): Path<String>,
) -> Response {
    let r = campaigns::move_campaign(&st, &me, &id, CampaignAction::Publish).await;
    answer(r, StatusCode::OK)
}

/// `POST /v1/brands/me/campaigns/{campaign}/close`.
pub(super) async fn close(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    Path(id): Path<String>,
) -> Response {
    let r = campaigns::move_campaign(&st, &me, &id, CampaignAction::Close).await;
    answer(r, StatusCode::OK)
}

/// `GET /v1/brands/me/campaigns/{campaign}/applications`: with stats.
pub(super) async fn applicants(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let r = async {
        let (limit, after) = q.parse()?;
        let rows = campaigns::applicants(&st, &me, &id, limit + 1, after.as_ref()).await?;
        page("applications", rows, limit, |a| MarketCursor {
            ms: a.application.created_ms,
            key: a.application.application.clone(),
        })
    };
    answer(r.await, StatusCode::OK)
}

/// `POST /v1/brands/me/campaigns/{campaign}/invitations`: `{creator}` (201).
pub(super) async fn invite(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<campaigns::InviteInput>,
) -> Response {
    answer(
        campaigns::invite(&st, &me, &id, input).await,
        StatusCode::CREATED,
    )
}

/// `POST /v1/brands/me/applications/{application}/accept`: answers the
/// application and its contract (`awaiting_payment`), and when payments
/// are configured the contract's PaymentIntent (`payment`).
pub(super) async fn accept(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    Path(id): Path<String>,
) -> Response {
    let r = async {
        let moved = campaigns::brand_moves(&st, &me, &id, ApplicationAction::Accept).await?;
        crate::app::contracts::accepted_with_payment(&st, moved).await
    };
    answer(r.await, StatusCode::OK)
}

/// `POST /v1/brands/me/applications/{application}/decline`.
pub(super) async fn decline(
    State(st): State<Shared>,
    BrandCaller(me): BrandCaller,
    Path(id): Path<String>,
) -> Response {
    let r = campaigns::brand_moves(&st, &me, &id, ApplicationAction::Decline).await;
    answer(r, StatusCode::OK)
}

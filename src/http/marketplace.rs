//! The Creator Marketplace's creator routes (`/v1/marketplace/...`): the
//! creator's marketplace profile, joining, open campaigns, applying and
//! withdrawing; and what the brand routes (`super::brands`) share: the
//! role gates, the answer of a marketplace error and the lists' cursor.
//!
//! Owns: these handlers, who may call them ([`MarketCreator`]: creators
//! only; [`BrandCaller`]: brands only; both checked before the body is
//! read), the mapping of "no such ..." (`bad_request`) to 404, and the
//! cursor (opaque to clients: URL-safe base64 of the last row's `ms:id`)
//! and `limit` bounds of the lists.
//! Must not: hold rules or SQL ([`crate::app::marketplace`],
//! [`crate::app::campaigns`]).

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::extract::{Caller, JsonBody};
use super::Shared;
use crate::app::{campaigns, marketplace as app};
use crate::auth::Role;
use crate::error::{Error, ErrorCode, Result};
use crate::ledger::marketplace::MarketCursor;
use crate::protocol::check_name;

/// Rows per page by default.
pub const MARKET_PAGE_LEN: i64 = 20;
/// Rows per page at most.
pub const MARKET_PAGE_LEN_MAX: i64 = 100;

/// A caller with a creator token (the creator's user id); any other role
/// is `forbidden`.
pub(super) struct MarketCreator(pub String);

impl FromRequestParts<Shared> for MarketCreator {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Error> {
        let Caller(who) = Caller::from_request_parts(parts, state).await?;
        if who.role != Role::Creator {
            return Err(Error::forbidden(
                "marketplace creator routes need role creator",
            ));
        }
        Ok(MarketCreator(who.user))
    }
}

/// A caller with a brand token (the brand's user id); any other role is
/// `forbidden`.
pub(super) struct BrandCaller(pub String);

impl FromRequestParts<Shared> for BrandCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Error> {
        let Caller(who) = Caller::from_request_parts(parts, state).await?;
        if who.role != Role::Brand {
            return Err(Error::forbidden("brand routes need role brand"));
        }
        Ok(BrandCaller(who.user))
    }
}

/// The answer of a marketplace call: `ok` with the value, or the error;
/// a `bad_request` "no such ..." (an unknown or not-yours campaign,
/// application, brand, creator) is answered 404.
pub(super) fn answer<T: Serialize>(r: Result<T>, ok: StatusCode) -> Response {
    match r {
        Ok(v) => (ok, Json(v)).into_response(),
        Err(e) if e.code == ErrorCode::BadRequest && e.message.starts_with("no such ") => {
            e.with_status(StatusCode::NOT_FOUND)
        }
        Err(e) => e.into_response(),
    }
}

/// `?limit=&cursor=` of a list, plus the open campaigns' filters.
#[derive(Deserialize)]
pub(super) struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
    niche: Option<String>,
    budget_min_cents: Option<String>,
}

impl PageQuery {
    /// The limit (default [`MARKET_PAGE_LEN`]) and the decoded cursor.
    pub(super) fn parse(&self) -> Result<(i64, Option<MarketCursor>)> {
        let limit = match self.limit.as_deref() {
            None | Some("") => MARKET_PAGE_LEN,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MARKET_PAGE_LEN_MAX).contains(n))
                .ok_or_else(|| {
                    Error::bad_request(format!("limit must be 1..={MARKET_PAGE_LEN_MAX}"))
                })?,
        };
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(decode_cursor(c)?),
        };
        Ok((limit, after))
    }
}

fn decode_cursor(c: &str) -> Result<MarketCursor> {
    let bad = || Error::bad_request("bad cursor");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    let (ms, key) = s.split_once(':').ok_or_else(bad)?;
    Ok(MarketCursor {
        ms: ms.parse().map_err(|_| bad())?,
        key: key.to_string(),
    })
}

/// `{field: rows, next_cursor}` of rows fetched one past `limit`; `key`
/// is each row's cursor.
pub(super) fn page<T: Serialize>(
    field: &str,
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> MarketCursor,
) -> Result<serde_json::Value> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = match rows.last() {
        Some(last) if more => {
            let c = key(last);
            Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(format!("{}:{}", c.ms, c.key)),
            )
        }
        _ => None,
    };
    Ok(json!({ field: rows, "next_cursor": next }))
}

/// `PUT /v1/marketplace/creators/me`: write the profile.
pub(super) async fn put_me(
    State(st): State<Shared>,
    MarketCreator(me): MarketCreator,
    JsonBody(input): JsonBody<app::CreatorInput>,
) -> Response {
    let r = async {
        app::put_creator(&st, &me, input).await?;
        app::creator_view(&st, &me, false).await
    };
    answer(r.await, StatusCode::OK)
}

/// `GET /v1/marketplace/creators/me`: the profile, standing and stats.
pub(super) async fn get_me(State(st): State<Shared>, MarketCreator(me): MarketCreator) -> Response {
    answer(app::creator_view(&st, &me, false).await, StatusCode::OK)
}

/// `POST /v1/marketplace/creators/me`: join (`not_eligible` with
/// `missing` below the threshold or without payouts).
pub(super) async fn join(State(st): State<Shared>, MarketCreator(me): MarketCreator) -> Response {
    answer(app::join(&st, &me).await, StatusCode::OK)
}

/// `GET /v1/marketplace/creators/{creator}` (anyone): a joined creator's
/// profile and stats.
pub(super) async fn creator(State(st): State<Shared>, Path(creator): Path<String>) -> Response {
    let r = async {
        check_name("creator", &creator)?;
        app::creator_view(&st, &creator, true).await
    };
    answer(r.await, StatusCode::OK)
}

/// `GET /v1/marketplace/campaigns?niche=&budget_min_cents=&limit=&cursor=`:
/// the open campaigns the caller is eligible for.
pub(super) async fn open_campaigns(
    State(st): State<Shared>,
    MarketCreator(me): MarketCreator,
    Query(q): Query<PageQuery>,
) -> Response {
    let r = async {
        let (limit, after) = q.parse()?;
        let budget = match q.budget_min_cents.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                s.parse::<i64>()
                    .map_err(|_| Error::bad_request("budget_min_cents must be an integer"))?,
            ),
        };
        let niche = q.niche.clone().filter(|n| !n.is_empty());
        let rows = campaigns::open_for(&st, &me, niche, budget, limit + 1, after).await?;
        page("campaigns", rows, limit, |c| MarketCursor {
            ms: c.published_ms.unwrap_or(0),
            key: c.campaign.clone(),
        })
    };
    answer(r.await, StatusCode::OK)
}

/// `POST /v1/marketplace/campaigns/{campaign}/applications`: apply.
pub(super) async fn apply(
    State(st): State<Shared>,
    MarketCreator(me): MarketCreator,
    Path(campaign): Path<String>,
    JsonBody(input): JsonBody<campaigns::ApplyInput>,
) -> Response {
    answer(
        campaigns::apply(&st, &me, &campaign, input).await,
        StatusCode::CREATED,
    )
}

/// `GET /v1/marketplace/applications`: the caller's applications and
/// invitations.
pub(super) async fn my_applications(
    State(st): State<Shared>,
    MarketCreator(me): MarketCreator,
    Query(q): Query<PageQuery>,
) -> Response {
    let r = async {
        let (limit, after) = q.parse()?;
        let rows = campaigns::creator_applications(&st, &me, limit + 1, after.as_ref()).await?;
        page("applications", rows, limit, |a| MarketCursor {
            ms: a.created_ms,
            key: a.application.clone(),
        })
    };
    answer(r.await, StatusCode::OK)
}

/// `GET /v1/marketplace/contracts`: the caller's contracts (of their
/// newest accepted applications), newest first.
pub(super) async fn my_contracts(
    State(st): State<Shared>,
    MarketCreator(me): MarketCreator,
) -> Response {
    let r = async {
        let contracts = campaigns::creator_contracts(&st, &me).await?;
        Ok(serde_json::json!({ "contracts": contracts }))
    };
    answer(r.await, StatusCode::OK)
}

/// `POST /v1/marketplace/applications/{application}/withdraw`.
pub(super) async fn withdraw(
    State(st): State<Shared>,
    MarketCreator(me): MarketCreator,
    Path(application): Path<String>,
) -> Response {
    answer(
        campaigns::withdraw(&st, &me, &application).await,
        StatusCode::OK,
    )
}

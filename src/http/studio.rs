//! The creator studio's JSON routes: a creator's own history of gifts,
//! tips and cash-outs (pages under a cursor), daily earnings, supporters
//! of all time, the cash-out terms, and the link into the Stripe Express
//! dashboard.
//!
//! Owns: these handlers, the history cursor (opaque to clients: URL-safe
//! base64 of `ms:n:key`, the last row's key) and the `limit`/`days`
//! bounds.
//! Must not: hold SQL (the ledger's [`crate::ledger::studio`]) or money
//! rules (the cash-out itself is `crate::payments`').

use axum::extract::{Query, State};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::extract::Caller;
use super::Shared;
use crate::auth::Role;
use crate::error::Error;
use crate::ledger::studio::{StudioCursor, DAY_MS};
use crate::payments::PaymentsApp;
use crate::protocol::now_ms;

/// Rows per history page by default.
pub const HISTORY_PAGE_LEN: i64 = 20;
/// Rows per history page at most.
pub const HISTORY_PAGE_LEN_MAX: i64 = 100;
/// Days of `GET /v1/creators/me/earnings/daily` by default and at most.
pub const DAILY_DAYS: i64 = 30;
/// Supporters of `GET /v1/creators/me/supporters`.
pub const SUPPORTERS_LEN: i64 = 10;

/// `?limit=&cursor=` of a history page.
#[derive(Deserialize)]
pub(super) struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

impl PageQuery {
    /// The limit (default [`HISTORY_PAGE_LEN`]) and the decoded cursor.
    pub(super) fn parse(&self) -> Result<(i64, Option<StudioCursor>), Error> {
        let limit = match self.limit.as_deref() {
            None | Some("") => HISTORY_PAGE_LEN,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=HISTORY_PAGE_LEN_MAX).contains(n))
                .ok_or_else(|| {
                    Error::bad_request(format!("limit must be 1..={HISTORY_PAGE_LEN_MAX}"))
                })?,
        };
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(decode_cursor(c)?),
        };
        Ok((limit, after))
    }
}

/// Rows and the cursor of the next page (null on the last), as JSON.
pub(super) fn page<T: serde::Serialize>(
    field: &str,
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> StudioCursor,
) -> Json<serde_json::Value> {
    // The ledger was asked for one more than `limit`: it tells whether a
    // next page exists.
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = match rows.last() {
        Some(last) if more => Some(encode_cursor(&key(last))),
        _ => None,
    };
    Json(json!({ field: rows, "next_cursor": next }))
}

/// `GET /v1/creators/me/gifts?limit=&cursor=` (creator): settled gifts,
/// newest first.
pub(super) async fn gifts(
    State(state): State<Shared>,
    Caller(who): Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<serde_json::Value>, Error> {
    who.require(Role::Creator)?;
    let (limit, after) = q.parse()?;
    let rows = state
        .ledger
        .creator_gifts(&who.user, limit + 1, after.as_ref())
        .await?;
    Ok(page("gifts", rows, limit, |g| StudioCursor {
        ms: g.ts,
        n: g.seq,
        key: g.target.clone(),
    }))
}

/// `GET /v1/creators/me/tips?limit=&cursor=` (creator): tips, newest first.
pub(super) async fn tips(
    State(state): State<Shared>,
    Caller(who): Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<serde_json::Value>, Error> {
    who.require(Role::Creator)?;
    let (limit, after) = q.parse()?;
    let rows = state
        .ledger
        .creator_tips(&who.user, limit + 1, after.as_ref())
        .await?;
    Ok(page("tips", rows, limit, |t| StudioCursor {
        ms: t.created_ms,
        n: 0,
        key: t.payment_intent.clone(),
    }))
}

/// `GET /v1/creators/me/cashouts?limit=&cursor=` (creator): cash-outs,
/// newest first (each with its currency), with the terms of a new one (the
/// default currency's, and each currency's rate in `terms.currencies`).
pub(super) async fn cashouts(
    State(state): State<Shared>,
    Caller(who): Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<serde_json::Value>, Error> {
    who.require(Role::Creator)?;
    let (limit, after) = q.parse()?;
    let rows = state
        .ledger
        .creator_cashouts(&who.user, limit + 1, after.as_ref())
        .await?;
    let Json(mut v) = page("cashouts", rows, limit, |c| StudioCursor {
        ms: c.created_ms,
        n: 0,
        key: c.cashout_id.clone(),
    });
    let (st, po) = (&state.cfg.stripe, &state.cfg.payouts);
    // The default currency's rate at the top (as before currencies), and
    // every currency's in `currencies`.
    let currencies: serde_json::Map<String, serde_json::Value> = st
        .currencies
        .iter()
        .filter_map(|c| {
            let r = state.cfg.cashout_rate(c)?;
            Some((
                c.clone(),
                json!({
                    "cents_per_100_diamonds": r.cents_per_100_diamonds,
                    "cents_per_day_max": r.cents_per_day_max,
                }),
            ))
        })
        .collect();
    let default = state.cfg.cashout_rate(&st.currency);
    v["terms"] = json!({
        "currency": st.currency,
        "cents_per_100_diamonds": default.map_or(st.cashout_cents_per_100_diamonds, |r| r.cents_per_100_diamonds),
        "diamonds_min": st.cashout_diamonds_min,
        "hold_s": po.hold_s,
        "cashouts_per_day_max": po.cashouts_per_day_max,
        "cents_per_day_max": default.map_or(po.cashout_cents_per_day_max, |r| r.cents_per_day_max),
        "currencies": currencies,
    });
    Ok(Json(v))
}

/// `?days=` of the daily earnings.
#[derive(Deserialize)]
pub(super) struct DailyQuery {
    days: Option<String>,
}

/// `GET /v1/creators/me/earnings/daily?days=` (creator): one entry per UTC
/// day of the last `days` (1..=30, default 30, today included), oldest
/// first, days without earnings at zero; `tips_cents` is USD, `tips` the
/// cents of each currency tipped that day.
pub(super) async fn daily(
    State(state): State<Shared>,
    Caller(who): Caller,
    Query(q): Query<DailyQuery>,
) -> Result<Json<serde_json::Value>, Error> {
    who.require(Role::Creator)?;
    let days = match q.days.as_deref() {
        None | Some("") => DAILY_DAYS,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=DAILY_DAYS).contains(n))
            .ok_or_else(|| Error::bad_request(format!("days must be 1..={DAILY_DAYS}")))?,
    };
    let today = now_ms().div_euclid(DAY_MS) * DAY_MS;
    let first = today - (days - 1) * DAY_MS;
    let rows = state.ledger.creator_daily(&who.user, first).await?;
    let mut out = Vec::with_capacity(days as usize);
    for i in 0..days {
        let day_ms = first + i * DAY_MS;
        let r = rows.iter().find(|r| r.day_ms == day_ms);
        out.push(json!({
            "day_ms": day_ms,
            "diamonds": r.map_or(0, |r| r.diamonds),
            "tips_cents": r.map_or(0, |r| r.tips_cents),
            "tips": r.map(|r| json!(r.tips)).unwrap_or_else(|| json!({})),
        }));
    }
    Ok(Json(json!({ "days": out })))
}

/// `GET /v1/creators/me/supporters` (creator): the largest supporters of
/// all time by diamonds (settled gifts).
pub(super) async fn supporters(
    State(state): State<Shared>,
    Caller(who): Caller,
) -> Result<Json<serde_json::Value>, Error> {
    who.require(Role::Creator)?;
    let rows = state
        .ledger
        .creator_supporters(&who.user, SUPPORTERS_LEN)
        .await?;
    Ok(Json(json!({ "supporters": rows })))
}

/// `POST /v1/creators/me/payouts/dashboard` (creator): a single-use link
/// into the creator's Stripe Express dashboard.
pub(super) async fn payouts_dashboard(
    State(state): State<Shared>,
    Caller(who): Caller,
) -> Result<Json<crate::payments::DashboardLink>, Error> {
    who.require(Role::Creator)?;
    crate::payments::dashboard_link(&state.payments(), &who.user)
        .await
        .map(Json)
}

/// The cursor after the row keyed `c`.
fn encode_cursor(c: &StudioCursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{}:{}", c.ms, c.n, c.key))
}

/// Inverse of [`encode_cursor`]; `bad_request` for anything else.
fn decode_cursor(cursor: &str) -> Result<StudioCursor, Error> {
    let bad = || Error::bad_request("bad cursor");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = text.splitn(3, ':');
    let ms = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let n = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let key = parts.next().filter(|k| !k.is_empty() && k.len() <= 256);
    Ok(StudioCursor {
        ms,
        n,
        key: key.ok_or_else(bad)?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = StudioCursor {
            ms: 1_700_000_000_123,
            n: 7,
            key: "room:a:b".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        for junk in ["%%%", "bm90LWEtY3Vyc29y", "MTIzOg", "MTozOg"] {
            let e = decode_cursor(junk).expect_err(junk);
            assert_eq!(e.code, ErrorCode::BadRequest, "{junk}");
        }
    }
}

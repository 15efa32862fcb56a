//! The follower routes: follow and unfollow a creator, a creator's public
//! profile, a creator's followers and a user's follows (pages under a
//! cursor), and the admin's bulk import and delete of edges (NDJSON).
//!
//! Owns: these handlers, who may call them, the lists' cursor (opaque to
//! clients: URL-safe base64 of the last row's `created_ms:user`) and
//! `limit` bounds, and the parsing of an import body (one
//! `{"follower", "creator"}` per line, at most
//! `marketplace.import_batch_max` lines, all checked before anything is
//! written).
//! Must not: hold SQL (the ledger's [`crate::ledger::follows`]) or the
//! order of a follow's effects ([`crate::app::follows`]).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::extract::Caller;
use super::Shared;
use crate::app::follows as app;
use crate::auth::{Identity, Role};
use crate::error::Error;
use crate::ledger::follows::{FollowCursor, FollowEdge};
use crate::protocol::{check_name, ID_LEN_MAX};

/// Rows per page by default.
pub const FOLLOW_PAGE_LEN: i64 = 20;
/// Rows per page at most.
pub const FOLLOW_PAGE_LEN_MAX: i64 = 100;
/// Bytes of one import line at most (two names of [`ID_LEN_MAX`] and
/// their JSON fit many times over); the body bound of the import routes is
/// this times `marketplace.import_batch_max`.
pub const IMPORT_LINE_LEN_MAX: usize = 512;

/// Only users follow: viewers and creators (not admins, brands or scoped
/// tokens, which the middleware refuses first).
fn require_follower(who: &Identity) -> Result<(), Error> {
    match who.role {
        Role::Viewer | Role::Creator => Ok(()),
        _ => Err(Error::forbidden("only viewers and creators follow")),
    }
}

/// `PUT /v1/creators/{creator}/followers/me`: follow (idempotent).
pub(super) async fn follow(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(creator): Path<String>,
) -> Result<Json<app::FollowAnswer>, Error> {
    require_follower(&who)?;
    check_name("creator", &creator)?;
    app::follow(&state, &who.user, &creator).await.map(Json)
}

/// `DELETE /v1/creators/{creator}/followers/me`: unfollow (idempotent).
pub(super) async fn unfollow(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(creator): Path<String>,
) -> Result<Json<app::FollowAnswer>, Error> {
    require_follower(&who)?;
    check_name("creator", &creator)?;
    app::unfollow(&state, &who.user, &creator).await.map(Json)
}

/// `GET /v1/creators/{creator}` (anyone): the public profile.
pub(super) async fn profile(
    State(state): State<Shared>,
    Path(creator): Path<String>,
) -> Result<Json<app::Profile>, Error> {
    check_name("creator", &creator)?;
    app::profile(&state, &creator).await.map(Json)
}

/// `?limit=&cursor=` of a list.
#[derive(Deserialize)]
pub(super) struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

impl PageQuery {
    /// The limit (default [`FOLLOW_PAGE_LEN`]) and the decoded cursor.
    fn parse(&self) -> Result<(i64, Option<FollowCursor>), Error> {
        let limit = match self.limit.as_deref() {
            None | Some("") => FOLLOW_PAGE_LEN,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=FOLLOW_PAGE_LEN_MAX).contains(n))
                .ok_or_else(|| {
                    Error::bad_request(format!("limit must be 1..={FOLLOW_PAGE_LEN_MAX}"))
                })?,
        };
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(decode_cursor(c)?),
        };
        Ok((limit, after))
    }
}

/// Rows (the ledger was asked for one more than `limit`) under `field`,
/// and the cursor of the next page (null on the last).
fn page(field: &str, mut rows: Vec<FollowEdge>, limit: i64) -> Json<serde_json::Value> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = match rows.last() {
        Some(last) if more => Some(encode_cursor(&FollowCursor {
            ms: last.created_ms,
            key: last.user.clone(),
        })),
        _ => None,
    };
    let rows: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| json!({ "user": r.user, "created_ms": r.created_ms }))
        .collect();
    Json(json!({ field: rows, "next_cursor": next }))
}

/// `GET /v1/creators/{creator}/followers?limit=&cursor=` (anyone
/// authenticated): newest first.
pub(super) async fn followers(
    State(state): State<Shared>,
    Caller(_who): Caller,
    Path(creator): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<serde_json::Value>, Error> {
    check_name("creator", &creator)?;
    let (limit, after) = q.parse()?;
    let rows = state
        .ledger
        .followers_page(&creator, limit + 1, after.as_ref())
        .await?;
    Ok(page("followers", rows, limit))
}

/// `GET /v1/users/me/following?limit=&cursor=` (any user): the creators
/// the caller follows, newest first.
pub(super) async fn following(
    State(state): State<Shared>,
    Caller(who): Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<serde_json::Value>, Error> {
    let (limit, after) = q.parse()?;
    let rows = state
        .ledger
        .following_page(&who.user, limit + 1, after.as_ref())
        .await?;
    Ok(page("following", rows, limit))
}

/// One line of an import body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    follower: String,
    creator: String,
}

/// A refused import: the answer (boxed: a response is large).
type Refusal = Box<Response>;

/// The edges of an NDJSON body (blank lines skipped), or the typed error
/// naming the first bad line (1-based): nothing is written then.
fn parse_edges(body: &[u8], lines_max: usize) -> Result<Vec<(String, String)>, Refusal> {
    let too_many = || {
        Box::new(
            Error::bad_request(format!(
                "at most {lines_max} lines per request (marketplace.import_batch_max)"
            ))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE),
        )
    };
    let bad = |n: usize, why: String| {
        Box::new(Error::bad_request(format!("line {n}: {why}")).into_response())
    };
    let mut edges = Vec::new();
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        let n = i + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if edges.len() == lines_max {
            return Err(too_many());
        }
        if line.len() > IMPORT_LINE_LEN_MAX {
            return Err(bad(n, format!("longer than {IMPORT_LINE_LEN_MAX} bytes")));
        }
        let l: ImportLine = serde_json::from_slice(line).map_err(|e| bad(n, e.to_string()))?;
        for (what, name) in [("follower", &l.follower), ("creator", &l.creator)] {
            check_name(what, name).map_err(|e| bad(n, e.message))?;
        }
        if l.follower == l.creator {
            return Err(bad(n, "a creator cannot follow themselves".into()));
        }
        edges.push((l.follower, l.creator));
    }
    Ok(edges)
}

/// The checks of an import request: an admin, an NDJSON body within
/// bounds; its edges.
fn import_edges(
    state: &Shared,
    who: &Identity,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Vec<(String, String)>, Refusal> {
    who.require(Role::Admin)
        .map_err(|e| Box::new(e.into_response()))?;
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.split(';').next().map(str::trim) != Some("application/x-ndjson") {
        return Err(Box::new(
            Error::bad_request("Content-Type must be application/x-ndjson")
                .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ));
    }
    let lines_max = state.cfg.marketplace.import_batch_max;
    let body = body.map_err(|e| -> Refusal {
        Box::new(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::bad_request(format!(
                "at most {lines_max} lines of at most {IMPORT_LINE_LEN_MAX} bytes per request (marketplace.import_batch_max)"
            ))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
        } else {
            Error::bad_request(format!("body: {}", e.body_text())).into_response()
        })
    })?;
    parse_edges(&body, lines_max)
}

/// `POST /v1/admin/followers/import` (admin): add edges, no events;
/// `{"imported", "already"}`.
pub(super) async fn import(
    State(state): State<Shared>,
    Caller(who): Caller,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let edges = match import_edges(&state, &who, &headers, body) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    match app::import(&state, &edges).await {
        Ok(o) => Json(json!({ "imported": o.changed, "already": o.unchanged })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /v1/admin/followers/import` (admin): remove edges;
/// `{"deleted", "absent"}`.
pub(super) async fn delete_import(
    State(state): State<Shared>,
    Caller(who): Caller,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let edges = match import_edges(&state, &who, &headers, body) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    match app::delete(&state, &edges).await {
        Ok(o) => Json(json!({ "deleted": o.changed, "absent": o.unchanged })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The list cursor: URL-safe base64 of `ms:user`.
fn encode_cursor(c: &FollowCursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{}", c.ms, c.key))
}

/// Inverse of [`encode_cursor`]; `bad_request` for anything else.
fn decode_cursor(cursor: &str) -> Result<FollowCursor, Error> {
    let bad = || Error::bad_request("bad cursor");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (ms, key) = text.split_once(':').ok_or_else(bad)?;
    let ms = ms.parse().map_err(|_| bad())?;
    if key.is_empty() || key.len() > ID_LEN_MAX {
        return Err(bad());
    }
    Ok(FollowCursor {
        ms,
        key: key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let c = FollowCursor {
            ms: 17,
            key: "v-1".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        assert!(decode_cursor("not base64!").is_err());
        assert!(
            decode_cursor(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("x:y")).is_err()
        );
    }

    #[test]
    fn an_import_body_is_checked_whole_and_names_the_bad_line() {
        let ok =
            b"{\"follower\":\"a\",\"creator\":\"c\"}\n\n{\"follower\":\"b\",\"creator\":\"c\"}\r\n";
        assert_eq!(parse_edges(ok, 10).unwrap().len(), 2);
        let bad = b"{\"follower\":\"a\",\"creator\":\"c\"}\n{\"follower\":\"a\"}\n";
        assert_eq!(parse_edges(bad, 10).unwrap_err().status(), 400);
        let own = b"{\"follower\":\"c\",\"creator\":\"c\"}\n";
        assert_eq!(parse_edges(own, 10).unwrap_err().status(), 400);
        assert_eq!(parse_edges(ok, 1).unwrap_err().status(), 413);
    }
}

//! The video routes: register a video (with a title), gift it over HTTP
//! (with a message), read its page, list a creator's videos.
//!
//! Owns: these handlers' request shapes, the list's cursor (opaque to
//! clients: URL-safe base64 of the last video's `created_ms:video`) and
//! its `limit` bounds.
//! Must not: hold business rules (they are [`crate::app::ops`]'s) or SQL
//! (the ledger's [`crate::ledger::videos`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::extract::{Caller, JsonBody};
use super::limits::per_hour;
use super::Shared;
use crate::app::ops;
use crate::auth::Role;
use crate::error::{Error, ErrorCode};
use crate::model::Target;
use crate::protocol::{
    check_name, check_text, valid_client_id, GiftBody, ServerMsg, TITLE_LEN_MAX,
};

/// Videos per page of `GET /v1/creators/{creator}/videos` by default.
pub const VIDEOS_PAGE_LEN: i64 = 20;
/// Videos per page at most.
pub const VIDEOS_PAGE_LEN_MAX: i64 = 100;

/// `POST /v1/videos`.
#[derive(Deserialize)]
pub(super) struct Video {
    video: String,
    /// At most 100 characters; absent: unchanged; empty: cleared.
    #[serde(default)]
    title: Option<String>,
}

/// `POST /v1/videos {video, title?}` (creator): register a video, or
/// re-register one's own (its title is then replaced when one is given).
pub(super) async fn register_video(
    State(state): State<Shared>,
    Caller(who): Caller,
    JsonBody(v): JsonBody<Video>,
) -> Result<Response, Error> {
    who.require(Role::Creator)?;
    check_name("video", &v.video)?;
    if let Some(t) = &v.title {
        check_text("title", t, TITLE_LEN_MAX)?;
    }
    per_hour(
        &state,
        "videos",
        &who.user,
        state.cfg.limits.videos_per_hour_max,
        "limits.videos_per_hour_max",
    )
    .await?;
    ops::register_video(&state, &v.video, &who.user, v.title.as_deref()).await?;
    let mut body = json!({ "video": v.video, "creator": who.user });
    if let Some(t) = v.title.filter(|t| !t.is_empty()) {
        body["title"] = json!(t);
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /v1/videos/{video}/gifts {gift, count, id, message?}`.
pub(super) async fn video_gift(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(video): Path<String>,
    JsonBody(body): JsonBody<GiftBody>,
) -> Result<Response, Error> {
    let fail = |e: Error, id: Option<String>| {
        e.log_at_edge("http");
        let status =
            StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(ServerMsg::error(&e, id))).into_response()
    };
    if let Err(e) = check_name("video", &video)
        .map_err(|_| Error::new(ErrorCode::UnknownVideo, format!("no video `{video}`")))
    {
        return Ok(fail(e, None));
    }
    if let Err(e) = body.validate() {
        return Ok(fail(e, valid_client_id(&body.id).then(|| body.id.clone())));
    }
    match ops::gift(
        &state,
        &who,
        Target::video(&video),
        &body.gift,
        body.count,
        &body.id,
        body.message(),
    )
    .await
    {
        Ok(a) => Ok(Json(ServerMsg::GiftAck {
            id: a.id,
            seq: a.seq,
            balance: a.balance,
        })
        .into_response()),
        Err(e) => Ok(fail(e, Some(body.id))),
    }
}

/// `GET /v1/videos/{video}` (anyone authenticated): the video's page from
/// the ledger (settled gifts).
pub(super) async fn video_page(
    State(state): State<Shared>,
    Caller(_who): Caller,
    Path(video): Path<String>,
) -> Result<Response, Error> {
    let unknown = || Error::new(ErrorCode::UnknownVideo, format!("no video `{video}`"));
    check_name("video", &video).map_err(|_| unknown())?;
    let page = state.ledger.video_page(&video).await?.ok_or_else(unknown)?;
    Ok(Json(page).into_response())
}

/// The query of a creator's video list.
#[derive(Deserialize)]
pub(super) struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /v1/creators/{creator}/videos?limit=&cursor=` (anyone
/// authenticated): newest first, `limit` 1..=100 (default 20);
/// `next_cursor` is null on the last page.
pub(super) async fn creator_videos(
    State(state): State<Shared>,
    Caller(_who): Caller,
    Path(creator): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, Error> {
    check_name("creator", &creator)?;
    let limit = match q.limit.as_deref() {
        None => VIDEOS_PAGE_LEN,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=VIDEOS_PAGE_LEN_MAX).contains(n))
            .ok_or_else(|| {
                Error::bad_request(format!("limit must be 1..={VIDEOS_PAGE_LEN_MAX}"))
            })?,
    };
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c)?),
    };
    // One more than asked tells whether a next page exists.
    let mut videos = state
        .ledger
        .creator_videos(&creator, limit + 1, after)
        .await?;
    let more = videos.len() as i64 > limit;
    videos.truncate(limit as usize);
    let next_cursor = match videos.last() {
        Some(last) if more => Some(encode_cursor(last.created_ms, &last.video)),
        _ => None,
    };
    Ok(Json(json!({ "videos": videos, "next_cursor": next_cursor })).into_response())
}

/// The cursor after the video `(created_ms, video)`.
fn encode_cursor(created_ms: i64, video: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{created_ms}:{video}"))
}

/// Inverse of [`encode_cursor`]; `bad_request` for anything else.
fn decode_cursor(cursor: &str) -> Result<(i64, String), Error> {
    let bad = || Error::bad_request("bad cursor");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (ms, video) = text.split_once(':').ok_or_else(bad)?;
    let ms = ms.parse::<i64>().map_err(|_| bad())?;
    check_name("video", video).map_err(|_| bad())?;
    Ok((ms, video.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = encode_cursor(1_700_000_000_123, "v-1.x_y");
        assert_eq!(
            decode_cursor(&c).unwrap(),
            (1_700_000_000_123, "v-1.x_y".into())
        );
        for junk in ["%%%", "bm90LWEtY3Vyc29y", "MTIzOg", "YWJjOnY"] {
            let e = decode_cursor(junk).expect_err(junk);
            assert_eq!(e.code, ErrorCode::BadRequest, "{junk}");
        }
    }
}

//! Videos: registration and gifts to a video.
//!
//! Owns: `POST /v1/videos` and `POST /v1/videos/{video}/gifts`.
//! Must not: hold business rules (`crate::app::ops` does).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::app::ops;
use crate::auth::Role;
use crate::error::{Error, ErrorCode};
use crate::model::Target;
use crate::protocol::{check_name, valid_client_id, GiftBody, ServerMsg};

use super::{extract::Caller, extract::JsonBody, limits::per_hour, Shared};

#[derive(Deserialize)]
pub(super) struct Video {
    video: String,
}

pub(super) async fn register_video(
    State(state): State<Shared>,
    Caller(who): Caller,
    JsonBody(v): JsonBody<Video>,
) -> Result<Response, Error> {
    who.require(Role::Creator)?;
    check_name("video", &v.video)?;
    per_hour(
        &state,
        "videos",
        &who.user,
        state.cfg.limits.videos_per_hour_max,
        "limits.videos_per_hour_max",
    )
    .await?;
    ops::register_video(&state, &v.video, &who.user).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "video": v.video, "creator": who.user })),
    )
        .into_response())
}

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

//! Rooms and the catalog: open, end, info; `GET /v1/catalog`.
//!
//! Owns: those handlers and the per-creator lock that serializes opening.
//! Must not: hold room state (the hub does) or business rules beyond
//! roles and limits (`crate::app::ops` holds them).

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
use crate::protocol::check_name;

use super::{assets, extract::Caller, limits::per_hour, Shared};

/// One of a fixed set of locks, picked by `creator`: opening rooms is
/// serialized per creator, so the live-room cap cannot be raced on a node.
pub(super) fn open_room_lock(creator: &str) -> &'static tokio::sync::Mutex<()> {
    use std::hash::BuildHasher;
    const STRIPES: usize = 64;
    static LOCKS: std::sync::OnceLock<Vec<tokio::sync::Mutex<()>>> = std::sync::OnceLock::new();
    let locks = LOCKS.get_or_init(|| (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect());
    let h = foldhash::fast::FixedState::default().hash_one(creator);
    &locks[h as usize % STRIPES]
}

pub(super) async fn catalog(State(state): State<Shared>) -> Json<serde_json::Value> {
    // Addition to v1: `art`, the URL path of the gift's SVG, when the binary has one.
    let gifts: Vec<serde_json::Value> = state
        .catalog
        .gifts()
        .iter()
        .map(|g| {
            let mut v = json!(g);
            if let Some(art) = assets::art_path(&g.id) {
                v["art"] = json!(art);
            }
            v
        })
        .collect();
    Json(json!({ "gifts": gifts }))
}

#[derive(Deserialize, Default)]
pub(super) struct OpenRoom {
    room: Option<String>,
}

pub(super) async fn open_room(
    State(state): State<Shared>,
    Caller(who): Caller,
    body: bytes::Bytes,
) -> Result<Response, Error> {
    who.require(Role::Creator)?;
    let body: OpenRoom = if body.iter().all(u8::is_ascii_whitespace) {
        OpenRoom::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Error::bad_request(format!("body: {e}")))?
    };
    let room = body.room.unwrap_or_else(|| {
        format!(
            "{}-{}",
            who.user.chars().take(24).collect::<String>(),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        )
    });
    check_name("room", &room)?;
    let limits = &state.cfg.limits;
    // The live-room count and the open are one step per creator on this
    // node (across nodes, two opens at the same instant may both pass).
    let _one_at_a_time = open_room_lock(&who.user).lock().await;
    let live_here = matches!(
        state.ledger.target(&Target::room(&room)).await?,
        Some(t) if t.live && t.creator == who.user
    );
    if !live_here && state.ledger.live_rooms(&who.user).await? >= limits.live_rooms_per_creator_max
    {
        return Err(Error::new(
            ErrorCode::RateLimited,
            format!(
                "{} rooms live at once at most (limits.live_rooms_per_creator_max); end one first",
                limits.live_rooms_per_creator_max
            ),
        ));
    }
    per_hour(
        &state,
        "rooms",
        &who.user,
        limits.rooms_per_hour_max,
        "limits.rooms_per_hour_max",
    )
    .await?;
    let created = ops::open_room(&state, &room, &who.user).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "room": room, "creator": who.user, "live": true })),
    )
        .into_response())
}

pub(super) async fn end_room(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(room): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    check_name("room", &room)?;
    ops::end_room(&state, &who, &room).await?;
    Ok(Json(json!({ "room": room, "live": false })))
}

pub(super) async fn room_info(
    State(state): State<Shared>,
    Caller(_): Caller,
    Path(room): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    check_name("room", &room)?;
    let info = state
        .counters
        .target(&Target::room(&room))
        .await?
        .ok_or_else(|| Error::new(ErrorCode::UnknownRoom, format!("no room `{room}`")))?;
    let here = state
        .hub
        .room(&room)
        .map(|h| h.viewers.load(std::sync::atomic::Ordering::Relaxed))
        .unwrap_or(0);
    let viewers = here
        + state
            .relay
            .other_nodes_viewers(&crate::relay::Topic::room(room.as_str()))
            .await?;
    Ok(Json(
        json!({ "room": room, "creator": info.creator, "live": info.live, "seq": info.seq, "viewers": viewers }),
    ))
}

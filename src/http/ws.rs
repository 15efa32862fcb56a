//! `GET /v1/ws`: admission (per IP, per user) and the WebSocket upgrade.
//!
//! Owns: the upgrade handler.
//! Must not: run the socket (that is `crate::hub`).

use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;

use crate::error::{Error, ErrorCode};
use crate::protocol::{Encoding, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};

use super::{extract::SocketCaller, middleware::client_ip, Shared};

pub(super) async fn ws(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    SocketCaller(who): SocketCaller,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, Error> {
    let upgrade = upgrade
        .map_err(|e| Error::bad_request(format!("not a WebSocket upgrade: {}", e.body_text())))?;
    // Counted from here until the socket ends, whatever way (the closure
    // below owns it, and is dropped when the upgrade fails too).
    let ip = client_ip(&state.cfg.http.client_ip_header, &headers, peer);
    let admission = state
        .hub
        .caps()
        .admit(ip, &who.identity.user)
        .inspect_err(|_| {
            metrics::counter!("giftstream_ws_refused_total", "reason" => "caps").increment(1);
        })?;
    let permit = state.connections.clone().try_acquire_owned().map_err(|_| {
        Error::new(
            ErrorCode::RateLimited,
            "connection limit reached (hub.connections_max)",
        )
    })?;
    let hub = state.hub.config();
    let upgrade = upgrade
        .protocols([SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK])
        .read_buffer_size(hub.read_buffer_len)
        .write_buffer_size(hub.write_buffer_len)
        .max_write_buffer_size(hub.write_buffer_len_max)
        .max_message_size(hub.frame_close_len_max)
        .max_frame_size(hub.frame_close_len_max);
    let encoding =
        Encoding::from_subprotocol(upgrade.selected_protocol().and_then(|p| p.to_str().ok()));
    Ok(upgrade.on_upgrade(move |socket| {
        let conn = crate::hub::conn::serve(socket, state, who, encoding, permit);
        async move {
            conn.await;
            drop(admission);
        }
    }))
}

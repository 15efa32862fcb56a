//! Layers every request passes: security headers, the answer deadline,
//! the refusal of scoped tokens, and the client IP for socket admission.
//!
//! Owns: those layers and [`client_ip`].
//! Must not: know any route's business; refuse anything but by the rules
//! above.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{Error, ErrorCode};

use super::Shared;

/// Every response: no MIME sniffing, no Referer (the overlay's URL holds
/// a token).
pub(super) async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// Bound the time to answer: `http.request_timeout_ms` for a route,
/// `hub.handshake_timeout_ms` for the `/v1/ws` upgrade (up to its 101; the
/// socket after it lives in its own task). Past it the handler is dropped
/// and the client told 503: `outcome_unknown` when the method changes
/// state (it may have taken effect), `internal` for GET/HEAD.
pub(super) async fn deadline(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let (ms, key) = if req.uri().path() == "/v1/ws" {
        (
            state.cfg.hub.handshake_timeout_ms,
            "hub.handshake_timeout_ms",
        )
    } else {
        (state.cfg.http.request_timeout_ms, "http.request_timeout_ms")
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    match tokio::time::timeout(Duration::from_millis(ms), next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            metrics::counter!("giftstream_http_timeouts_total").increment(1);
            let e = if safe {
                Error::new(
                    ErrorCode::Internal,
                    format!("not answered in time ({key}); the request had no effect"),
                )
            } else {
                Error::outcome_unknown()
            };
            e.with_status(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

/// The client's IP for the per-IP socket cap: the TCP peer, or with
/// `http.client_ip_header` set, the right-most entry of that header's last
/// occurrence (the one the trusted proxy appended; entries to its left come
/// from the client and are ignored). A request without the header (or with
/// an entry that is no IP) counts as the peer.
pub fn client_ip(header_name: &str, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
    if header_name.is_empty() {
        return peer.ip();
    }
    headers
        .get_all(header_name)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .and_then(|s| {
            s.parse::<IpAddr>()
                .ok()
                .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        })
        .unwrap_or(peer.ip())
}

/// Every route but `/v1/ws` and `/overlay/...` answers 403 `forbidden` to
/// a scoped token, also the routes that need no token.
pub(super) async fn refuse_scoped(
    State(state): State<Shared>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path();
    if path != "/v1/ws" && !path.starts_with("/overlay/") {
        if let Ok(Some(token)) = crate::auth::bearer(req.headers()) {
            if let Some(scope) = state.auth.scope_of(token) {
                return crate::auth::scoped_refusal(&scope).into_response();
            }
        }
    }
    next.run(req).await
}

//! HTTP (JSON) and the WebSocket upgrade: the contract's routes.
//!
//! Owns: the axum router and its route list ([`ROUTES`], the one place a
//! route is added), authentication of every request ([`Caller`]),
//! body parsing into typed errors ([`JsonBody`]), the mapping of [`Error`]
//! to a status and `{"code", "message"}`, `/healthz`, the `/metrics`
//! router (served on its own listener, `http.metrics_listen`), request and
//! handshake deadlines, the security headers of every response, and
//! admission of sockets (per client IP, per user) before the upgrade.
//! Must not: hold business rules; handlers check roles, then call
//! [`crate::app::ops`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::BytesRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use crate::app::{metrics_handle, ops, AppState};
use crate::auth::{Identity, Role, Scope, Token};
use crate::error::{Error, ErrorCode};
use crate::ledger::{CreditOp, OpKey};
use crate::model::Target;
use crate::payments;
use crate::payments::PaymentsApp;
use crate::protocol::{
    check_name, valid_client_id, Encoding, GiftBody, ServerMsg, SUBPROTOCOL_JSON,
    SUBPROTOCOL_MSGPACK,
};

mod assets;
mod pages;
mod session;

type Shared = Arc<AppState>;

/// Every route of the main listener, as (method, path). [`router`] is
/// built from this list (one [`endpoint`] each), and `tests/it/auth_matrix.rs`
/// checks that its table has exactly one row per entry: a route cannot be
/// added without saying who may call it.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/ws"),
    ("GET", "/v1/catalog"),
    ("POST", "/v1/rooms"),
    ("DELETE", "/v1/rooms/{room}"),
    ("GET", "/v1/rooms/{room}"),
    ("GET", "/v1/wallet"),
    ("POST", "/v1/admin/grants"),
    ("POST", "/v1/videos"),
    ("POST", "/v1/videos/{video}/gifts"),
    ("GET", "/v1/creators/{creator}/earnings"),
    ("POST", "/v1/coins/purchases"),
    ("POST", "/v1/stripe/webhook"),
    ("POST", "/v1/creators/me/payouts/onboard"),
    ("GET", "/v1/creators/me/payouts"),
    ("POST", "/v1/rooms/{room}/tips"),
    ("POST", "/v1/videos/{video}/tips"),
    ("POST", "/v1/creators/me/cashouts"),
    ("POST", "/v1/creators/me/overlay-tokens"),
    ("GET", "/overlay/{room}"),
    ("GET", "/overlay/assets/overlay.js"),
    ("GET", "/overlay/assets/overlay.css"),
    ("GET", "/assets/gifts/{file}"),
    ("GET", "/sdk/giftstream.js"),
    ("GET", "/healthz"),
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions"),
    ("DELETE", "/v1/sessions"),
    ("GET", "/demo/login"),
    ("POST", "/demo/login"),
    ("GET", "/live/{room}"),
    ("GET", "/ui/{asset}"),
    ("GET", "/ui/i18n/{catalog}"),
    ("GET", "/v1/coins/packages"),
];

/// The handler of one entry of [`ROUTES`], answering only that method.
///
/// # Panics
/// On an entry without a handler here or with a method other than GET,
/// POST or DELETE: a programming error, met by the first server start.
fn endpoint(method: &str, path: &str, state: &AppState) -> MethodRouter<Shared> {
    let filter = match method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "DELETE" => MethodFilter::DELETE,
        m => panic!("ROUTES: method {m} of {path} is not supported"),
    };
    match (method, path) {
        ("GET", "/v1/ws") => on(filter, ws),
        ("GET", "/v1/catalog") => on(filter, catalog),
        ("POST", "/v1/rooms") => on(filter, open_room),
        ("DELETE", "/v1/rooms/{room}") => on(filter, end_room),
        ("GET", "/v1/rooms/{room}") => on(filter, room_info),
        ("GET", "/v1/wallet") => on(filter, wallet),
        ("POST", "/v1/admin/grants") => on(filter, grant),
        ("POST", "/v1/videos") => on(filter, register_video),
        ("POST", "/v1/videos/{video}/gifts") => on(filter, video_gift),
        ("GET", "/v1/creators/{creator}/earnings") => on(filter, earnings),
        ("POST", "/v1/coins/purchases") => on(filter, purchase),
        // Stripe's events outgrow http.body_len_max (a charge with its
        // expanded objects): this route has its own bound.
        ("POST", "/v1/stripe/webhook") => on(filter, stripe_webhook).layer(
            axum::extract::DefaultBodyLimit::max(state.cfg.stripe.webhook_body_len_max),
        ),
        ("POST", "/v1/creators/me/payouts/onboard") => on(filter, payouts_onboard),
        ("GET", "/v1/creators/me/payouts") => on(filter, payouts),
        ("POST", "/v1/rooms/{room}/tips") => on(filter, room_tip),
        ("POST", "/v1/videos/{video}/tips") => on(filter, video_tip),
        ("POST", "/v1/creators/me/cashouts") => on(filter, cashout),
        ("POST", "/v1/creators/me/overlay-tokens") => on(filter, overlay_token),
        ("GET", "/overlay/{room}") => on(filter, overlay),
        ("GET", "/overlay/assets/overlay.js") => on(filter, overlay_js),
        ("GET", "/overlay/assets/overlay.css") => on(filter, overlay_css),
        ("GET", "/assets/gifts/{file}") => on(filter, assets::gift_art),
        ("GET", "/sdk/giftstream.js") => on(filter, assets::sdk_js),
        ("GET", "/healthz") => on(filter, || async { Json(json!({ "ok": true })) }),
        ("POST", "/v1/sessions") => on(filter, session::create),
        ("GET", "/v1/sessions") => on(filter, session::show),
        ("DELETE", "/v1/sessions") => on(filter, session::delete),
        ("GET", "/demo/login") => on(filter, pages::demo_login),
        ("POST", "/demo/login") => on(filter, session::demo_login),
        ("GET", "/live/{room}") => on(filter, pages::live),
        ("GET", "/ui/{asset}") => on(filter, pages::ui),
        ("GET", "/ui/i18n/{catalog}") => on(filter, pages::ui_i18n),
        ("GET", "/v1/coins/packages") => on(filter, pages::packages),
        (m, p) => panic!("ROUTES: {m} {p} has no handler in http::endpoint"),
    }
}

/// Build the router from [`ROUTES`].
pub fn router(state: Shared) -> Router {
    let body_len_max = state.cfg.http.body_len_max;
    let mut router = Router::new();
    for &(method, path) in ROUTES {
        router = router.route(path, endpoint(method, path, &state));
    }
    router
        .fallback(|| async {
            Error::bad_request("no such route").with_status(StatusCode::NOT_FOUND)
        })
        .method_not_allowed_fallback(|| async {
            Error::bad_request("method not allowed").with_status(StatusCode::METHOD_NOT_ALLOWED)
        })
        .layer(axum::extract::DefaultBodyLimit::max(body_len_max))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_scoped,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            deadline,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// The router of the metrics listener (`http.metrics_listen`): `/metrics`
/// only. Never merged into [`router`]: the main listener is public.
pub fn metrics_router(state: Shared) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(prometheus))
        .fallback(|| async {
            Error::bad_request("no such route").with_status(StatusCode::NOT_FOUND)
        })
        .with_state(state)
}

/// Every response: no MIME sniffing, no Referer (the overlay's URL holds
/// a token).
async fn security_headers(mut r: Response) -> Response {
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
async fn deadline(State(state): State<Shared>, req: Request, next: Next) -> Response {
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

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        self.with_status(status)
    }
}

impl Error {
    fn with_status(self, status: StatusCode) -> Response {
        let mut r = (
            status,
            Json(json!({ "code": self.code, "message": self.message })),
        )
            .into_response();
        if self.code == ErrorCode::Unauthorized {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// The authenticated caller of an HTTP request: `Authorization: Bearer`
/// only (`?token=` is ignored here), full-privilege tokens only (a scoped
/// token is `forbidden`).
pub struct Caller(pub Identity);

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Error> {
        // A page's session cookie, when the request has no Authorization.
        if let Some(who) = session::caller(parts, state)? {
            return Ok(Caller(who));
        }
        state.auth.from_request(&parts.headers).map(Caller)
    }
}

/// The verified token of a socket or overlay request: `Authorization:
/// Bearer`, else `?token=` (browsers cannot set headers there); scoped
/// tokens included.
pub struct SocketCaller(pub Token);

impl FromRequestParts<Shared> for SocketCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Error> {
        let q: Option<TokenQuery> = Query::<TokenQuery>::try_from_uri(&parts.uri)
            .ok()
            .map(|q| q.0);
        let token = q
            .as_ref()
            .and_then(|q| q.token.as_deref())
            .filter(|t| !t.is_empty());
        // A page's socket: the session cookie (same origin only).
        if token.is_none() && crate::auth::bearer(&parts.headers)?.is_none() {
            if let Some(t) = session::socket(parts, state)? {
                return Ok(SocketCaller(t));
            }
        }
        state
            .auth
            .from_socket_request(&parts.headers, token)
            .map(SocketCaller)
    }
}

/// Every route but `/v1/ws` and `/overlay/...` answers 403 `forbidden` to
/// a scoped token, also the routes that need no token.
async fn refuse_scoped(
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

/// A JSON body whose every failure is a typed `bad_request`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let bytes = bytes::Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| Error::bad_request(format!("body: {}", e.body_text())))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| Error::bad_request(format!("body: {e}")))
    }
}

async fn ws(
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

/// The creator's OBS browser-source overlay: `/overlay/ROOM?token=JWT`.
/// A static page; it authenticates its own socket with the token. A token
/// given here (`?token=` or Bearer) is checked: 401 if it does not verify,
/// 403 if it is scoped to another room; without one the page is served
/// (it holds no data).
async fn overlay(
    State(state): State<Shared>,
    Path(room): Path<String>,
    headers: axum::http::HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Result<Response, Error> {
    check_name("room", &room)?;
    if crate::auth::bearer(&headers)?.is_some() || q.token.is_some() {
        let t = state
            .auth
            .from_socket_request(&headers, q.token.as_deref())?;
        if let Some(scope) = &t.scope {
            if !scope.allows_room(&room) {
                return Err(crate::auth::scoped_refusal(scope));
            }
        }
    }
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {}",
        state.cfg.http.overlay_frame_ancestors.trim()
    );
    let csp = HeaderValue::from_str(&csp)
        .map_err(|_| Error::internal("http.overlay_frame_ancestors is no header value"))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        include_str!("overlay.html"),
    )
        .into_response())
}

async fn overlay_js() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        include_str!("overlay.js"),
    )
        .into_response()
}

async fn overlay_css() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        )],
        include_str!("overlay.css"),
    )
        .into_response()
}

/// One of a fixed set of locks, picked by `creator`: opening rooms is
/// serialized per creator, so the live-room cap cannot be raced on a node.
fn open_room_lock(creator: &str) -> &'static tokio::sync::Mutex<()> {
    use std::hash::BuildHasher;
    const STRIPES: usize = 64;
    static LOCKS: std::sync::OnceLock<Vec<tokio::sync::Mutex<()>>> = std::sync::OnceLock::new();
    let locks = LOCKS.get_or_init(|| (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect());
    let h = foldhash::fast::FixedState::default().hash_one(creator);
    &locks[h as usize % STRIPES]
}

/// Count one `what` for `user` in this hour's window; `rate_limited`
/// beyond `max` (the config key named in the message).
async fn per_hour(
    state: &AppState,
    what: &str,
    user: &str,
    max: u64,
    key: &str,
) -> Result<(), Error> {
    const HOUR_MS: u64 = 3_600_000;
    if state
        .counters
        .count_in_window(&format!("{what}:{user}"), HOUR_MS, max)
        .await?
    {
        Ok(())
    } else {
        metrics::counter!("giftstream_limited_total", "limit" => what.to_string()).increment(1);
        Err(Error::new(
            ErrorCode::RateLimited,
            format!("at most {max} an hour ({key}); try again later"),
        ))
    }
}

/// Coin purchases and tips share one hourly budget: each creates a Stripe
/// PaymentIntent.
async fn payment_intents_per_hour(state: &AppState, who: &Identity) -> Result<(), Error> {
    per_hour(
        state,
        "payment_intents",
        &who.user,
        state.cfg.limits.payment_intents_per_hour_max,
        "limits.payment_intents_per_hour_max",
    )
    .await
}

async fn catalog(State(state): State<Shared>) -> Json<serde_json::Value> {
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
struct OpenRoom {
    room: Option<String>,
}

async fn open_room(
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

async fn end_room(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(room): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    check_name("room", &room)?;
    ops::end_room(&state, &who, &room).await?;
    Ok(Json(json!({ "room": room, "live": false })))
}

async fn room_info(
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
    let viewers = here + state.counters.other_nodes_viewers(&room).await?;
    Ok(Json(
        json!({ "room": room, "creator": info.creator, "live": info.live, "seq": info.seq, "viewers": viewers }),
    ))
}

async fn wallet(
    State(state): State<Shared>,
    Caller(who): Caller,
) -> Result<Json<serde_json::Value>, Error> {
    let coins = state.counters.balance(&who.user).await?;
    Ok(Json(json!({ "user": who.user, "coins": coins })))
}

#[derive(Deserialize)]
struct Grant {
    user: String,
    coins: i64,
    id: String,
}

async fn grant(
    State(state): State<Shared>,
    Caller(who): Caller,
    JsonBody(g): JsonBody<Grant>,
) -> Result<Json<serde_json::Value>, Error> {
    who.require(Role::Admin)?;
    check_name("user", &g.user)?;
    if !valid_client_id(&g.id) {
        return Err(Error::bad_request("id must be 1..=64 characters"));
    }
    if !(1..=1_000_000_000).contains(&g.coins) {
        return Err(Error::bad_request("coins must be 1..=1000000000"));
    }
    let op = CreditOp {
        op_id: OpKey::Grant(&g.id).op_id(),
        kind: "grant".into(),
        user: g.user,
        coins: g.coins,
    };
    let (outcome, balance) = ops::grant(&state, &who.user, op).await?;
    Ok(Json(json!({
        "user": outcome.op.user,
        "coins": outcome.op.coins,
        "id": g.id,
        "balance": balance,
        "replayed": !outcome.applied_now,
    })))
}

#[derive(Deserialize)]
struct Video {
    video: String,
}

async fn register_video(
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

async fn video_gift(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(video): Path<String>,
    JsonBody(body): JsonBody<GiftBody>,
) -> Result<Response, Error> {
    let fail = |e: Error, id: Option<String>| {
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

async fn earnings(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(creator): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    check_name("creator", &creator)?;
    if who.role != Role::Admin && !(who.role == Role::Creator && who.user == creator) {
        return Err(Error::forbidden(
            "only that creator or an admin may read these earnings",
        ));
    }
    let pending = state.counters.pending_diamonds(&creator).await?;
    let l = state.ledger.earnings(&creator).await?;
    Ok(Json(json!({
        "creator": creator,
        "diamonds_pending": pending,
        "diamonds_settled": l.diamonds_settled,
        "diamonds_cashed_out": l.diamonds_cashed_out,
        "tips_cents": l.tips_cents,
        "diamonds_cashout_pending": l.diamonds_cashout_pending,
        "cashed_out_cents": l.cashed_out_cents,
        "diamonds_held": l.funds.diamonds_held,
        "diamonds_available": l.funds.diamonds_available,
        "diamonds_reversed": l.funds.diamonds_reversed,
        "diamonds_unrecovered": l.funds.diamonds_unrecovered,
        "tips_reversed_cents": l.funds.tips_reversed_cents,
        "tips_recovered_cents": l.funds.tips_recovered_cents,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Purchase {
    package: String,
    id: String,
}

async fn purchase(
    State(state): State<Shared>,
    Caller(who): Caller,
    JsonBody(b): JsonBody<Purchase>,
) -> Result<Json<payments::PurchaseAnswer>, Error> {
    payment_intents_per_hour(&state, &who).await?;
    payments::create_purchase(&state.payments(), &who, &b.package, &b.id)
        .await
        .map(Json)
}

/// Stripe calls this; it authenticates by signature, not by token.
async fn stripe_webhook(
    State(state): State<Shared>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Result<Json<serde_json::Value>, Error> {
    let sig = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::bad_request("missing Stripe-Signature header"))?;
    let outcome = payments::webhook(&state.payments(), sig, &body).await?;
    Ok(Json(json!({ "received": true, "outcome": outcome })))
}

async fn payouts_onboard(
    State(state): State<Shared>,
    Caller(who): Caller,
) -> Result<Json<payments::OnboardAnswer>, Error> {
    who.require(Role::Creator)?;
    payments::onboard(&state.payments(), &who.user)
        .await
        .map(Json)
}

async fn payouts(
    State(state): State<Shared>,
    Caller(who): Caller,
) -> Result<Json<payments::PayoutStatus>, Error> {
    who.require(Role::Creator)?;
    payments::payout_status(&state.payments(), &who.user)
        .await
        .map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tip {
    amount_cents: i64,
    currency: String,
    #[serde(default)]
    message: String,
    id: String,
}

async fn tip(state: &AppState, who: &Identity, target: Target, t: Tip) -> Result<Response, Error> {
    payment_intents_per_hour(state, who).await?;
    let answer = payments::create_tip(
        &state.payments(),
        who,
        target,
        payments::TipRequest {
            amount_cents: t.amount_cents,
            currency: t.currency,
            message: t.message,
            id: t.id,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn room_tip(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(room): Path<String>,
    JsonBody(t): JsonBody<Tip>,
) -> Result<Response, Error> {
    check_name("room", &room)?;
    tip(&state, &who, Target::room(room), t).await
}

async fn video_tip(
    State(state): State<Shared>,
    Caller(who): Caller,
    Path(video): Path<String>,
    JsonBody(t): JsonBody<Tip>,
) -> Result<Response, Error> {
    check_name("video", &video)?;
    tip(&state, &who, Target::video(video), t).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cashout {
    diamonds: i64,
    id: String,
}

async fn cashout(
    State(state): State<Shared>,
    Caller(who): Caller,
    JsonBody(c): JsonBody<Cashout>,
) -> Result<Json<crate::ledger::CashoutRecord>, Error> {
    who.require(Role::Creator)?;
    payments::cashout(&state.payments(), &who.user, c.diamonds, &c.id)
        .await
        .map(Json)
}

async fn prometheus(State(state): State<Shared>) -> Response {
    if let Ok(n) = state.counters.pending_len().await {
        metrics::gauge!("giftstream_pending_gifts").set(n as f64);
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        metrics_handle().render(),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverlayTokenReq {
    room: String,
}

/// A token scoped to `overlay:ROOM` for the creator who owns ROOM, and the
/// overlay URL carrying it (`auth.overlay_token_ttl_s`).
async fn overlay_token(
    State(state): State<Shared>,
    Caller(who): Caller,
    JsonBody(b): JsonBody<OverlayTokenReq>,
) -> Result<Response, Error> {
    who.require(Role::Creator)?;
    check_name("room", &b.room)?;
    let info = state
        .counters
        .target(&Target::room(&b.room))
        .await?
        .ok_or_else(|| Error::new(ErrorCode::UnknownRoom, format!("no room `{}`", b.room)))?;
    if info.creator != who.user {
        return Err(Error::forbidden(
            "only the room's creator may mint its overlay token",
        ));
    }
    let ttl = state.cfg.auth.overlay_token_ttl_s;
    let token = state.auth.issue_scoped(
        &who.user,
        Role::Creator,
        Some(&Scope::overlay(&b.room)),
        ttl,
    )?;
    let url = format!(
        "{}/overlay/{}?token={token}",
        state.cfg.auth.overlay_url_base.trim_end_matches('/'),
        b.room
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "room": b.room,
            "token": token,
            "url": url,
            "expires_in_s": ttl,
        })),
    )
        .into_response())
}

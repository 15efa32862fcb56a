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

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use serde_json::json;

use crate::app::{metrics_handle, AppState};
use crate::error::Error;

mod admin;
mod assets;
mod blocks;
mod brands;
mod contracts;
mod creators;
mod extract;
mod follows;
mod limits;
mod marketplace;
mod middleware;
mod moderation;
mod overlay;
mod pages;
mod payments;
mod reply;
mod rooms;
mod session;
mod studio;
mod videos;
mod wallet;
mod webhooks;
mod ws;

pub use extract::{Caller, JsonBody, SocketCaller};
pub use middleware::client_ip;

use admin::grant;
use creators::{cashout, earnings, payouts, payouts_onboard};
use middleware::{deadline, refuse_scoped, security_headers};
use overlay::{overlay, overlay_css, overlay_js, overlay_token};
use payments::{room_tip, stripe_webhook, video_tip};
use rooms::{catalog, end_room, open_room, room_info};
use wallet::{purchase, wallet};
use ws::ws;

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
    ("GET", "/v1/videos/{video}"),
    ("GET", "/v1/creators/{creator}/videos"),
    ("GET", "/v1/creators/{creator}/earnings"),
    ("POST", "/v1/coins/purchases"),
    ("POST", "/v1/stripe/webhook"),
    ("POST", "/v1/creators/me/payouts/onboard"),
    ("GET", "/v1/creators/me/payouts"),
    ("POST", "/v1/rooms/{room}/tips"),
    ("POST", "/v1/videos/{video}/tips"),
    ("POST", "/v1/creators/me/cashouts"),
    ("POST", "/v1/creators/me/overlay-tokens"),
    ("POST", "/v1/creators/me/webhooks"),
    ("GET", "/v1/creators/me/webhooks"),
    ("DELETE", "/v1/creators/me/webhooks/{id}"),
    ("GET", "/v1/creators/me/webhooks/{id}/deliveries"),
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
    ("GET", "/v1/creators/me/gifts"),
    ("GET", "/v1/creators/me/tips"),
    ("GET", "/v1/creators/me/cashouts"),
    ("GET", "/v1/creators/me/earnings/daily"),
    ("GET", "/v1/creators/me/supporters"),
    ("POST", "/v1/creators/me/payouts/dashboard"),
    ("GET", "/studio"),
    ("GET", "/marketplace"),
    ("GET", "/brand"),
    ("GET", "/videos/{video}"),
    ("PUT", "/v1/creators/{creator}/followers/me"),
    ("DELETE", "/v1/creators/{creator}/followers/me"),
    ("GET", "/v1/creators/{creator}"),
    ("GET", "/v1/creators/{creator}/followers"),
    ("GET", "/v1/users/me/following"),
    ("POST", "/v1/admin/followers/import"),
    ("DELETE", "/v1/admin/followers/import"),
    ("GET", "/v1/creators/me/moderation/settings"),
    ("PUT", "/v1/creators/me/moderation/settings"),
    ("GET", "/v1/creators/me/moderation/words"),
    ("PUT", "/v1/creators/me/moderation/words"),
    ("GET", "/v1/creators/me/messages"),
    ("GET", "/v1/creators/{creator}/messages"),
    ("POST", "/v1/creators/me/messages/{id}/approve"),
    ("POST", "/v1/creators/me/messages/{id}/reject"),
    ("POST", "/v1/creators/{creator}/messages/{id}/approve"),
    ("POST", "/v1/creators/{creator}/messages/{id}/reject"),
    ("PUT", "/v1/creators/me/blocks/{user}"),
    ("DELETE", "/v1/creators/me/blocks/{user}"),
    ("GET", "/v1/creators/me/blocks"),
    ("PUT", "/v1/creators/{creator}/blocks/{user}"),
    ("DELETE", "/v1/creators/{creator}/blocks/{user}"),
    ("PUT", "/v1/creators/me/moderators/{user}"),
    ("DELETE", "/v1/creators/me/moderators/{user}"),
    ("GET", "/v1/creators/me/moderators"),
    ("GET", "/v1/users/me/moderating"),
    ("GET", "/v1/creators/me/moderation/audit"),
    ("PUT", "/v1/brands/me"),
    ("GET", "/v1/brands/me"),
    ("GET", "/v1/brands/{brand}"),
    ("POST", "/v1/brands/me/campaigns"),
    ("GET", "/v1/brands/me/campaigns"),
    ("GET", "/v1/brands/me/campaigns/{campaign}"),
    ("PUT", "/v1/brands/me/campaigns/{campaign}"),
    ("POST", "/v1/brands/me/campaigns/{campaign}/publish"),
    ("POST", "/v1/brands/me/campaigns/{campaign}/close"),
    ("GET", "/v1/brands/me/campaigns/{campaign}/applications"),
    ("POST", "/v1/brands/me/campaigns/{campaign}/invitations"),
    ("POST", "/v1/brands/me/applications/{application}/accept"),
    ("POST", "/v1/brands/me/applications/{application}/decline"),
    ("PUT", "/v1/marketplace/creators/me"),
    ("GET", "/v1/marketplace/creators/me"),
    ("POST", "/v1/marketplace/creators/me"),
    ("GET", "/v1/marketplace/creators/{creator}"),
    ("GET", "/v1/marketplace/campaigns"),
    ("POST", "/v1/marketplace/campaigns/{campaign}/applications"),
    ("GET", "/v1/marketplace/applications"),
    ("GET", "/v1/marketplace/contracts"),
    (
        "POST",
        "/v1/marketplace/applications/{application}/withdraw",
    ),
    ("GET", "/v1/brands/me/contracts"),
    ("GET", "/v1/brands/me/contracts/{contract}"),
    ("POST", "/v1/brands/me/contracts/{contract}/payment"),
    ("POST", "/v1/brands/me/contracts/{contract}/approve"),
    ("POST", "/v1/brands/me/contracts/{contract}/reject"),
    ("POST", "/v1/brands/me/contracts/{contract}/cancel"),
    ("GET", "/v1/marketplace/contracts/{contract}"),
    ("POST", "/v1/marketplace/contracts/{contract}/deliverable"),
    ("POST", "/v1/marketplace/contracts/{contract}/cancel"),
];

/// The handler of one entry of [`ROUTES`], answering only that method.
///
/// # Panics
/// On an entry without a handler here or with a method other than GET,
/// POST, PUT or DELETE: a programming error, met by the first server start.
fn endpoint(method: &str, path: &str, state: &AppState) -> MethodRouter<Shared> {
    let filter = match method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
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
        ("POST", "/v1/videos") => on(filter, videos::register_video),
        ("POST", "/v1/videos/{video}/gifts") => on(filter, videos::video_gift),
        ("GET", "/v1/videos/{video}") => on(filter, videos::video_page),
        ("GET", "/v1/creators/{creator}/videos") => on(filter, videos::creator_videos),
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
        ("POST", "/v1/creators/me/webhooks") => on(filter, webhooks::create),
        ("GET", "/v1/creators/me/webhooks") => on(filter, webhooks::list),
        ("DELETE", "/v1/creators/me/webhooks/{id}") => on(filter, webhooks::delete),
        ("GET", "/v1/creators/me/webhooks/{id}/deliveries") => on(filter, webhooks::deliveries),
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
        ("GET", "/v1/creators/me/gifts") => on(filter, studio::gifts),
        ("GET", "/v1/creators/me/tips") => on(filter, studio::tips),
        ("GET", "/v1/creators/me/cashouts") => on(filter, studio::cashouts),
        ("GET", "/v1/creators/me/earnings/daily") => on(filter, studio::daily),
        ("GET", "/v1/creators/me/supporters") => on(filter, studio::supporters),
        ("POST", "/v1/creators/me/payouts/dashboard") => on(filter, studio::payouts_dashboard),
        ("GET", "/studio") => on(filter, pages::studio),
        ("GET", "/marketplace") => on(filter, pages::marketplace),
        ("GET", "/brand") => on(filter, pages::brand),
        ("GET", "/videos/{video}") => on(filter, pages::video),
        ("PUT", "/v1/creators/{creator}/followers/me") => on(filter, follows::follow),
        ("DELETE", "/v1/creators/{creator}/followers/me") => on(filter, follows::unfollow),
        ("GET", "/v1/creators/{creator}") => on(filter, follows::profile),
        ("GET", "/v1/creators/{creator}/followers") => on(filter, follows::followers),
        ("GET", "/v1/users/me/following") => on(filter, follows::following),
        // An import carries up to `marketplace.import_batch_max` lines:
        // these routes have their own body bound.
        ("POST" | "DELETE", "/v1/admin/followers/import") => {
            let bound = axum::extract::DefaultBodyLimit::max(
                state.cfg.marketplace.import_batch_max * follows::IMPORT_LINE_LEN_MAX,
            );
            if method == "POST" {
                on(filter, follows::import).layer(bound)
            } else {
                on(filter, follows::delete_import).layer(bound)
            }
        }
        ("GET", "/v1/creators/me/moderation/settings") => on(filter, moderation::settings_get),
        ("PUT", "/v1/creators/me/moderation/settings") => on(filter, moderation::settings_put),
        ("GET", "/v1/creators/me/moderation/words") => on(filter, moderation::words_get),
        ("PUT", "/v1/creators/me/moderation/words") => on(filter, moderation::words_put),
        ("GET", "/v1/creators/me/messages") => on(filter, moderation::messages_me),
        ("GET", "/v1/creators/{creator}/messages") => on(filter, moderation::messages_of),
        ("POST", "/v1/creators/me/messages/{id}/approve") => on(filter, moderation::approve_me),
        ("POST", "/v1/creators/me/messages/{id}/reject") => on(filter, moderation::reject_me),
        ("POST", "/v1/creators/{creator}/messages/{id}/approve") => {
            on(filter, moderation::approve_of)
        }
        ("POST", "/v1/creators/{creator}/messages/{id}/reject") => {
            on(filter, moderation::reject_of)
        }
        ("PUT", "/v1/creators/me/blocks/{user}") => on(filter, blocks::block_me),
        ("DELETE", "/v1/creators/me/blocks/{user}") => on(filter, blocks::unblock_me),
        ("GET", "/v1/creators/me/blocks") => on(filter, blocks::blocks),
        ("PUT", "/v1/creators/{creator}/blocks/{user}") => on(filter, blocks::block_for),
        ("DELETE", "/v1/creators/{creator}/blocks/{user}") => on(filter, blocks::unblock_for),
        ("PUT", "/v1/creators/me/moderators/{user}") => on(filter, blocks::moderator_add),
        ("DELETE", "/v1/creators/me/moderators/{user}") => on(filter, blocks::moderator_remove),
        ("GET", "/v1/creators/me/moderators") => on(filter, blocks::moderators),
        ("GET", "/v1/users/me/moderating") => on(filter, blocks::moderating),
        ("GET", "/v1/creators/me/moderation/audit") => on(filter, blocks::audit),
        ("PUT", "/v1/brands/me") => on(filter, brands::put_me),
        ("GET", "/v1/brands/me") => on(filter, brands::get_me),
        ("GET", "/v1/brands/{brand}") => on(filter, brands::brand),
        ("POST", "/v1/brands/me/campaigns") => on(filter, brands::create),
        ("GET", "/v1/brands/me/campaigns") => on(filter, brands::list),
        ("GET", "/v1/brands/me/campaigns/{campaign}") => on(filter, brands::get),
        ("PUT", "/v1/brands/me/campaigns/{campaign}") => on(filter, brands::edit),
        ("POST", "/v1/brands/me/campaigns/{campaign}/publish") => on(filter, brands::publish),
        ("POST", "/v1/brands/me/campaigns/{campaign}/close") => on(filter, brands::close),
        ("GET", "/v1/brands/me/campaigns/{campaign}/applications") => {
            on(filter, brands::applicants)
        }
        ("POST", "/v1/brands/me/campaigns/{campaign}/invitations") => on(filter, brands::invite),
        ("POST", "/v1/brands/me/applications/{application}/accept") => on(filter, brands::accept),
        ("POST", "/v1/brands/me/applications/{application}/decline") => on(filter, brands::decline),
        ("PUT", "/v1/marketplace/creators/me") => on(filter, marketplace::put_me),
        ("GET", "/v1/marketplace/creators/me") => on(filter, marketplace::get_me),
        ("POST", "/v1/marketplace/creators/me") => on(filter, marketplace::join),
        ("GET", "/v1/marketplace/creators/{creator}") => on(filter, marketplace::creator),
        ("GET", "/v1/marketplace/campaigns") => on(filter, marketplace::open_campaigns),
        ("POST", "/v1/marketplace/campaigns/{campaign}/applications") => {
            on(filter, marketplace::apply)
        }
        ("GET", "/v1/marketplace/applications") => on(filter, marketplace::my_applications),
        ("GET", "/v1/marketplace/contracts") => on(filter, marketplace::my_contracts),
        ("POST", "/v1/marketplace/applications/{application}/withdraw") => {
            on(filter, marketplace::withdraw)
        }
        ("GET", "/v1/brands/me/contracts") => on(filter, contracts::brand_list),
        ("GET", "/v1/brands/me/contracts/{contract}") => on(filter, contracts::brand_get),
        ("POST", "/v1/brands/me/contracts/{contract}/payment") => on(filter, contracts::payment),
        ("POST", "/v1/brands/me/contracts/{contract}/approve") => on(filter, contracts::approve),
        ("POST", "/v1/brands/me/contracts/{contract}/reject") => on(filter, contracts::reject),
        ("POST", "/v1/brands/me/contracts/{contract}/cancel") => {
            on(filter, contracts::brand_cancel)
        }
        ("GET", "/v1/marketplace/contracts/{contract}") => on(filter, contracts::creator_get),
        ("POST", "/v1/marketplace/contracts/{contract}/deliverable") => {
            on(filter, contracts::deliverable)
        }
        ("POST", "/v1/marketplace/contracts/{contract}/cancel") => {
            on(filter, contracts::creator_cancel)
        }
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

async fn prometheus(State(state): State<Shared>) -> Response {
    if let Ok(n) = state.counters.pending_len().await {
        metrics::gauge!("giftstream_pending_gifts").set(n as f64);
    }
    if let Ok(Some(n)) = state.counters.remembered_len().await {
        metrics::gauge!("giftstream_idempotency_ids").set(n as f64);
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

//! Configuration: TOML files in `config/` plus `GIFTSTREAM_<SECTION>__<KEY>`
//! environment overrides, validated once at start.
//!
//! Owns: [`Config`] and its sections, their defaults (which equal
//! `config/default.toml`), loading through figment, and validation with an
//! error that names the bad key.
//! Must not: open connections or files other than the config file itself.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

mod pages;
pub use pages::PagesConfig;

/// The secret shipped in `config/default.toml`; fine on a laptop, refused by
/// `production.toml` (which requires the env override).
pub const DEV_JWT_SECRET: &str = "giftstream-dev-secret-change-me-in-production";

/// The top-level sections; environment variables outside them are ignored.
pub const SECTIONS: [&str; 13] = [
    "http",
    "auth",
    "counters",
    "ledger",
    "settlement",
    "hub",
    "gift",
    "catalog",
    "stripe",
    "payouts",
    "admin",
    "limits",
    "pages",
];

/// Everything the binary can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP and WebSocket listener.
    pub http: HttpConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// The counters engine: wallets, room seq, pending credits, fan-out.
    pub counters: CountersConfig,
    /// The durable ledger.
    pub ledger: LedgerConfig,
    /// The settlement worker.
    pub settlement: SettlementConfig,
    /// The WebSocket hub.
    pub hub: HubConfig,
    /// Gift behaviour.
    pub gift: GiftConfig,
    /// The gift catalog.
    pub catalog: CatalogConfig,
    /// Payments through Stripe (off while `secret_key` is empty).
    pub stripe: StripeConfig,
    /// The hold on settled diamonds and the cash-out limits.
    pub payouts: PayoutsConfig,
    /// Limits on admin operations.
    pub admin: AdminConfig,
    /// Per-user limits on what costs the platform (rooms, videos,
    /// PaymentIntents).
    pub limits: LimitsConfig,
    /// The browser pages and their session cookies.
    pub pages: PagesConfig,
}

/// `[payouts]`: when diamonds become cashable, and how much a creator may
/// cash out per day (money-laundering and stolen-card limits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PayoutsConfig {
    /// Settled diamonds become cashable this long after settlement, s
    /// (a refund or dispute of the coins claws them back meanwhile).
    pub hold_s: u64,
    /// Cash-outs per creator in any 24 hours, at most.
    pub cashouts_per_day_max: u32,
    /// Cents cashed out per creator in any 24 hours, at most.
    pub cashout_cents_per_day_max: i64,
}

impl Default for PayoutsConfig {
    fn default() -> Self {
        PayoutsConfig {
            hold_s: 604_800,
            cashouts_per_day_max: 5,
            cashout_cents_per_day_max: 1_000_000,
        }
    }
}

impl PayoutsConfig {
    /// The limits the ledger enforces.
    pub fn limits(&self) -> crate::model::PayoutLimits {
        crate::model::PayoutLimits {
            hold_ms: (self.hold_s as i64).saturating_mul(1000),
            cashouts_per_day_max: i64::from(self.cashouts_per_day_max),
            cashout_cents_per_day_max: self.cashout_cents_per_day_max,
        }
    }
}

/// `[admin]`: limits on what one admin may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Coins one admin may grant in any 24 hours (rolling), at most;
    /// beyond, `POST /v1/admin/grants` answers `rate_limited`.
    pub grant_coins_per_day_max: i64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            grant_coins_per_day_max: 1_000_000,
        }
    }
}

/// `[limits]`: per user, answered 429 `rate_limited` beyond. The hourly
/// counts are fixed one-hour windows in the counters engine (shared by
/// every node on Redis); each request counts, refused or replayed ones too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// `POST /v1/rooms` per creator per hour.
    pub rooms_per_hour_max: u64,
    /// `POST /v1/videos` per creator per hour.
    pub videos_per_hour_max: u64,
    /// Rooms of one creator live at once (read from the ledger); opening
    /// another is refused, re-opening a live one is not.
    pub live_rooms_per_creator_max: u64,
    /// PaymentIntents (coin purchases and tips together) per user per hour.
    pub payment_intents_per_hour_max: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            rooms_per_hour_max: 20,
            videos_per_hour_max: 60,
            live_rooms_per_creator_max: 3,
            payment_intents_per_hour_max: 30,
        }
    }
}

/// A coin package for sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoinPackage {
    /// Package id clients name in a purchase.
    pub id: String,
    /// Coins credited.
    pub coins: i64,
    /// Price in cents.
    pub price_cents: i64,
    /// ISO currency, lower case (only `usd` is supported).
    pub currency: String,
}

/// `[stripe]`: payments (coin purchases, tips, creator cash-outs).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StripeConfig {
    /// Secret API key (`sk_test_...`); empty turns payments off. Prefer
    /// `GIFTSTREAM_STRIPE__SECRET_KEY`.
    pub secret_key: String,
    /// Webhook signing secret (`whsec_...`); prefer
    /// `GIFTSTREAM_STRIPE__WEBHOOK_SECRET`.
    pub webhook_secret: String,
    /// Stripe API base URL (tests point it at a local fake).
    pub api_base_url: String,
    /// Oldest webhook signature timestamp accepted, seconds (1..=300:
    /// async-stripe-webhook's own bound is 300).
    pub webhook_tolerance_s: u64,
    /// Largest webhook body accepted, bytes.
    pub webhook_body_len_max: usize,
    /// Timeout of one Stripe API request, ms.
    pub request_timeout_ms: u64,
    /// Retries of one Stripe API request on a network error or 5xx (same
    /// Idempotency-Key), at most.
    pub retry_len_max: u32,
    /// Pause before a retry, ms (doubles each time).
    pub retry_backoff_ms: u64,
    /// Pending cash-outs retried per pass (at start, then every
    /// `cashout_retry_interval_ms`), at most.
    pub recover_cashouts_len_max: usize,
    /// Pause between two passes over pending cash-outs, ms.
    pub cashout_retry_interval_ms: u64,
    /// After a pass fails for one pending cash-out, recovery leaves it
    /// alone this long, ms (doubling with each failure in a row).
    pub cashout_retry_backoff_ms: u64,
    /// Longest pause of one pending cash-out's backoff, ms.
    pub cashout_retry_backoff_ms_max: u64,
    /// A pending Transfer whose current attempt was first sent longer ago
    /// than this, seconds, is looked up at Stripe (by its transfer_group)
    /// before any retry: Stripe keeps Idempotency-Keys for 24 hours only,
    /// so this must be below 86400.
    pub transfer_lookup_after_s: u64,
    /// Coin packages for sale.
    pub packages: Vec<CoinPackage>,
    /// Currency of tips and cash-outs, lower case (only `usd`).
    pub currency: String,
    /// Cents paid for 100 diamonds at cash-out (50 = $0.005 a diamond).
    pub cashout_cents_per_100_diamonds: i64,
    /// Fewest diamonds in one cash-out.
    pub cashout_diamonds_min: i64,
    /// Smallest tip, cents.
    pub tip_cents_min: i64,
    /// Largest tip, cents.
    pub tip_cents_max: i64,
    /// Longest tip message, characters.
    pub tip_message_len_max: usize,
    /// Where Stripe sends a creator back after onboarding.
    pub onboard_return_url: String,
    /// Where Stripe sends a creator whose onboarding link expired.
    pub onboard_refresh_url: String,
    /// Where the pages load Stripe.js from (tests: localstripe's
    /// `/js.stripe.com/v3/`); its origin is allowed by the pages' CSP.
    pub js_url: String,
    /// Publishable key (`pk_...`) the pages give Stripe.js; empty: the
    /// pages offer no payment (buying coins, paying tips).
    pub publishable_key: String,
}

impl Default for StripeConfig {
    fn default() -> Self {
        StripeConfig {
            secret_key: String::new(),
            webhook_secret: String::new(),
            api_base_url: "https://api.stripe.com".into(),
            webhook_tolerance_s: 300,
            webhook_body_len_max: 256 * 1024,
            request_timeout_ms: 10_000,
            retry_len_max: 2,
            retry_backoff_ms: 200,
            recover_cashouts_len_max: 1000,
            cashout_retry_interval_ms: 600_000,
            cashout_retry_backoff_ms: 60_000,
            cashout_retry_backoff_ms_max: 3_600_000,
            transfer_lookup_after_s: 3600,
            packages: vec![
                CoinPackage {
                    id: "coins_70".into(),
                    coins: 70,
                    price_cents: 99,
                    currency: "usd".into(),
                },
                CoinPackage {
                    id: "coins_350".into(),
                    coins: 350,
                    price_cents: 499,
                    currency: "usd".into(),
                },
                CoinPackage {
                    id: "coins_1400".into(),
                    coins: 1400,
                    price_cents: 1999,
                    currency: "usd".into(),
                },
            ],
            currency: "usd".into(),
            cashout_cents_per_100_diamonds: 50,
            cashout_diamonds_min: 1000,
            tip_cents_min: 100,
            tip_cents_max: 50_000,
            tip_message_len_max: 150,
            onboard_return_url: "http://127.0.0.1:8080/".into(),
            onboard_refresh_url: "http://127.0.0.1:8080/".into(),
            js_url: "https://js.stripe.com/v3/".into(),
            publishable_key: String::new(),
        }
    }
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted_debug(
            f,
            "StripeConfig",
            self,
            &["secret_key", "webhook_secret"],
            &["api_base_url"],
        )
    }
}

impl fmt::Debug for CountersConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted_debug(f, "CountersConfig", self, &[], &["url"])
    }
}

impl fmt::Debug for LedgerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted_debug(f, "LedgerConfig", self, &[], &["url"])
    }
}

impl StripeConfig {
    /// Whether payments are on (a secret key is set).
    pub fn enabled(&self) -> bool {
        !self.secret_key.is_empty()
    }
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest HTTP request body.
    pub body_len_max: usize,
    /// A client must send a request's whole head (request line and
    /// headers) within this long of the server starting to wait for it,
    /// or the connection is closed; it also bounds how long an idle
    /// keep-alive connection stays open, ms.
    pub header_read_timeout_ms: u64,
    /// An HTTP route must answer within this long, else the request is
    /// answered 503 (`outcome_unknown` for a method that changes state,
    /// `internal` for GET/HEAD), ms. `/v1/ws` has `hub.handshake_timeout_ms`.
    pub request_timeout_ms: u64,
    /// Empty: a client's IP (for `hub.connections_per_ip_max`) is the TCP
    /// peer's. Behind a load balancer: the header that balancer appends,
    /// e.g. `X-Forwarded-For`; the right-most entry of its last occurrence
    /// is used (the one the trusted proxy wrote). Set it only when every
    /// request reaches giftstream through that proxy: otherwise clients can
    /// write the header themselves.
    pub client_ip_header: String,
    /// Where `/metrics` is served (its own listener; keep it on loopback or
    /// a private network). Empty: no metrics listener. `/metrics` is never
    /// served on `http.listen`.
    pub metrics_listen: String,
    /// The overlay page's CSP `frame-ancestors` sources (who may embed it in
    /// a frame), e.g. `'none'` or `https://studio.example.com`.
    pub overlay_frame_ancestors: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_len_max: 16 * 1024,
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 60_000,
            client_ip_header: String::new(),
            metrics_listen: "127.0.0.1:9464".into(),
            overlay_frame_ancestors: "'none'".into(),
        }
    }
}

/// `[auth]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 secret (env `GIFTSTREAM_AUTH__JWT_SECRET`): mints and
    /// verifies. Empty turns HS256 off (then `public_keys_path` is
    /// required and this server mints nothing).
    pub jwt_secret: String,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway_s: u64,
    /// Refuse the development secret and secrets under 32 bytes even for
    /// `serve --demo` (plain `serve` and payments always refuse them).
    pub require_strong_secret: bool,
    /// When set (at least 32 bytes, env `GIFTSTREAM_AUTH__ADMIN_JWT_SECRET`),
    /// admin tokens are accepted only when signed with it (HS256), and it
    /// verifies admin tokens only.
    pub admin_jwt_secret: String,
    /// A PEM file (one or more `PUBLIC KEY` blocks) or a JWKS file of the
    /// host platform's public keys (RS256, ES256, EdDSA; a token's `kid`
    /// picks the key when both carry one). giftstream verifies with them,
    /// never mints. Empty: none.
    pub public_keys_path: String,
    /// When set, tokens must carry this `aud`; empty: `aud` is not checked.
    pub audience: String,
    /// When set, tokens must carry this `iss`; empty: `iss` is not checked.
    pub issuer: String,
    /// Longest token lifetime accepted, seconds: `exp - iat`, or `exp -
    /// now` for a token without `iat` (or with one in the future). 0: no
    /// bound.
    pub token_lifetime_s_max: u64,
    /// Lifetime of the overlay tokens giftstream mints (`POST
    /// /v1/creators/me/overlay-tokens`, the demo banner), seconds.
    pub overlay_token_ttl_s: u64,
    /// Prefix of the overlay URL answered with an overlay token, e.g.
    /// `https://gifts.example.com`; empty: the URL is a path
    /// (`/overlay/ROOM?token=...`).
    pub overlay_url_base: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: DEV_JWT_SECRET.to_string(),
            leeway_s: 5,
            require_strong_secret: false,
            admin_jwt_secret: String::new(),
            public_keys_path: String::new(),
            audience: String::new(),
            issuer: String::new(),
            token_lifetime_s_max: 7 * 86_400,
            overlay_token_ttl_s: 86_400,
            overlay_url_base: String::new(),
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted_debug(
            f,
            "AuthConfig",
            self,
            &["jwt_secret", "admin_jwt_secret"],
            &[],
        )
    }
}

/// The minimum length of a secret `serve` accepts, bytes.
pub const JWT_SECRET_LEN_MIN: usize = 32;

/// Why `secret` is too weak to serve with, if it is.
fn weak_secret(secret: &str) -> Option<&'static str> {
    if secret == DEV_JWT_SECRET {
        Some("the public development secret")
    } else if secret.len() < JWT_SECRET_LEN_MIN {
        Some("shorter than 32 bytes")
    } else {
        None
    }
}

/// `Debug` of a config section through its serialized form, with the
/// values of `secrets` replaced (when set) and the passwords of the URLs
/// in `urls` hidden: sections may grow fields without leaking new ones
/// the derive would print.
fn redacted_debug<T: Serialize>(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    v: &T,
    secrets: &[&str],
    urls: &[&str],
) -> fmt::Result {
    let mut j = serde_json::to_value(v).map_err(|_| fmt::Error)?;
    if let Some(m) = j.as_object_mut() {
        for k in secrets {
            if let Some(x) = m.get_mut(*k) {
                if x.as_str().is_some_and(|s| !s.is_empty()) {
                    *x = serde_json::Value::String("<redacted>".into());
                }
            }
        }
        for k in urls {
            if let Some(x) = m.get_mut(*k) {
                if let Some(s) = x.as_str() {
                    *x = serde_json::Value::String(redact_url(s));
                }
            }
        }
    }
    write!(f, "{name} {j}")
}

/// `url` with its password (userinfo after `:`, or a `password=` query
/// value) replaced by `<redacted>`: safe for logs and errors.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let auth_start = scheme_end + 3;
        let auth_end = out[auth_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| auth_start + i);
        if let Some(at) = out[auth_start..auth_end].rfind('@') {
            let userinfo = &out[auth_start..auth_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(auth_start + colon + 1..auth_start + at, "<redacted>");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("pass") => {
                    format!("{k}=<redacted>")
                }
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

/// `[counters]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CountersConfig {
    /// `memory` or `redis://host:port/db`.
    pub url: String,
    /// How long a gift's client id is remembered, seconds (Stripe: 24 h).
    pub idempotency_ttl_s: u64,
    /// Client ids remembered per wallet at most (oldest forgotten first).
    pub idempotency_keys_per_wallet_max: usize,
    /// Accepted gifts waiting for settlement at most; beyond, gifts are
    /// refused with `rate_limited` until the settlement worker catches up.
    pub pending_len_max: usize,
    /// Combo streak window, ms (TikTok's streaks: about 3 s).
    pub combo_window_ms: u64,
    /// Redis: connect and reply timeout, ms. A gift whose reply is late
    /// fails with `internal` and is never re-sent by the engine (the
    /// client retries with the same id, which is idempotent).
    pub redis_timeout_ms: u64,
    /// Redis: longest pause between pub/sub reconnect attempts, ms.
    pub redis_reconnect_ms_max: u64,
    /// Redis: wallets `giftstream reconcile` compares at most.
    pub reconcile_wallets_max: usize,
    /// Redis: room messages received and not yet handed to the hub, at
    /// most; past it a message is dropped and every subscribed room is
    /// caught up from its history stream (no event is lost to viewers).
    pub relay_queue_len_max: usize,
    /// Redis: a node's viewer count of a room counts for this long after
    /// the node last refreshed it (every `hub.stats_interval_ms`), ms; a
    /// dead node's viewers age out after it.
    pub viewers_ttl_ms: u64,
}

impl Default for CountersConfig {
    fn default() -> Self {
        CountersConfig {
            url: "memory".into(),
            idempotency_ttl_s: 24 * 3600,
            idempotency_keys_per_wallet_max: 100_000,
            pending_len_max: 200_000,
            combo_window_ms: 3000,
            redis_timeout_ms: 5000,
            redis_reconnect_ms_max: 5000,
            reconcile_wallets_max: 10_000_000,
            relay_queue_len_max: 65_536,
            viewers_ttl_ms: 5000,
        }
    }
}

/// `[ledger]`
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// `sqlite://PATH`, `sqlite::memory:` or `postgres://...`.
    pub url: String,
    /// Database connections at most.
    pub pool_len_max: u32,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            url: "sqlite://data/giftstream.db".into(),
            pool_len_max: 4,
        }
    }
}

/// `[settlement]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SettlementConfig {
    /// Flush at least this often, ms.
    pub flush_interval_ms: u64,
    /// Gifts per batch at most; reaching it triggers a flush early.
    pub batch_len_max: usize,
    /// Attempts to commit one batch before the worker gives up (fail-stop).
    pub retry_len_max: u32,
    /// Longest pause between attempts, ms (exponential from 10 ms).
    pub retry_backoff_ms_max: u64,
    /// Redis: a pending gift another worker took but has not settled for
    /// this long is claimed by this worker (`XAUTOCLAIM`), ms.
    pub claim_idle_ms: u64,
}

impl Default for SettlementConfig {
    fn default() -> Self {
        SettlementConfig {
            flush_interval_ms: 100,
            batch_len_max: 2000,
            retry_len_max: 60,
            retry_backoff_ms_max: 1000,
            claim_idle_ms: 30_000,
        }
    }
}

/// `[hub]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// Frames queued for one viewer at most; beyond, events are skipped.
    pub viewer_queue_len_max: usize,
    /// Frames queued for a room's own creator at most; beyond, the creator
    /// is disconnected (1013) and resumes from its last seq: never skipped.
    pub creator_queue_len_max: usize,
    /// Events skipped for one viewer before it is disconnected (1008).
    pub viewer_skipped_max: u64,
    /// Largest client frame answered normally; larger gets `bad_request`.
    pub frame_len_max: usize,
    /// Largest client frame read at all; larger closes the socket (1009).
    pub frame_close_len_max: usize,
    /// Frames the writer feeds before one flush.
    pub write_batch_len_max: usize,
    /// WebSocket read buffer, bytes. Allocated up front per socket, so it
    /// is kept small; it grows on demand for a larger frame.
    pub read_buffer_len: usize,
    /// Frames accumulate up to this many bytes before they are written, so
    /// the writer's batch (see `write_batch_len_max`) costs one syscall.
    /// Memory follows the largest batch actually written, not this number.
    pub write_buffer_len: usize,
    /// Hard cap on the WebSocket write buffer, bytes.
    pub write_buffer_len_max: usize,
    /// Rooms one socket may join.
    pub rooms_per_socket_max: usize,
    /// Open WebSocket connections at most.
    pub connections_max: usize,
    /// Events a room task may have waiting at most.
    pub room_queue_len_max: usize,
    /// Events kept per room for `resume`.
    pub history_len_max: usize,
    /// Oldest event kept for `resume`, ms.
    pub history_age_ms_max: u64,
    /// Time to deliver a close frame before dropping the socket, ms.
    pub close_timeout_ms: u64,
    /// Graceful shutdown waits this long at most for every socket's task
    /// to end (each has `hub.close_timeout_ms` for its close frame) and for
    /// the cash-out recovery round in progress; then it settles anyway, ms.
    /// At least `hub.close_timeout_ms`.
    pub shutdown_ms_max: u64,
    /// Kernel send buffer per socket, bytes (0: the OS default, which
    /// autotunes up to megabytes; a small cap bounds memory per viewer and
    /// makes a stalled viewer show up in its queue sooner).
    pub socket_send_buffer_len: usize,
    /// `room_stats` is sent at most this often, and only when changed, ms.
    pub stats_interval_ms: u64,
    /// Coalescing viewers get at most one update per combo per step, ms.
    pub coalesce_interval_ms: u64,
    /// A viewer whose queue overflowed is told `skipped` before its next
    /// event; when no event follows (the live went quiet), the room tries
    /// again this often until the note fits, ms.
    pub skipped_note_retry_ms: u64,
    /// Gifters tracked per live for the top list (smallest evicted first).
    pub room_gifters_max: usize,
    /// Redis engine: a room with no viewer on this node for this long stops
    /// (its sharded subscription is dropped), ms.
    pub room_linger_ms: u64,
    /// Client messages per second one socket may send (token bucket with a
    /// one-second burst); beyond, each message gets `rate_limited`.
    pub socket_msgs_per_s_max: u32,
    /// The `/v1/ws` upgrade request must be answered (101 or an error)
    /// within this long once its head is read, ms; the head itself is
    /// bounded by `http.header_read_timeout_ms`, the socket after the
    /// upgrade by `hub.idle_timeout_ms`.
    pub handshake_timeout_ms: u64,
    /// The server pings each socket this often, ms.
    pub ping_interval_ms: u64,
    /// A socket from which nothing (no pong, no frame) arrived for this
    /// long is closed with 1001, ms. Above `hub.ping_interval_ms`.
    pub idle_timeout_ms: u64,
    /// Open sockets per client IP at most (see `http.client_ip_header`);
    /// beyond, the upgrade is answered 429 `rate_limited`.
    pub connections_per_ip_max: usize,
    /// Open sockets per user at most; beyond, 429 `rate_limited`.
    pub connections_per_user_max: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            viewer_queue_len_max: 256,
            creator_queue_len_max: 4096,
            viewer_skipped_max: 10_000,
            frame_len_max: 4096,
            frame_close_len_max: 65_536,
            write_batch_len_max: 64,
            read_buffer_len: 256,
            write_buffer_len: 16 * 1024,
            write_buffer_len_max: 256 * 1024,
            rooms_per_socket_max: 8,
            connections_max: 100_000,
            room_queue_len_max: 8192,
            history_len_max: 2048,
            history_age_ms_max: 10 * 60 * 1000,
            close_timeout_ms: 1000,
            shutdown_ms_max: 5000,
            socket_send_buffer_len: 0,
            stats_interval_ms: 1000,
            coalesce_interval_ms: 500,
            skipped_note_retry_ms: 100,
            room_gifters_max: 100_000,
            room_linger_ms: 5000,
            socket_msgs_per_s_max: 1000,
            handshake_timeout_ms: 10_000,
            ping_interval_ms: 30_000,
            idle_timeout_ms: 75_000,
            connections_per_ip_max: 1000,
            connections_per_user_max: 16,
        }
    }
}

/// When a gift is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckMode {
    /// As soon as the counters engine accepted it; a crash before the next
    /// flush loses the gift whole (debit and credit together).
    Counter,
    /// After the batch holding it is committed to the ledger.
    Ledger,
}

/// `[gift]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GiftConfig {
    /// `counter` or `ledger`.
    pub ack: AckMode,
    /// How long an ack may wait for its ledger commit, ms (ledger mode).
    pub ack_timeout_ms: u64,
    /// How long a gift may wait for room in a full pending queue or room
    /// queue before it is refused with `rate_limited`, ms. While it waits,
    /// that socket's further frames wait in TCP: back-pressure instead of
    /// a refusal the client would only retry. 0 refuses at once.
    pub busy_wait_ms_max: u64,
}

impl Default for GiftConfig {
    fn default() -> Self {
        GiftConfig {
            ack: AckMode::Counter,
            ack_timeout_ms: 10_000,
            busy_wait_ms_max: 1_000,
        }
    }
}

/// `[catalog]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// Path of a catalog TOML; empty means the catalog built into the
    /// binary (a copy of `config/catalog.toml`).
    pub path: String,
}

/// A configuration error that names the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}`: {message}")]
pub struct ConfigError {
    /// Dotted key, e.g. `settlement.batch_len_max`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl Config {
    /// Timeouts, connection caps and the HTTP surface (`http.*`, the
    /// socket keys of `hub.*`).
    fn validate_net(&self) -> Result<(), ConfigError> {
        fn bad(key: &str, message: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError {
                key: key.into(),
                message: message.into(),
            })
        }
        let positive: [(&str, u64); 12] = [
            ("limits.rooms_per_hour_max", self.limits.rooms_per_hour_max),
            (
                "limits.videos_per_hour_max",
                self.limits.videos_per_hour_max,
            ),
            (
                "limits.live_rooms_per_creator_max",
                self.limits.live_rooms_per_creator_max,
            ),
            (
                "limits.payment_intents_per_hour_max",
                self.limits.payment_intents_per_hour_max,
            ),
            (
                "http.header_read_timeout_ms",
                self.http.header_read_timeout_ms,
            ),
            ("http.request_timeout_ms", self.http.request_timeout_ms),
            ("hub.handshake_timeout_ms", self.hub.handshake_timeout_ms),
            ("hub.ping_interval_ms", self.hub.ping_interval_ms),
            ("hub.idle_timeout_ms", self.hub.idle_timeout_ms),
            ("hub.shutdown_ms_max", self.hub.shutdown_ms_max),
            (
                "hub.connections_per_ip_max",
                self.hub.connections_per_ip_max as u64,
            ),
            (
                "hub.connections_per_user_max",
                self.hub.connections_per_user_max as u64,
            ),
        ];
        for (key, v) in positive {
            if v == 0 {
                return bad(key, "must be greater than 0");
            }
        }
        if self.hub.idle_timeout_ms <= self.hub.ping_interval_ms {
            return bad(
                "hub.idle_timeout_ms",
                "must exceed hub.ping_interval_ms (a pong needs time to come back)",
            );
        }
        if self.hub.shutdown_ms_max < self.hub.close_timeout_ms {
            return bad(
                "hub.shutdown_ms_max",
                "must be at least hub.close_timeout_ms (each socket gets that long to close)",
            );
        }
        let h = &self.http.client_ip_header;
        if !h.is_empty() && axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            return bad("http.client_ip_header", "not a valid header name");
        }
        let m = &self.http.metrics_listen;
        if !m.is_empty() && m.parse::<SocketAddr>().is_err() {
            return bad(
                "http.metrics_listen",
                "expected IP:PORT (e.g. 127.0.0.1:9464) or empty for none",
            );
        }
        let fa = self.http.overlay_frame_ancestors.trim();
        if fa.is_empty()
            || fa
                .chars()
                .any(|c| c == ';' || c == ',' || c.is_control() || !c.is_ascii())
        {
            return bad(
                "http.overlay_frame_ancestors",
                "expected CSP sources separated by spaces (e.g. 'none' or https://example.com)",
            );
        }
        Ok(())
    }

    /// Defaults, then the TOML file (if given), then `GIFTSTREAM_*` env vars.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError {
                    key: "--config".into(),
                    message: format!("file {} does not exist", path.display()),
                });
            }
            fig = fig.merge(Toml::file(path));
        }
        // Only `GIFTSTREAM_<SECTION>__<KEY>` variables are config; others
        // under the prefix (GIFTSTREAM_CONFIG, GIFTSTREAM_TOKEN, the test
        // suite's GIFTSTREAM_TEST_*) belong to the CLI or the tests.
        fig = fig.merge(
            Env::prefixed("GIFTSTREAM_")
                .split("__")
                .filter(|k| k.as_str().contains('.')),
        );
        let cfg: Config = fig.extract().map_err(|e| {
            let key = e.path.join(".");
            let key = if key.is_empty() {
                "(top level)".to_string()
            } else {
                key
            };
            ConfigError {
                key,
                message: e.kind.to_string(),
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The check `serve` adds (outside `--demo`, whatever config file):
    /// `auth.jwt_secret` is neither the development secret nor shorter
    /// than 32 bytes (an empty one, with `auth.public_keys_path`, mints
    /// nothing and passes).
    pub fn check_serve(&self, demo: bool) -> Result<(), ConfigError> {
        let s = &self.auth.jwt_secret;
        if demo || s.is_empty() {
            return Ok(());
        }
        match weak_secret(s) {
            None => Ok(()),
            Some(why) => Err(ConfigError {
                key: "auth.jwt_secret".into(),
                message: format!(
                    "{why} is refused by `serve` (only `serve --demo` may use it); set GIFTSTREAM_AUTH__JWT_SECRET to at least 32 random bytes"
                ),
            }),
        }
    }

    /// Checks what types cannot: ranges, URL schemes, secret strength.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &str, message: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError {
                key: key.into(),
                message: message.into(),
            })
        }
        let a = &self.auth;
        if a.jwt_secret.is_empty() {
            if a.public_keys_path.is_empty() {
                return bad(
                    "auth.jwt_secret",
                    "empty: set one (at least 32 random bytes, GIFTSTREAM_AUTH__JWT_SECRET) or auth.public_keys_path",
                );
            }
        } else if a.jwt_secret.len() < 16 {
            return bad("auth.jwt_secret", "must be at least 16 bytes");
        }
        if a.require_strong_secret || self.stripe.enabled() {
            if let Some(why) = (!a.jwt_secret.is_empty())
                .then(|| weak_secret(&a.jwt_secret))
                .flatten()
            {
                return bad(
                    "auth.jwt_secret",
                    format!(
                        "{why} is refused {}; set GIFTSTREAM_AUTH__JWT_SECRET to at least 32 random bytes",
                        if self.stripe.enabled() { "when payments are configured (stripe.secret_key)" } else { "here (auth.require_strong_secret)" }
                    ),
                );
            }
        }
        if !a.admin_jwt_secret.is_empty() {
            if a.admin_jwt_secret.len() < JWT_SECRET_LEN_MIN || a.admin_jwt_secret == DEV_JWT_SECRET
            {
                return bad("auth.admin_jwt_secret", "must be at least 32 random bytes");
            }
            if a.admin_jwt_secret == a.jwt_secret {
                return bad("auth.admin_jwt_secret", "must differ from auth.jwt_secret");
            }
        }
        if a.overlay_token_ttl_s == 0 {
            return bad("auth.overlay_token_ttl_s", "must be greater than 0");
        }
        if a.token_lifetime_s_max > 0 && a.overlay_token_ttl_s > a.token_lifetime_s_max {
            return bad(
                "auth.overlay_token_ttl_s",
                "must be at most auth.token_lifetime_s_max",
            );
        }
        let c = &self.counters.url;
        if c != "memory" && !c.starts_with("redis://") && !c.starts_with("rediss://") {
            return bad(
                "counters.url",
                format!(
                    "expected `memory` or `redis://...`, got `{}`",
                    redact_url(c)
                ),
            );
        }
        let l = &self.ledger.url;
        if !l.starts_with("sqlite:")
            && !l.starts_with("postgres://")
            && !l.starts_with("postgresql://")
        {
            return bad(
                "ledger.url",
                format!(
                    "expected `sqlite://PATH`, `sqlite::memory:` or `postgres://...`, got `{}`",
                    redact_url(l)
                ),
            );
        }
        let positive: [(&str, u64); 27] = [
            ("counters.redis_timeout_ms", self.counters.redis_timeout_ms),
            (
                "counters.redis_reconnect_ms_max",
                self.counters.redis_reconnect_ms_max,
            ),
            (
                "counters.reconcile_wallets_max",
                self.counters.reconcile_wallets_max as u64,
            ),
            (
                "hub.socket_msgs_per_s_max",
                self.hub.socket_msgs_per_s_max as u64,
            ),
            ("hub.stats_interval_ms", self.hub.stats_interval_ms),
            ("hub.coalesce_interval_ms", self.hub.coalesce_interval_ms),
            ("hub.skipped_note_retry_ms", self.hub.skipped_note_retry_ms),
            ("hub.room_gifters_max", self.hub.room_gifters_max as u64),
            ("hub.room_linger_ms", self.hub.room_linger_ms),
            (
                "counters.relay_queue_len_max",
                self.counters.relay_queue_len_max as u64,
            ),
            ("counters.viewers_ttl_ms", self.counters.viewers_ttl_ms),
            ("ledger.pool_len_max", self.ledger.pool_len_max as u64),
            (
                "settlement.flush_interval_ms",
                self.settlement.flush_interval_ms,
            ),
            (
                "settlement.batch_len_max",
                self.settlement.batch_len_max as u64,
            ),
            (
                "settlement.retry_len_max",
                self.settlement.retry_len_max as u64,
            ),
            (
                "counters.pending_len_max",
                self.counters.pending_len_max as u64,
            ),
            (
                "counters.idempotency_ttl_s",
                self.counters.idempotency_ttl_s,
            ),
            (
                "counters.idempotency_keys_per_wallet_max",
                self.counters.idempotency_keys_per_wallet_max as u64,
            ),
            (
                "hub.viewer_queue_len_max",
                self.hub.viewer_queue_len_max as u64,
            ),
            (
                "hub.creator_queue_len_max",
                self.hub.creator_queue_len_max as u64,
            ),
            ("hub.frame_len_max", self.hub.frame_len_max as u64),
            (
                "hub.write_batch_len_max",
                self.hub.write_batch_len_max as u64,
            ),
            (
                "hub.rooms_per_socket_max",
                self.hub.rooms_per_socket_max as u64,
            ),
            ("hub.connections_max", self.hub.connections_max as u64),
            ("hub.room_queue_len_max", self.hub.room_queue_len_max as u64),
            ("hub.history_len_max", self.hub.history_len_max as u64),
            ("http.body_len_max", self.http.body_len_max as u64),
        ];
        for (key, v) in positive {
            if v == 0 {
                return bad(key, "must be greater than 0");
            }
        }
        self.validate_net()?;
        if self.hub.write_buffer_len_max <= self.hub.write_buffer_len + self.hub.frame_close_len_max
        {
            return bad(
                "hub.write_buffer_len_max",
                "must exceed hub.write_buffer_len + hub.frame_close_len_max",
            );
        }
        if self.hub.frame_close_len_max < self.hub.frame_len_max {
            return bad(
                "hub.frame_close_len_max",
                "must be at least hub.frame_len_max",
            );
        }
        if self.gift.busy_wait_ms_max > 60_000 {
            return bad("gift.busy_wait_ms_max", "at most 60000 (a minute)");
        }
        if self.settlement.batch_len_max > 50_000 {
            return bad(
                "settlement.batch_len_max",
                "at most 50000 (one transaction per batch)",
            );
        }
        let st = &self.stripe;
        if st.enabled() {
            if st.webhook_secret.is_empty() {
                return bad(
                    "stripe.webhook_secret",
                    "required when stripe.secret_key is set (GIFTSTREAM_STRIPE__WEBHOOK_SECRET)",
                );
            }
            if !st.api_base_url.starts_with("https://") && !st.api_base_url.starts_with("http://") {
                return bad("stripe.api_base_url", "expected an http(s) URL");
            }
        }
        if !st.js_url.starts_with("https://") && !st.js_url.starts_with("http://") {
            return bad("stripe.js_url", "expected an http(s) URL");
        }
        if !st.publishable_key.is_empty() && !st.publishable_key.starts_with("pk_") {
            return bad(
                "stripe.publishable_key",
                "expected a publishable key (pk_...)",
            );
        }
        if st.webhook_body_len_max == 0 {
            return bad("stripe.webhook_body_len_max", "must be greater than 0");
        }
        if st.webhook_tolerance_s == 0 || st.webhook_tolerance_s > 300 {
            return bad(
                "stripe.webhook_tolerance_s",
                "must be 1..=300 (async-stripe-webhook refuses signatures older than 300 s)",
            );
        }
        if st.cashout_retry_interval_ms < 1000 {
            return bad("stripe.cashout_retry_interval_ms", "at least 1000");
        }
        if st.cashout_retry_backoff_ms == 0 {
            return bad("stripe.cashout_retry_backoff_ms", "must be greater than 0");
        }
        if st.cashout_retry_backoff_ms_max < st.cashout_retry_backoff_ms {
            return bad(
                "stripe.cashout_retry_backoff_ms_max",
                "must be at least stripe.cashout_retry_backoff_ms",
            );
        }
        if st.transfer_lookup_after_s == 0 || st.transfer_lookup_after_s >= 86_400 {
            return bad(
                "stripe.transfer_lookup_after_s",
                "must be 1..86400 (Stripe keeps Idempotency-Keys for 24 hours)",
            );
        }
        // A Transfer request still in flight must have ended (answered or
        // timed out, with its retries) before its absence at Stripe is
        // taken to mean it was never made.
        let in_flight_ms_max = st
            .request_timeout_ms
            .saturating_add(st.retry_backoff_ms)
            .saturating_mul(u64::from(st.retry_len_max) + 1)
            .saturating_mul(2);
        if st.transfer_lookup_after_s.saturating_mul(1000) <= in_flight_ms_max {
            return bad(
                "stripe.transfer_lookup_after_s",
                "must exceed twice a Transfer request's longest run (stripe.request_timeout_ms + retry_backoff_ms, times retry_len_max + 1)",
            );
        }
        if self.admin.grant_coins_per_day_max <= 0 {
            return bad("admin.grant_coins_per_day_max", "must be greater than 0");
        }
        if st.request_timeout_ms == 0 {
            return bad("stripe.request_timeout_ms", "must be greater than 0");
        }
        if st.retry_len_max > 10 {
            return bad("stripe.retry_len_max", "at most 10");
        }
        if st.currency != "usd" {
            return bad("stripe.currency", "only `usd` is supported");
        }
        for (i, p) in st.packages.iter().enumerate() {
            if p.id.is_empty() || p.coins <= 0 || p.price_cents <= 0 || p.currency != "usd" {
                return bad(
                    &format!("stripe.packages[{i}]"),
                    "needs an id, coins > 0, price_cents > 0 and currency `usd`",
                );
            }
        }
        if st.cashout_cents_per_100_diamonds <= 0 {
            return bad(
                "stripe.cashout_cents_per_100_diamonds",
                "must be greater than 0",
            );
        }
        if st.cashout_diamonds_min <= 0 {
            return bad("stripe.cashout_diamonds_min", "must be greater than 0");
        }
        if st.tip_cents_min <= 0 || st.tip_cents_max < st.tip_cents_min {
            return bad(
                "stripe.tip_cents_max",
                "needs 0 < tip_cents_min <= tip_cents_max",
            );
        }
        if st.tip_message_len_max > 500 {
            return bad(
                "stripe.tip_message_len_max",
                "at most 500 (Stripe metadata value limit)",
            );
        }
        if self.payouts.hold_s > 31_536_000 {
            return bad("payouts.hold_s", "at most 31536000 (a year)");
        }
        if self.payouts.cashouts_per_day_max == 0 {
            return bad("payouts.cashouts_per_day_max", "must be greater than 0");
        }
        if self.payouts.cashout_cents_per_day_max <= 0 {
            return bad(
                "payouts.cashout_cents_per_day_max",
                "must be greater than 0",
            );
        }
        self.pages.validate()?;
        if self.counters.pending_len_max < self.settlement.batch_len_max {
            return bad(
                "counters.pending_len_max",
                "must be at least settlement.batch_len_max",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure error type
mod tests {
    use super::*;

    fn repo_file(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(name)
    }

    #[test]
    fn default_toml_equals_built_in_defaults() {
        let text = std::fs::read_to_string(repo_file("default.toml")).unwrap();
        let from_file: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(&text))
            .extract()
            .unwrap();
        assert_eq!(from_file, Config::default());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own Error
    fn errors_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[settlement]\nbatch_len_max = 0\n")?;
            let e = Config::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert_eq!(e.key, "settlement.batch_len_max");
            jail.create_file("typo.toml", "[hub]\nviewer_queue_len = 3\n")?;
            let e = Config::load(Some(Path::new("typo.toml"))).unwrap_err();
            assert!(e.to_string().contains("viewer_queue_len"), "{e}");
            jail.create_file("type.toml", "[settlement]\nflush_interval_ms = \"soon\"\n")?;
            let e = Config::load(Some(Path::new("type.toml"))).unwrap_err();
            assert_eq!(e.key, "settlement.flush_interval_ms");
            Ok(())
        });
    }

    #[test]
    fn net_limits_are_validated_with_their_key() {
        type Breaks = fn(&mut Config);
        let cases: [(&str, Breaks); 7] = [
            ("hub.idle_timeout_ms", |c| {
                c.hub.idle_timeout_ms = c.hub.ping_interval_ms
            }),
            ("http.header_read_timeout_ms", |c| {
                c.http.header_read_timeout_ms = 0
            }),
            ("hub.connections_per_ip_max", |c| {
                c.hub.connections_per_ip_max = 0
            }),
            ("http.metrics_listen", |c| {
                c.http.metrics_listen = "9464".into()
            }),
            ("http.client_ip_header", |c| {
                c.http.client_ip_header = "X Forwarded".into()
            }),
            ("http.overlay_frame_ancestors", |c| {
                c.http.overlay_frame_ancestors = "'self'; script-src *".into()
            }),
            ("limits.live_rooms_per_creator_max", |c| {
                c.limits.live_rooms_per_creator_max = 0
            }),
        ];
        for (key, bad) in cases {
            let mut c = Config::default();
            bad(&mut c);
            assert_eq!(c.validate().unwrap_err().key, key);
        }
        let mut c = Config::default();
        c.http.metrics_listen = String::new();
        c.http.client_ip_header = "X-Forwarded-For".into();
        c.validate().unwrap();
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn env_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[hub]\nviewer_queue_len_max = 7\n")?;
            jail.set_env("GIFTSTREAM_HUB__VIEWER_QUEUE_LEN_MAX", "9");
            jail.set_env(
                "GIFTSTREAM_AUTH__JWT_SECRET",
                "a-much-longer-secret-from-env",
            );
            let c = Config::load(Some(Path::new("c.toml"))).unwrap();
            assert_eq!(c.hub.viewer_queue_len_max, 9);
            assert_eq!(c.auth.jwt_secret, "a-much-longer-secret-from-env");
            jail.set_env("GIFTSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:1");
            jail.set_env("GIFTSTREAM_CONFIG", "elsewhere.toml");
            jail.set_env("GIFTSTREAM_TOKEN", "x");
            assert_eq!(
                Config::load(None).unwrap().hub.viewer_queue_len_max,
                9,
                "non-config GIFTSTREAM_* vars are ignored (the section var still applies)"
            );
            jail.set_env("GIFTSTREAM_COUNTERS__URL", "mongodb://x");
            assert_eq!(Config::load(None).unwrap_err().key, "counters.url");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn stripe_keys_come_from_env_and_are_checked() {
        figment::Jail::expect_with(|jail| {
            assert!(
                !Config::load(None).unwrap().stripe.enabled(),
                "off by default"
            );
            jail.set_env("GIFTSTREAM_STRIPE__SECRET_KEY", "sk_test_x");
            assert_eq!(
                Config::load(None).unwrap_err().key,
                "auth.jwt_secret",
                "payments refuse the development secret"
            );
            jail.set_env(
                "GIFTSTREAM_AUTH__JWT_SECRET",
                "a-production-secret-of-at-least-32-bytes",
            );
            assert_eq!(Config::load(None).unwrap_err().key, "stripe.webhook_secret");
            jail.set_env("GIFTSTREAM_STRIPE__WEBHOOK_SECRET", "whsec_x");
            let c = Config::load(None).unwrap();
            assert!(c.stripe.enabled());
            assert_eq!(c.stripe.webhook_secret, "whsec_x");
            jail.create_file("s.toml", "[stripe]\ntip_cents_min = 0\n")?;
            let e = Config::load(Some(Path::new("s.toml"))).unwrap_err();
            assert_eq!(e.key, "stripe.tip_cents_max");
            jail.create_file("p.toml", "[stripe]\npackages = [{ id = \"x\", coins = 0, price_cents = 1, currency = \"usd\" }]\n")?;
            let e = Config::load(Some(Path::new("p.toml"))).unwrap_err();
            assert_eq!(e.key, "stripe.packages[0]");
            Ok(())
        });
    }
}

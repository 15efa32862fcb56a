//! Start-time validation of a whole [`Config`]: ranges, cross-section
//! rules, URL schemes and secret strength.
//!
//! Owns: [`Config::validate`], [`Config::check_serve`] and the network
//! checks; every failure names its key in a [`ConfigError`].
//! Must not: change the config or read anything outside it.

use std::net::SocketAddr;

use super::auth::{weak_secret, DEV_JWT_SECRET, JWT_SECRET_LEN_MIN};
use super::redact::redact_url;
use super::{Config, ConfigError};

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
        let positive: [(&str, u64); 14] = [
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
            ("http.listen_backlog", u64::from(self.http.listen_backlog)),
            (
                "hub.socket_throttled_ms_max",
                self.hub.socket_throttled_ms_max,
            ),
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
        let positive: [(&str, u64); 28] = [
            ("counters.redis_timeout_ms", self.counters.redis_timeout_ms),
            ("counters.load_fence_ms", self.counters.load_fence_ms),
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
        for (i, p) in st.packages.iter().enumerate() {
            if p.id.is_empty() || p.coins <= 0 || p.price_cents <= 0 {
                return bad(
                    &format!("stripe.packages[{i}]"),
                    "needs an id, coins > 0 and price_cents > 0",
                );
            }
        }
        self.validate_currencies()?;
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
        for (key, v) in [
            (
                "counters.combo_reap_interval_ms",
                self.counters.combo_reap_interval_ms,
            ),
            (
                "counters.combo_reap_batch_max",
                self.counters.combo_reap_batch_max as u64,
            ),
            (
                "counters.combo_end_late_ms_max",
                self.counters.combo_end_late_ms_max,
            ),
            (
                "counters.streak_end_queue_len_max",
                self.counters.streak_end_queue_len_max as u64,
            ),
            (
                "counters.gift_batch_len_max",
                self.counters.gift_batch_len_max as u64,
            ),
            (
                "counters.gift_batches_in_flight_max",
                self.counters.gift_batches_in_flight_max as u64,
            ),
        ] {
            if v == 0 {
                return bad(key, "must be greater than 0");
            }
        }
        if self.counters.gift_batch_len_max > 1024 {
            return bad("counters.gift_batch_len_max", "at most 1024");
        }
        if self.counters.gift_batches_in_flight_max > 64 {
            return bad("counters.gift_batches_in_flight_max", "at most 64");
        }
        if self.counters.pending_len_max < self.settlement.batch_len_max {
            return bad(
                "counters.pending_len_max",
                "must be at least settlement.batch_len_max",
            );
        }
        self.webhooks.validate()?;
        self.pages.validate()?;
        self.marketplace.validate()?;
        self.moderation.validate()?;
        Ok(())
    }
}

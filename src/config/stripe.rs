//! `[stripe]`: payments (coin packages, tips, creator cash-outs).
//!
//! Owns: [`StripeConfig`], [`CoinPackage`], their defaults and a `Debug`
//! that hides the keys.
//! Must not: talk to Stripe (that is `crate::payments`).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::redact::redacted_debug;

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
    /// ISO currency, lower case: one of `stripe.currencies`. The
    /// PaymentIntent is made in it.
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
    /// Fiat currencies money moves in, lower case (each one the ledger
    /// keeps accounts in: `usd`, `eur`): packages are priced in them, tips
    /// and cash-outs may name one.
    pub currencies: Vec<String>,
    /// The default currency, lower case (one of `currencies`): of a
    /// cash-out or tip that names none, and the one
    /// `cashout_cents_per_100_diamonds` and `payouts.cashout_cents_per_day_max`
    /// are in (unless `payouts.rates` has an entry for it).
    pub currency: String,
    /// Cents of `currency` paid for 100 diamonds at cash-out (50 = $0.005 a
    /// diamond).
    pub cashout_cents_per_100_diamonds: i64,
    /// Fewest diamonds in one cash-out.
    pub cashout_diamonds_min: i64,
    /// Smallest tip, cents.
    pub tip_cents_min: i64,
    /// Largest tip, cents.
    pub tip_cents_max: i64,
    /// Longest tip message, characters.
    pub tip_message_len_max: usize,
    /// Where Stripe sends a creator back after onboarding (the studio,
    /// `?payouts=return`).
    pub onboard_return_url: String,
    /// Where Stripe sends a creator whose onboarding link expired (the
    /// studio, `?payouts=refresh`).
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
                CoinPackage {
                    id: "coins_70_eur".into(),
                    coins: 70,
                    price_cents: 99,
                    currency: "eur".into(),
                },
                CoinPackage {
                    id: "coins_350_eur".into(),
                    coins: 350,
                    price_cents: 499,
                    currency: "eur".into(),
                },
                CoinPackage {
                    id: "coins_1400_eur".into(),
                    coins: 1400,
                    price_cents: 1999,
                    currency: "eur".into(),
                },
            ],
            currencies: vec!["usd".into(), "eur".into()],
            currency: "usd".into(),
            cashout_cents_per_100_diamonds: 50,
            cashout_diamonds_min: 1000,
            tip_cents_min: 100,
            tip_cents_max: 50_000,
            tip_message_len_max: 150,
            onboard_return_url: "http://127.0.0.1:8080/studio?payouts=return".into(),
            onboard_refresh_url: "http://127.0.0.1:8080/studio?payouts=refresh".into(),
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

impl StripeConfig {
    /// Whether payments are on (a secret key is set).
    pub fn enabled(&self) -> bool {
        !self.secret_key.is_empty()
    }
}

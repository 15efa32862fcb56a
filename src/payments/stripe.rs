//! A small Stripe API client: form-encoded requests, Idempotency-Key,
//! timeout and bounded retries.
//!
//! Owns: [`StripeClient`] (the requests giftstream makes: PaymentIntents,
//! Connect accounts, account links, transfers) and the typed subset of each
//! response it reads.
//! Must not: touch the ledger or counters, or retry without the request's
//! Idempotency-Key (a retried POST must be one operation at Stripe).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::config::StripeConfig;

/// A failed Stripe request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered and refused (4xx): the operation did not happen.
    #[error("stripe refused ({status} {kind}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Stripe's `error.type` (and `error.code` when present).
        kind: String,
        /// Stripe's `error.message`.
        message: String,
    },
    /// No answer or a 5xx after every retry: the outcome is unknown; retry
    /// later with the same Idempotency-Key.
    #[error("stripe unreachable: {0}")]
    Unknown(String),
}

/// A PaymentIntent, as far as giftstream reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentIntent {
    /// `pi_...`.
    pub id: String,
    /// Handed to the client (Stripe.js confirms with it).
    pub client_secret: Option<String>,
    /// Amount in cents.
    pub amount: i64,
    /// Currency, lower case.
    pub currency: String,
    /// Status, e.g. `requires_payment_method`.
    #[serde(default)]
    pub status: String,
}

/// A Connect account, as far as giftstream reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    /// `acct_...`.
    pub id: String,
    /// Whether Stripe pays out to it.
    #[serde(default)]
    pub payouts_enabled: bool,
}

/// An account link (hosted onboarding).
#[derive(Debug, Clone, Deserialize)]
pub struct AccountLink {
    /// Where the creator goes to onboard.
    pub url: String,
    /// Expiry, seconds since epoch.
    #[serde(default)]
    pub expires_at: i64,
}

/// A Transfer to a connected account.
#[derive(Debug, Clone, Deserialize)]
pub struct Transfer {
    /// `tr_...`.
    pub id: String,
    /// Cents.
    pub amount: i64,
    /// `acct_...`.
    pub destination: String,
}

/// Form parameters in Stripe's bracket notation (`metadata[user]`).
pub type Params = Vec<(String, String)>;

/// The Stripe API client.
pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    key: String,
    retry_len_max: u32,
    retry_backoff: Duration,
}

impl StripeClient {
    /// A client for `cfg.api_base_url` with `cfg.secret_key`.
    pub fn new(cfg: &StripeConfig) -> anyhow::Result<StripeClient> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.request_timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.request_timeout_ms))
            .build()?;
        Ok(StripeClient {
            http,
            base: cfg.api_base_url.trim_end_matches('/').to_string(),
            key: cfg.secret_key.clone(),
            retry_len_max: cfg.retry_len_max,
            retry_backoff: Duration::from_millis(cfg.retry_backoff_ms),
        })
    }

    /// POST `path` with `params` and an Idempotency-Key; retried (same
    /// key) on no answer or a 5xx at most `retry_len_max` times.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &Params,
        idempotency_key: Option<&str>,
    ) -> Result<T, StripeError> {
        let url = format!("{}{path}", self.base);
        let mut backoff = self.retry_backoff;
        let mut last = String::new();
        for attempt in 0..=self.retry_len_max {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            let mut req = self.http.post(&url).bearer_auth(&self.key).form(params);
            if let Some(k) = idempotency_key {
                req = req.header("Idempotency-Key", k);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = match resp.bytes().await {
                        Ok(b) => b,
                        Err(e) => {
                            last = format!("reading the answer: {e}");
                            continue;
                        }
                    };
                    if (200..300).contains(&status) {
                        return serde_json::from_slice(&body).map_err(|e| {
                            StripeError::Unknown(format!("undecodable answer to {path}: {e}"))
                        });
                    }
                    if status >= 500 {
                        last = format!("{path}: HTTP {status}");
                        continue;
                    }
                    return Err(refused(status, &body));
                }
                Err(e) => last = format!("{path}: {e}"),
            }
            metrics::counter!("giftstream_stripe_retries_total").increment(1);
        }
        Err(StripeError::Unknown(last))
    }
}

/// Stripe's error body `{"error": {"type", "code", "message"}}` as [`StripeError::Refused`].
fn refused(status: u16, body: &[u8]) -> StripeError {
    #[derive(Deserialize, Default)]
    struct Inner {
        #[serde(rename = "type", default)]
        kind: String,
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: String,
    }
    #[derive(Deserialize)]
    struct Outer {
        error: Inner,
    }
    let inner = serde_json::from_slice::<Outer>(body)
        .map(|o| o.error)
        .unwrap_or_default();
    let kind = match inner.code {
        Some(c) => format!("{}/{c}", inner.kind),
        None => inner.kind,
    };
    StripeError::Refused {
        status,
        kind,
        message: inner.message,
    }
}

/// `(name, value)` as a form parameter.
pub fn p(name: impl Into<String>, value: impl ToString) -> (String, String) {
    (name.into(), value.to_string())
}

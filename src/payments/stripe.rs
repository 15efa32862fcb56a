//! The Stripe API client: async-stripe's requests and typed answers, sent
//! with giftstream's Idempotency-Key, timeout and bounded retries.
//!
//! Owns: [`StripeClient`] (the requests giftstream makes: a
//! PaymentIntent, a Connect Express account, an account link, a Transfer,
//! a Transfer's reversal, a Transfer read, the list of Transfers that
//! looks up a cash-out's, and a Refund of a contract's payment),
//! the retry loop around async-stripe (which itself sends each request
//! once), and the sorting of failures into "did not happen"
//! ([`StripeError::Refused`]) and "outcome unknown" ([`StripeError::Unknown`]).
//! Must not: touch the ledger or counters, or send a POST without an
//! Idempotency-Key (a retried POST must be one operation at Stripe).

use std::future::Future;
use std::time::Duration;

use stripe::{ClientBuilder, IdempotencyKey, RequestStrategy, StripeRequest};

pub use stripe_connect::account::{
    CreateAccount, CreateAccountCapabilities, CreateAccountCapabilitiesTransfers, CreateAccountType,
};
pub use stripe_connect::account_link::{CreateAccountLink, CreateAccountLinkType};
pub use stripe_connect::login_link::CreateAccountLoginLink;
pub use stripe_connect::transfer::{CreateTransfer, ListTransfer, RetrieveTransfer};
pub use stripe_connect::transfer_reversal::CreateIdTransferReversal;
pub use stripe_connect::{Account, AccountLink, LoginLink, Transfer, TransferReversal};
pub use stripe_core::payment_intent::{CreatePaymentIntent, CreatePaymentIntentTransferData};
pub use stripe_core::refund::CreateRefund;
pub use stripe_core::Refund;
pub use stripe_core::{PaymentIntent, PaymentIntentAllowedPaymentMethodTypes};
pub use stripe_types::Currency;

use crate::config::StripeConfig;

/// A failed Stripe request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered and refused (a 4xx other than 409, 424 and 429), or
    /// the request was refused before it was sent (an Idempotency-Key
    /// Stripe does not accept): the operation did not happen.
    #[error("stripe refused ({status} {kind}): {message}")]
    Refused {
        /// HTTP status (400 for a request refused before it was sent).
        status: u16,
        /// Stripe's `error.type` (and `/error.code` when present).
        kind: String,
        /// Stripe's `error.message`.
        message: String,
    },
    /// No answer, a 5xx, 409, 424 or 429, or an answer that could not be
    /// read, after every retry: the outcome is unknown; retry later with
    /// the same Idempotency-Key.
    #[error("stripe outcome unknown: {0}")]
    Unknown(String),
}

/// The Stripe API client (async-stripe's hyper client, rustls with ring).
pub struct StripeClient {
    client: stripe::Client,
    retry_len_max: u32,
    retry_backoff: Duration,
    timeout: Duration,
}

impl StripeClient {
    /// A client for `cfg.api_base_url` with `cfg.secret_key`; each attempt
    /// is bounded by `cfg.request_timeout_ms`.
    pub fn new(cfg: &StripeConfig) -> anyhow::Result<StripeClient> {
        let timeout = Duration::from_millis(cfg.request_timeout_ms);
        // async-stripe appends `v1/...` to the base as written.
        let base = format!("{}/", cfg.api_base_url.trim_end_matches('/'));
        let client = ClientBuilder::new(cfg.secret_key.clone())
            .url(base)
            .timeout(timeout)
            .request_strategy(RequestStrategy::Once)
            .app_info(
                "giftstream",
                Some(env!("CARGO_PKG_VERSION").to_string()),
                None,
            )
            .build()
            .map_err(|e| anyhow::anyhow!("stripe client: {e}"))?;
        Ok(StripeClient {
            client,
            retry_len_max: cfg.retry_len_max,
            retry_backoff: Duration::from_millis(cfg.retry_backoff_ms),
            timeout,
        })
    }

    /// `POST /v1/payment_intents` with Idempotency-Key `key`.
    pub async fn create_payment_intent(
        &self,
        req: &CreatePaymentIntent,
        key: &str,
    ) -> Result<PaymentIntent, StripeError> {
        self.send("POST /v1/payment_intents", key, |s| {
            req.customize().request_strategy(s).send(&self.client)
        })
        .await
    }

    /// `POST /v1/accounts` with Idempotency-Key `key`.
    pub async fn create_account(
        &self,
        req: &CreateAccount,
        key: &str,
    ) -> Result<Account, StripeError> {
        self.send("POST /v1/accounts", key, |s| {
            req.customize().request_strategy(s).send(&self.client)
        })
        .await
    }

    /// `POST /v1/account_links` with Idempotency-Key `key`.
    pub async fn create_account_link(
        &self,
        req: &CreateAccountLink,
        key: &str,
    ) -> Result<AccountLink, StripeError> {
        self.send("POST /v1/account_links", key, |s| {
            req.customize().request_strategy(s).send(&self.client)
        })
        .await
    }

    /// `POST /v1/accounts/{account}/login_links` with Idempotency-Key `key`.
    pub async fn create_login_link(
        &self,
        req: &CreateAccountLoginLink,
        key: &str,
    ) -> Result<LoginLink, StripeError> {
        self.send("POST /v1/accounts/{account}/login_links", key, |s| {
            req.customize().request_strategy(s).send(&self.client)
        })
        .await
    }

    /// `POST /v1/transfers` with Idempotency-Key `key`.
    pub async fn create_transfer(
        &self,
        req: &CreateTransfer,
        key: &str,
    ) -> Result<Transfer, StripeError> {
        self.send("POST /v1/transfers", key, |s| {
            req.customize().request_strategy(s).send(&self.client)
        })
        .await
    }

    /// `POST /v1/refunds` with Idempotency-Key `key` (a marketplace
    /// contract's refund to its brand).
    pub async fn create_refund(
        &self,
        req: &CreateRefund,
        key: &str,
    ) -> Result<Refund, StripeError> {
        self.send("POST /v1/refunds", key, |s| {
            req.customize().request_strategy(s).send(&self.client)
        })
        .await
    }

    /// `GET /v1/transfers` (a read: no Idempotency-Key), one page; retried
    /// like a POST while the outcome is unknown.
    pub async fn list_transfers(
        &self,
        req: &ListTransfer,
    ) -> Result<stripe_types::List<Transfer>, StripeError> {
        self.send_read("GET /v1/transfers", || {
            req.customize()
                .request_strategy(RequestStrategy::Once)
                .send(&self.client)
        })
        .await
    }

    /// `POST /v1/transfers/{id}/reversals` with Idempotency-Key `key`: take
    /// `amount` cents of a Transfer back from the connected account.
    pub async fn create_transfer_reversal(
        &self,
        req: &CreateIdTransferReversal,
        key: &str,
    ) -> Result<TransferReversal, StripeError> {
        self.send("POST /v1/transfers/{id}/reversals", key, |s| {
            req.customize().request_strategy(s).send(&self.client)
        })
        .await
    }

    /// `GET /v1/transfers/{id}` (a read: retried without an
    /// Idempotency-Key, which Stripe ignores on GET).
    pub async fn retrieve_transfer(&self, transfer: &str) -> Result<Transfer, StripeError> {
        let req = RetrieveTransfer::new(transfer);
        self.send_read("GET /v1/transfers/{id}", || {
            req.customize()
                .request_strategy(RequestStrategy::Once)
                .send(&self.client)
        })
        .await
    }

    /// Run `attempt` and retry it at most `retry_len_max` times while the
    /// outcome is unknown, pausing `retry_backoff`, doubled each time. A
    /// read as it is (no Idempotency-Key); [`Self::send`] adds the key.
    async fn send_read<T, F, Fut>(&self, what: &str, attempt: F) -> Result<T, StripeError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, stripe::StripeError>>,
    {
        let mut backoff = self.retry_backoff;
        let mut last = String::new();
        for n in 0..=self.retry_len_max {
            if n > 0 {
                metrics::counter!("giftstream_stripe_retries_total").increment(1);
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) => match self.classify(e) {
                    Attempt::Final(e) => return Err(e),
                    Attempt::Retry(why) => last = format!("{what}: {why}"),
                },
            }
        }
        Err(StripeError::Unknown(last))
    }

    /// Run `attempt` (one request, sent once by async-stripe with the
    /// Idempotency-Key of the strategy it is given) and retry it with the
    /// same key at most `retry_len_max` times while the outcome is unknown,
    /// pausing `retry_backoff`, doubled each time.
    async fn send<T, F, Fut>(&self, what: &str, key: &str, attempt: F) -> Result<T, StripeError>
    where
        F: Fn(RequestStrategy) -> Fut,
        Fut: Future<Output = Result<T, stripe::StripeError>>,
    {
        let key = IdempotencyKey::new(key).map_err(|e| StripeError::Refused {
            status: 400,
            kind: "idempotency_key".into(),
            message: e.to_string(),
        })?;
        // The same loop as a read, every attempt with the same key.
        self.send_read(what, || attempt(RequestStrategy::Idempotent(key.clone())))
            .await
    }

    /// Whether a failed attempt ends the request or is worth another try.
    fn classify(&self, e: stripe::StripeError) -> Attempt {
        match e {
            stripe::StripeError::Stripe(err, status) => {
                if status >= 500 || matches!(status, 409 | 424 | 429) {
                    // 409: a request with this key is in flight; 424 and
                    // 429: Stripe could not or would not answer now.
                    Attempt::Retry(format!(
                        "HTTP {status}: {}",
                        err.message.as_deref().unwrap_or(err.type_.as_str())
                    ))
                } else {
                    Attempt::Final(refused(status, &err))
                }
            }
            stripe::StripeError::Timeout => {
                Attempt::Retry(format!("no answer within {:?}", self.timeout))
            }
            stripe::StripeError::ClientError(why) => Attempt::Retry(why),
            // An answer that is not Stripe's JSON (a proxy's error page, or
            // a shape the generated types refuse): the operation may have
            // happened; a retry with the same key is answered again.
            stripe::StripeError::JSONDeserialize(why) => {
                Attempt::Retry(format!("unreadable answer: {why}"))
            }
            stripe::StripeError::ConfigError(why) => Attempt::Final(StripeError::Unknown(why)),
        }
    }
}

/// What one failed attempt means.
enum Attempt {
    /// The request is over with this error.
    Final(StripeError),
    /// The outcome is unknown (why): try again with the same key.
    Retry(String),
}

/// Stripe's error body `{"error": {"type", "code", "message"}}` as [`StripeError::Refused`].
fn refused(status: u16, err: &stripe::ApiErrors) -> StripeError {
    let kind = match &err.code {
        Some(c) => format!("{}/{}", err.type_.as_str(), c.as_str()),
        None => err.type_.as_str().to_string(),
    };
    StripeError::Refused {
        status,
        kind,
        message: err.message.clone().unwrap_or_default(),
    }
}

/// A currency code as async-stripe's [`Currency`] (an unknown code is kept
/// as written).
pub fn currency(code: &str) -> Currency {
    match code.parse::<Currency>() {
        Ok(c) => c,
        Err(never) => match never {},
    }
}

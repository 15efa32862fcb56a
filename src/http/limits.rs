//! Per-user hourly limits checked by handlers (`[limits]`).
//!
//! Owns: counting one request in its hourly window and the shared
//! PaymentIntent budget.
//! Must not: keep its own counts (the counters engine does).

use crate::app::AppState;
use crate::auth::Identity;
use crate::error::{Error, ErrorCode};

/// Count one `what` for `user` in this hour's window; `rate_limited`
/// beyond `max` (the config key named in the message).
pub(super) async fn per_hour(
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
pub(super) async fn payment_intents_per_hour(
    state: &AppState,
    who: &Identity,
) -> Result<(), Error> {
    per_hour(
        state,
        "payment_intents",
        &who.user,
        state.cfg.limits.payment_intents_per_hour_max,
        "limits.payment_intents_per_hour_max",
    )
    .await
}

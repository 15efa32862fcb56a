//! The conservation check after a run, over HTTP only.
//!
//! Owns: [`check`]: coins granted − coins left in the senders' wallets must
//! equal the coins of acked gifts, and the creators' diamonds (pending +
//! settled) must equal the diamonds of acked gifts. Settlement moves
//! diamonds from pending to settled in the background, so the check polls
//! (bounded) until both sides agree or the bound passes.
//! Must not: read the server's storage; only the public contract.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::api::Api;
use crate::metrics::Tally;
use crate::scenarios::Books;

/// How long the books may take to agree (settlement in flight).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

/// The verdict and its numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Conservation {
    /// Both equations hold.
    pub pass: bool,
    /// Coins granted to the senders.
    pub coins_granted: i64,
    /// Coins left in their wallets.
    pub coins_left: i64,
    /// Coins of acked gifts.
    pub coins_acked: i64,
    /// Creators' diamonds, pending + settled.
    pub diamonds_earned: i64,
    /// Diamonds of acked gifts.
    pub diamonds_acked: i64,
    /// Gifts that got no answer (their fate is unknown to the client).
    pub unanswered: u64,
    /// Seconds until the books agreed (or the bound).
    pub waited_s: f64,
}

/// Check the books of a run.
pub async fn check(api: &Api, books: &Books, tally: &Tally) -> anyhow::Result<Conservation> {
    let t0 = Instant::now();
    loop {
        let coins_left = api.sum(&books.senders, |a, u| a.wallet(u)).await?;
        let diamonds_earned = api.sum(&books.creators, |a, c| a.diamonds(c)).await?;
        let pass = books.granted - coins_left == tally.coins_acked
            && diamonds_earned == tally.diamonds_acked;
        if pass || t0.elapsed() > SETTLE_TIMEOUT {
            return Ok(Conservation {
                pass,
                coins_granted: books.granted,
                coins_left,
                coins_acked: tally.coins_acked,
                diamonds_earned,
                diamonds_acked: tally.diamonds_acked,
                unanswered: tally.unanswered,
                waited_s: t0.elapsed().as_secs_f64(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

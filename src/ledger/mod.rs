//! The durable ledger: double entry, integer amounts, idempotent writes.
//!
//! Owns: the [`Ledger`] trait (`api`) and its engines ([`sqlite::SqliteLedger`],
//! [`postgres::PgLedger`]: one [`sql::SqlLedger`] whose flows are written
//! once, with a small [`sql::Dialect`] per engine), the account naming
//! scheme, the operation and record types (`types`), and the durable
//! registry of rooms and videos. Each write is one transaction keyed by an
//! operation id under a UNIQUE constraint, so a replay changes nothing;
//! every operation id is built by [`OpKey::op_id`] (typed, injective),
//! never by joining client text at a call site.
//! It also owns the money-safety rules that must hold across nodes, as
//! plain functions next to the postings ([`rules`], `postings`): debt
//! repayment, the dispute states, the hold on settled diamonds and the daily
//! cash-out limits (checked in the cash-out's transaction, [`PayoutLimits`]),
//! and the clawback of held diamonds by refunds and chargebacks
//! ([`plan_clawback`]), in the same transaction as the reversal.
//! Its flows fail with [`LedgerError`]; the one `From` impl in `error` maps
//! it to a wire error.
//! Must not: decide whether a gift is allowed (the counters engine does),
//! or hold balances in memory (it is the system of record).

mod api;
mod error;
pub mod escrow;
pub mod follows;
pub mod market_states;
pub mod marketplace;
pub mod message_rules;
pub mod moderation;
mod op_key;
pub mod outbox;
pub mod postgres;
mod postings;
pub mod rules;
pub mod sql;
pub mod sqlite;
pub mod studio;
mod types;
pub mod videos;

pub use api::Ledger;
pub use error::{LedgerError, LedgerResult};
pub use op_key::OpKey;
pub use postings::*;
pub use rules::*;
pub use types::*;

use crate::model::PayoutLimits;

/// Coins, the viewers' currency.
pub const COIN: &str = "COIN";
/// Diamonds, the creators' currency.
pub const DIAMOND: &str = "DIAMOND";
/// US dollars, in cents (coin purchases, tips, cash-outs): [`Fiat::Usd`]'s
/// code. Every fiat currency has its own accounts ([`Fiat`]).
pub const USD: &str = "USD";
/// Euros, in cents: [`Fiat::Eur`]'s code.
pub const EUR: &str = "EUR";

pub use crate::model::Fiat;

/// Account names. The mint issues currency (its balance goes negative).
pub mod account {
    /// Issues coins (grants, purchases) and diamonds (gift credits).
    pub const MINT: &str = "mint";
    /// Where coins spent on gifts go.
    pub const SPENT: &str = "spent:gifts";
    /// A viewer's coin wallet.
    pub fn wallet(user: &str) -> String {
        format!("wallet:{user}")
    }
    /// A creator's settled diamonds.
    pub fn earnings(creator: &str) -> String {
        format!("earnings:{creator}")
    }
    /// Card holders paying through Stripe (external: goes negative by
    /// what they paid).
    pub const STRIPE_CUSTOMERS: &str = "stripe:customers";
    /// The platform's Stripe balance (external: cash-outs can exceed
    /// recorded sales, e.g. of granted coins).
    pub const STRIPE_PLATFORM: &str = "stripe:platform";
    /// Coins a user owes after a refund of coins already spent (debt:
    /// negative by what is owed).
    pub fn debt(user: &str) -> String {
        format!("debt:{user}")
    }
    /// Tips that reached a creator's connected account, cents.
    pub fn tips(creator: &str) -> String {
        format!("tips:{creator}")
    }
    /// Diamonds of cash-outs waiting for their Transfer's outcome.
    pub fn cashout_pending(creator: &str) -> String {
        format!("cashout_pending:{creator}")
    }
    /// Diamonds cashed out.
    pub fn cashed_out(creator: &str) -> String {
        format!("cashed_out:{creator}")
    }
    /// Cents transferred to a creator's connected account by cash-outs.
    pub fn payouts(creator: &str) -> String {
        format!("payouts:{creator}")
    }
    /// Diamonds clawed back from a creator (gifts paid with coins that were
    /// refunded or disputed), taken from their earnings while on hold.
    pub fn clawed_back(creator: &str) -> String {
        format!("clawed_back:{creator}")
    }
    /// What a creator kept of a reversal that could not be taken back
    /// (diamonds already available or cashed out, a tip transfer that could
    /// not be reversed): external, negative by that amount; its other side
    /// is [`PLATFORM_LOSS`].
    pub fn unrecovered(creator: &str) -> String {
        format!("unrecovered:{creator}")
    }
    /// The platform's losses to refunds and disputes it could not recover
    /// from the creator (diamonds and cents; never below zero).
    pub const PLATFORM_LOSS: &str = "loss:platform";
    /// A marketplace contract's escrow: the brand's payment held until
    /// the deliverable is approved (or the brand refunded), cents.
    pub fn escrow(contract: &str) -> String {
        format!("escrow:contract:{contract}")
    }
    /// A contract's escrow on its way out: the Transfer or Refund whose
    /// outcome is not recorded yet, cents.
    pub fn escrow_release(contract: &str) -> String {
        format!("escrow_release:contract:{contract}")
    }
    /// Cents transferred to a creator's connected account by marketplace
    /// contracts (their marketplace income, net of the fee).
    pub fn marketplace(creator: &str) -> String {
        format!("marketplace:{creator}")
    }
    /// The platform's marketplace fees (`marketplace.fee_bps`), cents.
    pub const MARKET_FEES: &str = "fees:marketplace";
}

/// Open a ledger by URL (`sqlite:...`, `postgres://...` or `postgresql://...`).
pub async fn open(url: &str, pool_len_max: u32) -> anyhow::Result<std::sync::Arc<dyn Ledger>> {
    if url.starts_with("sqlite:") {
        return Ok(std::sync::Arc::new(
            sqlite::SqliteLedger::open(url, pool_len_max).await?,
        ));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(std::sync::Arc::new(
            postgres::PgLedger::open(url, pool_len_max).await?,
        ));
    }
    anyhow::bail!(
        "ledger.url `{}`: engine not available",
        crate::config::redact_url(url)
    )
}

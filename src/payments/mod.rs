//! Real money through Stripe: coin purchases, signed webhooks, creator
//! onboarding (Connect Express), tips (destination charges, no fee),
//! diamond cash-outs (Transfers) and marketplace contracts (escrow, a
//! Transfer or a Refund).
//!
//! Owns: the payment flows and their order of effects — the ledger first,
//! then the counters engine, then the room — the recovery of cash-outs
//! and contract payouts left pending by a crash or an unanswered Transfer
//! or Refund (one attempt machine for both, `transfer`), the automatic
//! approval of contracts whose review is due, the reversal of a
//! tip's Transfer when the platform pays its refund or chargeback, and the
//! parking of refunds and disputes that arrive before their purchase.
//! Must not: credit coins or move money on anything but a verified webhook
//! or a Stripe answer; call Stripe without an Idempotency-Key where a
//! retry could repeat money movement; hold SQL (the ledger does); pass
//! Stripe's error text to clients (it is logged).

mod cashout;
mod contract;
mod error;
mod events;
mod onboarding;
mod outcome;
mod purchase;
mod refund_dispute;
pub mod stripe;
mod tip;
mod transfer;
pub mod webhook;

pub use cashout::{cashout, recover_cashouts};
pub use contract::{
    approve_due_contracts, contract_payment, recover_contract_payouts, release, ContractPayment,
};
pub use error::PaymentError;
pub use events::webhook;
pub use onboarding::{
    dashboard_link, onboard, payout_status, DashboardLink, OnboardAnswer, PayoutStatus,
};
pub use outcome::WebhookOutcome;
pub use purchase::{create_purchase, PurchaseAnswer};
pub use tip::{create_tip, TipAnswer, TipRequest};

use std::collections::HashMap;

use crate::error::Result;

use self::stripe::{StripeClient, StripeError};

/// Metadata key naming what a PaymentIntent pays for (`purchase` | `tip` |
/// `contract`).
pub(super) const META_KIND: &str = "giftstream_kind";

/// What the payment flows use of the application: a narrow view built by
/// `crate::app::AppState::payments`, so this module does not import the
/// layer above it.
pub struct Payments<'a> {
    /// Validated configuration.
    pub cfg: &'a crate::config::Config,
    /// The system of record.
    pub ledger: &'a dyn crate::ledger::Ledger,
    /// Wallets (coin credits after the ledger, tip events).
    pub counters: &'a dyn crate::counters::Counters,
    /// Room messages to every node (tip events).
    pub relay: &'a dyn crate::relay::Relay,
    /// The Stripe client; None while payments are off (no secret key).
    pub stripe: Option<&'a StripeClient>,
}

/// What can lend the payment flows their view ([`Payments`]): the
/// application state, or a view itself.
pub trait PaymentsApp: Sync {
    /// The payment flows' view.
    fn payments(&self) -> Payments<'_>;
}

impl PaymentsApp for Payments<'_> {
    fn payments(&self) -> Payments<'_> {
        Payments {
            cfg: self.cfg,
            ledger: self.ledger,
            counters: self.counters,
            relay: self.relay,
            stripe: self.stripe,
        }
    }
}

/// The Stripe client, or `bad_request` "payments are not configured" when
/// `stripe.secret_key` is empty.
pub(super) fn client<'a>(state: &Payments<'a>) -> Result<&'a StripeClient, PaymentError> {
    state.stripe.ok_or(PaymentError::NotConfigured)
}

/// A failed Stripe request as the flows' error; a refusal is logged here
/// with Stripe's words (they can name accounts, keys or internal state
/// that a client must not see, so they stay out of the answer).
pub(super) fn stripe_failed(e: StripeError) -> PaymentError {
    if let StripeError::Refused {
        message,
        kind,
        status,
    } = &e
    {
        tracing::warn!(status, %kind, %message, "stripe refused a request");
    }
    PaymentError::from(e)
}

/// Metadata for a Stripe request.
pub(super) fn metadata<const N: usize>(pairs: [(&str, String); N]) -> HashMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

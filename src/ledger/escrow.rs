//! Escrow and payout of marketplace contracts (issue 14 item 5) as the
//! ledger keeps them: a contract's payment into its escrow account, the
//! deliverable, the release of the escrow (a Transfer to the creator on
//! approval, a Refund to the brand on a rejection or a cancellation after
//! payment) driven through attempts like a cash-out's, and the disputes of
//! the brand's charge.
//!
//! Owns: [`EscrowLedger`] (a supertrait of [`super::Ledger`]), its record
//! types and the postings of every escrow step (pure functions, summing to
//! zero per currency). The SQL is `super::sql::escrow` and
//! `super::sql::escrow_payouts`, written once for both dialects; every
//! state change goes through [`super::market_states`] and moves a row only
//! from the state it read.
//! Must not: call Stripe, check roles or input (the payment flows and the
//! app layer do).

use async_trait::async_trait;

use super::marketplace::{Contract, MarketCursor};
pub use super::marketplace::{ContractPayout, Deliverable, PayoutKind};
use super::types::{CashoutEnd, StripeEventRef};
use super::{account, Postings};
use crate::error::Result;
use crate::model::Fiat;

/// A contract's payout as the payment flows drive it (one row per
/// contract): the attempt rules of a cash-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutJob {
    /// The contract.
    pub contract: String,
    /// Transfer or refund.
    pub kind: PayoutKind,
    /// The creator (the Transfer's destination is their account).
    pub creator: String,
    /// The brand's PaymentIntent (what a refund refunds).
    pub payment_intent: String,
    /// Cents moved.
    pub amount_cents: i64,
    /// The platform's fee, cents.
    pub fee_cents: i64,
    /// The contract's currency.
    pub currency: Fiat,
    /// `pending`, `completed`, `failed` or `flagged`.
    pub status: String,
    /// `tr_...` / `re_...` once known.
    pub stripe_id: Option<String>,
    /// Idempotency-Key of the current attempt.
    pub idem_key: String,
    /// `transfer_group` of every attempt (a Transfer; looked up at Stripe).
    pub transfer_group: String,
    /// Attempt number (1 first).
    pub attempt: i64,
    /// When the current attempt was first sent, ms since the epoch.
    pub attempt_ms: i64,
    /// Recovery passes that failed in a row.
    pub failures: i64,
    /// Recovery leaves it alone until then.
    pub next_try_ms: i64,
}

impl PayoutJob {
    /// What the parties see of it.
    pub fn view(&self) -> ContractPayout {
        ContractPayout {
            kind: self.kind,
            status: self.status.clone(),
            amount_cents: self.amount_cents,
            fee_cents: self.fee_cents,
            stripe_id: self.stripe_id.clone(),
        }
    }
}

/// How a funded contract's escrow is released (the contract's move and
/// its payout row, in one transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Approve (a Transfer), reject or cancel (a Refund when funded; a
    /// cancel of an unpaid contract moves no money).
    pub action: super::market_states::ContractAction,
    /// The platform's fee in basis points of the price (approve).
    pub fee_bps: u32,
    /// The first attempt's Idempotency-Key.
    pub idem_key: String,
    /// The Transfer's group.
    pub transfer_group: String,
    /// Only if the review deadline passed by then (the automatic approval).
    pub due_by_ms: Option<i64>,
    /// A rejection's reason.
    pub reason: Option<String>,
    /// Now, ms since the epoch.
    pub now_ms: i64,
}

/// What a dispute of a contract's charge does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeMove {
    /// `charge.dispute.created`: the payout is held.
    Opened,
    /// `charge.dispute.closed`, won: the hold is lifted.
    Won,
    /// `charge.dispute.closed`, lost: the escrow pays the chargeback (the
    /// platform what it no longer holds) and an unpaid-out contract is
    /// cancelled.
    Lost,
}

/// A contract's payment as `payment_intent.succeeded` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractPaid {
    /// The event.
    pub event: StripeEventRef,
    /// The contract (the PaymentIntent's metadata).
    pub contract: String,
    /// `pi_...`.
    pub payment_intent: String,
    /// Cents received.
    pub amount_cents: i64,
    /// Lower-case currency.
    pub currency: String,
    /// The first refund attempt's key, used if the contract was cancelled
    /// before its payment arrived (the money goes straight back).
    pub refund_key: String,
}

/// What the ledger answers about escrow.
#[async_trait]
pub trait EscrowLedger: Send + Sync {
    /// A contract with its payout, if any.
    async fn contract(&self, contract: &str) -> Result<Option<Contract>>;

    /// A brand's contracts, newest first.
    async fn brand_contracts(
        &self,
        brand: &str,
        len_max: i64,
        after: Option<&MarketCursor>,
    ) -> Result<Vec<Contract>>;

    /// A creator's contracts, newest first.
    async fn creator_contracts_page(
        &self,
        creator: &str,
        len_max: i64,
        after: Option<&MarketCursor>,
    ) -> Result<Vec<Contract>>;

    /// Record the contract's PaymentIntent unless one is recorded; answers
    /// the one recorded.
    async fn set_contract_payment_intent(&self, contract: &str, pi: &str) -> Result<String>;

    /// The payment arrived, once per event: an `awaiting_payment` contract
    /// becomes `funded` (customers → escrow); a contract cancelled before
    /// it is funded and refunded at once (a pending refund). False when
    /// the event or the payment was already applied or does not match.
    async fn contract_paid(&self, paid: &ContractPaid) -> Result<bool>;

    /// The creator submits the deliverable (funded → submitted; the
    /// review is due `review_ms` later).
    async fn contract_submit(
        &self,
        contract: &str,
        url: &str,
        note: &str,
        now_ms: i64,
        review_ms: i64,
    ) -> Result<Contract>;

    /// Move a contract by `release.action` and, when it held money, start
    /// its payout (escrow → release, and the fee) in the same transaction.
    /// `conflict` when the state does not allow it, or (approve) while
    /// disputed.
    async fn contract_release(&self, contract: &str, release: &Release) -> Result<Contract>;

    /// A contract's payout.
    async fn contract_payout(&self, contract: &str) -> Result<Option<PayoutJob>>;

    /// Pending payouts, at most `len_max`, those due first.
    async fn contract_payouts_pending(&self, len_max: usize) -> Result<Vec<PayoutJob>>;

    /// A new attempt of a pending payout (as [`super::Ledger::cashout_new_attempt`]).
    async fn contract_payout_attempt(
        &self,
        contract: &str,
        attempt: i64,
        key: &str,
        now_ms: i64,
    ) -> Result<bool>;

    /// Recovery failed for a pending payout: leave it until `next_try_ms`.
    async fn contract_payout_defer(
        &self,
        contract: &str,
        failures: i64,
        next_try_ms: i64,
    ) -> Result<()>;

    /// End a pending payout once (completed; reversed = `failed`; flagged).
    async fn contract_payout_end(&self, contract: &str, end: &CashoutEnd) -> Result<bool>;

    /// Submitted contracts whose review is due by `now_ms`, not disputed,
    /// at most `len_max`, oldest due first.
    async fn contracts_review_due(&self, now_ms: i64, len_max: usize) -> Result<Vec<String>>;

    /// The contract paid by a PaymentIntent, if any.
    async fn contract_by_payment_intent(&self, pi: &str) -> Result<Option<Contract>>;

    /// A dispute of a contract's charge, once per event.
    async fn contract_dispute(
        &self,
        event: &StripeEventRef,
        contract: &str,
        dispute: DisputeMove,
    ) -> Result<bool>;

    /// Cents paid to `creator` by completed marketplace Transfers, per
    /// currency (only currencies with some).
    async fn marketplace_cents(&self, creator: &str) -> Result<Vec<(Fiat, i64)>>;
}

/// The fee of `price` at `fee_bps` (rounded down).
pub fn fee_of(price: i64, fee_bps: u32) -> i64 {
    ((price as i128 * fee_bps as i128) / 10_000) as i64
}

/// Payment: the brand's cents from the customers into the escrow.
pub fn escrow_paid_postings(contract: &str, price: i64, fiat: Fiat) -> Postings {
    let f = fiat.code();
    let mut p = Postings::new();
    p.insert((account::STRIPE_CUSTOMERS.into(), f, "external"), -price);
    p.insert((account::escrow(contract), f, "escrow"), price);
    p
}

/// Release starts: the escrow's price moves to the release account (what
/// the Transfer or Refund pays), the fee to the platform's fee account.
pub fn escrow_release_postings(contract: &str, price: i64, fee: i64, fiat: Fiat) -> Postings {
    let f = fiat.code();
    let mut p = Postings::new();
    p.insert((account::escrow(contract), f, "escrow"), -price);
    p.insert(
        (account::escrow_release(contract), f, "escrow"),
        price - fee,
    );
    p.insert((account::MARKET_FEES.into(), f, "fees"), fee);
    p.retain(|_, v| *v != 0);
    p
}

/// A payout ends: completed, the released cents reach the creator
/// (Transfer) or the customer (Refund); failed or flagged, they go back to
/// the escrow (held for an operator).
pub fn payout_end_postings(job: &PayoutJob, end: &CashoutEnd) -> Postings {
    let f = job.currency.code();
    let mut p = Postings::new();
    p.insert(
        (account::escrow_release(&job.contract), f, "escrow"),
        -job.amount_cents,
    );
    let to = match (end, job.kind) {
        (CashoutEnd::Completed { .. }, PayoutKind::Transfer) => {
            (account::marketplace(&job.creator), "marketplace")
        }
        (CashoutEnd::Completed { .. }, PayoutKind::Refund) => {
            (account::STRIPE_CUSTOMERS.into(), "external")
        }
        _ => (account::escrow(&job.contract), "escrow"),
    };
    p.insert((to.0, f, to.1), job.amount_cents);
    p.retain(|_, v| *v != 0);
    p
}

/// A lost dispute of `cents`: the escrow pays what it holds
/// (`from_escrow`), the platform's Stripe balance the rest; of the rest,
/// `lost` (what the creator was paid and keeps) is the platform's loss.
pub fn escrow_chargeback_postings(
    contract: &str,
    creator: &str,
    cents: i64,
    from_escrow: i64,
    lost: i64,
    fiat: Fiat,
) -> Postings {
    let f = fiat.code();
    let mut p = Postings::new();
    p.insert((account::escrow(contract), f, "escrow"), -from_escrow);
    p.insert((account::STRIPE_CUSTOMERS.into(), f, "external"), cents);
    p.insert(
        (account::STRIPE_PLATFORM.into(), f, "external"),
        from_escrow - cents,
    );
    p.insert((account::unrecovered(creator), f, "external"), -lost);
    p.insert((account::PLATFORM_LOSS.into(), f, "loss"), lost);
    p.retain(|_, v| *v != 0);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums_zero(p: &Postings) {
        let mut by: std::collections::BTreeMap<&str, i64> = Default::default();
        for ((_, c, _), v) in p {
            *by.entry(c).or_default() += v;
        }
        assert!(by.values().all(|v| *v == 0), "{p:?}");
    }

    fn job(kind: PayoutKind, amount: i64) -> PayoutJob {
        PayoutJob {
            contract: "k1".into(),
            kind,
            creator: "cat".into(),
            payment_intent: "pi_1".into(),
            amount_cents: amount,
            fee_cents: 0,
            currency: Fiat::Eur,
            status: "pending".into(),
            stripe_id: None,
            idem_key: "k".into(),
            transfer_group: "g".into(),
            attempt: 1,
            attempt_ms: 0,
            failures: 0,
            next_try_ms: 0,
        }
    }

    #[test]
    fn every_escrow_step_sums_to_zero() {
        sums_zero(&escrow_paid_postings("k1", 10_000, Fiat::Usd));
        let r = escrow_release_postings("k1", 10_000, 1_000, Fiat::Usd);
        sums_zero(&r);
        assert_eq!(r[&(account::MARKET_FEES.into(), "USD", "fees")], 1_000);
        let done = CashoutEnd::Completed {
            transfer: "tr_1".into(),
        };
        for kind in [PayoutKind::Transfer, PayoutKind::Refund] {
            for end in [done.clone(), CashoutEnd::Reversed] {
                sums_zero(&payout_end_postings(&job(kind, 9_000), &end));
            }
        }
        let t = payout_end_postings(&job(PayoutKind::Transfer, 9_000), &done);
        assert_eq!(
            t[&(account::marketplace("cat"), "EUR", "marketplace")],
            9_000
        );
        sums_zero(&escrow_chargeback_postings(
            "k1",
            "cat",
            10_000,
            0,
            9_000,
            Fiat::Usd,
        ));
        sums_zero(&escrow_chargeback_postings(
            "k1",
            "cat",
            10_000,
            10_000,
            0,
            Fiat::Usd,
        ));
    }

    #[test]
    fn fee_is_basis_points_rounded_down() {
        assert_eq!(fee_of(10_000, 0), 0);
        assert_eq!(fee_of(10_000, 1_000), 1_000);
        assert_eq!(fee_of(999, 1), 0);
        assert_eq!(fee_of(10_000, 10_000), 10_000);
    }
}

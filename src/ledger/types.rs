//! The operations and records the [`super::Ledger`] takes and answers.
//!
//! Owns: plain data types (no SQL, no rules). Must not: hold behaviour
//! beyond trivial accessors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Fiat;

/// A Stripe event as the ledger records it (once per id, in the same
/// transaction as its effect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeEventRef {
    /// `evt_...`.
    pub id: String,
    /// Its type, e.g. `payment_intent.succeeded`.
    pub kind: String,
}

/// A coin purchase paid through Stripe (`payment_intent.succeeded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseOp {
    /// The event that reported the payment.
    pub event: StripeEventRef,
    /// `pi_...`: the purchase's identity (op id `purchase:{pi}`).
    pub payment_intent: String,
    /// The buyer.
    pub user: String,
    /// Coins bought (> 0).
    pub coins: i64,
    /// Price paid, cents (> 0).
    pub amount_cents: i64,
    /// The currency of the price (its accounts take the cents).
    pub currency: Fiat,
}

/// A purchase as recorded, with what refunds took back so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseRecord {
    /// The buyer.
    pub user: String,
    /// Coins bought.
    pub coins: i64,
    /// Price paid, cents.
    pub amount_cents: i64,
    /// Coins already reversed by refunds.
    pub coins_reversed: i64,
    /// Cents refunded so far.
    pub cents_refunded: i64,
    /// Whether `payment_intent.succeeded` credited it.
    pub paid: bool,
    /// Of `coins`, those that repaid the buyer's debt when it was paid (the
    /// wallet got the rest).
    pub coins_to_debt: i64,
    /// The currency of the price (refunds and disputes move it).
    pub currency: Fiat,
}

/// A refund (`charge.refunded`): the counters engine took `coins_taken`
/// of `coins_reversed` from the wallet; the rest is recorded as a debt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOp {
    /// The event that reported the refund.
    pub event: StripeEventRef,
    /// The purchase's PaymentIntent.
    pub payment_intent: String,
    /// Cents refunded in total after this refund (Stripe's cumulative
    /// `amount_refunded`); the op id is `refund:{pi}:{this}`.
    pub cents_refunded_total: i64,
    /// Coins this refund reverses.
    pub coins_reversed: i64,
    /// Of those, coins taken from the wallet (the rest becomes a debt).
    pub coins_taken: i64,
}

/// A chargeback (`charge.dispute.funds_withdrawn`): Stripe took `cents` of
/// a purchase back from the platform; the counters engine took
/// `coins_taken` of the `coins_reversed` coins they bought, the rest is
/// recorded as a debt (as for a refund). Op id `dispute:{dispute_id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeOp {
    /// The event that reported it.
    pub event: StripeEventRef,
    /// `dp_...`.
    pub dispute_id: String,
    /// The purchase's PaymentIntent.
    pub payment_intent: String,
    /// Cents withdrawn.
    pub cents: i64,
    /// Coins this dispute reverses.
    pub coins_reversed: i64,
    /// Of those, coins taken from the wallet (the rest becomes a debt).
    pub coins_taken: i64,
}

/// A dispute as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeRecord {
    /// The purchase's PaymentIntent.
    pub payment_intent: String,
    /// The buyer.
    pub user: String,
    /// Cents withdrawn.
    pub cents: i64,
    /// Coins reversed when the funds were withdrawn.
    pub coins_reversed: i64,
    /// Whether the platform won (`charge.dispute.funds_reinstated`): the
    /// coins and cents came back (op `dispute:{id}:reinstated`).
    pub reinstated: bool,
    /// Of the coins given back, those that repaid the buyer's debt (the
    /// wallet got the rest).
    pub coins_to_debt: i64,
}

/// A creator's Stripe Connect account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayoutAccount {
    /// `acct_...`.
    pub account: String,
    /// Stripe says payouts are enabled.
    pub payouts_enabled: bool,
}

/// A tip, 100% to the creator (a destination charge).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TipRecord {
    /// `pi_...` of the destination charge.
    pub payment_intent: String,
    /// `sender:client id`, unique.
    pub tip_key: String,
    /// Tipper.
    pub sender: String,
    /// Creator receiving it.
    pub creator: String,
    /// `room:ID` or `video:ID`.
    pub target: String,
    /// Cents (> 0).
    pub amount_cents: i64,
    /// The tipper's message.
    pub message: String,
    /// The tip's currency (its accounts take the cents).
    #[sqlx(try_from = "String")]
    pub currency: Fiat,
}

/// A cash-out of diamonds to a creator's connected account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CashoutRecord {
    /// The cash-out id (`creator:client id`; a creator name holds no `:`,
    /// so it is unique per (creator, client id)). Its ledger operations are
    /// keyed by [`OpKey::CashoutBegin`](super::OpKey::CashoutBegin) / [`OpKey::CashoutEnd`](super::OpKey::CashoutEnd).
    pub cashout_id: String,
    /// Whose diamonds.
    pub creator: String,
    /// Diamonds (> 0).
    pub diamonds: i64,
    /// Cents transferred for them (> 0).
    pub amount_cents: i64,
    /// `pending`, `completed`, `reversed` or `flagged` (a Transfer that did
    /// not match the cash-out: diamonds returned, left to an operator).
    pub status: String,
    /// `tr_...` once completed (or flagged).
    pub transfer: Option<String>,
    /// Idempotency-Key of the current Transfer attempt (cash-outs started
    /// before migration 0006 keep their cash-out id as the first key).
    #[serde(skip)]
    pub transfer_key: String,
    /// `transfer_group` sent with every attempt and looked up at Stripe
    /// (empty for cash-outs started before migration 0006).
    #[serde(skip)]
    pub transfer_group: String,
    /// Transfer attempt number (1 first; each new key adds one).
    #[serde(skip)]
    pub attempt: i64,
    /// When the current attempt's key was first sent, ms since epoch.
    #[serde(skip)]
    pub attempt_ms: i64,
    /// Recovery passes that failed in a row for it.
    #[serde(skip)]
    pub failures: i64,
    /// Recovery leaves it alone until then, ms since epoch.
    #[serde(skip)]
    pub next_try_ms: i64,
    /// The currency of the Transfer (default: USD, as every cash-out
    /// before migration 0013).
    #[sqlx(try_from = "String")]
    pub currency: Fiat,
}

/// How a pending cash-out ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CashoutEnd {
    /// The Transfer succeeded: diamonds are cashed out, cents paid.
    Completed {
        /// `tr_...`.
        transfer: String,
    },
    /// Stripe refused the Transfer: diamonds go back to earnings.
    Reversed,
    /// A Transfer exists for it whose amount or destination does not match:
    /// never completed; the diamonds go back to earnings (no cents are
    /// recorded: an operator settles it at Stripe).
    Flagged {
        /// `tr_...` of the mismatching Transfer.
        transfer: String,
    },
}

/// A credit of coins from outside (an admin grant; later a purchase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditOp {
    /// Operation id, unique across the ledger (e.g. `grant:ID`).
    pub op_id: String,
    /// `grant` or `purchase`.
    pub kind: String,
    /// Whose wallet.
    pub user: String,
    /// How many coins (> 0).
    pub coins: i64,
}

/// What [`Ledger::credit`](super::Ledger::credit) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditOutcome {
    /// False when the op id was already in the ledger.
    pub applied_now: bool,
    /// The op as first recorded (a replay answers the original).
    pub op: CreditOp,
}

/// A creator's earnings as the ledger knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LedgerEarnings {
    /// Diamonds settled and not cashed out.
    pub diamonds_settled: i64,
    /// Diamonds cashed out.
    pub diamonds_cashed_out: i64,
    /// Tips received, USD cents (every currency: `currencies`).
    pub tips_cents: i64,
    /// Diamonds of cash-outs waiting for their Transfer.
    pub diamonds_cashout_pending: i64,
    /// USD cents transferred by completed cash-outs (every currency:
    /// `currencies`).
    pub cashed_out_cents: i64,
    /// Hold, clawbacks and tip reversals.
    pub funds: PayoutFunds,
    /// The money of each currency, apart (every fiat currency, zeros
    /// included).
    pub currencies: BTreeMap<Fiat, FiatEarnings>,
}

/// A creator's money in one currency, cents of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FiatEarnings {
    /// Tips received (less what reversals recovered).
    pub tips_cents: i64,
    /// Transferred by completed cash-outs.
    pub cashed_out_cents: i64,
    /// Tip cents refunded or disputed.
    pub tips_reversed_cents: i64,
    /// Of those, cents a transfer reversal took back from the creator.
    pub tips_recovered_cents: i64,
}

/// The rolling window of the daily cash-out limits, ms.
pub const DAY_MS: i64 = 86_400_000;

/// Where a creator's settled diamonds stand with respect to the hold, and
/// what reversals took back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PayoutFunds {
    /// Settled diamonds still on hold (not cashable yet).
    pub diamonds_held: i64,
    /// Settled diamonds that can be cashed out now.
    pub diamonds_available: i64,
    /// Diamonds clawed back by refunds and disputes of the gifts' coins.
    pub diamonds_reversed: i64,
    /// Diamonds a reversal could not claw back (already available or
    /// cashed out): the platform's loss.
    pub diamonds_unrecovered: i64,
    /// USD tip cents refunded or disputed (paid back by the platform).
    pub tips_reversed_cents: i64,
    /// Of those, cents a transfer reversal took back from the creator.
    pub tips_recovered_cents: i64,
    /// Per currency: (tip cents reversed, of those recovered).
    pub tips_reversed_by_currency: BTreeMap<Fiat, (i64, i64)>,
}

/// A refund or dispute of a tip (a destination charge): the platform paid
/// `cents` back, and the transfer reversal recovered `recovered` of them
/// from the creator's account (the rest is the platform's loss).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TipReversalOp {
    /// The event that reported it.
    pub event: StripeEventRef,
    /// The tip's PaymentIntent.
    pub payment_intent: String,
    /// Op id: `tip_refund:{pi}:{total}` or `tip_dispute:{dp}`.
    pub op_id: String,
    /// Cents refunded or disputed now (> 0).
    pub cents: i64,
    /// Of those, cents recovered from the creator (0..=cents).
    pub recovered: i64,
}

/// A tip with its Transfer (if known), cents reversed and cents recovered.
pub type TipRecordFull = (TipRecord, Option<String>, i64, i64);

/// A refund or dispute parked because its purchase was not paid yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlyReversal {
    /// The event that reported it (applied under this id later).
    pub event: StripeEventRef,
    /// The purchase's PaymentIntent.
    pub payment_intent: String,
    /// What the event said (JSON, read back by the payments module).
    pub facts: String,
}

/// Whole-ledger sums, for conservation checks and `reconcile`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Sum of all entries per currency (must be zero for each).
    pub entry_sums: BTreeMap<String, i64>,
    /// Coins issued by the mint.
    pub coins_minted: i64,
    /// Coins held in wallets.
    pub coins_in_wallets: i64,
    /// Coins spent on gifts.
    pub coins_spent: i64,
    /// Coins owed after refunds of coins already spent (<= 0): minted =
    /// in wallets + spent + this.
    pub coins_in_debts: i64,
    /// Diamonds credited to creators.
    pub diamonds_credited: i64,
    /// Gift rows.
    pub gifts: i64,
    /// Sum of gift rows' coins.
    pub gift_coins: i64,
    /// Sum of gift rows' diamonds.
    pub gift_diamonds: i64,
    /// Batches committed.
    pub batches: i64,
}

/// A room or video as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRecord {
    /// Its creator.
    pub creator: String,
    /// Live (always true for a video).
    pub live: bool,
}

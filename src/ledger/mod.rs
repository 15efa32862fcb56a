//! The durable ledger: double entry, integer amounts, idempotent writes.
//!
//! Owns: the [`Ledger`] trait and its engines ([`sqlite::SqliteLedger`],
//! [`postgres::PgLedger`]), the account naming scheme, and the durable
//! registry of rooms and videos. Each write is one transaction keyed by an
//! operation id under a UNIQUE constraint, so a replay changes nothing;
//! every operation id is built by [`OpKey::op_id`] (typed, injective),
//! never by joining client text at a call site.
//! It also owns the money-safety rules that must hold across nodes: the
//! hold on settled diamonds and the daily cash-out limits (checked in the
//! cash-out's transaction, [`PayoutLimits`]), and the clawback of held
//! diamonds by refunds and chargebacks ([`plan_clawback`]), in the same
//! transaction as the reversal.
//! Must not: decide whether a gift is allowed (the counters engine does),
//! or hold balances in memory (it is the system of record).

pub mod postgres;
pub mod sqlite;
pub mod videos;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{Batch, PayoutLimits, PendingGift, Snapshot, Target};

/// Coins, the viewers' currency.
pub const COIN: &str = "COIN";
/// Diamonds, the creators' currency.
pub const DIAMOND: &str = "DIAMOND";
/// US dollars, in cents (coin purchases, tips, cash-outs).
pub const USD: &str = "USD";

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
}

/// The identity of a ledger (and counters) operation, typed: the text under
/// which it is recorded (`operations.op_id`, the counters' op ids) comes
/// only from [`OpKey::op_id`], never from joining strings at the call site.
///
/// The encoding is injective by construction: each variant has its own tag
/// (the first `:`-separated segment, distinct per variant or per arity) and a
/// fixed number of fields; every field is escaped (`%` → `%25`, `:` → `%3A`)
/// except a `grant`'s id, which is the whole rest of its text (one free
/// field, last, under a tag no other variant uses). Stripe ids contain
/// neither `:` nor `%`, so the keys of purchases, refunds, disputes, tips
/// read exactly as they did before this type existed; cash-outs moved to the
/// `cashout.begin` / `cashout.end` tags because their old ids
/// (`cashout:{creator}:{client id}` and `...:done`) collided (issue 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKey<'a> {
    /// An admin grant of a client-chosen id: `grant:{id}` (id unescaped).
    Grant(&'a str),
    /// A settlement batch: `batch:{id}`.
    Batch(&'a str),
    /// A paid purchase: `purchase:{pi}`.
    Purchase(&'a str),
    /// A refund reaching `cents_total` refunded: `refund:{pi}:{cents}`.
    Refund(&'a str, i64),
    /// A chargeback: `dispute:{dp}`.
    Dispute(&'a str),
    /// A won chargeback: `dispute:{dp}:reinstated`.
    DisputeReinstated(&'a str),
    /// A paid tip: `tip:{pi}`.
    Tip(&'a str),
    /// A tip's refund reaching `cents_total`: `tip_refund:{pi}:{cents}`.
    TipRefund(&'a str, i64),
    /// A tip's chargeback: `tip_dispute:{dp}`.
    TipDispute(&'a str),
    /// A won tip chargeback: `tip_dispute:{dp}:reinstated`.
    TipDisputeReinstated(&'a str),
    /// The start of a cash-out: `cashout.begin:{cashout id}`.
    CashoutBegin(&'a str),
    /// The end (completed, reversed or flagged) of a cash-out:
    /// `cashout.end:{cashout id}` (one end per cash-out).
    CashoutEnd(&'a str),
}

/// `s` with `%` and `:` percent-escaped (an injective map onto strings
/// without `:`).
fn escape_field(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains([':', '%']) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(s.replace('%', "%25").replace(':', "%3A"))
}

impl OpKey<'_> {
    /// The operation id recorded for this key (see the type's docs).
    pub fn op_id(&self) -> String {
        let e = escape_field;
        match self {
            OpKey::Grant(id) => format!("grant:{id}"),
            OpKey::Batch(id) => format!("batch:{}", e(id)),
            OpKey::Purchase(pi) => format!("purchase:{}", e(pi)),
            OpKey::Refund(pi, cents) => format!("refund:{}:{cents}", e(pi)),
            OpKey::Dispute(dp) => format!("dispute:{}", e(dp)),
            OpKey::DisputeReinstated(dp) => format!("dispute:{}:reinstated", e(dp)),
            OpKey::Tip(pi) => format!("tip:{}", e(pi)),
            OpKey::TipRefund(pi, cents) => format!("tip_refund:{}:{cents}", e(pi)),
            OpKey::TipDispute(dp) => format!("tip_dispute:{}", e(dp)),
            OpKey::TipDisputeReinstated(dp) => format!("tip_dispute:{}:reinstated", e(dp)),
            OpKey::CashoutBegin(id) => format!("cashout.begin:{}", e(id)),
            OpKey::CashoutEnd(id) => format!("cashout.end:{}", e(id)),
        }
    }
}

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// A cash-out of diamonds to a creator's connected account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CashoutRecord {
    /// The cash-out id (`creator:client id`; a creator name holds no `:`,
    /// so it is unique per (creator, client id)). Its ledger operations are
    /// keyed by [`OpKey::CashoutBegin`] / [`OpKey::CashoutEnd`].
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

/// What [`Ledger::credit`] did.
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
    /// Tips received, cents.
    pub tips_cents: i64,
    /// Diamonds of cash-outs waiting for their Transfer.
    pub diamonds_cashout_pending: i64,
    /// Cents transferred by completed cash-outs.
    pub cashed_out_cents: i64,
    /// Hold, clawbacks and tip reversals.
    pub funds: PayoutFunds,
}

/// Every ledger gives the counters engines what they read from it.
#[async_trait]
impl<L: Ledger + ?Sized> crate::model::GiftRecords for L {
    async fn snapshot(&self, recent_ms: i64, seq_gap: u64) -> Result<Snapshot> {
        Ledger::snapshot(self, recent_ms, seq_gap).await
    }

    async fn has_gift(&self, target: &str, seq: u64) -> Result<bool> {
        Ledger::has_gift(self, target, seq).await
    }
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
    /// Tip cents refunded or disputed (paid back by the platform).
    pub tips_reversed_cents: i64,
    /// Of those, cents a transfer reversal took back from the creator.
    pub tips_recovered_cents: i64,
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

/// The ledger (its video reads: [`videos::VideoLedger`]).
#[async_trait]
pub trait Ledger: videos::VideoLedger + Send + Sync + 'static {
    /// Credit coins once per op id. A replay answers the original op; the
    /// same id with other parameters is `bad_request`.
    async fn credit(&self, op: &CreditOp) -> Result<CreditOutcome>;

    /// Commit a settlement batch in one transaction. Returns false when the
    /// batch id was already committed (nothing written). Gifts already in
    /// the ledger under their (target, seq) are skipped, not posted twice.
    async fn commit_batch(&self, batch: &Batch) -> Result<bool>;

    /// Balances, credit op ids, gifts newer than `recent_ms`, and targets
    /// with their first safe seq (`seq_gap` added after an unclean stop).
    async fn snapshot(&self, recent_ms: i64, seq_gap: u64) -> Result<Snapshot>;

    /// Record a room (re)opened or a video registered for `creator`;
    /// `forbidden` if the id belongs to another creator.
    async fn open_target(&self, target: &Target, creator: &str) -> Result<()>;

    /// Record a room's live as ended.
    async fn end_room(&self, room: &str) -> Result<()>;

    /// A room or video, if recorded.
    async fn target(&self, target: &Target) -> Result<Option<TargetRecord>>;

    /// Whether the gift `(target key, seq)` is in the ledger (settled).
    async fn has_gift(&self, target: &str, seq: u64) -> Result<bool>;

    /// How many rooms of `creator` are live (`limits.live_rooms_per_creator_max`).
    async fn live_rooms(&self, creator: &str) -> Result<u64>;

    /// Balance of one account in one currency.
    async fn balance(&self, account: &str, currency: &str) -> Result<i64>;

    /// A creator's settled earnings, cash-outs and tips (derived from
    /// balances).
    async fn earnings(&self, creator: &str) -> Result<LedgerEarnings> {
        Ok(LedgerEarnings {
            diamonds_settled: self.balance(&account::earnings(creator), DIAMOND).await?,
            diamonds_cashed_out: self.balance(&account::cashed_out(creator), DIAMOND).await?,
            tips_cents: self.balance(&account::tips(creator), USD).await?,
            diamonds_cashout_pending: self
                .balance(&account::cashout_pending(creator), DIAMOND)
                .await?,
            cashed_out_cents: self.balance(&account::payouts(creator), USD).await?,
            funds: self.payout_funds(creator).await?,
        })
    }

    /// Set the cash-out limits and the hold (see [`PayoutLimits`]).
    fn set_payout_limits(&self, limits: PayoutLimits);

    /// Held, available, clawed back and unrecovered diamonds, and tip
    /// reversals, of `creator` now.
    async fn payout_funds(&self, creator: &str) -> Result<PayoutFunds>;

    /// A refund or dispute of a tip, once (see [`TipReversalOp`]). False
    /// when the event or the op was already applied, or the PaymentIntent
    /// is not a succeeded tip.
    async fn tip_reversed(&self, op: &TipReversalOp) -> Result<bool>;

    /// `charge.dispute.funds_reinstated` of a tip: the platform got the
    /// cents back (op `tip_dispute:{dp}:reinstated`), once; the loss
    /// recorded by the withdrawal is taken back, and when `repaid` (a
    /// Transfer gave the creator back what the reversal took) the
    /// withdrawal is undone whole. False when the event was already applied
    /// or the dispute was not withdrawn.
    async fn tip_dispute_reinstated(
        &self,
        event: &StripeEventRef,
        payment_intent: &str,
        dispute_id: &str,
        repaid: bool,
    ) -> Result<bool>;

    /// A tip dispute's withdrawal: (cents, cents recovered from the
    /// creator), if recorded.
    async fn tip_dispute_amounts(&self, dispute_id: &str) -> Result<Option<(i64, i64)>>;

    /// Record the Transfer of a tip's destination charge (from a charge
    /// event), when none is recorded yet.
    async fn tip_transfer(&self, payment_intent: &str, transfer: &str) -> Result<()>;

    /// A tip by PaymentIntent, with its Transfer (if known), the cents
    /// reversed so far and, of those, the cents recovered from the creator.
    async fn tip_record(&self, payment_intent: &str) -> Result<Option<TipRecordFull>>;

    /// Park a refund or dispute of a purchase not paid yet. False when the
    /// event was already applied or parked.
    async fn park_reversal(&self, r: &EarlyReversal) -> Result<bool>;

    /// Reversals parked for a PaymentIntent, oldest first.
    async fn parked_reversals(&self, payment_intent: &str) -> Result<Vec<EarlyReversal>>;

    /// Whether the Stripe event `id` was already applied.
    async fn stripe_event_seen(&self, id: &str) -> Result<bool>;

    /// Record an event that has no ledger effect (acknowledged, ignored).
    /// False when it was already recorded.
    async fn record_stripe_event(&self, event: &StripeEventRef) -> Result<bool>;

    /// Record a purchase whose PaymentIntent was just created (unpaid;
    /// `op.event` is not used). A repeat changes nothing.
    async fn purchase_created(&self, op: &PurchaseOp) -> Result<()>;

    /// Credit a paid purchase once: op `purchase:{pi}` (mint → wallet in
    /// coins; customers → platform in cents), the purchase marked paid and
    /// the event row, in one transaction. False (and only the event
    /// recorded) when the event or the purchase was already applied, or no
    /// unpaid purchase with these parameters was created here.
    async fn purchase(&self, op: &PurchaseOp) -> Result<bool>;

    /// A purchase by PaymentIntent id.
    async fn purchase_record(&self, payment_intent: &str) -> Result<Option<PurchaseRecord>>;

    /// Record a refund once (see [`RefundOp`]). False when already applied.
    async fn refund(&self, op: &RefundOp) -> Result<bool>;

    /// Record a chargeback once (see [`DisputeOp`]): the dispute row, the
    /// purchase's reversed coins and the postings of a refund. False when
    /// the event or the dispute was already applied, or the purchase is not
    /// a paid one of ours.
    async fn dispute_withdrawn(&self, op: &DisputeOp) -> Result<bool>;

    /// A won dispute (`charge.dispute.funds_reinstated`), once: the cents
    /// come back to the platform and the coins to the buyer — first to
    /// their debt, the rest to the wallet (recorded as the dispute's
    /// `coins_to_debt`). False when the event was already applied or the
    /// dispute is not a withdrawn one.
    async fn dispute_reinstated(&self, event: &StripeEventRef, dispute_id: &str) -> Result<bool>;

    /// A dispute by id.
    async fn dispute_record(&self, dispute_id: &str) -> Result<Option<DisputeRecord>>;

    /// The creator's connected account, if any.
    async fn payout_account(&self, creator: &str) -> Result<Option<PayoutAccount>>;

    /// Record `account` for `creator` unless one is recorded; answers the
    /// account recorded (the first one wins).
    async fn put_payout_account(&self, creator: &str, account: &str) -> Result<PayoutAccount>;

    /// `account.updated`: set `payouts_enabled` for the account, once per
    /// event, and only when the event (its `created`, seconds) is newer than
    /// the last one applied for the account (Stripe does not order events).
    /// False when the event was already applied or is older.
    async fn account_updated(
        &self,
        event: &StripeEventRef,
        account: &str,
        payouts_enabled: bool,
        created: i64,
    ) -> Result<bool>;

    /// Record a tip whose PaymentIntent was created (pending). A replay
    /// with the same PaymentIntent changes nothing.
    async fn tip_created(&self, tip: &TipRecord) -> Result<()>;

    /// The tip's PaymentIntent succeeded: post customers → tips:{creator}
    /// in cents, once. Answers the tip when applied now (None when the
    /// event or tip was already applied, or the PaymentIntent is no tip).
    async fn tip_succeeded(
        &self,
        event: &StripeEventRef,
        payment_intent: &str,
    ) -> Result<Option<TipRecord>>;

    /// Start a cash-out: diamonds move earnings → cashout_pending (op
    /// [`OpKey::CashoutBegin`]), recorded with its first `transfer_key`
    /// and `transfer_group` (`attempt` 1, `attempt_ms` now). The cash-out
    /// row (unique `cashout_id`) decides a replay, not the op id.
    /// `insufficient_funds` when fewer are settled, or fewer are available
    /// (out of the hold: [`PayoutLimits::hold_ms`]); `rate_limited` beyond
    /// the daily limits (counted in the same transaction from the ledger's
    /// cash-outs, so across nodes). A replay with the same parameters
    /// answers the recorded cash-out; other parameters are `bad_request`.
    async fn cashout_begin(&self, c: &CashoutRecord) -> Result<CashoutRecord>;

    /// End a pending cash-out once (completed, reversed or flagged; op
    /// [`OpKey::CashoutEnd`]). False when it had already ended.
    async fn cashout_end(&self, cashout_id: &str, end: &CashoutEnd) -> Result<bool>;

    /// Record a new Transfer attempt of a pending cash-out: `attempt` (the
    /// current one plus one) with its new Idempotency-Key, first sent at
    /// `now_ms`; its recovery backoff is cleared. False (nothing changed)
    /// when it is no longer pending or `attempt` is not the next one.
    async fn cashout_new_attempt(
        &self,
        cashout_id: &str,
        attempt: i64,
        transfer_key: &str,
        now_ms: i64,
    ) -> Result<bool>;

    /// Recovery failed for a pending cash-out: record `failures` (in a row)
    /// and leave it alone until `next_try_ms`.
    async fn cashout_defer(&self, cashout_id: &str, failures: i64, next_try_ms: i64) -> Result<()>;

    /// A cash-out by id.
    async fn cashout(&self, cashout_id: &str) -> Result<Option<CashoutRecord>>;

    /// Cash-outs still pending (recovery), at most `len_max`, those due
    /// first (by `next_try_ms`, then age).
    async fn cashouts_pending(&self, len_max: usize) -> Result<Vec<CashoutRecord>>;

    /// Whole-ledger sums.
    async fn totals(&self) -> Result<Totals>;

    /// Credit an admin grant once (as [`Ledger::credit`], op
    /// [`OpKey::Grant`]) and record `admin` as its grantor. Refused with
    /// `rate_limited` (nothing written) when the coins `admin` granted in
    /// the last 24 hours plus these would exceed `coins_per_day_max`. A
    /// replay answers the original (not counted again).
    async fn grant(
        &self,
        op: &CreditOp,
        admin: &str,
        coins_per_day_max: i64,
    ) -> Result<CreditOutcome>;

    /// Who granted the grant recorded under `op_id`, if it is one.
    async fn grant_admin(&self, op_id: &str) -> Result<Option<String>>;

    /// Take this process's exclusive hold on the ledger (for the in-process
    /// `memory` counters, which must be the only writer of their ledger):
    /// an error naming the lock when another process holds it. Held until
    /// the ledger is dropped. An in-memory SQLite ledger has nothing to
    /// share and takes none.
    async fn lock_exclusive(&self) -> anyhow::Result<()>;

    /// Give up the hold of [`Ledger::lock_exclusive`] (a stop, or a crash
    /// drill in process: a killed process loses it with its files and
    /// connections). Nothing when none is held.
    async fn unlock_exclusive(&self);

    /// Set the clean-shutdown mark; answers the previous one (true when the
    /// last run stopped cleanly after a final flush).
    async fn swap_clean_mark(&self, clean: bool) -> Result<bool>;
}

/// The postings of a batch: (account, currency, kind) -> amount, summing to
/// zero per currency.
pub fn batch_postings<'a>(
    gifts: impl IntoIterator<Item = &'a PendingGift>,
) -> BTreeMap<(String, &'static str, &'static str), i64> {
    // Summed per sender and per creator on borrowed names first: one
    // account name is built per distinct account, not four per gift (the
    // per-gift `format!` and string compares were 4 % of the ingest
    // profile).
    let mut spent: foldhash::HashMap<&str, i64> = foldhash::HashMap::default();
    let mut earned: foldhash::HashMap<&str, i64> = foldhash::HashMap::default();
    let (mut coins, mut diamonds) = (0i64, 0i64);
    for g in gifts {
        *spent.entry(g.sender.as_str()).or_default() += g.coins;
        *earned.entry(g.creator.as_str()).or_default() += g.diamonds;
        coins += g.coins;
        diamonds += g.diamonds;
    }
    let mut p: BTreeMap<(String, &'static str, &'static str), i64> = BTreeMap::new();
    for (sender, c) in spent {
        *p.entry((account::wallet(sender), COIN, "wallet"))
            .or_default() -= c;
    }
    p.insert((account::SPENT.to_string(), COIN, "spent"), coins);
    for (creator, d) in earned {
        *p.entry((account::earnings(creator), DIAMOND, "earnings"))
            .or_default() += d;
    }
    p.insert((account::MINT.to_string(), DIAMOND, "mint"), -diamonds);
    p.retain(|_, v| *v != 0);
    debug_assert_eq!(
        p.iter()
            .filter(|k| k.0 .1 == COIN)
            .map(|(_, v)| v)
            .sum::<i64>(),
        0
    );
    debug_assert_eq!(
        p.iter()
            .filter(|k| k.0 .1 == DIAMOND)
            .map(|(_, v)| v)
            .sum::<i64>(),
        0
    );
    p
}

/// The postings of a purchase: coins from the mint, first to the buyer's
/// debt (`to_debt`, at most what is owed), the rest to the wallet; cents
/// from the customers to the platform's Stripe balance.
pub fn purchase_postings(op: &PurchaseOp, to_debt: i64) -> Postings {
    debug_assert!(
        (0..=op.coins).contains(&to_debt),
        "repays at most the purchase"
    );
    let mut p = Postings::new();
    p.insert((account::MINT.into(), COIN, "mint"), -op.coins);
    p.insert(
        (account::wallet(&op.user), COIN, "wallet"),
        op.coins - to_debt,
    );
    p.insert((account::debt(&op.user), COIN, "debt"), to_debt);
    p.insert(
        (account::STRIPE_CUSTOMERS.into(), USD, "external"),
        -op.amount_cents,
    );
    p.insert(
        (account::STRIPE_PLATFORM.into(), USD, "external"),
        op.amount_cents,
    );
    p.retain(|_, v| *v != 0);
    p
}

/// Coins of a purchase of `coins` that repay a debt balance of `debt_balance`
/// (a debt account's balance is negative while coins are owed).
pub fn debt_repayment(coins: i64, debt_balance: i64) -> i64 {
    debt_balance.saturating_neg().clamp(0, coins.max(0))
}

/// The postings of a refund of `cents` (this refund's part): the reversed
/// coins go back to the mint, taken from the wallet, the rest recorded as
/// the user's debt; the cents go back from the platform to the customer.
pub fn refund_postings(user: &str, op: &RefundOp, cents: i64) -> Postings {
    reversal_postings(user, op.coins_reversed, op.coins_taken, cents)
}

/// The postings of money taken back (a refund or a chargeback): the
/// reversed coins go back to the mint, `coins_taken` of them from the
/// wallet and the rest recorded as the user's debt; the cents go back from
/// the platform to the customer.
pub fn reversal_postings(
    user: &str,
    coins_reversed: i64,
    coins_taken: i64,
    cents: i64,
) -> Postings {
    let mut p = Postings::new();
    let debt = coins_reversed - coins_taken;
    p.insert((account::MINT.into(), COIN, "mint"), coins_reversed);
    p.insert((account::wallet(user), COIN, "wallet"), -coins_taken);
    p.insert((account::debt(user), COIN, "debt"), -debt);
    p.insert((account::STRIPE_CUSTOMERS.into(), USD, "external"), cents);
    p.insert((account::STRIPE_PLATFORM.into(), USD, "external"), -cents);
    p.retain(|_, v| *v != 0);
    p
}

/// The postings of a tip: cents from the customer straight to the
/// creator's connected account (a destination charge, no fee).
pub fn tip_postings(tip: &TipRecord) -> Postings {
    let mut p = Postings::new();
    p.insert(
        (account::STRIPE_CUSTOMERS.into(), USD, "external"),
        -tip.amount_cents,
    );
    p.insert((account::tips(&tip.creator), USD, "tips"), tip.amount_cents);
    p
}

/// The postings that start a cash-out.
pub fn cashout_begin_postings(c: &CashoutRecord) -> Postings {
    let mut p = Postings::new();
    p.insert(
        (account::earnings(&c.creator), DIAMOND, "earnings"),
        -c.diamonds,
    );
    p.insert(
        (
            account::cashout_pending(&c.creator),
            DIAMOND,
            "cashout_pending",
        ),
        c.diamonds,
    );
    p
}

/// The postings that end a cash-out.
pub fn cashout_end_postings(c: &CashoutRecord, end: &CashoutEnd) -> Postings {
    let mut p = Postings::new();
    p.insert(
        (
            account::cashout_pending(&c.creator),
            DIAMOND,
            "cashout_pending",
        ),
        -c.diamonds,
    );
    match end {
        CashoutEnd::Completed { .. } => {
            p.insert(
                (account::cashed_out(&c.creator), DIAMOND, "cashed_out"),
                c.diamonds,
            );
            p.insert(
                (account::STRIPE_PLATFORM.into(), USD, "external"),
                -c.amount_cents,
            );
            p.insert(
                (account::payouts(&c.creator), USD, "payouts"),
                c.amount_cents,
            );
        }
        CashoutEnd::Reversed | CashoutEnd::Flagged { .. } => {
            p.insert(
                (account::earnings(&c.creator), DIAMOND, "earnings"),
                c.diamonds,
            );
        }
    }
    p
}

/// A gift of a buyer whose purchase was refunded or disputed, as a
/// clawback sees it (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClawbackGift {
    /// `room:ID` or `video:ID`.
    pub target: String,
    /// Its seq.
    pub seq: i64,
    /// The settlement batch's op id.
    pub op_id: String,
    /// Who earned it.
    pub creator: String,
    /// Coins it cost.
    pub coins: i64,
    /// Diamonds it earned.
    pub diamonds: i64,
    /// Coins of it already clawed back by an earlier reversal.
    pub coins_clawed: i64,
    /// Diamonds of its settlement (batch, creator) still on hold and not
    /// clawed back yet (0 once the hold passed).
    pub settlement_held: i64,
    /// The creator's earnings balance (settled, not cashed out).
    pub earnings: i64,
}

/// What a clawback does: coins per gift, diamonds per settlement, postings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClawbackPlan {
    /// (target, seq, coins reversed now).
    pub gifts: Vec<(String, i64, i64)>,
    /// (settlement op id, creator, diamonds clawed now).
    pub settlements: Vec<(String, String, i64)>,
    /// Diamonds taken back from earnings on hold.
    pub clawed: i64,
    /// Diamonds that could not be (already available or cashed out): the
    /// platform's loss.
    pub lost: i64,
    /// earnings → clawed_back, and unrecovered → platform loss.
    pub postings: Postings,
}

/// Claw back the diamonds of a buyer's gifts for `coins` reversed coins:
/// newest gift first, each for at most its coins not clawed back yet,
/// converted at the gift's own diamonds/coins (rounded down); diamonds
/// still on hold are taken from the creator's earnings, the rest is
/// recorded as the platform's loss, never dropped.
pub fn plan_clawback(gifts: &[ClawbackGift], coins: i64) -> ClawbackPlan {
    use std::collections::HashMap;
    let mut plan = ClawbackPlan::default();
    let mut left = coins.max(0);
    let mut held: HashMap<(&str, &str), i64> = HashMap::new();
    let mut earnings: HashMap<&str, i64> = HashMap::new();
    let mut per_settlement: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut per_creator: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for g in gifts {
        if left == 0 {
            break;
        }
        let open = (g.coins - g.coins_clawed).max(0);
        let take = left.min(open);
        if take == 0 || g.coins <= 0 {
            continue;
        }
        left -= take;
        plan.gifts.push((g.target.clone(), g.seq, take));
        let diamonds = ((g.diamonds as i128 * take as i128) / g.coins as i128) as i64;
        let h = held
            .entry((g.op_id.as_str(), g.creator.as_str()))
            .or_insert(g.settlement_held.max(0));
        let e = earnings
            .entry(g.creator.as_str())
            .or_insert(g.earnings.max(0));
        let claw = diamonds.min(*h).min(*e);
        *h -= claw;
        *e -= claw;
        if claw > 0 {
            *per_settlement
                .entry((g.op_id.clone(), g.creator.clone()))
                .or_default() += claw;
        }
        let c = per_creator.entry(g.creator.as_str()).or_default();
        c.0 += claw;
        c.1 += diamonds - claw;
    }
    for (creator, (claw, lost)) in per_creator {
        plan.clawed += claw;
        plan.lost += lost;
        let p = &mut plan.postings;
        *p.entry((account::earnings(creator), DIAMOND, "earnings"))
            .or_default() -= claw;
        *p.entry((account::clawed_back(creator), DIAMOND, "clawed_back"))
            .or_default() += claw;
        *p.entry((account::unrecovered(creator), DIAMOND, "external"))
            .or_default() -= lost;
        *p.entry((account::PLATFORM_LOSS.into(), DIAMOND, "loss"))
            .or_default() += lost;
    }
    plan.postings.retain(|_, v| *v != 0);
    plan.settlements = per_settlement
        .into_iter()
        .map(|((op, c), d)| (op, c, d))
        .collect();
    plan
}

/// The postings of a won tip dispute from its withdrawal's USD `entries`:
/// the cents come back (customers → platform), the recorded loss is taken
/// back, and when `repaid` the creator's recovered cents go back to them
/// (the withdrawal negated whole).
pub fn tip_reinstated_postings(entries: &[(String, i64)], repaid: bool) -> Postings {
    let mut p = Postings::new();
    let cents = entries
        .iter()
        .find(|(a, _)| a == account::STRIPE_CUSTOMERS)
        .map_or(0, |(_, v)| *v);
    for (acct, amount) in entries {
        let kind = if acct.starts_with("tips:") {
            if !repaid {
                continue;
            }
            "tips"
        } else if acct == account::PLATFORM_LOSS {
            "loss"
        } else if acct == account::STRIPE_PLATFORM && !repaid {
            *p.entry((acct.clone(), USD, "external")).or_default() += cents;
            continue;
        } else {
            "external"
        };
        *p.entry((acct.clone(), USD, kind)).or_default() -= amount;
    }
    p.retain(|_, v| *v != 0);
    p
}

/// (cents, cents recovered from the creator) of a tip reversal's USD
/// entries.
pub fn tip_amounts_of(entries: &[(String, i64)]) -> (i64, i64) {
    let get = |f: &dyn Fn(&str) -> bool| {
        entries
            .iter()
            .filter(|(a, _)| f(a))
            .map(|(_, v)| *v)
            .sum::<i64>()
    };
    (
        get(&|a| a == account::STRIPE_CUSTOMERS),
        -get(&|a| a.starts_with("tips:")),
    )
}

/// The postings that undo a chargeback's clawback when the platform wins
/// the dispute (the coins are paid after all): the diamond entries of the
/// withdrawal op, negated — clawed-back diamonds go back to the creators'
/// earnings and the loss recorded for the rest is taken back.
pub fn clawback_undo_postings(entries: &[(String, i64)]) -> Postings {
    let mut p = Postings::new();
    for (acct, amount) in entries {
        let kind = if acct.starts_with("earnings:") {
            "earnings"
        } else if acct.starts_with("clawed_back:") {
            "clawed_back"
        } else if acct == account::PLATFORM_LOSS {
            "loss"
        } else {
            "external"
        };
        *p.entry((acct.clone(), DIAMOND, kind)).or_default() -= amount;
    }
    p.retain(|_, v| *v != 0);
    p
}

/// The postings of a tip refunded or disputed: the platform pays the
/// customer back, the transfer reversal brings `recovered` back from the
/// creator's account, and the rest is the platform's loss.
pub fn tip_reversal_postings(creator: &str, cents: i64, recovered: i64) -> Postings {
    let mut p = Postings::new();
    let lost = cents - recovered;
    *p.entry((account::STRIPE_CUSTOMERS.into(), USD, "external"))
        .or_default() += cents;
    *p.entry((account::STRIPE_PLATFORM.into(), USD, "external"))
        .or_default() += recovered - cents;
    *p.entry((account::tips(creator), USD, "tips")).or_default() -= recovered;
    *p.entry((account::unrecovered(creator), USD, "external"))
        .or_default() -= lost;
    *p.entry((account::PLATFORM_LOSS.into(), USD, "loss"))
        .or_default() += lost;
    p.retain(|_, v| *v != 0);
    p
}

/// The settlement rows of a batch: diamonds per creator of the gifts
/// posted now (the hold starts at the batch's commit).
pub fn settlement_rows<'a>(
    gifts: impl IntoIterator<Item = &'a PendingGift>,
) -> BTreeMap<&'a str, i64> {
    let mut m: BTreeMap<&str, i64> = BTreeMap::new();
    for g in gifts {
        *m.entry(g.creator.as_str()).or_default() += g.diamonds;
    }
    m.retain(|_, d| *d > 0);
    m
}

/// Why a cash-out is refused by the hold or the daily limits, if it is:
/// `available` diamonds now, and the creator's cash-outs (count, cents)
/// in the last 24 hours.
pub fn cashout_refusal(
    c: &CashoutRecord,
    limits: &PayoutLimits,
    available: i64,
    day: (i64, i64),
) -> Option<crate::error::Error> {
    use crate::error::{Error, ErrorCode};
    if day.0 >= limits.cashouts_per_day_max {
        return Some(Error::new(
            ErrorCode::RateLimited,
            format!(
                "at most {} cash-outs per 24 hours (payouts.cashouts_per_day_max)",
                limits.cashouts_per_day_max
            ),
        ));
    }
    if day.1.saturating_add(c.amount_cents) > limits.cashout_cents_per_day_max {
        return Some(Error::new(
            ErrorCode::RateLimited,
            format!(
                "at most {} cents cashed out per 24 hours (payouts.cashout_cents_per_day_max)",
                limits.cashout_cents_per_day_max
            ),
        ));
    }
    if c.diamonds > available {
        return Some(Error::new(
            ErrorCode::InsufficientFunds,
            format!(
                "only {available} diamonds are available (settled diamonds are held for payouts.hold_s)"
            ),
        ));
    }
    None
}

/// The answer to a credit whose op id is already recorded with `detail`:
/// the original when the parameters match, else `bad_request`.
pub(crate) fn replayed_credit(op: &CreditOp, detail: &str) -> Result<CreditOutcome> {
    let first: CreditOp = serde_json::from_str(detail).map_err(|_| {
        crate::error::Error::bad_request(format!(
            "id `{}` was used for another kind of operation",
            op.op_id
        ))
    })?;
    if first != *op {
        return Err(crate::error::Error::bad_request(format!(
            "id `{}` was already used with other parameters",
            op.op_id
        )));
    }
    Ok(CreditOutcome {
        applied_now: false,
        op: first,
    })
}

/// `rate_limited`: `admin` granted `granted` coins in the last 24 hours and
/// may grant at most `max`.
pub(crate) fn grant_cap_error(admin: &str, granted: i64, max: i64) -> crate::error::Error {
    crate::error::Error::new(
        crate::error::ErrorCode::RateLimited,
        format!(
            "admin `{admin}` granted {granted} coins in the last 24 hours; at most {max} (admin.grant_coins_per_day_max)"
        ),
    )
}

/// Postings keyed by (account, currency, kind).
pub type Postings = BTreeMap<(String, &'static str, &'static str), i64>;

/// Whether a database error is a CHECK violation (a balance that would go
/// below zero).
pub(crate) fn is_check_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.code().as_deref() == Some("23514")
                || d.code().as_deref() == Some("275")
                || d.message().contains("CHECK constraint failed")
        }
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use super::OpKey;

    #[test]
    fn op_keys_of_existing_kinds_read_as_before() {
        assert_eq!(OpKey::Grant("a:b%c").op_id(), "grant:a:b%c");
        assert_eq!(OpKey::Batch("b-1").op_id(), "batch:b-1");
        assert_eq!(OpKey::Purchase("pi_1").op_id(), "purchase:pi_1");
        assert_eq!(OpKey::Refund("pi_1", 50).op_id(), "refund:pi_1:50");
        assert_eq!(OpKey::Dispute("dp_1").op_id(), "dispute:dp_1");
        assert_eq!(
            OpKey::DisputeReinstated("dp_1").op_id(),
            "dispute:dp_1:reinstated"
        );
        assert_eq!(OpKey::Tip("pi_2").op_id(), "tip:pi_2");
    }

    #[test]
    fn cash_out_keys_never_collide_whatever_the_client_id() {
        let ids = ["c:x", "c:x:done", "c:x:reversed", "c:x%3Adone", "c:x%", ""];
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            for k in [OpKey::CashoutBegin(id), OpKey::CashoutEnd(id)] {
                let op = k.op_id();
                assert!(seen.insert(op.clone()), "{op} twice");
                // Never of the old form, which old rows keep.
                assert!(!op.starts_with("cashout:"), "{op}");
            }
        }
        assert_eq!(
            OpKey::CashoutBegin("c:x:done").op_id(),
            "cashout.begin:c%3Ax%3Adone"
        );
        assert_eq!(
            OpKey::Dispute("dp:1:reinstated").op_id(),
            "dispute:dp%3A1%3Areinstated"
        );
    }
}

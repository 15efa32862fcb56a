//! The [`Ledger`] trait: what every ledger engine does.
//!
//! Owns: the trait and its contract (one transaction per write, idempotent
//! by op id). Must not: hold SQL (see `super::sql`) or money rules (see
//! `super::rules`).

use async_trait::async_trait;

use super::types::*;
use super::{account, DIAMOND, USD};
use crate::error::Result;
use crate::model::Fiat;
use crate::model::{Batch, PayoutLimits, Snapshot, Target};

/// Every ledger gives the counters engines what they read from it.
#[async_trait]
impl<L: Ledger + ?Sized> crate::model::GiftRecords for L {
    async fn snapshot(&self, recent_ms: i64, seq_gap: u64) -> Result<Snapshot> {
        Ledger::snapshot(self, recent_ms, seq_gap).await
    }

    async fn has_gift(&self, target: &str, seq: u64) -> Result<bool> {
        Ledger::has_gift(self, target, seq).await
    }

    async fn follower_counts(&self) -> Result<Vec<(String, i64)>> {
        super::follows::FollowLedger::follower_counts(self).await
    }
}

/// The ledger (its video reads: [`super::videos::VideoLedger`]; the
/// studio's: [`super::studio::StudioLedger`]; followers:
/// [`super::follows::FollowLedger`]; message rules:
/// [`super::message_rules::MessageRulesLedger`]; blocks, moderators and
/// the audit: [`super::moderation::ModerationLedger`]; the marketplace:
/// [`super::marketplace::MarketplaceLedger`]; escrow:
/// [`super::escrow::EscrowLedger`]).
#[async_trait]
pub trait Ledger:
    super::videos::VideoLedger
    + super::studio::StudioLedger
    + super::follows::FollowLedger
    + super::message_rules::MessageRulesLedger
    + super::moderation::ModerationLedger
    + super::marketplace::MarketplaceLedger
    + super::escrow::EscrowLedger
    + Send
    + Sync
    + 'static
{
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
    /// balances; the money of each currency apart).
    async fn earnings(&self, creator: &str) -> Result<LedgerEarnings> {
        let funds = self.payout_funds(creator).await?;
        let mut currencies = std::collections::BTreeMap::new();
        for fiat in Fiat::ALL {
            let (reversed, recovered) = funds
                .tips_reversed_by_currency
                .get(&fiat)
                .copied()
                .unwrap_or_default();
            currencies.insert(
                fiat,
                FiatEarnings {
                    tips_cents: self.balance(&account::tips(creator), fiat.code()).await?,
                    cashed_out_cents: self
                        .balance(&account::payouts(creator), fiat.code())
                        .await?,
                    tips_reversed_cents: reversed,
                    tips_recovered_cents: recovered,
                },
            );
        }
        Ok(LedgerEarnings {
            diamonds_settled: self.balance(&account::earnings(creator), DIAMOND).await?,
            diamonds_cashed_out: self.balance(&account::cashed_out(creator), DIAMOND).await?,
            tips_cents: self.balance(&account::tips(creator), USD).await?,
            diamonds_cashout_pending: self
                .balance(&account::cashout_pending(creator), DIAMOND)
                .await?,
            cashed_out_cents: self.balance(&account::payouts(creator), USD).await?,
            funds,
            currencies,
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
    /// [`OpKey::CashoutBegin`](super::OpKey::CashoutBegin)), recorded with its first `transfer_key`
    /// and `transfer_group` (`attempt` 1, `attempt_ms` now). The cash-out
    /// row (unique `cashout_id`) decides a replay, not the op id.
    /// `insufficient_funds` when fewer are settled, or fewer are available
    /// (out of the hold: [`PayoutLimits::hold_ms`](crate::model::PayoutLimits::hold_ms)); `rate_limited` beyond
    /// the daily limits (counted in the same transaction from the ledger's
    /// cash-outs, so across nodes). A replay with the same parameters
    /// answers the recorded cash-out; other parameters are `bad_request`.
    async fn cashout_begin(&self, c: &CashoutRecord) -> Result<CashoutRecord>;

    /// End a pending cash-out once (completed, reversed or flagged; op
    /// [`OpKey::CashoutEnd`](super::OpKey::CashoutEnd)). False when it had already ended.
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
    /// [`OpKey::Grant`](super::OpKey::Grant)) and record `admin` as its grantor. Refused with
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

    /// The webhook endpoints and outbox in this ledger's database
    /// ([`super::outbox`]; gift and tip events are written by
    /// [`Ledger::commit_batch`] and [`Ledger::tip_succeeded`] themselves).
    fn webhooks(&self) -> std::sync::Arc<dyn super::outbox::WebhookStore>;
}

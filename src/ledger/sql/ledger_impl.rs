//! [`Ledger`] for [`SqlLedger`]: each method is the flow of the same name
//! (in this folder's flow files), its [`LedgerError`](crate::ledger::LedgerError) mapped to a wire
//! error by the one `From` impl.
//!
//! Owns: nothing but the delegation. Must not: hold SQL or rules.

use async_trait::async_trait;

use super::{Dialect, SqlLedger};
use crate::error::Result;
use crate::ledger::{
    CashoutEnd, CashoutRecord, CreditOp, CreditOutcome, DisputeOp, DisputeRecord, EarlyReversal,
    Ledger, PayoutAccount, PayoutFunds, PurchaseOp, PurchaseRecord, RefundOp, StripeEventRef,
    TargetRecord, TipRecord, TipRecordFull, TipReversalOp, Totals,
};
use crate::model::{Batch, PayoutLimits, Snapshot, Target};

per_dialect! {
    #[async_trait]
    impl Ledger for SqlLedger<D> {
        async fn credit(&self, op: &CreditOp) -> Result<CreditOutcome> {
            Ok(Self::credit(self, op).await?)
        }
        async fn commit_batch(&self, batch: &Batch) -> Result<bool> {
            Ok(Self::commit_batch(self, batch).await?)
        }
        async fn snapshot(&self, recent_ms: i64, seq_gap: u64) -> Result<Snapshot> {
            Ok(Self::snapshot(self, recent_ms, seq_gap).await?)
        }
        async fn open_target(&self, target: &Target, creator: &str) -> Result<()> {
            Ok(Self::open_target(self, target, creator).await?)
        }
        async fn end_room(&self, room: &str) -> Result<()> {
            Ok(Self::end_room(self, room).await?)
        }
        async fn target(&self, target: &Target) -> Result<Option<TargetRecord>> {
            Ok(Self::target(self, target).await?)
        }
        async fn has_gift(&self, target: &str, seq: u64) -> Result<bool> {
            Ok(Self::has_gift(self, target, seq).await?)
        }
        async fn live_rooms(&self, creator: &str) -> Result<u64> {
            Ok(Self::live_rooms(self, creator).await?)
        }
        async fn balance(&self, account: &str, currency: &str) -> Result<i64> {
            Ok(Self::balance(self, account, currency).await?)
        }
        fn set_payout_limits(&self, limits: PayoutLimits) {
            *self.limits.write() = limits;
        }
        async fn payout_funds(&self, creator: &str) -> Result<PayoutFunds> {
            Ok(Self::payout_funds(self, creator).await?)
        }
        async fn tip_reversed(&self, op: &TipReversalOp) -> Result<bool> {
            Ok(Self::tip_reversed(self, op).await?)
        }
        async fn tip_dispute_reinstated(
            &self,
            event: &StripeEventRef,
            payment_intent: &str,
            dispute_id: &str,
            repaid: bool,
        ) -> Result<bool> {
            Ok(Self::tip_dispute_reinstated(self, event, payment_intent, dispute_id, repaid).await?)
        }
        async fn tip_dispute_amounts(&self, dispute_id: &str) -> Result<Option<(i64, i64)>> {
            Ok(Self::tip_dispute_amounts(self, dispute_id).await?)
        }
        async fn tip_transfer(&self, payment_intent: &str, transfer: &str) -> Result<()> {
            Ok(Self::tip_transfer(self, payment_intent, transfer).await?)
        }
        async fn tip_record(&self, payment_intent: &str) -> Result<Option<TipRecordFull>> {
            Ok(Self::tip_record(self, payment_intent).await?)
        }
        async fn park_reversal(&self, r: &EarlyReversal) -> Result<bool> {
            Ok(Self::park_reversal(self, r).await?)
        }
        async fn parked_reversals(&self, payment_intent: &str) -> Result<Vec<EarlyReversal>> {
            Ok(Self::parked_reversals(self, payment_intent).await?)
        }
        async fn stripe_event_seen(&self, id: &str) -> Result<bool> {
            Ok(Self::stripe_event_seen(self, id).await?)
        }
        async fn record_stripe_event(&self, event: &StripeEventRef) -> Result<bool> {
            Ok(Self::record_stripe_event(self, event).await?)
        }
        async fn purchase_created(&self, op: &PurchaseOp) -> Result<()> {
            Ok(Self::purchase_created(self, op).await?)
        }
        async fn purchase(&self, op: &PurchaseOp) -> Result<bool> {
            Ok(Self::purchase(self, op).await?)
        }
        async fn purchase_record(&self, payment_intent: &str) -> Result<Option<PurchaseRecord>> {
            Ok(Self::purchase_record(self, payment_intent).await?)
        }
        async fn refund(&self, op: &RefundOp) -> Result<bool> {
            Ok(Self::refund(self, op).await?)
        }
        async fn dispute_withdrawn(&self, op: &DisputeOp) -> Result<bool> {
            Ok(Self::dispute_withdrawn(self, op).await?)
        }
        async fn dispute_reinstated(&self, event: &StripeEventRef, dispute_id: &str) -> Result<bool> {
            Ok(Self::dispute_reinstated(self, event, dispute_id).await?)
        }
        async fn dispute_record(&self, dispute_id: &str) -> Result<Option<DisputeRecord>> {
            Ok(Self::dispute_record(self, dispute_id).await?)
        }
        async fn payout_account(&self, creator: &str) -> Result<Option<PayoutAccount>> {
            Ok(Self::payout_account(self, creator).await?)
        }
        async fn put_payout_account(&self, creator: &str, account: &str) -> Result<PayoutAccount> {
            Ok(Self::put_payout_account(self, creator, account).await?)
        }
        async fn account_updated(
            &self,
            event: &StripeEventRef,
            account: &str,
            payouts_enabled: bool,
            created: i64,
        ) -> Result<bool> {
            Ok(Self::account_updated(self, event, account, payouts_enabled, created).await?)
        }
        async fn tip_created(&self, tip: &TipRecord) -> Result<()> {
            Ok(Self::tip_created(self, tip).await?)
        }
        async fn tip_succeeded(
            &self,
            event: &StripeEventRef,
            payment_intent: &str,
        ) -> Result<Option<TipRecord>> {
            Ok(Self::tip_succeeded(self, event, payment_intent).await?)
        }
        async fn cashout_begin(&self, c: &CashoutRecord) -> Result<CashoutRecord> {
            Ok(Self::cashout_begin(self, c).await?)
        }
        async fn cashout_end(&self, cashout_id: &str, end: &CashoutEnd) -> Result<bool> {
            Ok(Self::cashout_end(self, cashout_id, end).await?)
        }
        async fn cashout_new_attempt(
            &self,
            cashout_id: &str,
            attempt: i64,
            transfer_key: &str,
            now_ms: i64,
        ) -> Result<bool> {
            Ok(Self::cashout_new_attempt(self, cashout_id, attempt, transfer_key, now_ms).await?)
        }
        async fn cashout_defer(&self, cashout_id: &str, failures: i64, next_try_ms: i64) -> Result<()> {
            Ok(Self::cashout_defer(self, cashout_id, failures, next_try_ms).await?)
        }
        async fn cashout(&self, cashout_id: &str) -> Result<Option<CashoutRecord>> {
            Ok(Self::cashout(self, cashout_id).await?)
        }
        async fn cashouts_pending(&self, len_max: usize) -> Result<Vec<CashoutRecord>> {
            Ok(Self::cashouts_pending(self, len_max).await?)
        }
        async fn totals(&self) -> Result<Totals> {
            Ok(Self::totals(self).await?)
        }
        async fn grant(&self, op: &CreditOp, admin: &str, coins_per_day_max: i64) -> Result<CreditOutcome> {
            Ok(Self::grant(self, op, admin, coins_per_day_max).await?)
        }
        async fn grant_admin(&self, op_id: &str) -> Result<Option<String>> {
            Ok(Self::grant_admin(self, op_id).await?)
        }
        async fn lock_exclusive(&self) -> anyhow::Result<()> {
            self.engine.lock_exclusive().await
        }
        async fn unlock_exclusive(&self) {
            self.engine.unlock_exclusive().await
        }
        async fn swap_clean_mark(&self, clean: bool) -> Result<bool> {
            Ok(Self::swap_clean_mark(self, clean).await?)
        }
        fn webhooks(&self) -> std::sync::Arc<dyn crate::ledger::outbox::WebhookStore> {
            D::webhooks(&self.pool)
        }
    }
}

//! The escrow's reads and writes, passed through unhooked.
use super::*;
use giftstream::ledger::escrow::*;
use giftstream::ledger::marketplace::{Contract, MarketCursor};
use giftstream::model::Fiat;

#[async_trait]
impl<H: CommitHook> EscrowLedger for Hooked<H> {
    async fn contract(&self, id: &str) -> Result<Option<Contract>> {
        self.inner.contract(id).await
    }
    async fn brand_contracts(
        &self,
        b: &str,
        n: i64,
        after: Option<&MarketCursor>,
    ) -> Result<Vec<Contract>> {
        self.inner.brand_contracts(b, n, after).await
    }
    async fn creator_contracts_page(
        &self,
        c: &str,
        n: i64,
        after: Option<&MarketCursor>,
    ) -> Result<Vec<Contract>> {
        self.inner.creator_contracts_page(c, n, after).await
    }
    async fn set_contract_payment_intent(&self, id: &str, pi: &str) -> Result<String> {
        self.inner.set_contract_payment_intent(id, pi).await
    }
    async fn contract_paid(&self, p: &ContractPaid) -> Result<bool> {
        self.inner.contract_paid(p).await
    }
    async fn contract_submit(
        &self,
        id: &str,
        url: &str,
        note: &str,
        now: i64,
        review: i64,
    ) -> Result<Contract> {
        self.inner.contract_submit(id, url, note, now, review).await
    }
    async fn contract_release(&self, id: &str, r: &Release) -> Result<Contract> {
        self.inner.contract_release(id, r).await
    }
    async fn contract_payout(&self, id: &str) -> Result<Option<PayoutJob>> {
        self.inner.contract_payout(id).await
    }
    async fn contract_payouts_pending(&self, n: usize) -> Result<Vec<PayoutJob>> {
        self.inner.contract_payouts_pending(n).await
    }
    async fn contract_payout_attempt(
        &self,
        id: &str,
        attempt: i64,
        key: &str,
        now: i64,
    ) -> Result<bool> {
        self.inner
            .contract_payout_attempt(id, attempt, key, now)
            .await
    }
    async fn contract_payout_defer(&self, id: &str, f: i64, next: i64) -> Result<()> {
        self.inner.contract_payout_defer(id, f, next).await
    }
    async fn contract_payout_end(&self, id: &str, end: &CashoutEnd) -> Result<bool> {
        self.inner.contract_payout_end(id, end).await
    }
    async fn contracts_review_due(&self, now: i64, n: usize) -> Result<Vec<String>> {
        self.inner.contracts_review_due(now, n).await
    }
    async fn contract_by_payment_intent(&self, pi: &str) -> Result<Option<Contract>> {
        self.inner.contract_by_payment_intent(pi).await
    }
    async fn contract_dispute(
        &self,
        ev: &StripeEventRef,
        id: &str,
        d: DisputeMove,
    ) -> Result<bool> {
        self.inner.contract_dispute(ev, id, d).await
    }
    async fn marketplace_cents(&self, c: &str) -> Result<Vec<(Fiat, i64)>> {
        self.inner.marketplace_cents(c).await
    }
}

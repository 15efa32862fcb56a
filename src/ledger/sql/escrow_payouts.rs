//! The payouts of marketplace contracts (`contract_payouts` of
//! `migrations/*/0015_escrow.sql`): read, pending, new attempt, backoff,
//! end; and [`EscrowLedger`] for [`SqlLedger`] (delegating to this file
//! and `super::escrow`).
//!
//! Owns: that SQL, once for both dialects. A payout ends once (`WHERE
//! status = 'pending'`), posting its end under [`OpKey::ContractPayoutEnd`].
//! Must not: call Stripe.

use async_trait::async_trait;

use super::{Dialect, SqlLedger};
use crate::error::{Error, Result};
use crate::ledger::escrow::{
    payout_end_postings, ContractPaid, DisputeMove, EscrowLedger, PayoutJob, PayoutKind, Release,
};
use crate::ledger::marketplace::{Contract, MarketCursor};
use crate::ledger::{account, CashoutEnd, OpKey, StripeEventRef};
use crate::model::Fiat;

const PAYOUT_COLS: &str = "contract, kind, creator, payment_intent, amount_cents, fee_cents, currency, status, stripe_id, idem_key, transfer_group, attempt, attempt_ms, failures, next_try_ms";

/// A `contract_payouts` row.
#[derive(sqlx::FromRow)]
struct PayoutRow {
    contract: String,
    kind: String,
    creator: String,
    payment_intent: String,
    amount_cents: i64,
    fee_cents: i64,
    currency: String,
    status: String,
    stripe_id: Option<String>,
    idem_key: String,
    transfer_group: String,
    attempt: i64,
    attempt_ms: i64,
    failures: i64,
    next_try_ms: i64,
}

impl PayoutRow {
    fn into_job(self) -> Result<PayoutJob> {
        Ok(PayoutJob {
            kind: PayoutKind::parse(&self.kind)
                .ok_or_else(|| Error::internal(format!("stored payout kind {}", self.kind)))?,
            currency: Fiat::parse(&self.currency)
                .ok_or_else(|| Error::internal(format!("stored currency {}", self.currency)))?,
            contract: self.contract,
            creator: self.creator,
            payment_intent: self.payment_intent,
            amount_cents: self.amount_cents,
            fee_cents: self.fee_cents,
            status: self.status,
            stripe_id: self.stripe_id,
            idem_key: self.idem_key,
            transfer_group: self.transfer_group,
            attempt: self.attempt,
            attempt_ms: self.attempt_ms,
            failures: self.failures,
            next_try_ms: self.next_try_ms,
        })
    }
}

per_dialect! {
    impl SqlLedger<D> {
        async fn pay_job(&self, id: &str) -> Result<Option<PayoutJob>> {
            let row: Option<PayoutRow> = sqlx::query_as(&format!("SELECT {PAYOUT_COLS} FROM contract_payouts WHERE contract = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            row.map(PayoutRow::into_job).transpose()
        }

        async fn pay_pending(&self, len_max: usize) -> Result<Vec<PayoutJob>> {
            let rows: Vec<PayoutRow> = sqlx::query_as(&format!("SELECT {PAYOUT_COLS} FROM contract_payouts WHERE status = 'pending' ORDER BY next_try_ms, created_ms LIMIT $1"))
                .bind(len_max as i64)
                .fetch_all(&self.pool)
                .await?;
            rows.into_iter().map(PayoutRow::into_job).collect()
        }

        async fn pay_attempt(&self, id: &str, attempt: i64, key: &str, now_ms: i64) -> Result<bool> {
            let n = sqlx::query("UPDATE contract_payouts SET attempt = $2, idem_key = $3, attempt_ms = $4, failures = 0, next_try_ms = 0 WHERE contract = $1 AND status = 'pending' AND attempt = $2 - 1")
                .bind(id)
                .bind(attempt)
                .bind(key)
                .bind(now_ms)
                .execute(&self.pool)
                .await?
                .rows_affected();
            Ok(n == 1)
        }

        async fn pay_defer(&self, id: &str, failures: i64, next_try_ms: i64) -> Result<()> {
            sqlx::query("UPDATE contract_payouts SET failures = $2, next_try_ms = $3 WHERE contract = $1 AND status = 'pending'")
                .bind(id)
                .bind(failures)
                .bind(next_try_ms)
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn pay_end(&self, id: &str, end: &CashoutEnd) -> Result<bool> {
            let (status, stripe_id) = match end {
                // Empty: a refund Stripe says was made, its id unknown.
                CashoutEnd::Completed { transfer } => ("completed", Some(transfer.as_str()).filter(|t| !t.is_empty())),
                CashoutEnd::Reversed => ("failed", None),
                CashoutEnd::Flagged { transfer } => ("flagged", Some(transfer.as_str())),
            };
            let mut tx = D::begin_write(&self.pool).await?;
            let row: Option<PayoutRow> = sqlx::query_as(&format!("UPDATE contract_payouts SET status = $2, stripe_id = $3, finished_ms = $4 WHERE contract = $1 AND status = 'pending' RETURNING {PAYOUT_COLS}"))
                .bind(id)
                .bind(status)
                .bind(stripe_id)
                .bind(crate::protocol::now_ms())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(false);
            };
            let job = row.into_job()?;
            let op_id = OpKey::ContractPayoutEnd(id).op_id();
            let detail = serde_json::json!({ "contract": id, "kind": job.kind.as_str(), "status": status, "stripe_id": stripe_id }).to_string();
            if !Self::insert_operation(&mut tx, &op_id, "contract_payout_end", &detail).await? {
                return Err(Error::internal(format!("operation `{op_id}` exists for a pending payout")));
            }
            D::post(&mut tx, &op_id, &payout_end_postings(&job, end)).await?;
            tx.commit().await?;
            Ok(true)
        }

        async fn pay_market_cents(&self, creator: &str) -> Result<Vec<(Fiat, i64)>> {
            let rows: Vec<(String, i64)> = sqlx::query_as("SELECT currency, amount FROM balances WHERE account = $1 AND amount <> 0 ORDER BY currency")
                .bind(account::marketplace(creator))
                .fetch_all(&self.pool)
                .await?;
            Ok(rows.into_iter().filter_map(|(c, v)| Some((Fiat::parse(&c)?, v))).collect())
        }
    }

    #[async_trait]
    impl EscrowLedger for SqlLedger<D> {
        async fn contract(&self, id: &str) -> Result<Option<Contract>> {
            self.esc_contract(id).await
        }
        async fn brand_contracts(&self, brand: &str, len_max: i64, after: Option<&MarketCursor>) -> Result<Vec<Contract>> {
            self.esc_contracts_by("brand", brand, len_max, after).await
        }
        async fn creator_contracts_page(&self, creator: &str, len_max: i64, after: Option<&MarketCursor>) -> Result<Vec<Contract>> {
            self.esc_contracts_by("creator", creator, len_max, after).await
        }
        async fn set_contract_payment_intent(&self, id: &str, pi: &str) -> Result<String> {
            self.esc_set_pi(id, pi).await
        }
        async fn contract_paid(&self, paid: &ContractPaid) -> Result<bool> {
            self.esc_paid(paid).await
        }
        async fn contract_submit(&self, id: &str, url: &str, note: &str, now_ms: i64, review_ms: i64) -> Result<Contract> {
            self.esc_submit(id, url, note, now_ms, review_ms).await
        }
        async fn contract_release(&self, id: &str, r: &Release) -> Result<Contract> {
            self.esc_release(id, r).await
        }
        async fn contract_payout(&self, id: &str) -> Result<Option<PayoutJob>> {
            self.pay_job(id).await
        }
        async fn contract_payouts_pending(&self, len_max: usize) -> Result<Vec<PayoutJob>> {
            self.pay_pending(len_max).await
        }
        async fn contract_payout_attempt(&self, id: &str, attempt: i64, key: &str, now_ms: i64) -> Result<bool> {
            self.pay_attempt(id, attempt, key, now_ms).await
        }
        async fn contract_payout_defer(&self, id: &str, failures: i64, next_try_ms: i64) -> Result<()> {
            self.pay_defer(id, failures, next_try_ms).await
        }
        async fn contract_payout_end(&self, id: &str, end: &CashoutEnd) -> Result<bool> {
            self.pay_end(id, end).await
        }
        async fn contracts_review_due(&self, now_ms: i64, len_max: usize) -> Result<Vec<String>> {
            self.esc_review_due(now_ms, len_max).await
        }
        async fn contract_by_payment_intent(&self, pi: &str) -> Result<Option<Contract>> {
            self.esc_by_pi(pi).await
        }
        async fn contract_dispute(&self, event: &StripeEventRef, id: &str, dispute: DisputeMove) -> Result<bool> {
            self.esc_dispute(event, id, dispute).await
        }
        async fn marketplace_cents(&self, creator: &str) -> Result<Vec<(Fiat, i64)>> {
            self.pay_market_cents(creator).await
        }
    }
}

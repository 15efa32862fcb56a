//! Tips: destination charges straight to a creator's connected account,
//! and their refunds and chargebacks.
//!
//! Owns: the SQL of `tip_created`, `tip_succeeded` (the tip's postings in
//! one transaction with its event), `tip_reversed`,
//! `tip_dispute_reinstated`, `tip_dispute_amounts`, `tip_transfer` and
//! `tip_record`. Must not: post a tip or a reversal twice.

use sqlx::Transaction;

use super::rows::{FiatEntryRow, TipFullRow, TIP_COLUMNS};
use super::{Dialect, SqlLedger};
use crate::ledger::error::{LedgerError, LedgerResult};
use crate::ledger::{
    tip_amounts_of, tip_postings, tip_reinstated_postings, tip_reversal_postings, OpKey,
    StripeEventRef, TipRecord, TipRecordFull, TipReversalOp,
};
use crate::model::Fiat;
use crate::protocol::now_ms;

/// A succeeded tip's creator, amount, cents reversed so far and currency.
#[derive(sqlx::FromRow)]
struct SucceededTip {
    creator: String,
    amount_cents: i64,
    cents_reversed: i64,
    #[sqlx(try_from = "String")]
    currency: Fiat,
}

per_dialect! {
    impl SqlLedger<D> {
        /// The entries of a tip dispute's withdrawal (all in the tip's
        /// currency: a tip reversal moves no coins or diamonds), and that
        /// currency (USD when there are none).
        async fn tip_dispute_entries(
            tx: &mut Transaction<'_, DB>,
            dispute_id: &str,
        ) -> LedgerResult<(Vec<(String, i64)>, Fiat)> {
            let rows: Vec<FiatEntryRow> = sqlx::query_as(
                "SELECT account, amount, currency FROM entries WHERE op_id = $1 AND currency NOT IN ('COIN', 'DIAMOND')",
            )
            .bind(OpKey::TipDispute(dispute_id).op_id())
            .fetch_all(&mut **tx)
            .await?;
            let fiat = rows.first().map_or(Fiat::Usd, |r| r.currency);
            if rows.iter().any(|r| r.currency != fiat) {
                return Err(LedgerError::invariant("a tip dispute in two currencies"));
            }
            Ok((rows.into_iter().map(|e| (e.account, e.amount)).collect(), fiat))
        }

        /// See [`crate::ledger::Ledger::tip_created`].
        pub(super) async fn tip_created(&self, tip: &TipRecord) -> LedgerResult<()> {
            sqlx::query("INSERT INTO tips (payment_intent, tip_key, sender, creator, target, amount_cents, message, status, created_ms, currency) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9) ON CONFLICT (payment_intent) DO NOTHING")
                .bind(&tip.payment_intent)
                .bind(&tip.tip_key)
                .bind(&tip.sender)
                .bind(&tip.creator)
                .bind(&tip.target)
                .bind(tip.amount_cents)
                .bind(&tip.message)
                .bind(now_ms())
                .bind(tip.currency.code())
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        /// See [`crate::ledger::Ledger::tip_succeeded`]: the event, the
        /// tip's status, its operation and postings, in one transaction.
        pub(super) async fn tip_succeeded(
            &self,
            event: &StripeEventRef,
            payment_intent: &str,
        ) -> LedgerResult<Option<TipRecord>> {
            let mut tx = D::begin_write(&self.pool).await?;
            if !Self::insert_event(&mut tx, event).await? {
                return Ok(None);
            }
            let tip: Option<TipRecord> = sqlx::query_as(&format!(
                "UPDATE tips SET status = 'succeeded' WHERE payment_intent = $1 AND status = 'pending' RETURNING {TIP_COLUMNS}"
            ))
            .bind(payment_intent)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(tip) = tip else {
                tx.commit().await?;
                return Ok(None);
            };
            let op_id = OpKey::Tip(payment_intent).op_id();
            let detail =
                serde_json::json!({ "tip_key": tip.tip_key, "amount_cents": tip.amount_cents, "currency": tip.currency })
                    .to_string();
            Self::insert_operation(&mut tx, &op_id, "tip", &detail).await?;
            D::post(&mut tx, &op_id, &tip_postings(&tip)).await?;
            D::outbox_tip(&mut tx, &tip).await?;
            tx.commit().await?;
            Ok(Some(tip))
        }

        /// See [`crate::ledger::Ledger::tip_reversed`].
        pub(super) async fn tip_reversed(&self, op: &TipReversalOp) -> LedgerResult<bool> {
            if op.cents <= 0 || !(0..=op.cents).contains(&op.recovered) {
                return Err(LedgerError::invalid("tip reversal: bad amounts"));
            }
            let mut tx = D::begin_write(&self.pool).await?;
            if !Self::insert_event(&mut tx, &op.event).await? {
                return Ok(false);
            }
            let tip: Option<SucceededTip> = sqlx::query_as(&format!(
                "SELECT creator, amount_cents, cents_reversed, currency FROM tips WHERE payment_intent = $1 AND status = 'succeeded'{}",
                D::FOR_UPDATE
            ))
            .bind(&op.payment_intent)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(tip) = tip else {
                tx.commit().await?;
                return Ok(false);
            };
            if tip.cents_reversed + op.cents > tip.amount_cents {
                return Err(LedgerError::invalid("tip reversal: more than the tip"));
            }
            let detail = serde_json::json!({ "payment_intent": op.payment_intent, "cents": op.cents, "recovered": op.recovered }).to_string();
            if !Self::insert_operation(&mut tx, &op.op_id, "tip_reversal", &detail).await? {
                tx.commit().await?;
                return Ok(false);
            }
            sqlx::query("UPDATE tips SET cents_reversed = cents_reversed + $2, cents_recovered = cents_recovered + $3 WHERE payment_intent = $1")
                .bind(&op.payment_intent)
                .bind(op.cents)
                .bind(op.recovered)
                .execute(&mut *tx)
                .await?;
            let postings = tip_reversal_postings(&tip.creator, op.cents, op.recovered, tip.currency);
            D::post(&mut tx, &op.op_id, &postings).await?;
            tx.commit().await?;
            Ok(true)
        }

        /// See [`crate::ledger::Ledger::tip_dispute_reinstated`].
        pub(super) async fn tip_dispute_reinstated(
            &self,
            event: &StripeEventRef,
            payment_intent: &str,
            dispute_id: &str,
            repaid: bool,
        ) -> LedgerResult<bool> {
            let op_id = OpKey::TipDisputeReinstated(dispute_id).op_id();
            let mut tx = D::begin_write(&self.pool).await?;
            if !Self::insert_event(&mut tx, event).await? {
                return Ok(false);
            }
            let (entries, fiat) = Self::tip_dispute_entries(&mut tx, dispute_id).await?;
            let detail =
                serde_json::json!({ "payment_intent": payment_intent, "repaid": repaid }).to_string();
            if entries.is_empty()
                || !Self::insert_operation(&mut tx, &op_id, "tip_reinstated", &detail).await?
            {
                tx.commit().await?;
                return Ok(false);
            }
            if repaid {
                let (cents, recovered) = tip_amounts_of(&entries);
                sqlx::query("UPDATE tips SET cents_reversed = cents_reversed - $2, cents_recovered = cents_recovered - $3 WHERE payment_intent = $1")
                    .bind(payment_intent)
                    .bind(cents)
                    .bind(recovered)
                    .execute(&mut *tx)
                    .await?;
            }
            D::post(&mut tx, &op_id, &tip_reinstated_postings(&entries, repaid, fiat)).await?;
            tx.commit().await?;
            Ok(true)
        }

        /// See [`crate::ledger::Ledger::tip_dispute_amounts`].
        pub(super) async fn tip_dispute_amounts(
            &self,
            dispute_id: &str,
        ) -> LedgerResult<Option<(i64, i64)>> {
            let mut tx = D::begin_read(&self.pool).await?;
            let (entries, _) = Self::tip_dispute_entries(&mut tx, dispute_id).await?;
            tx.commit().await?;
            Ok((!entries.is_empty()).then(|| tip_amounts_of(&entries)))
        }

        /// See [`crate::ledger::Ledger::tip_transfer`].
        pub(super) async fn tip_transfer(&self, payment_intent: &str, transfer: &str) -> LedgerResult<()> {
            sqlx::query("UPDATE tips SET transfer = $2 WHERE payment_intent = $1 AND transfer IS NULL")
                .bind(payment_intent)
                .bind(transfer)
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        /// See [`crate::ledger::Ledger::tip_record`].
        pub(super) async fn tip_record(&self, payment_intent: &str) -> LedgerResult<Option<TipRecordFull>> {
            let row: Option<TipFullRow> = sqlx::query_as(&format!(
                "SELECT {TIP_COLUMNS}, transfer, cents_reversed, cents_recovered FROM tips WHERE payment_intent = $1"
            ))
            .bind(payment_intent)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.map(|r| (r.tip, r.transfer, r.cents_reversed, r.cents_recovered)))
        }
    }
}

//! Coins in and gifts settled: credits, admin grants, settlement batches.
//!
//! Owns: the SQL of [`crate::ledger::Ledger::credit`], `grant`,
//! `grant_admin` and `commit_batch` (gift rows, postings and settlement
//! rows of a batch in one transaction). Must not: decide whether a gift is
//! allowed (the counters engine did), or post a gift twice.

use sqlx::Transaction;

use super::{Dialect, Serial, SqlLedger};
use crate::ledger::error::{LedgerError, LedgerResult};
use crate::ledger::rules::{grant_cap, replayed_credit};
use crate::ledger::{
    account, batch_postings, settlement_rows, CreditOp, CreditOutcome, OpKey, Postings, COIN,
};
use crate::model::{Batch, PendingGift};
use crate::protocol::now_ms;

/// The postings of a credit: mint → wallet, in coins.
fn credit_postings(op: &CreditOp) -> Postings {
    let mut p = Postings::new();
    p.insert((account::MINT.to_string(), COIN, "mint"), -op.coins);
    p.insert((account::wallet(&op.user), COIN, "wallet"), op.coins);
    p
}

per_dialect! {
    impl SqlLedger<D> {
        /// The answer to a credit whose op id is recorded (see
        /// [`replayed_credit`]).
        async fn replay_credit(
            tx: &mut Transaction<'_, DB>,
            op: &CreditOp,
        ) -> LedgerResult<CreditOutcome> {
            let stored: String = sqlx::query_scalar("SELECT detail FROM operations WHERE op_id = $1")
                .bind(&op.op_id)
                .fetch_one(&mut **tx)
                .await?;
            replayed_credit(op, &stored)
        }

        /// See [`crate::ledger::Ledger::credit`].
        pub(super) async fn credit(&self, op: &CreditOp) -> LedgerResult<CreditOutcome> {
            if op.coins <= 0 {
                return Err(LedgerError::invalid("coins must be > 0"));
            }
            let detail = serde_json::to_string(op).map_err(LedgerError::invariant)?;
            let mut tx = D::begin_write(&self.pool).await?;
            if !Self::insert_operation(&mut tx, &op.op_id, &op.kind, &detail).await? {
                return Self::replay_credit(&mut tx, op).await;
            }
            D::post(&mut tx, &op.op_id, &credit_postings(op)).await?;
            tx.commit().await?;
            Ok(CreditOutcome {
                applied_now: true,
                op: op.clone(),
            })
        }

        /// See [`crate::ledger::Ledger::grant`].
        pub(super) async fn grant(
            &self,
            op: &CreditOp,
            admin: &str,
            coins_per_day_max: i64,
        ) -> LedgerResult<CreditOutcome> {
            if op.coins <= 0 {
                return Err(LedgerError::invalid("coins must be > 0"));
            }
            let detail = serde_json::to_string(op).map_err(LedgerError::invariant)?;
            let now = now_ms();
            let mut tx = D::begin_write(&self.pool).await?;
            // One admin's grants are judged one at a time, on every node.
            D::serialize(&mut tx, Serial::Grants(admin)).await?;
            if !Self::insert_operation(&mut tx, &op.op_id, &op.kind, &detail).await? {
                return Self::replay_credit(&mut tx, op).await;
            }
            let granted: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(coins), 0) AS BIGINT) FROM grants WHERE admin = $1 AND created_ms > $2",
            )
            .bind(admin)
            .bind(now - crate::ledger::DAY_MS)
            .fetch_one(&mut *tx)
            .await?;
            // Refused: rolled back, the operation row goes with it.
            grant_cap(admin, granted, op.coins, coins_per_day_max)?;
            sqlx::query("INSERT INTO grants (op_id, admin, grantee, coins, created_ms) VALUES ($1, $2, $3, $4, $5)")
                .bind(&op.op_id)
                .bind(admin)
                .bind(&op.user)
                .bind(op.coins)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            D::post(&mut tx, &op.op_id, &credit_postings(op)).await?;
            tx.commit().await?;
            Ok(CreditOutcome {
                applied_now: true,
                op: op.clone(),
            })
        }

        /// See [`crate::ledger::Ledger::grant_admin`].
        pub(super) async fn grant_admin(&self, op_id: &str) -> LedgerResult<Option<String>> {
            Ok(sqlx::query_scalar("SELECT admin FROM grants WHERE op_id = $1")
                .bind(op_id)
                .fetch_optional(&self.pool)
                .await?)
        }

        /// See [`crate::ledger::Ledger::commit_batch`]: the operation row,
        /// the gift rows (a gift already in the ledger under its (target,
        /// seq), e.g. after a re-claim, is skipped), the postings of the
        /// gifts written now and their settlement rows (the payout hold
        /// starts here), in one transaction.
        pub(super) async fn commit_batch(&self, batch: &Batch) -> LedgerResult<bool> {
            let op_id = OpKey::Batch(&batch.id).op_id();
            let detail = serde_json::json!({ "gifts": batch.gifts.len() }).to_string();
            // One row per (target, seq): a key repeated inside the batch is
            // the same gift and is posted once.
            let mut seen = foldhash::HashSet::with_capacity_and_hasher(
                batch.gifts.len(),
                foldhash::fast::RandomState::default(),
            );
            let gifts: Vec<&PendingGift> = batch
                .gifts
                .iter()
                .filter(|g| seen.insert((g.target.as_str(), g.seq)))
                .collect();
            if let Some(g) = gifts.iter().find(|g| i64::try_from(g.seq).is_err()) {
                return Err(LedgerError::invalid(format!("gift seq {} out of range", g.seq)));
            }
            let mut tx = D::begin_write(&self.pool).await?;
            // The same batch committed concurrently (another worker, a
            // retry) waits here for the first transaction, then finds its row.
            if !Self::insert_operation(&mut tx, &op_id, "batch", &detail).await? {
                return Ok(false);
            }
            let posted = D::insert_gifts(&mut tx, &op_id, &gifts).await?;
            if posted.len() < batch.gifts.len() {
                tracing::warn!(batch = %batch.id, skipped = batch.gifts.len() - posted.len(), "gifts already in the ledger were not applied again");
            }
            D::post(&mut tx, &op_id, &batch_postings(posted.iter().copied())).await?;
            let rows: Vec<(&str, i64)> = settlement_rows(posted.iter().copied())
                .into_iter()
                .collect();
            if !rows.is_empty() {
                D::insert_settlements(&mut tx, &op_id, &rows, now_ms()).await?;
            }
            D::outbox_gifts(&mut tx, &posted).await?;
            tx.commit().await?;
            Ok(true)
        }
    }
}

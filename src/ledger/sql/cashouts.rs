//! Cash-outs of settled diamonds to a creator's connected account: begin
//! (under the payout hold and daily limits), Transfer attempts, end.
//!
//! Owns: the SQL of `cashout_begin`, `cashout_end`, `cashout_new_attempt`,
//! `cashout_defer`, `cashout` and `cashouts_pending`, and the guard that
//! reads the hold and the day's cash-outs in the cash-out's transaction
//! (the decision is [`cashout_refusal`]). Must not: call Stripe, or end a
//! cash-out twice.

use sqlx::Transaction;

use super::rows::CASHOUT_COLUMNS;
use super::{Dialect, Serial, SqlLedger};
use crate::ledger::error::{LedgerError, LedgerResult};
use crate::ledger::rules::{available_diamonds, cashout_refusal};
use crate::ledger::{
    account, cashout_begin_postings, cashout_end_postings, CashoutEnd, CashoutRecord, OpKey,
    DAY_MS, DIAMOND,
};
use crate::model::{Fiat, PayoutLimits};
use crate::protocol::now_ms;

/// What `cashout_end` reads back of the cash-out it ended.
#[derive(sqlx::FromRow)]
struct EndedCashout {
    creator: String,
    diamonds: i64,
    amount_cents: i64,
    #[sqlx(try_from = "String")]
    currency: Fiat,
}

per_dialect! {
    impl SqlLedger<D> {
        /// The hold and the daily limits of a cash-out, checked in its own
        /// transaction before its postings (one creator's cash-outs are
        /// judged one at a time, across nodes).
        async fn cashout_guard(
            tx: &mut Transaction<'_, DB>,
            c: &CashoutRecord,
            limits: &PayoutLimits,
        ) -> LedgerResult<()> {
            D::serialize(tx, Serial::Cashouts(&c.creator)).await?;
            let now = now_ms();
            let balance = Self::balance_in(tx, &account::earnings(&c.creator), DIAMOND).await?;
            let held = Self::held_diamonds(tx, &c.creator, now - limits.hold_ms).await?;
            // Count over every currency, cents in the cash-out's own.
            let day: (i64, i64) = sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN currency = $4 THEN amount_cents ELSE 0 END), 0) AS BIGINT) FROM cashouts WHERE creator = $1 AND created_ms > $2 AND status <> 'reversed' AND cashout_id <> $3")
                .bind(&c.creator)
                .bind(now - DAY_MS)
                .bind(&c.cashout_id)
                .bind(c.currency.code())
                .fetch_one(&mut **tx)
                .await?;
            match cashout_refusal(c, limits, available_diamonds(balance, held), day) {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }

        /// The cash-out `cashout_id`, which must exist.
        async fn cashout_existing(&self, cashout_id: &str) -> LedgerResult<CashoutRecord> {
            self.cashout(cashout_id)
                .await?
                .ok_or_else(|| LedgerError::invariant("cash-out vanished"))
        }

        /// See [`crate::ledger::Ledger::cashout_begin`].
        pub(super) async fn cashout_begin(&self, c: &CashoutRecord) -> LedgerResult<CashoutRecord> {
            if c.diamonds <= 0 || c.amount_cents <= 0 {
                return Err(LedgerError::invalid("diamonds and amount must be > 0"));
            }
            if c.transfer_key.is_empty() {
                return Err(LedgerError::invalid("a cash-out needs its transfer key"));
            }
            let op_id = OpKey::CashoutBegin(&c.cashout_id).op_id();
            let detail = serde_json::json!({ "cashout": c.cashout_id, "creator": c.creator, "diamonds": c.diamonds, "amount_cents": c.amount_cents, "currency": c.currency }).to_string();
            let now = now_ms();
            let mut tx = D::begin_write(&self.pool).await?;
            // The cash-out row decides a replay (its id is unique, and was
            // so before migration 0006 too; a concurrent insert of the same
            // id waits here for the other transaction), then the operation row.
            let fresh = sqlx::query("INSERT INTO cashouts (cashout_id, creator, diamonds, amount_cents, status, created_ms, transfer_key, transfer_group, attempt, attempt_ms, currency) VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, 1, $5, $8) ON CONFLICT (cashout_id) DO NOTHING")
                .bind(&c.cashout_id)
                .bind(&c.creator)
                .bind(c.diamonds)
                .bind(c.amount_cents)
                .bind(now)
                .bind(&c.transfer_key)
                .bind(&c.transfer_group)
                .bind(c.currency.code())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if fresh != 1 {
                drop(tx);
                let first = self.cashout_existing(&c.cashout_id).await?;
                if first.creator != c.creator
                    || first.diamonds != c.diamonds
                    || first.currency != c.currency
                {
                    return Err(LedgerError::IdReused(c.cashout_id.clone()));
                }
                return Ok(first);
            }
            let limits = *self.limits.read();
            Self::cashout_guard(&mut tx, c, &limits).await?;
            if !Self::insert_operation(&mut tx, &op_id, "cashout", &detail).await? {
                return Err(LedgerError::invariant(format_args!(
                    "operation `{op_id}` exists without its cash-out"
                )));
            }
            D::post(&mut tx, &op_id, &cashout_begin_postings(c)).await?;
            tx.commit().await?;
            self.cashout_existing(&c.cashout_id).await
        }

        /// See [`crate::ledger::Ledger::cashout_end`].
        pub(super) async fn cashout_end(&self, cashout_id: &str, end: &CashoutEnd) -> LedgerResult<bool> {
            let (status, transfer) = match end {
                CashoutEnd::Completed { transfer } => ("completed", Some(transfer.as_str())),
                CashoutEnd::Reversed => ("reversed", None),
                CashoutEnd::Flagged { transfer } => ("flagged", Some(transfer.as_str())),
            };
            let mut tx = D::begin_write(&self.pool).await?;
            let row: Option<EndedCashout> = sqlx::query_as("UPDATE cashouts SET status = $2, transfer = $3, finished_ms = $4 WHERE cashout_id = $1 AND status = 'pending' RETURNING creator, diamonds, amount_cents, currency")
                .bind(cashout_id)
                .bind(status)
                .bind(transfer)
                .bind(now_ms())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(r) = row else {
                return Ok(false);
            };
            let c = CashoutRecord {
                cashout_id: cashout_id.into(),
                creator: r.creator,
                diamonds: r.diamonds,
                amount_cents: r.amount_cents,
                currency: r.currency,
                status: status.into(),
                transfer: transfer.map(str::to_string),
                ..Default::default()
            };
            let op_id = OpKey::CashoutEnd(cashout_id).op_id();
            let detail =
                serde_json::json!({ "cashout": cashout_id, "status": status, "transfer": transfer })
                    .to_string();
            if !Self::insert_operation(&mut tx, &op_id, "cashout_end", &detail).await? {
                // Never a silent half: the row is pending, so its end must be new.
                return Err(LedgerError::invariant(format_args!(
                    "operation `{op_id}` exists for a pending cash-out"
                )));
            }
            D::post(&mut tx, &op_id, &cashout_end_postings(&c, end)).await?;
            tx.commit().await?;
            Ok(true)
        }

        /// See [`crate::ledger::Ledger::cashout_new_attempt`].
        pub(super) async fn cashout_new_attempt(
            &self,
            cashout_id: &str,
            attempt: i64,
            transfer_key: &str,
            now: i64,
        ) -> LedgerResult<bool> {
            let n = sqlx::query("UPDATE cashouts SET attempt = $2, transfer_key = $3, attempt_ms = $4, failures = 0, next_try_ms = 0 WHERE cashout_id = $1 AND status = 'pending' AND attempt = $2 - 1")
                .bind(cashout_id)
                .bind(attempt)
                .bind(transfer_key)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
            Ok(n == 1)
        }

        /// See [`crate::ledger::Ledger::cashout_defer`].
        pub(super) async fn cashout_defer(&self, cashout_id: &str, failures: i64, next_try_ms: i64) -> LedgerResult<()> {
            sqlx::query("UPDATE cashouts SET failures = $2, next_try_ms = $3 WHERE cashout_id = $1 AND status = 'pending'")
                .bind(cashout_id)
                .bind(failures)
                .bind(next_try_ms)
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        /// See [`crate::ledger::Ledger::cashout`].
        pub(super) async fn cashout(&self, cashout_id: &str) -> LedgerResult<Option<CashoutRecord>> {
            Ok(sqlx::query_as(&format!(
                "SELECT {CASHOUT_COLUMNS} FROM cashouts WHERE cashout_id = $1"
            ))
            .bind(cashout_id)
            .fetch_optional(&self.pool)
            .await?)
        }

        /// See [`crate::ledger::Ledger::cashouts_pending`].
        pub(super) async fn cashouts_pending(&self, len_max: usize) -> LedgerResult<Vec<CashoutRecord>> {
            Ok(sqlx::query_as(&format!("SELECT {CASHOUT_COLUMNS} FROM cashouts WHERE status = 'pending' ORDER BY next_try_ms, created_ms LIMIT $1"))
                .bind(len_max as i64)
                .fetch_all(&self.pool)
                .await?)
        }
    }
}

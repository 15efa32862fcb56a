//! Coin purchases paid through Stripe, the events that report them, and
//! reversals parked until their purchase is paid.
//!
//! Owns: the SQL of `purchase_created`, `purchase` (debt repaid first, see
//! [`debt_repayment`]), `purchase_record`, `stripe_event_seen`,
//! `record_stripe_event`, `park_reversal` and `parked_reversals`. Must not:
//! credit a purchase that was not created here with the same parameters.

use super::rows::{EarlyReversalRow, PurchaseRow};
use super::{Dialect, SqlLedger};
use crate::ledger::error::{LedgerError, LedgerResult};
use crate::ledger::rules::debt_repayment;
use crate::ledger::{
    purchase_postings, CreditOp, EarlyReversal, OpKey, PurchaseOp, PurchaseRecord, StripeEventRef,
};
use crate::protocol::now_ms;

per_dialect! {
    impl SqlLedger<D> {
        /// See [`crate::ledger::Ledger::stripe_event_seen`].
        pub(super) async fn stripe_event_seen(&self, id: &str) -> LedgerResult<bool> {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stripe_events WHERE event_id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
            Ok(n > 0)
        }

        /// See [`crate::ledger::Ledger::record_stripe_event`].
        pub(super) async fn record_stripe_event(&self, event: &StripeEventRef) -> LedgerResult<bool> {
            let mut tx = D::begin_write(&self.pool).await?;
            let fresh = Self::insert_event(&mut tx, event).await?;
            tx.commit().await?;
            Ok(fresh)
        }

        /// See [`crate::ledger::Ledger::purchase_created`].
        pub(super) async fn purchase_created(&self, op: &PurchaseOp) -> LedgerResult<()> {
            if op.coins <= 0 || op.amount_cents <= 0 {
                return Err(LedgerError::invalid("coins and amount must be > 0"));
            }
            sqlx::query("INSERT INTO purchases (payment_intent, buyer, coins, amount_cents, created_ms, currency) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (payment_intent) DO NOTHING")
                .bind(&op.payment_intent)
                .bind(&op.user)
                .bind(op.coins)
                .bind(op.amount_cents)
                .bind(now_ms())
                .bind(op.currency.code())
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        /// See [`crate::ledger::Ledger::purchase`].
        pub(super) async fn purchase(&self, op: &PurchaseOp) -> LedgerResult<bool> {
            let op_id = OpKey::Purchase(&op.payment_intent).op_id();
            let credit = CreditOp {
                op_id: op_id.clone(),
                kind: "purchase".into(),
                user: op.user.clone(),
                coins: op.coins,
            };
            let detail = serde_json::to_string(&credit).map_err(LedgerError::invariant)?;
            let mut tx = D::begin_write(&self.pool).await?;
            if !Self::insert_event(&mut tx, &op.event).await? {
                return Ok(false);
            }
            let paid_now = sqlx::query("UPDATE purchases SET paid = TRUE WHERE payment_intent = $1 AND paid = FALSE AND buyer = $2 AND coins = $3 AND amount_cents = $4 AND currency = $5")
                .bind(&op.payment_intent)
                .bind(&op.user)
                .bind(op.coins)
                .bind(op.amount_cents)
                .bind(op.currency.code())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if paid_now != 1 || !Self::insert_operation(&mut tx, &op_id, "purchase", &detail).await? {
                // Already paid, or not a purchase created here: the event only.
                tx.commit().await?;
                return Ok(false);
            }
            // Coins owed after an earlier refund are repaid first.
            let to_debt = debt_repayment(op.coins, Self::debt_balance(&mut tx, &op.user).await?);
            if to_debt > 0 {
                sqlx::query("UPDATE purchases SET coins_to_debt = $2 WHERE payment_intent = $1")
                    .bind(&op.payment_intent)
                    .bind(to_debt)
                    .execute(&mut *tx)
                    .await?;
            }
            D::post(&mut tx, &op_id, &purchase_postings(op, to_debt)).await?;
            tx.commit().await?;
            Ok(true)
        }

        /// See [`crate::ledger::Ledger::purchase_record`].
        pub(super) async fn purchase_record(
            &self,
            payment_intent: &str,
        ) -> LedgerResult<Option<PurchaseRecord>> {
            let row: Option<PurchaseRow> = sqlx::query_as("SELECT buyer, coins, amount_cents, coins_reversed, cents_refunded, paid, coins_to_debt, currency FROM purchases WHERE payment_intent = $1")
                .bind(payment_intent)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.map(PurchaseRecord::from))
        }

        /// See [`crate::ledger::Ledger::park_reversal`].
        pub(super) async fn park_reversal(&self, r: &EarlyReversal) -> LedgerResult<bool> {
            let mut tx = D::begin_write(&self.pool).await?;
            let seen: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM stripe_events WHERE event_id = $1")
                    .bind(&r.event.id)
                    .fetch_one(&mut *tx)
                    .await?;
            if seen > 0 {
                return Ok(false);
            }
            let n = sqlx::query("INSERT INTO early_reversals (event_id, payment_intent, type, facts, created_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING")
                .bind(&r.event.id)
                .bind(&r.payment_intent)
                .bind(&r.event.kind)
                .bind(&r.facts)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(n == 1)
        }

        /// See [`crate::ledger::Ledger::parked_reversals`].
        pub(super) async fn parked_reversals(
            &self,
            payment_intent: &str,
        ) -> LedgerResult<Vec<EarlyReversal>> {
            let rows: Vec<EarlyReversalRow> = sqlx::query_as("SELECT event_id, type, payment_intent, facts FROM early_reversals WHERE payment_intent = $1 ORDER BY created_ms, event_id")
                .bind(payment_intent)
                .fetch_all(&self.pool)
                .await?;
            Ok(rows.into_iter().map(EarlyReversal::from).collect())
        }
    }
}

//! Money taken back from a purchase: refunds and chargebacks (withdrawn,
//! then possibly reinstated), with the clawback of the diamonds the
//! reversed coins earned.
//!
//! Owns: the SQL of `refund`, `dispute_withdrawn`, `dispute_reinstated`,
//! `dispute_record`, and of the clawback planned by
//! [`plan_clawback`] (in the reversal's own transaction). Must not: decide
//! what is clawed back or owed (the rules do), or reverse a purchase twice.

use sqlx::Transaction;

use super::rows::{entry_pairs, DisputeRow, EntryRow};
use super::{for_update_of, Dialect, SqlLedger};
use crate::ledger::error::{LedgerError, LedgerResult};
use crate::ledger::rules::{debt_repayment, plan_clawback, valid_reversal, DisputeStatus};
use crate::ledger::{
    clawback_undo_postings, purchase_postings, refund_postings, reversal_postings, ClawbackGift,
    ClawbackPlan, DisputeOp, DisputeRecord, OpKey, Postings, PurchaseOp, RefundOp, StripeEventRef,
};
use crate::model::Fiat;
use crate::protocol::now_ms;

/// A paid purchase's buyer, the cents refunded so far and its currency.
#[derive(sqlx::FromRow)]
struct PaidPurchase {
    buyer: String,
    cents_refunded: i64,
    #[sqlx(try_from = "String")]
    currency: Fiat,
}

const WITHDRAWN: &str = DisputeStatus::Withdrawn.as_str();

per_dialect! {
    impl SqlLedger<D> {
        /// The paid purchase `payment_intent`, locked for this transaction.
        async fn paid_purchase(
            tx: &mut Transaction<'_, DB>,
            payment_intent: &str,
        ) -> LedgerResult<Option<PaidPurchase>> {
            Ok(sqlx::query_as(&format!(
                "SELECT buyer, cents_refunded, currency FROM purchases WHERE payment_intent = $1 AND paid = TRUE{}",
                D::FOR_UPDATE
            ))
            .bind(payment_intent)
            .fetch_optional(&mut **tx)
            .await?)
        }

        /// Begin the reversal of the paid purchase `payment_intent`
        /// reported by `event`: None when the event was applied already
        /// (nothing written) or the purchase is not a paid one of ours (the
        /// event recorded, committed).
        async fn begin_reversal(
            &self,
            event: &StripeEventRef,
            payment_intent: &str,
        ) -> LedgerResult<Option<(Transaction<'static, DB>, PaidPurchase)>> {
            let mut tx = D::begin_write(&self.pool).await?;
            if !Self::insert_event(&mut tx, event).await? {
                return Ok(None);
            }
            let Some(p) = Self::paid_purchase(&mut tx, payment_intent).await? else {
                tx.commit().await?;
                return Ok(None);
            };
            Ok(Some((tx, p)))
        }

        /// End a reversal in `tx`: the diamonds the `owed` coins (reversed
        /// and not taken from the wallet) earned are clawed back, and the
        /// reversal's `postings` with the clawback's are posted and committed.
        async fn finish_reversal(
            &self,
            mut tx: Transaction<'static, DB>,
            op_id: &str,
            buyer: &str,
            payment_intent: &str,
            owed: i64,
            mut postings: Postings,
        ) -> LedgerResult<bool> {
            let claw = self.clawback(&mut tx, buyer, payment_intent, owed).await?;
            postings.extend(claw.postings);
            D::post(&mut tx, op_id, &postings).await?;
            tx.commit().await?;
            Ok(true)
        }

        /// See [`crate::ledger::Ledger::refund`].
        pub(super) async fn refund(&self, op: &RefundOp) -> LedgerResult<bool> {
            if !valid_reversal(op.coins_reversed, op.coins_taken) {
                return Err(LedgerError::invalid("refund: bad coin amounts"));
            }
            let op_id = OpKey::Refund(&op.payment_intent, op.cents_refunded_total).op_id();
            let Some((mut tx, p)) = self.begin_reversal(&op.event, &op.payment_intent).await? else {
                return Ok(false);
            };
            let cents = op.cents_refunded_total - p.cents_refunded;
            if cents <= 0 {
                tx.commit().await?;
                return Ok(false);
            }
            let detail = serde_json::json!({ "payment_intent": op.payment_intent, "cents": cents, "coins_reversed": op.coins_reversed, "coins_taken": op.coins_taken }).to_string();
            if !Self::insert_operation(&mut tx, &op_id, "refund", &detail).await? {
                tx.commit().await?;
                return Ok(false);
            }
            sqlx::query("UPDATE purchases SET coins_reversed = coins_reversed + $2, cents_refunded = $3 WHERE payment_intent = $1")
                .bind(&op.payment_intent)
                .bind(op.coins_reversed)
                .bind(op.cents_refunded_total)
                .execute(&mut *tx)
                .await?;
            let postings = refund_postings(&p.buyer, op, cents, p.currency);
            let owed = op.coins_reversed - op.coins_taken;
            self.finish_reversal(tx, &op_id, &p.buyer, &op.payment_intent, owed, postings)
                .await
        }

        /// See [`crate::ledger::Ledger::dispute_withdrawn`].
        pub(super) async fn dispute_withdrawn(&self, op: &DisputeOp) -> LedgerResult<bool> {
            if !valid_reversal(op.coins_reversed, op.coins_taken) || op.cents < 0 {
                return Err(LedgerError::invalid("dispute: bad amounts"));
            }
            let op_id = OpKey::Dispute(&op.dispute_id).op_id();
            let Some((mut tx, p)) = self.begin_reversal(&op.event, &op.payment_intent).await? else {
                return Ok(false);
            };
            let fresh = sqlx::query("INSERT INTO disputes (dispute_id, payment_intent, cents, coins_reversed, coins_taken, status, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (dispute_id) DO NOTHING")
                .bind(&op.dispute_id)
                .bind(&op.payment_intent)
                .bind(op.cents)
                .bind(op.coins_reversed)
                .bind(op.coins_taken)
                .bind(WITHDRAWN)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let detail = serde_json::json!({ "payment_intent": op.payment_intent, "cents": op.cents, "coins_reversed": op.coins_reversed, "coins_taken": op.coins_taken }).to_string();
            if fresh != 1 || !Self::insert_operation(&mut tx, &op_id, "dispute", &detail).await? {
                tx.commit().await?;
                return Ok(false);
            }
            // The purchase's CHECK (coins_reversed <= coins) refuses a
            // dispute and refunds that together would reverse more than was
            // bought.
            sqlx::query(
                "UPDATE purchases SET coins_reversed = coins_reversed + $2 WHERE payment_intent = $1",
            )
            .bind(&op.payment_intent)
            .bind(op.coins_reversed)
            .execute(&mut *tx)
            .await?;
            let postings =
                reversal_postings(&p.buyer, op.coins_reversed, op.coins_taken, op.cents, p.currency);
            let owed = op.coins_reversed - op.coins_taken;
            self.finish_reversal(tx, &op_id, &p.buyer, &op.payment_intent, owed, postings)
                .await
        }

        /// See [`crate::ledger::Ledger::dispute_reinstated`].
        pub(super) async fn dispute_reinstated(
            &self,
            event: &StripeEventRef,
            dispute_id: &str,
        ) -> LedgerResult<bool> {
            let op_id = OpKey::DisputeReinstated(dispute_id).op_id();
            let mut tx = D::begin_write(&self.pool).await?;
            if !Self::insert_event(&mut tx, event).await? {
                return Ok(false);
            }
            let row: Option<DisputeRow> = sqlx::query_as(&format!(
                "SELECT d.payment_intent, p.buyer, d.cents, d.coins_reversed, d.status, d.coins_to_debt, p.currency FROM disputes d JOIN purchases p ON p.payment_intent = d.payment_intent WHERE d.dispute_id = $1 AND d.status = $2{}",
                for_update_of::<D>("d")
            ))
            .bind(dispute_id)
            .bind(WITHDRAWN)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((d, next)) = row.and_then(|d| {
                let next = DisputeStatus::parse(&d.status).reinstate()?;
                Some((d, next))
            }) else {
                tx.commit().await?;
                return Ok(false);
            };
            let detail = serde_json::json!({ "dispute": dispute_id, "cents": d.cents, "coins": d.coins_reversed })
                .to_string();
            if !Self::insert_operation(&mut tx, &op_id, "dispute_reinstated", &detail).await? {
                tx.commit().await?;
                return Ok(false);
            }
            let coins = d.coins_reversed;
            let to_debt = debt_repayment(coins, Self::debt_balance(&mut tx, &d.buyer).await?);
            sqlx::query("UPDATE disputes SET status = $3, coins_to_debt = $2 WHERE dispute_id = $1")
                .bind(dispute_id)
                .bind(to_debt)
                .bind(next.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE purchases SET coins_reversed = coins_reversed - $2 WHERE payment_intent = $1",
            )
            .bind(&d.payment_intent)
            .bind(coins)
            .execute(&mut *tx)
            .await?;
            // Economically a purchase of the coins again, at the cents that
            // came back.
            let back = PurchaseOp {
                event: event.clone(),
                payment_intent: d.payment_intent,
                user: d.buyer,
                coins,
                amount_cents: d.cents,
                currency: d.currency,
            };
            let mut postings = purchase_postings(&back, to_debt);
            // The platform won: the gifts' coins are paid after all, so what
            // the withdrawal clawed back (or recorded as lost) is undone.
            let clawed: Vec<EntryRow> = sqlx::query_as(
                "SELECT account, amount FROM entries WHERE op_id = $1 AND currency = 'DIAMOND'",
            )
            .bind(OpKey::Dispute(dispute_id).op_id())
            .fetch_all(&mut *tx)
            .await?;
            postings.extend(clawback_undo_postings(&entry_pairs(clawed)));
            D::post(&mut tx, &op_id, &postings).await?;
            tx.commit().await?;
            Ok(true)
        }

        /// See [`crate::ledger::Ledger::dispute_record`].
        pub(super) async fn dispute_record(&self, dispute_id: &str) -> LedgerResult<Option<DisputeRecord>> {
            let row: Option<DisputeRow> = sqlx::query_as("SELECT d.payment_intent, p.buyer, d.cents, d.coins_reversed, d.status, d.coins_to_debt, p.currency FROM disputes d JOIN purchases p ON p.payment_intent = d.payment_intent WHERE d.dispute_id = $1")
                .bind(dispute_id)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.map(DisputeRecord::from))
        }

        /// Claw back the diamonds of `buyer`'s gifts since the purchase
        /// `payment_intent` for `coins` reversed coins (see
        /// [`plan_clawback`]), inside `tx`: records what each gift and
        /// settlement gave back and answers the postings to add to the
        /// reversal's.
        async fn clawback(
            &self,
            tx: &mut Transaction<'_, DB>,
            buyer: &str,
            payment_intent: &str,
            coins: i64,
        ) -> LedgerResult<ClawbackPlan> {
            if coins <= 0 {
                return Ok(ClawbackPlan::default());
            }
            let hold_ms = self.limits.read().hold_ms;
            let since: Option<i64> =
                sqlx::query_scalar("SELECT created_ms FROM purchases WHERE payment_intent = $1")
                    .bind(payment_intent)
                    .fetch_optional(&mut **tx)
                    .await?;
            let Some(since) = since else {
                return Ok(ClawbackPlan::default());
            };
            let gifts: Vec<ClawbackGift> = sqlx::query_as(
                "SELECT g.target, g.seq, g.op_id, g.creator, g.coins, g.diamonds,
                        COALESCE(c.coins, 0) AS coins_clawed,
                        COALESCE(CASE WHEN s.settled_ms > $3 THEN s.diamonds - s.clawed ELSE 0 END, 0) AS settlement_held,
                        COALESCE(b.amount, 0) AS earnings
                 FROM gifts g
                 LEFT JOIN gift_clawbacks c ON c.target = g.target AND c.seq = g.seq
                 LEFT JOIN settlements s ON s.op_id = g.op_id AND s.creator = g.creator
                 LEFT JOIN balances b ON b.account = 'earnings:' || g.creator AND b.currency = 'DIAMOND'
                 WHERE g.sender = $1 AND g.ts_ms >= $2 AND g.coins > COALESCE(c.coins, 0)
                 ORDER BY g.ts_ms DESC, g.seq DESC
                 LIMIT $4",
            )
            .bind(buyer)
            .bind(since)
            .bind(now_ms() - hold_ms)
            .bind(coins)
            .fetch_all(&mut **tx)
            .await?;
            let plan = plan_clawback(&gifts, coins);
            for (target, seq, c) in &plan.gifts {
                sqlx::query("INSERT INTO gift_clawbacks (target, seq, coins) VALUES ($1, $2, $3) ON CONFLICT (target, seq) DO UPDATE SET coins = gift_clawbacks.coins + excluded.coins")
                    .bind(target)
                    .bind(seq)
                    .bind(c)
                    .execute(&mut **tx)
                    .await?;
            }
            for (op_id, creator, d) in &plan.settlements {
                sqlx::query(
                    "UPDATE settlements SET clawed = clawed + $3 WHERE op_id = $1 AND creator = $2",
                )
                .bind(op_id)
                .bind(creator)
                .bind(d)
                .execute(&mut **tx)
                .await?;
            }
            if plan.lost > 0 {
                metrics::counter!("giftstream_clawback_unrecovered_diamonds_total")
                    .increment(plan.lost as u64);
                tracing::warn!(
                    buyer,
                    payment_intent,
                    clawed = plan.clawed,
                    lost = plan.lost,
                    "reversed coins' diamonds could not all be clawed back: recorded as platform loss"
                );
            }
            Ok(plan)
        }
    }
}

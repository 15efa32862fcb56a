//! Escrow of marketplace contracts (`contracts` with the columns of
//! `migrations/*/0015_escrow.sql`): reading a contract with its payout,
//! the payment into escrow, the deliverable, the release of the escrow
//! (approve, reject, cancel) and the disputes of the brand's charge; the
//! first half of [`EscrowLedger`] (payout rows: `super::escrow_payouts`).
//!
//! Owns: that SQL, once for both dialects; each move reads the contract
//! under its lock, checks it with [`ContractState::next`], writes `WHERE
//! state = <read>`, and posts its entries (summing to zero per currency)
//! under its [`OpKey`] in the same transaction.
//! Must not: call Stripe, or release an escrow twice (one payout row per
//! contract, its primary key).

use sqlx::Transaction;

use super::{for_update_of, Dialect, SqlLedger};
use crate::error::{Error, ErrorCode, Result};
use crate::ledger::escrow::{
    escrow_chargeback_postings, escrow_paid_postings, escrow_release_postings, fee_of,
    ContractPaid, ContractPayout, Deliverable, DisputeMove, PayoutKind, Release,
};
use crate::ledger::market_states::{ContractAction, ContractState};
use crate::ledger::marketplace::{Contract, MarketCursor};
use crate::ledger::{account, OpKey, StripeEventRef};
use crate::model::Fiat;

/// A contract with its payout (`c` and `p`), as every read answers it.
pub(super) const CONTRACT_SELECT: &str = "SELECT c.contract, c.application, c.campaign, c.brand, c.creator, c.price_cents, c.currency, c.state, c.created_ms, c.updated_ms, c.payment_intent, c.paid_ms, c.deliverable_url, c.deliverable_note, c.submitted_ms, c.review_due_ms, c.disputed, p.kind AS p_kind, p.status AS p_status, p.amount_cents AS p_amount, p.fee_cents AS p_fee, p.stripe_id AS p_stripe FROM contracts c LEFT JOIN contract_payouts p ON p.contract = c.contract";

/// A contract row with its payout's columns.
#[derive(sqlx::FromRow)]
pub(super) struct ContractRow {
    contract: String,
    application: String,
    campaign: String,
    brand: String,
    creator: String,
    price_cents: i64,
    currency: String,
    state: String,
    created_ms: i64,
    updated_ms: i64,
    payment_intent: Option<String>,
    paid_ms: Option<i64>,
    deliverable_url: Option<String>,
    deliverable_note: Option<String>,
    submitted_ms: Option<i64>,
    review_due_ms: Option<i64>,
    disputed: bool,
    p_kind: Option<String>,
    p_status: Option<String>,
    p_amount: Option<i64>,
    p_fee: Option<i64>,
    p_stripe: Option<String>,
}

impl ContractRow {
    /// The contract as answered.
    pub(super) fn into_contract(self) -> Result<Contract> {
        let state = ContractState::parse(&self.state)
            .ok_or_else(|| Error::internal(format!("stored contract state {}", self.state)))?;
        let deliverable = match (self.deliverable_url, self.submitted_ms) {
            (Some(url), Some(submitted_ms)) => Some(Deliverable {
                url,
                note: self.deliverable_note.unwrap_or_default(),
                submitted_ms,
            }),
            _ => None,
        };
        let payout = match (
            self.p_kind.as_deref().and_then(PayoutKind::parse),
            self.p_status,
        ) {
            (Some(kind), Some(status)) => Some(ContractPayout {
                kind,
                status,
                amount_cents: self.p_amount.unwrap_or(0),
                fee_cents: self.p_fee.unwrap_or(0),
                stripe_id: self.p_stripe,
            }),
            _ => None,
        };
        Ok(Contract {
            contract: self.contract,
            application: self.application,
            campaign: self.campaign,
            brand: self.brand,
            creator: self.creator,
            price_cents: self.price_cents,
            currency: self.currency,
            state,
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
            payment_intent: self.payment_intent,
            paid_ms: self.paid_ms,
            deliverable,
            review_due_ms: self.review_due_ms,
            disputed: self.disputed,
            payout,
        })
    }
}

/// `bad_request` "no such contract" (answered 404 by the HTTP layer).
pub(super) fn no_contract(id: &str) -> Error {
    Error::bad_request(format!("no such contract `{id}`"))
}

/// The contract's currency as the ledger keeps it.
fn fiat_of(c: &Contract) -> Result<Fiat> {
    Fiat::parse(&c.currency).ok_or_else(|| {
        Error::bad_request(format!(
            "the contract's currency `{}` cannot be paid here",
            c.currency
        ))
    })
}

per_dialect! {
    impl SqlLedger<D> {
        /// A contract read in `tx`, locked where the dialect locks rows.
        pub(super) async fn contract_in(tx: &mut Transaction<'_, DB>, id: &str) -> Result<Option<Contract>> {
            let sql = format!("{CONTRACT_SELECT} WHERE c.contract = $1{}", for_update_of::<D>("c"));
            let row: Option<ContractRow> = sqlx::query_as(&sql).bind(id).fetch_optional(&mut **tx).await?;
            row.map(ContractRow::into_contract).transpose()
        }

        /// Move a contract from the state read to `next` (`conflict` naming
        /// the state it is in when another move won).
        async fn contract_cas(tx: &mut Transaction<'_, DB>, c: &Contract, next: ContractState, now_ms: i64) -> Result<()> {
            let n = sqlx::query("UPDATE contracts SET state = $1, updated_ms = $2 WHERE contract = $3 AND state = $4")
                .bind(next.as_str())
                .bind(now_ms)
                .bind(&c.contract)
                .bind(c.state.as_str())
                .execute(&mut **tx)
                .await?
                .rows_affected();
            if n != 1 {
                return Err(Error::new(ErrorCode::Conflict, format!("the contract is no longer {}", c.state.as_str())));
            }
            Ok(())
        }

        /// Write the payout row of a release and post it (op
        /// [`OpKey::ContractRelease`]).
        async fn start_payout(tx: &mut Transaction<'_, DB>, c: &Contract, kind: PayoutKind, fee: i64, key: &str, group: &str, now_ms: i64) -> Result<()> {
            let fiat = fiat_of(c)?;
            let op_id = OpKey::ContractRelease(&c.contract).op_id();
            let detail = serde_json::json!({ "contract": c.contract, "kind": kind.as_str(), "price_cents": c.price_cents, "fee_cents": fee }).to_string();
            if !Self::insert_operation(tx, &op_id, "contract_release", &detail).await? {
                return Err(Error::new(ErrorCode::Conflict, "the contract's escrow was already released"));
            }
            let pi = c.payment_intent.clone().unwrap_or_default();
            sqlx::query("INSERT INTO contract_payouts (contract, kind, creator, payment_intent, amount_cents, fee_cents, currency, status, idem_key, transfer_group, attempt, attempt_ms, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, 1, $10, $10)")
                .bind(&c.contract)
                .bind(kind.as_str())
                .bind(&c.creator)
                .bind(&pi)
                .bind(c.price_cents - fee)
                .bind(fee)
                .bind(fiat.code())
                .bind(key)
                .bind(group)
                .bind(now_ms)
                .execute(&mut **tx)
                .await?;
            D::post(tx, &op_id, &escrow_release_postings(&c.contract, c.price_cents, fee, fiat)).await?;
            Ok(())
        }

        /// See [`EscrowLedger::contract`](crate::ledger::escrow::EscrowLedger::contract).
        pub(super) async fn esc_contract(&self, id: &str) -> Result<Option<Contract>> {
            let row: Option<ContractRow> = sqlx::query_as(&format!("{CONTRACT_SELECT} WHERE c.contract = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            row.map(ContractRow::into_contract).transpose()
        }

        /// Contracts whose `column` (`brand`, `creator`, `campaign`) is
        /// `value`, newest first (`campaign`: oldest first, all).
        pub(super) async fn esc_contracts_by(&self, column: &str, value: &str, len_max: i64, after: Option<&MarketCursor>) -> Result<Vec<Contract>> {
            let column = match column {
                "brand" => "brand",
                "campaign" => "campaign",
                _ => "creator",
            };
            let mut sql = format!("{CONTRACT_SELECT} WHERE c.{column} = $1");
            if after.is_some() {
                sql.push_str(" AND (c.created_ms, c.contract) < ($3, $4)");
            }
            if column == "campaign" {
                sql.push_str(" ORDER BY c.created_ms, c.contract LIMIT $2");
            } else {
                sql.push_str(" ORDER BY c.created_ms DESC, c.contract DESC LIMIT $2");
            }
            let mut q = sqlx::query_as::<DB, ContractRow>(&sql).bind(value).bind(len_max);
            if let Some(c) = after {
                q = q.bind(c.ms).bind(c.key.as_str());
            }
            q.fetch_all(&self.pool).await?.into_iter().map(ContractRow::into_contract).collect()
        }

        /// See [`EscrowLedger::set_contract_payment_intent`](crate::ledger::escrow::EscrowLedger::set_contract_payment_intent).
        pub(super) async fn esc_set_pi(&self, id: &str, pi: &str) -> Result<String> {
            sqlx::query("UPDATE contracts SET payment_intent = $2 WHERE contract = $1 AND payment_intent IS NULL")
                .bind(id)
                .bind(pi)
                .execute(&self.pool)
                .await?;
            let c = self.esc_contract(id).await?.ok_or_else(|| no_contract(id))?;
            Ok(c.payment_intent.unwrap_or_default())
        }

        /// See [`EscrowLedger::contract_paid`](crate::ledger::escrow::EscrowLedger::contract_paid).
        pub(super) async fn esc_paid(&self, paid: &ContractPaid) -> Result<bool> {
            let mut tx = D::begin_write(&self.pool).await?;
            if !Self::insert_event(&mut tx, &paid.event).await? {
                return Ok(false);
            }
            let Some(c) = Self::contract_in(&mut tx, &paid.contract).await? else {
                tracing::warn!(contract = %paid.contract, "payment of an unknown contract: acknowledged, ignored");
                tx.commit().await?;
                return Ok(false);
            };
            let fiat = fiat_of(&c)?;
            let same_pi = c.payment_intent.as_deref().is_none_or(|p| p == paid.payment_intent);
            if !same_pi || paid.amount_cents != c.price_cents || !paid.currency.eq_ignore_ascii_case(&c.currency) {
                tracing::error!(contract = %c.contract, payment_intent = %paid.payment_intent, amount = paid.amount_cents, price = c.price_cents, "a payment that does not match its contract: ignored; settle it at Stripe by hand");
                tx.commit().await?;
                return Ok(false);
            }
            let late = match c.state {
                ContractState::AwaitingPayment => false,
                // Cancelled before its payment arrived: refunded at once.
                ContractState::Cancelled if c.paid_ms.is_none() && c.payout.is_none() => true,
                _ => {
                    tx.commit().await?;
                    return Ok(false);
                }
            };
            let op_id = OpKey::ContractPaid(&c.contract).op_id();
            let detail = serde_json::json!({ "contract": c.contract, "payment_intent": paid.payment_intent, "price_cents": c.price_cents }).to_string();
            if !Self::insert_operation(&mut tx, &op_id, "contract_paid", &detail).await? {
                tx.commit().await?;
                return Ok(false);
            }
            let now = crate::protocol::now_ms();
            let next = if late { ContractState::Cancelled } else { c.state.next(ContractAction::Pay)? };
            let n = sqlx::query("UPDATE contracts SET state = $1, payment_intent = $2, paid_ms = $3, updated_ms = $3 WHERE contract = $4 AND state = $5")
                .bind(next.as_str())
                .bind(&paid.payment_intent)
                .bind(now)
                .bind(&c.contract)
                .bind(c.state.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n != 1 {
                return Err(Error::internal("contract changed under its lock"));
            }
            D::post(&mut tx, &op_id, &escrow_paid_postings(&c.contract, c.price_cents, fiat)).await?;
            if late {
                let c = Self::contract_in(&mut tx, &c.contract).await?.ok_or_else(|| no_contract(&paid.contract))?;
                Self::start_payout(&mut tx, &c, PayoutKind::Refund, 0, &paid.refund_key, "", now).await?;
            }
            tx.commit().await?;
            Ok(true)
        }

        /// See [`EscrowLedger::contract_submit`](crate::ledger::escrow::EscrowLedger::contract_submit).
        pub(super) async fn esc_submit(&self, id: &str, url: &str, note: &str, now_ms: i64, review_ms: i64) -> Result<Contract> {
            let mut tx = D::begin_write(&self.pool).await?;
            let c = Self::contract_in(&mut tx, id).await?.ok_or_else(|| no_contract(id))?;
            let next = c.state.next(ContractAction::Submit)?;
            let n = sqlx::query("UPDATE contracts SET state = $1, deliverable_url = $2, deliverable_note = $3, submitted_ms = $4, review_due_ms = $5, updated_ms = $4 WHERE contract = $6 AND state = $7")
                .bind(next.as_str())
                .bind(url)
                .bind(note)
                .bind(now_ms)
                .bind(now_ms.saturating_add(review_ms))
                .bind(id)
                .bind(c.state.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n != 1 {
                return Err(Error::internal("contract changed under its lock"));
            }
            let out = Self::contract_in(&mut tx, id).await?.ok_or_else(|| no_contract(id))?;
            tx.commit().await?;
            Ok(out)
        }

        /// See [`EscrowLedger::contract_release`](crate::ledger::escrow::EscrowLedger::contract_release).
        pub(super) async fn esc_release(&self, id: &str, r: &Release) -> Result<Contract> {
            let mut tx = D::begin_write(&self.pool).await?;
            let c = Self::contract_in(&mut tx, id).await?.ok_or_else(|| no_contract(id))?;
            if let Some(due) = r.due_by_ms {
                if c.state != ContractState::Submitted || c.review_due_ms.is_none_or(|d| d > due) {
                    return Err(Error::new(ErrorCode::Conflict, "the contract's review is not due"));
                }
            }
            if r.action == ContractAction::Approve && c.disputed {
                return Err(Error::new(ErrorCode::Conflict, "the contract is disputed: approve is not allowed"));
            }
            let next = c.state.next(r.action)?;
            Self::contract_cas(&mut tx, &c, next, r.now_ms).await?;
            if let Some(reason) = &r.reason {
                sqlx::query("UPDATE contracts SET reason = $2 WHERE contract = $1")
                    .bind(id)
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
            }
            if c.paid_ms.is_some() {
                let (kind, fee) = if r.action == ContractAction::Approve {
                    (PayoutKind::Transfer, fee_of(c.price_cents, r.fee_bps))
                } else {
                    (PayoutKind::Refund, 0)
                };
                Self::start_payout(&mut tx, &c, kind, fee, &r.idem_key, &r.transfer_group, r.now_ms).await?;
            }
            let out = Self::contract_in(&mut tx, id).await?.ok_or_else(|| no_contract(id))?;
            tx.commit().await?;
            Ok(out)
        }

        /// See [`EscrowLedger::contracts_review_due`](crate::ledger::escrow::EscrowLedger::contracts_review_due).
        pub(super) async fn esc_review_due(&self, now_ms: i64, len_max: usize) -> Result<Vec<String>> {
            Ok(sqlx::query_scalar("SELECT contract FROM contracts WHERE state = 'submitted' AND review_due_ms <= $1 AND disputed = $2 ORDER BY review_due_ms, contract LIMIT $3")
                .bind(now_ms)
                .bind(false)
                .bind(len_max as i64)
                .fetch_all(&self.pool)
                .await?)
        }

        /// See [`EscrowLedger::contract_by_payment_intent`](crate::ledger::escrow::EscrowLedger::contract_by_payment_intent).
        pub(super) async fn esc_by_pi(&self, pi: &str) -> Result<Option<Contract>> {
            let row: Option<ContractRow> = sqlx::query_as(&format!("{CONTRACT_SELECT} WHERE c.payment_intent = $1"))
                .bind(pi)
                .fetch_optional(&self.pool)
                .await?;
            row.map(ContractRow::into_contract).transpose()
        }

        /// See [`EscrowLedger::contract_dispute`](crate::ledger::escrow::EscrowLedger::contract_dispute).
        pub(super) async fn esc_dispute(&self, event: &StripeEventRef, id: &str, dispute: DisputeMove) -> Result<bool> {
            let mut tx = D::begin_write(&self.pool).await?;
            if !Self::insert_event(&mut tx, event).await? {
                return Ok(false);
            }
            let Some(c) = Self::contract_in(&mut tx, id).await? else {
                tx.commit().await?;
                return Ok(false);
            };
            let held = dispute == DisputeMove::Opened;
            sqlx::query("UPDATE contracts SET disputed = $2 WHERE contract = $1")
                .bind(id)
                .bind(held)
                .execute(&mut *tx)
                .await?;
            if dispute == DisputeMove::Lost && c.paid_ms.is_some() {
                let op_id = OpKey::ContractChargeback(id).op_id();
                let detail = serde_json::json!({ "contract": id, "event": event.id }).to_string();
                if Self::insert_operation(&mut tx, &op_id, "contract_chargeback", &detail).await? {
                    let fiat = fiat_of(&c)?;
                    let held = Self::balance_in(&mut tx, &account::escrow(id), fiat.code()).await?;
                    let from_escrow = held.clamp(0, c.price_cents);
                    let rest = c.price_cents - from_escrow;
                    // What the creator was paid (or is being paid) and keeps.
                    let paid_out = match &c.payout {
                        Some(p) if p.kind == PayoutKind::Transfer && (p.status == "pending" || p.status == "completed") => p.amount_cents,
                        _ => 0,
                    };
                    let lost = rest.min(paid_out);
                    D::post(&mut tx, &op_id, &escrow_chargeback_postings(id, &c.creator, c.price_cents, from_escrow, lost, fiat)).await?;
                    if matches!(c.state, ContractState::Funded | ContractState::Submitted) {
                        Self::contract_cas(&mut tx, &c, ContractState::Cancelled, crate::protocol::now_ms()).await?;
                    }
                    if lost > 0 {
                        tracing::warn!(contract = id, cents = lost, "chargeback of a contract already paid out: the platform's loss");
                    }
                }
            }
            tx.commit().await?;
            Ok(true)
        }
    }
}

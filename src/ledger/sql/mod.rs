//! The SQL ledger, written once for SQLite and PostgreSQL.
//!
//! Owns: every [`Ledger`](super::Ledger) flow's SQL, once, in
//! [`SqlLedger`] (one file per flow: `gifts`, `targets`, `snapshot`,
//! `purchases`, `refunds_disputes`, `tips`, `cashouts`,
//! `payout_accounts`, `reads` for the studio, `follows`, `moderation`
//! for blocks, moderators and the audit, `message_rules`, `marketplace`,
//! `market_deals`, and `escrow` with `escrow_payouts`), its row types
//! (`rows`), and the [`Dialect`] trait:
//! what really differs between the engines (how a write transaction
//! begins, `FOR UPDATE`, serializing writers by key, multi-row inserts,
//! the exclusive lock). Each flow body is written once and type-checked
//! per engine by `per_dialect!`, which stamps it for each dialect with
//! `D` (the dialect) and `DB` (its `sqlx::Database`) in scope.
//! Each write is one transaction keyed by an operation id under a UNIQUE
//! constraint, so a replay changes nothing.
//! Must not: run outside a transaction for anything that writes; hold
//! money rules (they are in `super::rules`, the postings in
//! `super::postings`); build wire errors (flows answer
//! [`LedgerError`]).

use async_trait::async_trait;
use sqlx::{Pool, Transaction};

use super::{PayoutLimits, Postings};
use crate::model::PendingGift;

/// Stamp the items for each SQL dialect, with `D` (the dialect type) and
/// `DB` (its `sqlx::Database`) in scope: the flow text exists once and is
/// type-checked against each engine's concrete types.
macro_rules! per_dialect {
    ($($item:item)*) => {
        const _: () = {
            #[allow(dead_code)]
            type D = $crate::ledger::sqlite::SqliteDialect;
            #[allow(dead_code)]
            type DB = ::sqlx::Sqlite;
            $($item)*
        };
        const _: () = {
            #[allow(dead_code)]
            type D = $crate::ledger::postgres::PgDialect;
            #[allow(dead_code)]
            type DB = ::sqlx::Postgres;
            $($item)*
        };
    };
}

mod cashouts;
mod escrow;
mod escrow_payouts;
mod follows;
mod gifts;
mod ledger_impl;
mod market_deals;
mod marketplace;
mod message_rules;
mod moderation;
mod payout_accounts;
mod purchases;
mod reads;
mod refunds_disputes;
mod rows;
mod snapshot;
mod targets;
mod tips;

use super::error::{LedgerError, LedgerResult};

/// A ledger in a SQL database of dialect `D` (see
/// [`super::sqlite::SqliteLedger`], [`super::postgres::PgLedger`]).
pub struct SqlLedger<D: Dialect> {
    /// The cash-out limits and the payout hold.
    pub(crate) limits: parking_lot::RwLock<PayoutLimits>,
    /// The connections.
    pub(crate) pool: Pool<D::DB>,
    /// The engine's own state (its exclusive lock).
    pub(crate) engine: D,
}

impl<D: Dialect> SqlLedger<D> {
    /// A ledger over a migrated `pool`.
    pub(crate) fn with_pool(pool: Pool<D::DB>, engine: D) -> Self {
        SqlLedger {
            limits: parking_lot::RwLock::new(PayoutLimits::default()),
            pool,
            engine,
        }
    }
}

/// What writers a [`Dialect::serialize`] call makes wait for each other.
#[derive(Debug, Clone, Copy)]
pub enum Serial<'a> {
    /// The grants of one admin (the daily cap).
    Grants(&'a str),
    /// The cash-outs of one creator (the daily limits and the hold).
    Cashouts(&'a str),
}

/// What differs between the SQL engines; everything else is written once.
#[async_trait]
pub trait Dialect: Send + Sync + Sized + 'static {
    /// The sqlx database.
    type DB: sqlx::Database;

    /// Appended to a read whose rows the transaction goes on to change:
    /// ` FOR UPDATE` where rows are locked one by one (PostgreSQL), empty
    /// where a write transaction holds the database's write lock (SQLite).
    const FOR_UPDATE: &'static str;

    /// Begin a transaction that writes.
    async fn begin_write(pool: &Pool<Self::DB>) -> LedgerResult<Transaction<'static, Self::DB>>;

    /// Begin a read-only transaction seeing one snapshot for all its
    /// statements.
    async fn begin_read(pool: &Pool<Self::DB>) -> LedgerResult<Transaction<'static, Self::DB>>;

    /// Make the writers of `scope` wait for each other until `tx` ends
    /// (nothing where a write transaction already excludes every other).
    async fn serialize(tx: &mut Transaction<'_, Self::DB>, scope: Serial<'_>) -> LedgerResult<()>;

    /// Insert the gift rows of batch `op_id` (unique keys, in order),
    /// skipping keys already in the ledger; answers the gifts written now.
    async fn insert_gifts<'g>(
        tx: &mut Transaction<'_, Self::DB>,
        op_id: &str,
        gifts: &[&'g PendingGift],
    ) -> LedgerResult<Vec<&'g PendingGift>>;

    /// Insert the settlement rows (creator, diamonds) of batch `op_id`.
    async fn insert_settlements(
        tx: &mut Transaction<'_, Self::DB>,
        op_id: &str,
        rows: &[(&str, i64)],
        settled_ms: i64,
    ) -> LedgerResult<()>;

    /// Write the entries of `op_id` and move its balances: new accounts at
    /// zero first, then every balance in one UPDATE, so the non-negative
    /// CHECK judges the final amount only ([`LedgerError::Overdraft`]).
    async fn post(
        tx: &mut Transaction<'_, Self::DB>,
        op_id: &str,
        postings: &Postings,
    ) -> LedgerResult<()>;

    /// Write the webhook outbox rows of the gifts settled now, in the
    /// batch's transaction ([`super::outbox`]).
    async fn outbox_gifts(
        tx: &mut Transaction<'_, Self::DB>,
        gifts: &[&PendingGift],
    ) -> LedgerResult<()>;

    /// Write the webhook outbox row of a succeeding tip, in its transaction.
    async fn outbox_tip(
        tx: &mut Transaction<'_, Self::DB>,
        tip: &super::TipRecord,
    ) -> LedgerResult<()>;

    /// Write one webhook outbox row under `event_id` (once per id) in
    /// `tx`, when `creator` has an endpoint subscribed to `kind` (a
    /// `follow` with its edge).
    async fn outbox_once(
        tx: &mut Transaction<'_, Self::DB>,
        creator: &str,
        kind: &str,
        event_id: &str,
        data: &serde_json::Value,
    ) -> LedgerResult<()>;

    /// The webhook endpoints and outbox of this database.
    fn webhooks(pool: &Pool<Self::DB>) -> std::sync::Arc<dyn super::outbox::WebhookStore>;

    /// See [`super::Ledger::lock_exclusive`].
    async fn lock_exclusive(&self) -> anyhow::Result<()>;

    /// See [`super::Ledger::unlock_exclusive`].
    async fn unlock_exclusive(&self);
}

/// ` FOR UPDATE OF {table}` where the dialect locks rows, else nothing.
fn for_update_of<D: Dialect>(table: &str) -> String {
    if D::FOR_UPDATE.is_empty() {
        String::new()
    } else {
        format!("{} OF {table}", D::FOR_UPDATE)
    }
}

/// Whether a database error is a CHECK violation (a balance that would go
/// below zero).
pub(crate) fn is_check_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.code().as_deref() == Some("23514")
                || d.code().as_deref() == Some("275")
                || d.message().contains("CHECK constraint failed")
        }
        _ => false,
    }
}

/// A CHECK violation on balances is an overdraft; anything else is the
/// backend's failure.
pub(crate) fn overdraft_or_backend(e: sqlx::Error) -> LedgerError {
    if is_check_violation(&e) {
        LedgerError::Overdraft
    } else {
        LedgerError::Backend(e)
    }
}

/// A non-negative integer stored as BIGINT, back to `u64`.
fn to_u64(v: i64, what: &str) -> LedgerResult<u64> {
    u64::try_from(v).map_err(|_| LedgerError::invariant(format_args!("negative {what} {v}")))
}

per_dialect! {
    impl SqlLedger<D> {
        /// Record an operation under its id; false when the id already
        /// exists (the UNIQUE key, not a check in code, makes every write
        /// idempotent; a concurrent insert of the same id waits for the
        /// other transaction).
        async fn insert_operation(
            tx: &mut Transaction<'_, DB>,
            op_id: &str,
            kind: &str,
            detail: &str,
        ) -> LedgerResult<bool> {
            let n = sqlx::query(
                "INSERT INTO operations (op_id, kind, detail, created_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (op_id) DO NOTHING",
            )
            .bind(op_id)
            .bind(kind)
            .bind(detail)
            .bind(crate::protocol::now_ms())
            .execute(&mut **tx)
            .await?
            .rows_affected();
            Ok(n == 1)
        }

        /// Record a Stripe event id in `tx`; false when it was already
        /// applied. A parked early reversal is applied with its event, once.
        async fn insert_event(
            tx: &mut Transaction<'_, DB>,
            event: &super::StripeEventRef,
        ) -> LedgerResult<bool> {
            let n = sqlx::query("INSERT INTO stripe_events (event_id, type, applied_ms) VALUES ($1, $2, $3) ON CONFLICT (event_id) DO NOTHING")
                .bind(&event.id)
                .bind(&event.kind)
                .bind(crate::protocol::now_ms())
                .execute(&mut **tx)
                .await?
                .rows_affected();
            if n == 1 && event.kind.starts_with("charge.") {
                sqlx::query("DELETE FROM early_reversals WHERE event_id = $1")
                    .bind(&event.id)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(n == 1)
        }

        /// A balance read inside `tx` (0 when the account has none).
        async fn balance_in(
            tx: &mut Transaction<'_, DB>,
            acct: &str,
            currency: &str,
        ) -> LedgerResult<i64> {
            let v: Option<i64> = sqlx::query_scalar(
                "SELECT amount FROM balances WHERE account = $1 AND currency = $2",
            )
            .bind(acct)
            .bind(currency)
            .fetch_optional(&mut **tx)
            .await?;
            Ok(v.unwrap_or(0))
        }

        /// The buyer's debt account balance (negative while coins are
        /// owed), read inside `tx` under its write lock (the row locked
        /// where the dialect locks rows): two purchases never repay twice.
        async fn debt_balance(tx: &mut Transaction<'_, DB>, user: &str) -> LedgerResult<i64> {
            let debt: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT amount FROM balances WHERE account = $1 AND currency = $2{}",
                D::FOR_UPDATE
            ))
            .bind(super::account::debt(user))
            .bind(super::COIN)
            .fetch_optional(&mut **tx)
            .await?;
            Ok(debt.unwrap_or(0))
        }

        /// Diamonds of `creator` settled after `since_ms` (still on hold)
        /// and not clawed back.
        async fn held_diamonds(
            tx: &mut Transaction<'_, DB>,
            creator: &str,
            since_ms: i64,
        ) -> LedgerResult<i64> {
            let v: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(SUM(diamonds - clawed), 0) AS BIGINT) FROM settlements WHERE creator = $1 AND settled_ms > $2")
                .bind(creator)
                .bind(since_ms)
                .fetch_one(&mut **tx)
                .await?;
            Ok(v)
        }
    }
}

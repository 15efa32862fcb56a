//! The PostgreSQL ledger (production): one database shared by every node.
//!
//! Owns: the PostgreSQL schema (`migrations/postgres`, embedded and run at
//! start under sqlx's migration lock), the PostgreSQL [`Dialect`] of the
//! SQL ledger (whose flows are written once in [`super::sql`], with the
//! same semantics as on SQLite), and the exclusive session lock.
//! Batch rows go in one multi-row statement per table (`UNNEST` of array
//! binds, so the bind count does not grow with the batch). Rows are locked
//! in one global order — the batch's operation row, then gift keys sorted
//! by (target, seq), then balances sorted by (account, currency) — so
//! committers on several nodes never deadlock; rows a flow reads and then
//! changes are read `FOR UPDATE`, and writers judged together (one admin's
//! grants, one creator's cash-outs) take a transaction advisory lock.
//! Must not: run outside a transaction for anything that writes, or write
//! row by row in a loop of round trips.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres, Transaction};

use super::error::{LedgerError, LedgerResult};
use super::sql::{overdraft_or_backend, Dialect, Serial, SqlLedger};
use super::Postings;
use crate::model::PendingGift;

/// A ledger in one PostgreSQL database.
pub type PgLedger = SqlLedger<PgDialect>;

/// PostgreSQL's dialect, with the exclusive lock's connection.
pub struct PgDialect {
    /// How to connect, for the lock's dedicated connection.
    opts: PgConnectOptions,
    /// The connection holding the session advisory lock, once taken
    /// ([`super::Ledger::lock_exclusive`]); the lock ends with it.
    lock: tokio::sync::Mutex<Option<sqlx::PgConnection>>,
}

/// The session advisory lock key of [`super::Ledger::lock_exclusive`]
/// (ASCII `gftstrm1`).
const EXCLUSIVE_LOCK_KEY: i64 = 0x6766_7473_7472_6d31;

impl SqlLedger<PgDialect> {
    /// Connect (`postgres://` or `postgresql://` URL) with at most
    /// `pool_len_max` connections and run the embedded migrations.
    pub async fn open(url: &str, pool_len_max: u32) -> anyhow::Result<PgLedger> {
        let opts = PgConnectOptions::from_str(url)?.application_name("giftstream");
        let pool = PgPoolOptions::new()
            .max_connections(pool_len_max.max(1))
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .idle_timeout(Some(Duration::from_secs(600)))
            .max_lifetime(Some(Duration::from_secs(3600)))
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(SqlLedger::with_pool(
            pool,
            PgDialect {
                opts,
                lock: tokio::sync::Mutex::new(None),
            },
        ))
    }
}

/// The columns of `postings`, as arrays to bind.
struct PostingArrays<'a> {
    accounts: Vec<&'a str>,
    currencies: Vec<&'static str>,
    kinds: Vec<&'static str>,
    amounts: Vec<i64>,
}

impl<'a> PostingArrays<'a> {
    fn of(postings: &'a Postings) -> Self {
        let len = postings.len();
        let mut a = PostingArrays {
            accounts: Vec::with_capacity(len),
            currencies: Vec::with_capacity(len),
            kinds: Vec::with_capacity(len),
            amounts: Vec::with_capacity(len),
        };
        for ((acct, cur, kind), amount) in postings {
            a.accounts.push(acct.as_str());
            a.currencies.push(*cur);
            a.kinds.push(*kind);
            a.amounts.push(*amount);
        }
        a
    }
}

#[async_trait]
impl Dialect for PgDialect {
    type DB = Postgres;

    const FOR_UPDATE: &'static str = " FOR UPDATE";

    async fn begin_write(pool: &Pool<Postgres>) -> LedgerResult<Transaction<'static, Postgres>> {
        Ok(pool.begin().await?)
    }

    async fn begin_read(pool: &Pool<Postgres>) -> LedgerResult<Transaction<'static, Postgres>> {
        let mut tx = pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    async fn serialize(tx: &mut Transaction<'_, Postgres>, scope: Serial<'_>) -> LedgerResult<()> {
        let q = match scope {
            Serial::Grants(admin) => sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtextextended('giftstream.grant:' || $1, 0))",
            )
            .bind(admin.to_string()),
            Serial::Cashouts(creator) => sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(format!("cashout:{creator}")),
        };
        q.execute(&mut **tx).await?;
        Ok(())
    }

    async fn insert_gifts<'g>(
        tx: &mut Transaction<'_, Postgres>,
        op_id: &str,
        gifts: &[&'g PendingGift],
    ) -> LedgerResult<Vec<&'g PendingGift>> {
        if gifts.is_empty() {
            return Ok(Vec::new());
        }
        let len = gifts.len();
        let mut targets = Vec::with_capacity(len);
        let mut seqs = Vec::with_capacity(len);
        let mut senders = Vec::with_capacity(len);
        let mut client_ids = Vec::with_capacity(len);
        let mut creators = Vec::with_capacity(len);
        let mut gift_ids = Vec::with_capacity(len);
        let mut counts = Vec::with_capacity(len);
        let mut coins = Vec::with_capacity(len);
        let mut diamonds = Vec::with_capacity(len);
        let mut balances_after = Vec::with_capacity(len);
        let mut tss = Vec::with_capacity(len);
        let mut messages: Vec<Option<&str>> = Vec::with_capacity(len);
        for g in gifts {
            targets.push(g.target.as_str());
            seqs.push(
                i64::try_from(g.seq).map_err(|_| {
                    LedgerError::invalid(format!("gift seq {} out of range", g.seq))
                })?,
            );
            senders.push(g.sender.as_str());
            client_ids.push(g.client_id.as_str());
            creators.push(g.creator.as_str());
            gift_ids.push(g.gift.as_str());
            counts.push(i64::from(g.count));
            coins.push(g.coins);
            diamonds.push(g.diamonds);
            balances_after.push(g.balance_after);
            tss.push(g.ts);
            messages.push(g.message.as_deref());
        }
        // Rows go in key order so two batches sharing gifts lock them alike.
        let fresh: HashSet<(String, i64)> = sqlx::query_as::<_, (String, i64)>(
            "INSERT INTO gifts (target, seq, op_id, sender, client_id, creator, gift, count, coins, diamonds, balance_after, ts_ms, message)
             SELECT g.target, g.seq, $1, g.sender, g.client_id, g.creator, g.gift, g.count, g.coins, g.diamonds, g.balance_after, g.ts_ms, g.message
             FROM UNNEST($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[])
                  AS g(target, seq, sender, client_id, creator, gift, count, coins, diamonds, balance_after, ts_ms, message)
             ORDER BY g.target, g.seq
             ON CONFLICT (target, seq) DO NOTHING
             RETURNING target, seq",
        )
        .bind(op_id)
        .bind(&targets)
        .bind(&seqs)
        .bind(&senders)
        .bind(&client_ids)
        .bind(&creators)
        .bind(&gift_ids)
        .bind(&counts)
        .bind(&coins)
        .bind(&diamonds)
        .bind(&balances_after)
        .bind(&tss)
        .bind(&messages)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .collect();
        Ok(gifts
            .iter()
            .copied()
            .filter(|g| {
                i64::try_from(g.seq).is_ok_and(|seq| fresh.contains(&(g.target.clone(), seq)))
            })
            .collect())
    }

    async fn insert_settlements(
        tx: &mut Transaction<'_, Postgres>,
        op_id: &str,
        rows: &[(&str, i64)],
        settled_ms: i64,
    ) -> LedgerResult<()> {
        let (creators, amounts): (Vec<&str>, Vec<i64>) = rows.iter().copied().unzip();
        sqlx::query("INSERT INTO settlements (op_id, creator, diamonds, settled_ms) SELECT $1, s.creator, s.diamonds, $4 FROM UNNEST($2::text[], $3::bigint[]) AS s(creator, diamonds)")
            .bind(op_id)
            .bind(&creators)
            .bind(&amounts)
            .bind(settled_ms)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// One statement per step whatever the number of postings; the touched
    /// balances are locked in (account, currency) order.
    async fn post(
        tx: &mut Transaction<'_, Postgres>,
        op_id: &str,
        postings: &Postings,
    ) -> LedgerResult<()> {
        if postings.is_empty() {
            return Ok(());
        }
        let a = PostingArrays::of(postings);
        sqlx::query(
            "INSERT INTO entries (op_id, account, currency, amount)
             SELECT $1, v.account, v.currency, v.amount
             FROM UNNEST($2::text[], $3::text[], $4::bigint[]) AS v(account, currency, amount)",
        )
        .bind(op_id)
        .bind(&a.accounts)
        .bind(&a.currencies)
        .bind(&a.amounts)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO balances (account, currency, kind, amount)
             SELECT v.account, v.currency, v.kind, 0
             FROM UNNEST($1::text[], $2::text[], $3::text[]) AS v(account, currency, kind)
             ORDER BY v.account, v.currency
             ON CONFLICT (account, currency) DO NOTHING",
        )
        .bind(&a.accounts)
        .bind(&a.currencies)
        .bind(&a.kinds)
        .execute(&mut **tx)
        .await?;
        // The MATERIALIZED CTE locks the rows in sorted order (LockRows runs
        // above the sort), and the UPDATE only touches rows it has locked.
        let moved = sqlx::query(
            "WITH v AS MATERIALIZED (
                 SELECT b.account, b.currency, d.delta
                 FROM balances b
                 JOIN UNNEST($1::text[], $2::text[], $3::bigint[]) AS d(account, currency, delta)
                   ON b.account = d.account AND b.currency = d.currency
                 ORDER BY b.account, b.currency
                 FOR UPDATE OF b
             )
             UPDATE balances SET amount = balances.amount + v.delta
             FROM v
             WHERE balances.account = v.account AND balances.currency = v.currency",
        )
        .bind(&a.accounts)
        .bind(&a.currencies)
        .bind(&a.amounts)
        .execute(&mut **tx)
        .await
        .map_err(overdraft_or_backend)?
        .rows_affected();
        if moved != postings.len() as u64 {
            return Err(LedgerError::invariant(format_args!(
                "op `{op_id}` moved {moved} balances, expected {}",
                postings.len()
            )));
        }
        Ok(())
    }

    async fn unlock_exclusive(&self) {
        use sqlx::Connection;
        if let Some(mut conn) = self.lock.lock().await.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(EXCLUSIVE_LOCK_KEY)
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }

    async fn outbox_gifts(
        tx: &mut Transaction<'_, Self::DB>,
        gifts: &[&PendingGift],
    ) -> LedgerResult<()> {
        super::outbox::pg_gifts(tx, gifts).await
    }

    async fn outbox_tip(
        tx: &mut Transaction<'_, Self::DB>,
        tip: &super::TipRecord,
    ) -> LedgerResult<()> {
        super::outbox::pg_tip(tx, tip).await
    }

    async fn outbox_once(
        tx: &mut Transaction<'_, Self::DB>,
        creator: &str,
        kind: &str,
        event_id: &str,
        data: &serde_json::Value,
    ) -> LedgerResult<()> {
        super::outbox::pg_once(tx, creator, kind, event_id, data).await
    }

    fn webhooks(pool: &Pool<Self::DB>) -> std::sync::Arc<dyn super::outbox::WebhookStore> {
        std::sync::Arc::new(super::outbox::PgWebhooks(pool.clone()))
    }

    async fn lock_exclusive(&self) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut held = self.lock.lock().await;
        if held.is_some() {
            return Ok(());
        }
        // A dedicated connection, outside the pool (which recycles its
        // connections): the session lock lives as long as it does.
        let mut conn = sqlx::PgConnection::connect_with(&self.opts).await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(EXCLUSIVE_LOCK_KEY)
            .fetch_one(&mut conn)
            .await?;
        if !got {
            anyhow::bail!(
                "the ledger's exclusive lock (PostgreSQL session advisory lock {EXCLUSIVE_LOCK_KEY}) is held by another process: with `counters.url = \"memory\"` one process only may use a ledger (use Redis counters to run several nodes)"
            );
        }
        *held = Some(conn);
        Ok(())
    }
}

//! The SQLite ledger (embedded default): one file in WAL mode.
//!
//! Owns: the SQLite schema (`migrations/sqlite`, embedded and run at start)
//! and the SQL of every [`Ledger`] operation. Each operation is one
//! transaction; batch rows are written as multi-row statements.
//! Must not: run outside a transaction for anything that writes. Write
//! transactions start with `BEGIN IMMEDIATE`: in WAL mode a deferred
//! transaction that reads and then writes fails at once
//! (`SQLITE_BUSY_SNAPSHOT`) when another writer committed in between, and
//! `busy_timeout` does not retry that; taking the write lock first does.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::{
    account, batch_postings, CreditOp, CreditOutcome, Ledger, TargetRecord, Totals, COIN, DIAMOND,
};
use crate::error::{Error, Result};
use crate::protocol::now_ms;
use crate::wallet::{Batch, PendingGift, Snapshot, Target, TargetInfo, TargetKind};

/// Rows per multi-row INSERT (12 binds a row, under SQLite's 32766 limit).
const ROWS_PER_STATEMENT: usize = 1000;

/// A ledger in one SQLite file.
pub struct SqliteLedger {
    pool: SqlitePool,
}

impl SqliteLedger {
    /// Open (creating file and parent folder if needed) and migrate.
    pub async fn open(url: &str, pool_len_max: u32) -> anyhow::Result<SqliteLedger> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        if !memory {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)?;
                }
            }
        }
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // An in-memory database lives in one connection: keep exactly one.
        let pool_len = if memory { 1 } else { pool_len_max };
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_len)
            .min_connections(if memory { 1 } else { 0 })
            .idle_timeout(if memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if memory {
                None
            } else {
                Some(Duration::from_secs(3600))
            })
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteLedger { pool })
    }
}

/// Record an operation under its id; false when the id already exists
/// (the UNIQUE key, not a check in code, makes every write idempotent).
async fn insert_operation(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    op_id: &str,
    kind: &str,
    detail: &str,
) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO operations (op_id, kind, detail, created_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (op_id) DO NOTHING",
    )
    .bind(op_id)
    .bind(kind)
    .bind(detail)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Write entries and move balances for one operation, inside `tx`.
/// New accounts are inserted at zero first, then every balance moves in one
/// UPDATE, so the non-negative CHECK judges the final amount only.
async fn apply_postings(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    op_id: &str,
    postings: &[((String, &'static str, &'static str), i64)],
) -> Result<()> {
    for chunk in postings.chunks(ROWS_PER_STATEMENT) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO entries (op_id, account, currency, amount) ");
        q.push_values(chunk, |mut b, ((acct, cur, _), amount)| {
            b.push_bind(op_id)
                .push_bind(acct)
                .push_bind(*cur)
                .push_bind(*amount);
        });
        q.build().execute(&mut **tx).await?;
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO balances (account, currency, kind, amount) ");
        q.push_values(chunk, |mut b, ((acct, cur, kind), _)| {
            b.push_bind(acct)
                .push_bind(*cur)
                .push_bind(*kind)
                .push_bind(0i64);
        });
        q.push(" ON CONFLICT (account, currency) DO NOTHING");
        q.build().execute(&mut **tx).await?;
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("WITH v(account, currency, delta) AS (");
        q.push_values(chunk, |mut b, ((acct, cur, _), amount)| {
            b.push_bind(acct).push_bind(*cur).push_bind(*amount);
        });
        q.push(") UPDATE balances SET amount = balances.amount + v.delta FROM v WHERE balances.account = v.account AND balances.currency = v.currency");
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

fn target_table(t: &Target) -> (&'static str, &'static str) {
    match t.kind {
        TargetKind::Room => ("rooms", "room"),
        TargetKind::Video => ("videos", "video"),
    }
}

#[async_trait]
impl Ledger for SqliteLedger {
    async fn credit(&self, op: &CreditOp) -> Result<CreditOutcome> {
        if op.coins <= 0 {
            return Err(Error::bad_request("coins must be > 0"));
        }
        let detail = serde_json::to_string(op).map_err(Error::internal)?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = insert_operation(&mut tx, &op.op_id, &op.kind, &detail).await?;
        if !inserted {
            let row = sqlx::query("SELECT detail FROM operations WHERE op_id = $1")
                .bind(&op.op_id)
                .fetch_one(&mut *tx)
                .await?;
            let first: CreditOp = serde_json::from_str(row.get::<&str, _>(0)).map_err(|_| {
                Error::bad_request(format!(
                    "id `{}` was used for another kind of operation",
                    op.op_id
                ))
            })?;
            if first != *op {
                return Err(Error::bad_request(format!(
                    "id `{}` was already used with other parameters",
                    op.op_id
                )));
            }
            return Ok(CreditOutcome {
                applied_now: false,
                op: first,
            });
        }
        let postings = vec![
            ((account::MINT.to_string(), COIN, "mint"), -op.coins),
            ((account::wallet(&op.user), COIN, "wallet"), op.coins),
        ];
        apply_postings(&mut tx, &op.op_id, &postings).await?;
        tx.commit().await?;
        Ok(CreditOutcome {
            applied_now: true,
            op: op.clone(),
        })
    }

    async fn commit_batch(&self, batch: &Batch) -> Result<bool> {
        let op_id = format!("batch:{}", batch.id);
        let detail = serde_json::json!({ "gifts": batch.gifts.len() }).to_string();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = insert_operation(&mut tx, &op_id, "batch", &detail).await?;
        if !inserted {
            return Ok(false);
        }
        // Gift rows are keyed by (target, seq): a gift already in the
        // ledger (committed under another batch grouping, e.g. after a
        // re-claim) is skipped, and only inserted rows are posted.
        // One row per (target, seq): a key repeated inside the batch is the
        // same gift and is posted once.
        let mut seen = std::collections::HashSet::with_capacity(batch.gifts.len());
        let unique: Vec<&PendingGift> = batch
            .gifts
            .iter()
            .filter(|g| seen.insert((g.target.as_str(), g.seq)))
            .collect();
        let mut inserted: Vec<&PendingGift> = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO gifts (target, seq, op_id, sender, client_id, creator, gift, count, coins, diamonds, balance_after, ts_ms) ",
            );
            q.push_values(chunk, |mut b, g| {
                b.push_bind(&g.target)
                    .push_bind(g.seq as i64)
                    .push_bind(&op_id)
                    .push_bind(&g.sender)
                    .push_bind(&g.client_id)
                    .push_bind(&g.creator)
                    .push_bind(&g.gift)
                    .push_bind(g.count as i64)
                    .push_bind(g.coins)
                    .push_bind(g.diamonds)
                    .push_bind(g.balance_after)
                    .push_bind(g.ts);
            });
            q.push(" ON CONFLICT (target, seq) DO NOTHING");
            let written = q.build().execute(&mut *tx).await?.rows_affected();
            if written == chunk.len() as u64 {
                inserted.extend(chunk.iter().copied());
                continue;
            }
            // Rare (a re-claimed gift that is already settled): the rows
            // written now are the chunk's keys that carry this batch's op
            // id. Asked only here, because sqlx hands every result row
            // across its worker thread: `RETURNING` on the common path
            // cost a thread hand-off per gift.
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT target, seq FROM gifts WHERE op_id = ");
            q.push_bind(&op_id);
            q.push(" AND (target, seq) IN (VALUES ");
            let mut keys = q.separated(", ");
            for g in chunk {
                keys.push("(");
                keys.push_bind_unseparated(&g.target);
                keys.push_unseparated(", ");
                keys.push_bind_unseparated(g.seq as i64);
                keys.push_unseparated(")");
            }
            q.push(")");
            let rows = q.build().fetch_all(&mut *tx).await?;
            let fresh: std::collections::HashSet<(String, i64)> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            inserted.extend(
                chunk
                    .iter()
                    .copied()
                    .filter(|g| fresh.contains(&(g.target.clone(), g.seq as i64))),
            );
        }
        if inserted.len() < batch.gifts.len() {
            tracing::warn!(batch = %batch.id, skipped = batch.gifts.len() - inserted.len(), "gifts already in the ledger were not applied again");
        }
        let postings: Vec<_> = batch_postings(inserted.iter().copied())
            .into_iter()
            .collect();
        apply_postings(&mut tx, &op_id, &postings).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn snapshot(&self, recent_ms: i64, seq_gap: u64) -> Result<Snapshot> {
        let mut s = Snapshot::default();
        for r in sqlx::query(
            "SELECT account, amount FROM balances WHERE kind = 'wallet' AND currency = $1",
        )
        .bind(COIN)
        .fetch_all(&self.pool)
        .await?
        {
            let acct: String = r.get(0);
            if let Some(user) = acct.strip_prefix("wallet:") {
                s.wallets.push((user.to_string(), r.get(1)));
            }
        }
        for r in sqlx::query("SELECT op_id FROM operations WHERE kind <> 'batch'")
            .fetch_all(&self.pool)
            .await?
        {
            s.credit_ops.push(r.get(0));
        }
        let since = now_ms() - recent_ms;
        for r in sqlx::query("SELECT target, seq, sender, client_id, creator, gift, count, coins, diamonds, balance_after, ts_ms FROM gifts WHERE ts_ms >= $1 ORDER BY ts_ms")
            .bind(since)
            .fetch_all(&self.pool)
            .await?
        {
            s.recent_gifts.push(PendingGift {
                target: r.get(0),
                seq: r.get::<i64, _>(1) as u64,
                sender: r.get(2),
                client_id: r.get(3),
                creator: r.get(4),
                gift: r.get(5),
                count: r.get::<i64, _>(6) as u32,
                coins: r.get(7),
                diamonds: r.get(8),
                balance_after: r.get(9),
                ts: r.get(10),
            });
        }
        let rows = sqlx::query(
            "SELECT 'room:' || room, creator, live, (SELECT MAX(seq) FROM gifts WHERE target = 'room:' || room) FROM rooms
             UNION ALL
             SELECT 'video:' || video, creator, 1, (SELECT MAX(seq) FROM gifts WHERE target = 'video:' || video) FROM videos",
        )
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            let key: String = r.get(0);
            let Some(target) = Target::from_key(&key) else {
                continue;
            };
            let max_seq: Option<i64> = r.get(3);
            let seq = max_seq.unwrap_or(0) as u64;
            let seq = if seq_gap > 0 && max_seq.is_some() {
                seq + seq_gap
            } else {
                seq
            };
            s.targets.push((
                target,
                TargetInfo {
                    creator: r.get(1),
                    live: r.get::<i64, _>(2) != 0,
                    seq,
                },
            ));
        }
        Ok(s)
    }

    async fn open_target(&self, target: &Target, creator: &str) -> Result<()> {
        let (table, col) = target_table(target);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let owner: Option<String> =
            sqlx::query_scalar(&format!("SELECT creator FROM {table} WHERE {col} = $1"))
                .bind(&target.id)
                .fetch_optional(&mut *tx)
                .await?;
        match owner {
            Some(o) if o != creator => {
                return Err(Error::forbidden(format!(
                    "`{}` belongs to another creator",
                    target.id
                )))
            }
            Some(_) if target.kind == TargetKind::Room => {
                sqlx::query(
                    "UPDATE rooms SET live = 1, opened_ms = $2, ended_ms = NULL WHERE room = $1",
                )
                .bind(&target.id)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            }
            Some(_) => {}
            None if target.kind == TargetKind::Room => {
                sqlx::query(
                    "INSERT INTO rooms (room, creator, live, opened_ms) VALUES ($1, $2, 1, $3)",
                )
                .bind(&target.id)
                .bind(creator)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("INSERT INTO videos (video, creator, created_ms) VALUES ($1, $2, $3)")
                    .bind(&target.id)
                    .bind(creator)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn end_room(&self, room: &str) -> Result<()> {
        sqlx::query("UPDATE rooms SET live = 0, ended_ms = $2 WHERE room = $1")
            .bind(room)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn target(&self, target: &Target) -> Result<Option<TargetRecord>> {
        let (table, col) = target_table(target);
        let live = if target.kind == TargetKind::Room {
            "live"
        } else {
            "1"
        };
        let row = sqlx::query(&format!(
            "SELECT creator, {live} FROM {table} WHERE {col} = $1"
        ))
        .bind(&target.id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| TargetRecord {
            creator: r.get(0),
            live: r.get::<i64, _>(1) != 0,
        }))
    }

    async fn has_gift(&self, target: &str, seq: u64) -> Result<bool> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM gifts WHERE target = $1 AND seq = $2")
                .bind(target)
                .bind(seq as i64)
                .fetch_one(&self.pool)
                .await?;
        Ok(n > 0)
    }

    async fn balance(&self, acct: &str, currency: &str) -> Result<i64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT amount FROM balances WHERE account = $1 AND currency = $2")
                .bind(acct)
                .bind(currency)
                .fetch_optional(&self.pool)
                .await?;
        Ok(v.unwrap_or(0))
    }

    async fn totals(&self) -> Result<Totals> {
        let mut t = Totals::default();
        for r in sqlx::query("SELECT currency, SUM(amount) FROM entries GROUP BY currency")
            .fetch_all(&self.pool)
            .await?
        {
            t.entry_sums.insert(r.get(0), r.get(1));
        }
        let sum = |kind: &'static str, cur: &'static str| {
            sqlx::query_scalar::<_, Option<i64>>(
                "SELECT SUM(amount) FROM balances WHERE kind = $1 AND currency = $2",
            )
            .bind(kind)
            .bind(cur)
        };
        t.coins_minted = -sum("mint", COIN).fetch_one(&self.pool).await?.unwrap_or(0);
        t.coins_in_wallets = sum("wallet", COIN)
            .fetch_one(&self.pool)
            .await?
            .unwrap_or(0);
        t.coins_spent = sum("spent", COIN).fetch_one(&self.pool).await?.unwrap_or(0);
        t.diamonds_credited = -sum("mint", DIAMOND)
            .fetch_one(&self.pool)
            .await?
            .unwrap_or(0);
        let r = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(coins), 0), COALESCE(SUM(diamonds), 0) FROM gifts",
        )
        .fetch_one(&self.pool)
        .await?;
        (t.gifts, t.gift_coins, t.gift_diamonds) = (r.get(0), r.get(1), r.get(2));
        t.batches = sqlx::query_scalar("SELECT COUNT(*) FROM operations WHERE kind = 'batch'")
            .fetch_one(&self.pool)
            .await?;
        Ok(t)
    }

    async fn swap_clean_mark(&self, clean: bool) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let prev: Option<String> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'clean_shutdown'")
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ('clean_shutdown', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(if clean { "1" } else { "0" })
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // A brand-new ledger has nothing to lose: count it as clean.
        Ok(prev.as_deref() != Some("0"))
    }
}

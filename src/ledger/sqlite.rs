//! The SQLite ledger (embedded default): one file in WAL mode.
//!
//! Owns: the SQLite schema (`migrations/sqlite`, embedded and run at start),
//! the SQLite [`Dialect`] of the SQL ledger (whose flows are written once in
//! [`super::sql`]), and the exclusive lock file. Batch rows are written as
//! multi-row statements.
//! Must not: run outside a transaction for anything that writes. Write
//! transactions start with `BEGIN IMMEDIATE`: in WAL mode a deferred
//! transaction that reads and then writes fails at once
//! (`SQLITE_BUSY_SNAPSHOT`) when another writer committed in between, and
//! `busy_timeout` does not retry that; taking the write lock first does.
//! That lock also serializes every writer, so rows need no `FOR UPDATE`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, QueryBuilder, Sqlite, Transaction};

use super::error::LedgerResult;
use super::sql::{overdraft_or_backend, Dialect, Serial, SqlLedger};
use super::Postings;
use crate::model::PendingGift;

/// Rows per multi-row INSERT (13 binds a row, under SQLite's 32766 limit).
const ROWS_PER_STATEMENT: usize = 1000;

/// Whether a multi-row statement over `chunk` is kept in the connection's
/// statement cache: only at the full [`ROWS_PER_STATEMENT`], the one shape
/// that recurs. A partial chunk's row count changes from batch to batch,
/// so its statement (up to 13,000 bound values, about a megabyte once
/// prepared) would almost never be used again, and the cache (100
/// statements per connection) filled with them: tens of MB of RSS in an
/// ingest run (issue #16 item 5).
fn cached<T>(chunk: &[T]) -> bool {
    chunk.len() == ROWS_PER_STATEMENT
}

/// A ledger in one SQLite file.
pub type SqliteLedger = SqlLedger<SqliteDialect>;

/// SQLite's dialect, with the exclusive lock file.
pub struct SqliteDialect {
    /// The database file (None in memory), for the lock file beside it.
    path: Option<std::path::PathBuf>,
    /// The exclusive lock file, once taken ([`super::Ledger::lock_exclusive`]).
    lock: parking_lot::Mutex<Option<std::fs::File>>,
}

/// The URL without its `synchronous` parameter, and that parameter:
/// `full` (the default: a commit is on disk before it is answered) or
/// `normal` (WAL mode: durable across a crash of the process, not of the
/// machine; it saves the `fsync` of every commit). Anything else is refused.
fn synchronous_of(url: &str) -> anyhow::Result<(String, SqliteSynchronous)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), SqliteSynchronous::Full));
    };
    let mut sync = SqliteSynchronous::Full;
    let mut rest = Vec::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        match kv.split_once('=') {
            Some(("synchronous", "full")) => sync = SqliteSynchronous::Full,
            Some(("synchronous", "normal")) => sync = SqliteSynchronous::Normal,
            Some(("synchronous", v)) => {
                anyhow::bail!("ledger.url: synchronous must be `full` or `normal`, not `{v}`")
            }
            _ => rest.push(kv),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, sync))
}

impl SqlLedger<SqliteDialect> {
    /// Open (creating file and parent folder if needed) and migrate.
    pub async fn open(url: &str, pool_len_max: u32) -> anyhow::Result<SqliteLedger> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut file = None;
        if !memory {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or(path);
            file = Some(std::path::PathBuf::from(path));
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)?;
                }
            }
        }
        let (url, synchronous) = synchronous_of(url)?;
        let opts = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // An in-memory database lives in one connection: keep exactly one.
        let pool_len = if memory { 1 } else { pool_len_max };
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_len)
            // A local file's connection does not go stale: no ping (a round
            // trip to SQLite's worker thread) before every use.
            .test_before_acquire(false)
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
        Ok(SqlLedger::with_pool(
            pool,
            SqliteDialect {
                path: file,
                lock: parking_lot::Mutex::new(None),
            },
        ))
    }
}

#[async_trait]
impl Dialect for SqliteDialect {
    type DB = Sqlite;

    const FOR_UPDATE: &'static str = "";

    async fn begin_write(pool: &Pool<Sqlite>) -> LedgerResult<Transaction<'static, Sqlite>> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn begin_read(pool: &Pool<Sqlite>) -> LedgerResult<Transaction<'static, Sqlite>> {
        // A WAL read transaction sees one snapshot from its first read.
        Ok(pool.begin().await?)
    }

    async fn serialize(_tx: &mut Transaction<'_, Sqlite>, _scope: Serial<'_>) -> LedgerResult<()> {
        // The write lock of BEGIN IMMEDIATE is held: writers already wait.
        Ok(())
    }

    async fn insert_gifts<'g>(
        tx: &mut Transaction<'_, Sqlite>,
        op_id: &str,
        gifts: &[&'g PendingGift],
    ) -> LedgerResult<Vec<&'g PendingGift>> {
        let mut inserted: Vec<&PendingGift> = Vec::with_capacity(gifts.len());
        for chunk in gifts.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO gifts (target, seq, op_id, sender, client_id, creator, gift, count, coins, diamonds, balance_after, ts_ms, message) ",
            );
            // Text bound as `&str` is borrowed until the statement runs;
            // bound as `&String` sqlx copied each into a new `String`
            // first (SQLite copies it again when binding).
            q.push_values(chunk, |mut b, &g| {
                b.push_bind(g.target.as_str())
                    .push_bind(g.seq as i64)
                    .push_bind(op_id)
                    .push_bind(g.sender.as_str())
                    .push_bind(g.client_id.as_str())
                    .push_bind(g.creator.as_str())
                    .push_bind(g.gift.as_str())
                    .push_bind(g.count as i64)
                    .push_bind(g.coins)
                    .push_bind(g.diamonds)
                    .push_bind(g.balance_after)
                    .push_bind(g.ts)
                    .push_bind(g.message.as_deref());
            });
            q.push(" ON CONFLICT (target, seq) DO NOTHING");
            let written = q
                .build()
                .persistent(cached(chunk))
                .execute(&mut **tx)
                .await?
                .rows_affected();
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
            q.push_bind(op_id);
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
            let fresh: std::collections::HashSet<(String, i64)> = q
                .build_query_as::<(String, i64)>()
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .collect();
            inserted.extend(
                chunk
                    .iter()
                    .copied()
                    .filter(|g| fresh.contains(&(g.target.clone(), g.seq as i64))),
            );
        }
        Ok(inserted)
    }

    async fn insert_settlements(
        tx: &mut Transaction<'_, Sqlite>,
        op_id: &str,
        rows: &[(&str, i64)],
        settled_ms: i64,
    ) -> LedgerResult<()> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO settlements (op_id, creator, diamonds, settled_ms) ",
            );
            q.push_values(chunk, |mut b, (creator, d)| {
                b.push_bind(op_id)
                    .push_bind(*creator)
                    .push_bind(*d)
                    .push_bind(settled_ms);
            });
            q.build()
                .persistent(cached(chunk))
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn post(
        tx: &mut Transaction<'_, Sqlite>,
        op_id: &str,
        postings: &Postings,
    ) -> LedgerResult<()> {
        let postings: Vec<_> = postings.iter().collect();
        for chunk in postings.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO entries (op_id, account, currency, amount) ");
            q.push_values(chunk, |mut b, ((acct, cur, _), amount)| {
                b.push_bind(op_id)
                    .push_bind(acct)
                    .push_bind(*cur)
                    .push_bind(**amount);
            });
            q.build()
                .persistent(cached(chunk))
                .execute(&mut **tx)
                .await?;
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO balances (account, currency, kind, amount) ");
            q.push_values(chunk, |mut b, ((acct, cur, kind), _)| {
                b.push_bind(acct)
                    .push_bind(*cur)
                    .push_bind(*kind)
                    .push_bind(0i64);
            });
            q.push(" ON CONFLICT (account, currency) DO NOTHING");
            q.build()
                .persistent(cached(chunk))
                .execute(&mut **tx)
                .await?;
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("WITH v(account, currency, delta) AS (");
            q.push_values(chunk, |mut b, ((acct, cur, _), amount)| {
                b.push_bind(acct).push_bind(*cur).push_bind(**amount);
            });
            q.push(") UPDATE balances SET amount = balances.amount + v.delta FROM v WHERE balances.account = v.account AND balances.currency = v.currency");
            q.build()
                .persistent(cached(chunk))
                .execute(&mut **tx)
                .await
                .map_err(overdraft_or_backend)?;
        }
        Ok(())
    }

    async fn unlock_exclusive(&self) {
        // Closing the file releases its lock.
        self.lock.lock().take();
    }

    async fn outbox_gifts(
        tx: &mut Transaction<'_, Self::DB>,
        gifts: &[&PendingGift],
    ) -> LedgerResult<()> {
        super::outbox::sqlite_gifts(tx, gifts).await
    }

    async fn outbox_tip(
        tx: &mut Transaction<'_, Self::DB>,
        tip: &super::TipRecord,
    ) -> LedgerResult<()> {
        super::outbox::sqlite_tip(tx, tip).await
    }

    async fn outbox_once(
        tx: &mut Transaction<'_, Self::DB>,
        creator: &str,
        kind: &str,
        event_id: &str,
        data: &serde_json::Value,
    ) -> LedgerResult<()> {
        super::outbox::sqlite_once(tx, creator, kind, event_id, data).await
    }

    fn webhooks(pool: &Pool<Self::DB>) -> std::sync::Arc<dyn super::outbox::WebhookStore> {
        std::sync::Arc::new(super::outbox::SqliteWebhooks(pool.clone()))
    }

    async fn lock_exclusive(&self) -> anyhow::Result<()> {
        let Some(db) = &self.path else {
            return Ok(());
        };
        let mut held = self.lock.lock();
        if held.is_some() {
            return Ok(());
        }
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        let path = std::path::PathBuf::from(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("opening the ledger lock file {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {
                *held = Some(file);
                Ok(())
            }
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "the ledger lock file {} is held by another process: with `counters.url = \"memory\"` one process only may use a ledger (use Redis counters to run several nodes)",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                anyhow::bail!("locking the ledger lock file {}: {e}", path.display())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Ledger;
    use crate::model::Batch;
    use sqlx::Connection;

    /// `len` free gifts from one sender in room `r`, seqs from `seq`.
    fn batch(id: &str, seq: u64, len: u64) -> Batch {
        let gifts = (seq..seq + len)
            .map(|seq| PendingGift {
                target: "room:r".into(),
                seq,
                sender: "s".into(),
                client_id: format!("c{seq}"),
                creator: "cr".into(),
                gift: "rose".into(),
                count: 1,
                coins: 0,
                diamonds: 0,
                balance_after: 0,
                ts: 1,
                message: None,
            })
            .collect();
        Batch {
            id: id.into(),
            gifts,
            ticket_max: seq + len,
        }
    }

    #[tokio::test]
    async fn only_full_chunks_stay_in_the_statement_cache() {
        let ledger = SqliteLedger::open("sqlite::memory:", 1).await.unwrap();
        assert!(ledger.commit_batch(&batch("b0", 1, 3)).await.unwrap());
        let cache_len = || async {
            let conn = ledger.pool.acquire().await.unwrap();
            conn.cached_statements_size()
        };
        let before = cache_len().await;
        // Odd sizes: each one's multi-row statements are prepared, used
        // once and dropped.
        let mut seq = 4;
        for (i, len) in [5, 7, 999, 11].into_iter().enumerate() {
            assert!(ledger
                .commit_batch(&batch(&format!("b{}", i + 1), seq, len))
                .await
                .unwrap());
            seq += len;
        }
        assert_eq!(cache_len().await, before);
        // A full chunk's statement recurs: it is kept, once.
        assert!(ledger.commit_batch(&batch("b5", seq, 1000)).await.unwrap());
        assert!(ledger
            .commit_batch(&batch("b6", seq + 1000, 1000))
            .await
            .unwrap());
        assert_eq!(cache_len().await, before + 1);
    }

    #[test]
    fn synchronous_is_taken_out_of_the_url() {
        let (u, s) = synchronous_of("sqlite://data/g.db").unwrap();
        assert_eq!(
            (u.as_str(), s),
            ("sqlite://data/g.db", SqliteSynchronous::Full)
        );
        let (u, s) = synchronous_of("sqlite://data/g.db?synchronous=normal").unwrap();
        assert_eq!(
            (u.as_str(), s),
            ("sqlite://data/g.db", SqliteSynchronous::Normal)
        );
        let (u, s) = synchronous_of("sqlite://g.db?mode=rwc&synchronous=full").unwrap();
        assert_eq!(
            (u.as_str(), s),
            ("sqlite://g.db?mode=rwc", SqliteSynchronous::Full)
        );
        assert!(synchronous_of("sqlite://g.db?synchronous=off").is_err());
    }
}

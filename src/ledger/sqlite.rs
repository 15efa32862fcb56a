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
    account, batch_postings, cashout_begin_postings, cashout_end_postings, cashout_refusal,
    clawback_undo_postings, debt_repayment, is_check_violation, plan_clawback, purchase_postings,
    refund_postings, reversal_postings, settlement_rows, tip_postings, tip_reversal_postings,
    CashoutEnd, CashoutRecord, ClawbackGift, ClawbackPlan, CreditOp, CreditOutcome, DisputeOp,
    DisputeRecord, EarlyReversal, Ledger, OpKey, PayoutAccount, PayoutFunds, PayoutLimits,
    PurchaseOp, PurchaseRecord, RefundOp, StripeEventRef, TargetRecord, TipRecord, TipRecordFull,
    TipReversalOp, Totals, COIN, DAY_MS, DIAMOND,
};
use super::{tip_amounts_of, tip_reinstated_postings};
use crate::error::{Error, ErrorCode, Result};
use crate::model::{Batch, PendingGift, Snapshot, Target, TargetInfo, TargetKind};
use crate::protocol::now_ms;

/// Rows per multi-row INSERT (13 binds a row, under SQLite's 32766 limit).
const ROWS_PER_STATEMENT: usize = 1000;

/// A ledger in one SQLite file.
pub struct SqliteLedger {
    limits: parking_lot::RwLock<PayoutLimits>,
    pub(super) pool: SqlitePool,
    /// The database file (None in memory), for the lock file beside it.
    path: Option<std::path::PathBuf>,
    /// The exclusive lock file, once taken ([`Ledger::lock_exclusive`]).
    lock: parking_lot::Mutex<Option<std::fs::File>>,
}

impl SqliteLedger {
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
        Ok(SqliteLedger {
            limits: parking_lot::RwLock::new(PayoutLimits::default()),
            pool,
            path: file,
            lock: parking_lot::Mutex::new(None),
        })
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
        q.build()
            .execute(&mut **tx)
            .await
            .map_err(overdraft_or_internal)?;
    }
    Ok(())
}

/// A CHECK violation on balances is an overdraft (`insufficient_funds`);
/// anything else is internal.
fn overdraft_or_internal(e: sqlx::Error) -> Error {
    if is_check_violation(&e) {
        Error::new(
            ErrorCode::InsufficientFunds,
            "the account holds less than this operation takes",
        )
    } else {
        Error::from(e)
    }
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
        let op_id = OpKey::Batch(&batch.id).op_id();
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
        let mut seen = foldhash::HashSet::with_capacity_and_hasher(
            batch.gifts.len(),
            foldhash::fast::RandomState::default(),
        );
        let unique: Vec<&PendingGift> = batch
            .gifts
            .iter()
            .filter(|g| seen.insert((g.target.as_str(), g.seq)))
            .collect();
        let mut inserted: Vec<&PendingGift> = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO gifts (target, seq, op_id, sender, client_id, creator, gift, count, coins, diamonds, balance_after, ts_ms, message) ",
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
                    .push_bind(g.ts)
                    .push_bind(&g.message);
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
        let rows: Vec<(&str, i64)> = settlement_rows(inserted.iter().copied())
            .into_iter()
            .collect();
        let settled_ms = now_ms();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO settlements (op_id, creator, diamonds, settled_ms) ",
            );
            q.push_values(chunk, |mut b, (creator, d)| {
                b.push_bind(&op_id)
                    .push_bind(*creator)
                    .push_bind(*d)
                    .push_bind(settled_ms);
            });
            q.build().execute(&mut *tx).await?;
        }
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
                message: None,
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

    async fn live_rooms(&self, creator: &str) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM rooms WHERE creator = $1 AND live = 1")
                .bind(creator)
                .fetch_one(&self.pool)
                .await?;
        Ok(n.max(0) as u64)
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
        t.coins_in_debts = sum("debt", COIN).fetch_one(&self.pool).await?.unwrap_or(0);
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

    async fn stripe_event_seen(&self, id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stripe_events WHERE event_id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    async fn record_stripe_event(&self, event: &StripeEventRef) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let fresh = insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(fresh)
    }

    async fn purchase_created(&self, op: &PurchaseOp) -> Result<()> {
        if op.coins <= 0 || op.amount_cents <= 0 {
            return Err(Error::bad_request("coins and amount must be > 0"));
        }
        sqlx::query("INSERT INTO purchases (payment_intent, buyer, coins, amount_cents, created_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (payment_intent) DO NOTHING")
            .bind(&op.payment_intent)
            .bind(&op.user)
            .bind(op.coins)
            .bind(op.amount_cents)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purchase(&self, op: &PurchaseOp) -> Result<bool> {
        let op_id = OpKey::Purchase(&op.payment_intent).op_id();
        let credit = CreditOp {
            op_id: op_id.clone(),
            kind: "purchase".into(),
            user: op.user.clone(),
            coins: op.coins,
        };
        let detail = serde_json::to_string(&credit).map_err(Error::internal)?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !insert_event(&mut tx, &op.event).await? {
            return Ok(false);
        }
        let paid_now = sqlx::query("UPDATE purchases SET paid = 1 WHERE payment_intent = $1 AND paid = 0 AND buyer = $2 AND coins = $3 AND amount_cents = $4")
            .bind(&op.payment_intent)
            .bind(&op.user)
            .bind(op.coins)
            .bind(op.amount_cents)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if paid_now != 1 || !insert_operation(&mut tx, &op_id, "purchase", &detail).await? {
            // Already paid, or not a purchase created here: the event only.
            tx.commit().await?;
            return Ok(false);
        }
        // Coins owed after an earlier refund are repaid first (the debt row
        // is locked by this transaction: two purchases never repay twice).
        let to_debt = debt_repayment(op.coins, debt_balance(&mut tx, &op.user).await?);
        if to_debt > 0 {
            sqlx::query("UPDATE purchases SET coins_to_debt = $2 WHERE payment_intent = $1")
                .bind(&op.payment_intent)
                .bind(to_debt)
                .execute(&mut *tx)
                .await?;
        }
        let postings = purchase_postings(op, to_debt)
            .into_iter()
            .collect::<Vec<_>>();
        apply_postings(&mut tx, &op_id, &postings).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn purchase_record(&self, payment_intent: &str) -> Result<Option<PurchaseRecord>> {
        let row = sqlx::query("SELECT buyer, coins, amount_cents, coins_reversed, cents_refunded, paid, coins_to_debt FROM purchases WHERE payment_intent = $1")
            .bind(payment_intent)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| PurchaseRecord {
            user: r.get(0),
            coins: r.get(1),
            amount_cents: r.get(2),
            coins_reversed: r.get(3),
            cents_refunded: r.get(4),
            paid: r.get::<i64, _>(5) != 0,
            coins_to_debt: r.get(6),
        }))
    }

    async fn refund(&self, op: &RefundOp) -> Result<bool> {
        if op.coins_taken < 0 || op.coins_taken > op.coins_reversed || op.coins_reversed < 0 {
            return Err(Error::bad_request("refund: bad coin amounts"));
        }
        let op_id = OpKey::Refund(&op.payment_intent, op.cents_refunded_total).op_id();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !insert_event(&mut tx, &op.event).await? {
            return Ok(false);
        }
        let row = sqlx::query(
            "SELECT buyer, cents_refunded FROM purchases WHERE payment_intent = $1 AND paid = 1",
        )
        .bind(&op.payment_intent)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(false);
        };
        let (user, before): (String, i64) = (row.get(0), row.get(1));
        let cents = op.cents_refunded_total - before;
        if cents <= 0 {
            tx.commit().await?;
            return Ok(false);
        }
        let detail = serde_json::json!({ "payment_intent": op.payment_intent, "cents": cents, "coins_reversed": op.coins_reversed, "coins_taken": op.coins_taken }).to_string();
        if !insert_operation(&mut tx, &op_id, "refund", &detail).await? {
            tx.commit().await?;
            return Ok(false);
        }
        sqlx::query("UPDATE purchases SET coins_reversed = coins_reversed + $2, cents_refunded = $3 WHERE payment_intent = $1")
            .bind(&op.payment_intent)
            .bind(op.coins_reversed)
            .bind(op.cents_refunded_total)
            .execute(&mut *tx)
            .await?;
        let mut postings = refund_postings(&user, op, cents);
        let hold_ms = self.limits.read().hold_ms;
        let claw = clawback(
            &mut tx,
            &user,
            &op.payment_intent,
            op.coins_reversed - op.coins_taken,
            hold_ms,
        )
        .await?;
        postings.extend(claw.postings);
        let postings: Vec<_> = postings.into_iter().collect();
        apply_postings(&mut tx, &op_id, &postings).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn dispute_withdrawn(&self, op: &DisputeOp) -> Result<bool> {
        if op.coins_taken < 0 || op.coins_taken > op.coins_reversed || op.cents < 0 {
            return Err(Error::bad_request("dispute: bad amounts"));
        }
        let op_id = OpKey::Dispute(&op.dispute_id).op_id();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !insert_event(&mut tx, &op.event).await? {
            return Ok(false);
        }
        let row = sqlx::query("SELECT buyer FROM purchases WHERE payment_intent = $1 AND paid = 1")
            .bind(&op.payment_intent)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(false);
        };
        let user: String = row.get(0);
        let fresh = sqlx::query("INSERT INTO disputes (dispute_id, payment_intent, cents, coins_reversed, coins_taken, status, created_ms) VALUES ($1, $2, $3, $4, $5, 'withdrawn', $6) ON CONFLICT (dispute_id) DO NOTHING")
            .bind(&op.dispute_id)
            .bind(&op.payment_intent)
            .bind(op.cents)
            .bind(op.coins_reversed)
            .bind(op.coins_taken)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let detail = serde_json::json!({ "payment_intent": op.payment_intent, "cents": op.cents, "coins_reversed": op.coins_reversed, "coins_taken": op.coins_taken }).to_string();
        if fresh != 1 || !insert_operation(&mut tx, &op_id, "dispute", &detail).await? {
            tx.commit().await?;
            return Ok(false);
        }
        // The purchase's CHECK (coins_reversed <= coins) refuses a dispute
        // and refunds that together would reverse more than was bought.
        sqlx::query(
            "UPDATE purchases SET coins_reversed = coins_reversed + $2 WHERE payment_intent = $1",
        )
        .bind(&op.payment_intent)
        .bind(op.coins_reversed)
        .execute(&mut *tx)
        .await?;
        let mut postings = reversal_postings(&user, op.coins_reversed, op.coins_taken, op.cents);
        let hold_ms = self.limits.read().hold_ms;
        let claw = clawback(
            &mut tx,
            &user,
            &op.payment_intent,
            op.coins_reversed - op.coins_taken,
            hold_ms,
        )
        .await?;
        postings.extend(claw.postings);
        let postings: Vec<_> = postings.into_iter().collect();
        apply_postings(&mut tx, &op_id, &postings).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn dispute_reinstated(&self, event: &StripeEventRef, dispute_id: &str) -> Result<bool> {
        let op_id = OpKey::DisputeReinstated(dispute_id).op_id();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !insert_event(&mut tx, event).await? {
            return Ok(false);
        }
        let row = sqlx::query(
            "SELECT d.payment_intent, p.buyer, d.cents, d.coins_reversed FROM disputes d JOIN purchases p ON p.payment_intent = d.payment_intent WHERE d.dispute_id = $1 AND d.status = 'withdrawn'",
        )
        .bind(dispute_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(false);
        };
        let (payment_intent, user, cents, coins): (String, String, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let detail = serde_json::json!({ "dispute": dispute_id, "cents": cents, "coins": coins })
            .to_string();
        if !insert_operation(&mut tx, &op_id, "dispute_reinstated", &detail).await? {
            tx.commit().await?;
            return Ok(false);
        }
        let to_debt = debt_repayment(coins, debt_balance(&mut tx, &user).await?);
        sqlx::query(
            "UPDATE disputes SET status = 'reinstated', coins_to_debt = $2 WHERE dispute_id = $1",
        )
        .bind(dispute_id)
        .bind(to_debt)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE purchases SET coins_reversed = coins_reversed - $2 WHERE payment_intent = $1",
        )
        .bind(&payment_intent)
        .bind(coins)
        .execute(&mut *tx)
        .await?;
        // Economically a purchase of the coins again, at the cents that came back.
        let back = PurchaseOp {
            event: event.clone(),
            payment_intent,
            user,
            coins,
            amount_cents: cents,
        };
        let mut postings = purchase_postings(&back, to_debt);
        // The platform won: the gifts' coins are paid after all, so what
        // the withdrawal clawed back (or recorded as lost) is undone.
        let clawed: Vec<(String, i64)> = sqlx::query_as(
            "SELECT account, amount FROM entries WHERE op_id = $1 AND currency = 'DIAMOND'",
        )
        .bind(format!("dispute:{dispute_id}"))
        .fetch_all(&mut *tx)
        .await?;
        postings.extend(clawback_undo_postings(&clawed));
        let postings: Vec<_> = postings.into_iter().collect();
        apply_postings(&mut tx, &op_id, &postings).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn dispute_record(&self, dispute_id: &str) -> Result<Option<DisputeRecord>> {
        let row = sqlx::query("SELECT d.payment_intent, p.buyer, d.cents, d.coins_reversed, d.status, d.coins_to_debt FROM disputes d JOIN purchases p ON p.payment_intent = d.payment_intent WHERE d.dispute_id = $1")
            .bind(dispute_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| DisputeRecord {
            payment_intent: r.get(0),
            user: r.get(1),
            cents: r.get(2),
            coins_reversed: r.get(3),
            reinstated: r.get::<String, _>(4) == "reinstated",
            coins_to_debt: r.get(5),
        }))
    }

    async fn payout_account(&self, creator: &str) -> Result<Option<PayoutAccount>> {
        let row =
            sqlx::query("SELECT account, payouts_enabled FROM payout_accounts WHERE creator = $1")
                .bind(creator)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| PayoutAccount {
            account: r.get(0),
            payouts_enabled: r.get::<i64, _>(1) != 0,
        }))
    }

    async fn put_payout_account(&self, creator: &str, acct: &str) -> Result<PayoutAccount> {
        sqlx::query("INSERT INTO payout_accounts (creator, account, payouts_enabled, updated_ms) VALUES ($1, $2, 0, $3) ON CONFLICT (creator) DO NOTHING")
            .bind(creator)
            .bind(acct)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        self.payout_account(creator)
            .await?
            .ok_or_else(|| Error::internal("payout account vanished"))
    }

    async fn account_updated(
        &self,
        event: &StripeEventRef,
        acct: &str,
        payouts_enabled: bool,
        created: i64,
    ) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !insert_event(&mut tx, event).await? {
            return Ok(false);
        }
        // Only an event newer than the last one applied (Stripe does not
        // order events: an old "enabled" must not undo a newer "disabled").
        let n = sqlx::query(
            "UPDATE payout_accounts SET payouts_enabled = $2, updated_ms = $3, event_created = $4 WHERE account = $1 AND event_created <= $4",
        )
        .bind(acct)
        .bind(payouts_enabled as i64)
        .bind(now_ms())
        .bind(created)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn tip_created(&self, tip: &TipRecord) -> Result<()> {
        sqlx::query("INSERT INTO tips (payment_intent, tip_key, sender, creator, target, amount_cents, message, status, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8) ON CONFLICT (payment_intent) DO NOTHING")
            .bind(&tip.payment_intent)
            .bind(&tip.tip_key)
            .bind(&tip.sender)
            .bind(&tip.creator)
            .bind(&tip.target)
            .bind(tip.amount_cents)
            .bind(&tip.message)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn tip_succeeded(
        &self,
        event: &StripeEventRef,
        payment_intent: &str,
    ) -> Result<Option<TipRecord>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !insert_event(&mut tx, event).await? {
            return Ok(None);
        }
        let row = sqlx::query("UPDATE tips SET status = 'succeeded' WHERE payment_intent = $1 AND status = 'pending' RETURNING payment_intent, tip_key, sender, creator, target, amount_cents, message")
            .bind(payment_intent)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(r) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let tip = TipRecord {
            payment_intent: r.get(0),
            tip_key: r.get(1),
            sender: r.get(2),
            creator: r.get(3),
            target: r.get(4),
            amount_cents: r.get(5),
            message: r.get(6),
        };
        let op_id = OpKey::Tip(payment_intent).op_id();
        let detail =
            serde_json::json!({ "tip_key": tip.tip_key, "amount_cents": tip.amount_cents })
                .to_string();
        insert_operation(&mut tx, &op_id, "tip", &detail).await?;
        let postings: Vec<_> = tip_postings(&tip).into_iter().collect();
        apply_postings(&mut tx, &op_id, &postings).await?;
        tx.commit().await?;
        Ok(Some(tip))
    }

    fn set_payout_limits(&self, limits: PayoutLimits) {
        *self.limits.write() = limits;
    }

    async fn payout_funds(&self, creator: &str) -> Result<PayoutFunds> {
        let hold_ms = self.limits.read().hold_ms;
        let mut tx = self.pool.begin().await?;
        let balance = balance_in(&mut tx, &account::earnings(creator), DIAMOND).await?;
        let held = held_diamonds(&mut tx, creator, now_ms() - hold_ms)
            .await?
            .clamp(0, balance.max(0));
        let reversed = balance_in(&mut tx, &account::clawed_back(creator), DIAMOND).await?;
        let unrecovered = balance_in(&mut tx, &account::unrecovered(creator), DIAMOND).await?;
        let r = sqlx::query("SELECT CAST(COALESCE(SUM(cents_reversed), 0) AS BIGINT), CAST(COALESCE(SUM(cents_recovered), 0) AS BIGINT) FROM tips WHERE creator = $1")
            .bind(creator)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(PayoutFunds {
            diamonds_held: held,
            diamonds_available: balance - held,
            diamonds_reversed: reversed,
            diamonds_unrecovered: -unrecovered,
            tips_reversed_cents: r.get(0),
            tips_recovered_cents: r.get(1),
        })
    }

    async fn tip_reversed(&self, op: &TipReversalOp) -> Result<bool> {
        if op.cents <= 0 || !(0..=op.cents).contains(&op.recovered) {
            return Err(Error::bad_request("tip reversal: bad amounts"));
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !insert_event(&mut tx, &op.event).await? {
            return Ok(false);
        }
        let row = sqlx::query("SELECT creator, amount_cents, cents_reversed FROM tips WHERE payment_intent = $1 AND status = 'succeeded'")
            .bind(&op.payment_intent)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(false);
        };
        let (creator, amount, before): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
        if before + op.cents > amount {
            return Err(Error::bad_request("tip reversal: more than the tip"));
        }
        let detail = serde_json::json!({ "payment_intent": op.payment_intent, "cents": op.cents, "recovered": op.recovered }).to_string();
        if !insert_operation(&mut tx, &op.op_id, "tip_reversal", &detail).await? {
            tx.commit().await?;
            return Ok(false);
        }
        sqlx::query("UPDATE tips SET cents_reversed = cents_reversed + $2, cents_recovered = cents_recovered + $3 WHERE payment_intent = $1")
            .bind(&op.payment_intent)
            .bind(op.cents)
            .bind(op.recovered)
            .execute(&mut *tx)
            .await?;
        let postings = tip_reversal_postings(&creator, op.cents, op.recovered);
        let postings: Vec<_> = postings.into_iter().collect();
        apply_postings(&mut tx, &op.op_id, &postings).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn tip_dispute_reinstated(
        &self,
        event: &StripeEventRef,
        payment_intent: &str,
        dispute_id: &str,
        repaid: bool,
    ) -> Result<bool> {
        let op_id = OpKey::TipDisputeReinstated(dispute_id).op_id();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !insert_event(&mut tx, event).await? {
            return Ok(false);
        }
        let entries: Vec<(String, i64)> = sqlx::query_as(
            "SELECT account, amount FROM entries WHERE op_id = $1 AND currency = 'USD'",
        )
        .bind(OpKey::TipDispute(dispute_id).op_id())
        .fetch_all(&mut *tx)
        .await?;
        let detail =
            serde_json::json!({ "payment_intent": payment_intent, "repaid": repaid }).to_string();
        if entries.is_empty()
            || !insert_operation(&mut tx, &op_id, "tip_reinstated", &detail).await?
        {
            tx.commit().await?;
            return Ok(false);
        }
        let postings = tip_reinstated_postings(&entries, repaid);
        if repaid {
            let (cents, recovered) = tip_amounts_of(&entries);
            sqlx::query("UPDATE tips SET cents_reversed = cents_reversed - $2, cents_recovered = cents_recovered - $3 WHERE payment_intent = $1")
                .bind(payment_intent)
                .bind(cents)
                .bind(recovered)
                .execute(&mut *tx)
                .await?;
        }
        let postings: Vec<_> = postings.into_iter().collect();
        apply_postings(&mut tx, &op_id, &postings).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn tip_dispute_amounts(&self, dispute_id: &str) -> Result<Option<(i64, i64)>> {
        let entries: Vec<(String, i64)> = sqlx::query_as(
            "SELECT account, amount FROM entries WHERE op_id = $1 AND currency = 'USD'",
        )
        .bind(OpKey::TipDispute(dispute_id).op_id())
        .fetch_all(&self.pool)
        .await?;
        Ok((!entries.is_empty()).then(|| tip_amounts_of(&entries)))
    }

    async fn tip_transfer(&self, payment_intent: &str, transfer: &str) -> Result<()> {
        sqlx::query("UPDATE tips SET transfer = $2 WHERE payment_intent = $1 AND transfer IS NULL")
            .bind(payment_intent)
            .bind(transfer)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn tip_record(&self, payment_intent: &str) -> Result<Option<TipRecordFull>> {
        let row = sqlx::query("SELECT payment_intent, tip_key, sender, creator, target, amount_cents, message, transfer, cents_reversed, cents_recovered FROM tips WHERE payment_intent = $1")
            .bind(payment_intent)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| {
            (
                TipRecord {
                    payment_intent: r.get(0),
                    tip_key: r.get(1),
                    sender: r.get(2),
                    creator: r.get(3),
                    target: r.get(4),
                    amount_cents: r.get(5),
                    message: r.get(6),
                },
                r.get(7),
                r.get(8),
                r.get(9),
            )
        }))
    }

    async fn park_reversal(&self, r: &EarlyReversal) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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

    async fn parked_reversals(&self, payment_intent: &str) -> Result<Vec<EarlyReversal>> {
        let rows = sqlx::query("SELECT event_id, type, payment_intent, facts FROM early_reversals WHERE payment_intent = $1 ORDER BY created_ms, event_id")
            .bind(payment_intent)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| EarlyReversal {
                event: StripeEventRef {
                    id: r.get(0),
                    kind: r.get(1),
                },
                payment_intent: r.get(2),
                facts: r.get(3),
            })
            .collect())
    }

    async fn cashout_begin(&self, c: &CashoutRecord) -> Result<CashoutRecord> {
        if c.diamonds <= 0 || c.amount_cents <= 0 {
            return Err(Error::bad_request("diamonds and amount must be > 0"));
        }
        if c.transfer_key.is_empty() {
            return Err(Error::bad_request("a cash-out needs its transfer key"));
        }
        let op_id = OpKey::CashoutBegin(&c.cashout_id).op_id();
        let detail = serde_json::json!({ "cashout": c.cashout_id, "creator": c.creator, "diamonds": c.diamonds, "amount_cents": c.amount_cents }).to_string();
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // The cash-out row decides a replay (its id is unique, and was so
        // before migration 0006 too), then the operation row.
        let fresh = sqlx::query("INSERT INTO cashouts (cashout_id, creator, diamonds, amount_cents, status, created_ms, transfer_key, transfer_group, attempt, attempt_ms) VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, 1, $5) ON CONFLICT (cashout_id) DO NOTHING")
            .bind(&c.cashout_id)
            .bind(&c.creator)
            .bind(c.diamonds)
            .bind(c.amount_cents)
            .bind(now)
            .bind(&c.transfer_key)
            .bind(&c.transfer_group)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if fresh != 1 {
            drop(tx);
            let first = self
                .cashout(&c.cashout_id)
                .await?
                .ok_or_else(|| Error::internal("cash-out vanished"))?;
            if first.creator != c.creator || first.diamonds != c.diamonds {
                return Err(Error::bad_request(format!(
                    "id `{}` was already used with other parameters",
                    c.cashout_id
                )));
            }
            return Ok(first);
        }
        let limits = *self.limits.read();
        cashout_guard(&mut tx, c, &limits).await?;
        if !insert_operation(&mut tx, &op_id, "cashout", &detail).await? {
            return Err(Error::internal(format_args!(
                "ledger operation `{op_id}` exists without its cash-out"
            )));
        }
        let postings: Vec<_> = cashout_begin_postings(c).into_iter().collect();
        apply_postings(&mut tx, &op_id, &postings).await?;
        tx.commit().await?;
        self.cashout(&c.cashout_id)
            .await?
            .ok_or_else(|| Error::internal("cash-out vanished"))
    }

    async fn cashout_end(&self, cashout_id: &str, end: &CashoutEnd) -> Result<bool> {
        let (status, transfer) = match end {
            CashoutEnd::Completed { transfer } => ("completed", Some(transfer.as_str())),
            CashoutEnd::Reversed => ("reversed", None),
            CashoutEnd::Flagged { transfer } => ("flagged", Some(transfer.as_str())),
        };
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query("UPDATE cashouts SET status = $2, transfer = $3, finished_ms = $4 WHERE cashout_id = $1 AND status = 'pending' RETURNING creator, diamonds, amount_cents")
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
            creator: r.get(0),
            diamonds: r.get(1),
            amount_cents: r.get(2),
            status: status.into(),
            transfer: transfer.map(str::to_string),
            ..Default::default()
        };
        let op_id = OpKey::CashoutEnd(cashout_id).op_id();
        let detail =
            serde_json::json!({ "cashout": cashout_id, "status": status, "transfer": transfer })
                .to_string();
        if !insert_operation(&mut tx, &op_id, "cashout_end", &detail).await? {
            // Never a silent half: the row is pending, so its end must be new.
            return Err(Error::internal(format_args!(
                "ledger operation `{op_id}` exists for a pending cash-out"
            )));
        }
        let postings: Vec<_> = cashout_end_postings(&c, end).into_iter().collect();
        apply_postings(&mut tx, &op_id, &postings).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn cashout_new_attempt(
        &self,
        cashout_id: &str,
        attempt: i64,
        transfer_key: &str,
        now: i64,
    ) -> Result<bool> {
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

    async fn cashout_defer(&self, cashout_id: &str, failures: i64, next_try_ms: i64) -> Result<()> {
        sqlx::query("UPDATE cashouts SET failures = $2, next_try_ms = $3 WHERE cashout_id = $1 AND status = 'pending'")
            .bind(cashout_id)
            .bind(failures)
            .bind(next_try_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn cashout(&self, cashout_id: &str) -> Result<Option<CashoutRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {CASHOUT_COLUMNS} FROM cashouts WHERE cashout_id = $1"
        ))
        .bind(cashout_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| cashout_from_row(&r)))
    }

    async fn cashouts_pending(&self, len_max: usize) -> Result<Vec<CashoutRecord>> {
        let rows = sqlx::query(&format!("SELECT {CASHOUT_COLUMNS} FROM cashouts WHERE status = 'pending' ORDER BY next_try_ms, created_ms LIMIT $1"))
            .bind(len_max as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(cashout_from_row).collect())
    }

    async fn grant(
        &self,
        op: &CreditOp,
        admin: &str,
        coins_per_day_max: i64,
    ) -> Result<CreditOutcome> {
        if op.coins <= 0 {
            return Err(Error::bad_request("coins must be > 0"));
        }
        let detail = serde_json::to_string(op).map_err(Error::internal)?;
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let prior: Option<String> =
            sqlx::query_scalar("SELECT detail FROM operations WHERE op_id = $1")
                .bind(&op.op_id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(prior) = prior {
            drop(tx);
            return super::replayed_credit(op, &prior);
        }
        // The write lock of BEGIN IMMEDIATE is held: two grants of one
        // admin cannot both pass the cap.
        let granted: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(coins), 0) FROM grants WHERE admin = $1 AND created_ms > $2",
        )
        .bind(admin)
        .bind(now - 86_400_000)
        .fetch_one(&mut *tx)
        .await?;
        if granted.saturating_add(op.coins) > coins_per_day_max {
            return Err(super::grant_cap_error(admin, granted, coins_per_day_max));
        }
        insert_operation(&mut tx, &op.op_id, &op.kind, &detail).await?;
        sqlx::query("INSERT INTO grants (op_id, admin, grantee, coins, created_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(&op.op_id)
            .bind(admin)
            .bind(&op.user)
            .bind(op.coins)
            .bind(now)
            .execute(&mut *tx)
            .await?;
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

    async fn grant_admin(&self, op_id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT admin FROM grants WHERE op_id = $1")
                .bind(op_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn unlock_exclusive(&self) {
        // Closing the file releases its lock.
        self.lock.lock().take();
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

/// The columns [`cashout_from_row`] reads, in order.
const CASHOUT_COLUMNS: &str = "cashout_id, creator, diamonds, amount_cents, status, transfer, transfer_key, transfer_group, attempt, attempt_ms, failures, next_try_ms";

fn cashout_from_row(r: &sqlx::sqlite::SqliteRow) -> CashoutRecord {
    CashoutRecord {
        cashout_id: r.get(0),
        creator: r.get(1),
        diamonds: r.get(2),
        amount_cents: r.get(3),
        status: r.get(4),
        transfer: r.get(5),
        transfer_key: r.get(6),
        transfer_group: r.get(7),
        attempt: r.get(8),
        attempt_ms: r.get(9),
        failures: r.get(10),
        next_try_ms: r.get(11),
    }
}

/// The buyer's debt account balance (negative while coins are owed), read
/// inside `tx` (the write lock of `BEGIN IMMEDIATE` is held).
async fn debt_balance(tx: &mut sqlx::Transaction<'_, Sqlite>, user: &str) -> Result<i64> {
    let debt: Option<i64> =
        sqlx::query_scalar("SELECT amount FROM balances WHERE account = $1 AND currency = $2")
            .bind(account::debt(user))
            .bind(COIN)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(debt.unwrap_or(0))
}

/// Record a Stripe event id in `tx`; false when it was already applied.
async fn insert_event(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    event: &StripeEventRef,
) -> Result<bool> {
    let n = sqlx::query("INSERT INTO stripe_events (event_id, type, applied_ms) VALUES ($1, $2, $3) ON CONFLICT (event_id) DO NOTHING")
        .bind(&event.id)
        .bind(&event.kind)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if n == 1 && event.kind.starts_with("charge.") {
        // A parked early reversal is applied with its event, once.
        sqlx::query("DELETE FROM early_reversals WHERE event_id = $1")
            .bind(&event.id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(n == 1)
}

/// A balance read inside `tx` (0 when the account has none).
async fn balance_in(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    acct: &str,
    currency: &str,
) -> Result<i64> {
    let v: Option<i64> =
        sqlx::query_scalar("SELECT amount FROM balances WHERE account = $1 AND currency = $2")
            .bind(acct)
            .bind(currency)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(v.unwrap_or(0))
}

/// Diamonds of `creator` settled after `since_ms` (still on hold) and not
/// clawed back.
async fn held_diamonds(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    creator: &str,
    since_ms: i64,
) -> Result<i64> {
    let v: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(SUM(diamonds - clawed), 0) AS BIGINT) FROM settlements WHERE creator = $1 AND settled_ms > $2")
        .bind(creator)
        .bind(since_ms)
        .fetch_one(&mut **tx)
        .await?;
    Ok(v)
}

/// The hold and the daily limits of a cash-out, checked in its own
/// transaction before its postings (see [`cashout_refusal`]).
async fn cashout_guard(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    c: &CashoutRecord,
    limits: &PayoutLimits,
) -> Result<()> {
    let now = now_ms();
    let balance = balance_in(tx, &account::earnings(&c.creator), DIAMOND).await?;
    let held = held_diamonds(tx, &c.creator, now - limits.hold_ms).await?;
    let r = sqlx::query("SELECT COUNT(*), CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM cashouts WHERE creator = $1 AND created_ms > $2 AND status <> 'reversed' AND cashout_id <> $3")
        .bind(&c.creator)
        .bind(now - DAY_MS)
        .bind(&c.cashout_id)
        .fetch_one(&mut **tx)
        .await?;
    let day: (i64, i64) = (r.get(0), r.get(1));
    match cashout_refusal(c, limits, (balance - held.max(0)).max(0), day) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Claw back the diamonds of `buyer`'s gifts since the purchase
/// `payment_intent` for `coins` reversed coins (see [`plan_clawback`]),
/// inside `tx`: records what each gift and settlement gave back and
/// answers the postings to add to the reversal's.
async fn clawback(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    buyer: &str,
    payment_intent: &str,
    coins: i64,
    hold_ms: i64,
) -> Result<ClawbackPlan> {
    if coins <= 0 {
        return Ok(ClawbackPlan::default());
    }
    let since: Option<i64> =
        sqlx::query_scalar("SELECT created_ms FROM purchases WHERE payment_intent = $1")
            .bind(payment_intent)
            .fetch_optional(&mut **tx)
            .await?;
    let Some(since) = since else {
        return Ok(ClawbackPlan::default());
    };
    let rows = sqlx::query(
        "SELECT g.target, g.seq, g.op_id, g.creator, g.coins, g.diamonds, COALESCE(c.coins, 0),
                COALESCE(CASE WHEN s.settled_ms > $3 THEN s.diamonds - s.clawed ELSE 0 END, 0),
                COALESCE(b.amount, 0)
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
    let gifts: Vec<ClawbackGift> = rows
        .iter()
        .map(|r| ClawbackGift {
            target: r.get(0),
            seq: r.get(1),
            op_id: r.get(2),
            creator: r.get(3),
            coins: r.get(4),
            diamonds: r.get(5),
            coins_clawed: r.get(6),
            settlement_held: r.get(7),
            earnings: r.get(8),
        })
        .collect();
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

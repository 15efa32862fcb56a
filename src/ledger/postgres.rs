//! The PostgreSQL ledger (production): one database shared by every node.
//!
//! Owns: the PostgreSQL schema (`migrations/postgres`, embedded and run at
//! start under sqlx's migration lock) and the SQL of every [`Ledger`]
//! operation, with the same semantics as [`super::sqlite::SqliteLedger`].
//! Each write is one transaction; batch rows go in one multi-row statement
//! per table (`UNNEST` of array binds, so the bind count does not grow with
//! the batch). Rows are locked in one global order — the batch's operation
//! row, then gift keys sorted by (target, seq), then balances sorted by
//! (account, currency) — so committers on several nodes never deadlock.
//! Must not: run outside a transaction for anything that writes, or write
//! row by row in a loop of round trips.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};

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

use super::Postings;

/// A ledger in one PostgreSQL database.
pub struct PgLedger {
    limits: parking_lot::RwLock<PayoutLimits>,
    pub(super) pool: PgPool,
    /// How to connect, for the lock's dedicated connection.
    opts: PgConnectOptions,
    /// The connection holding the session advisory lock, once taken
    /// ([`Ledger::lock_exclusive`]); the lock ends with it.
    lock: tokio::sync::Mutex<Option<sqlx::PgConnection>>,
}

/// The session advisory lock key of [`Ledger::lock_exclusive`] (ASCII
/// `gftstrm1`).
const EXCLUSIVE_LOCK_KEY: i64 = 0x6766_7473_7472_6d31;

impl PgLedger {
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
        Ok(PgLedger {
            limits: parking_lot::RwLock::new(PayoutLimits::default()),
            pool,
            opts,
            lock: tokio::sync::Mutex::new(None),
        })
    }

    /// A read-only transaction seeing one snapshot for all its statements,
    /// so multi-query reads (totals, snapshot) are consistent while other
    /// nodes commit.
    async fn read_snapshot(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

/// Write entries and move balances for one operation, inside `tx`: one
/// statement per step whatever the number of postings. New accounts are
/// inserted at zero first, then the touched balances are locked in
/// (account, currency) order and moved by one UPDATE, so the non-negative
/// CHECK judges the final amount only.
async fn apply_postings(
    tx: &mut Transaction<'_, Postgres>,
    op_id: &str,
    postings: &Postings,
) -> Result<()> {
    if postings.is_empty() {
        return Ok(());
    }
    let len = postings.len();
    let mut accounts = Vec::with_capacity(len);
    let mut currencies = Vec::with_capacity(len);
    let mut kinds = Vec::with_capacity(len);
    let mut amounts = Vec::with_capacity(len);
    for ((acct, cur, kind), amount) in postings {
        accounts.push(acct.as_str());
        currencies.push(*cur);
        kinds.push(*kind);
        amounts.push(*amount);
    }
    sqlx::query(
        "INSERT INTO entries (op_id, account, currency, amount)
         SELECT $1, v.account, v.currency, v.amount
         FROM UNNEST($2::text[], $3::text[], $4::bigint[]) AS v(account, currency, amount)",
    )
    .bind(op_id)
    .bind(&accounts)
    .bind(&currencies)
    .bind(&amounts)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO balances (account, currency, kind, amount)
         SELECT v.account, v.currency, v.kind, 0
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS v(account, currency, kind)
         ORDER BY v.account, v.currency
         ON CONFLICT (account, currency) DO NOTHING",
    )
    .bind(&accounts)
    .bind(&currencies)
    .bind(&kinds)
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
    .bind(&accounts)
    .bind(&currencies)
    .bind(&amounts)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if is_check_violation(&e) {
            Error::new(
                ErrorCode::InsufficientFunds,
                "the account holds less than this operation takes",
            )
        } else {
            Error::from(e)
        }
    })?
    .rows_affected();
    if moved != len as u64 {
        return Err(Error::internal(format_args!(
            "ledger: op `{op_id}` moved {moved} balances, expected {len}"
        )));
    }
    Ok(())
}

/// A non-negative integer stored as BIGINT, back to `u64`.
fn to_u64(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::internal(format_args!("ledger: negative {what} {v}")))
}

/// Decode one `gifts` row selected in [`GIFT_COLUMNS`] order.
fn gift_from_row(r: &PgRow) -> Result<PendingGift> {
    Ok(PendingGift {
        target: r.try_get(0)?,
        seq: to_u64(r.try_get(1)?, "seq")?,
        sender: r.try_get(2)?,
        client_id: r.try_get(3)?,
        creator: r.try_get(4)?,
        gift: r.try_get(5)?,
        count: u32::try_from(r.try_get::<i64, _>(6)?)
            .map_err(|_| Error::internal("ledger: gift count out of range"))?,
        coins: r.try_get(7)?,
        diamonds: r.try_get(8)?,
        balance_after: r.try_get(9)?,
        ts: r.try_get(10)?,
        message: None,
    })
}

/// The columns [`gift_from_row`] reads.
const GIFT_COLUMNS: &str =
    "target, seq, sender, client_id, creator, gift, count, coins, diamonds, balance_after, ts_ms";

#[async_trait]
impl Ledger for PgLedger {
    async fn credit(&self, op: &CreditOp) -> Result<CreditOutcome> {
        if op.coins <= 0 {
            return Err(Error::bad_request("coins must be > 0"));
        }
        let detail = serde_json::to_string(op).map_err(Error::internal)?;
        let mut tx = self.pool.begin().await?;
        // A concurrent insert of the same id waits here for the other
        // transaction, then sees its committed row below.
        let inserted = sqlx::query(
            "INSERT INTO operations (op_id, kind, detail, created_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (op_id) DO NOTHING",
        )
        .bind(&op.op_id)
        .bind(&op.kind)
        .bind(&detail)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            let stored: String =
                sqlx::query_scalar("SELECT detail FROM operations WHERE op_id = $1")
                    .bind(&op.op_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let first: CreditOp = serde_json::from_str(&stored).map_err(|_| {
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
        let mut postings = Postings::new();
        postings.insert((account::MINT.to_string(), COIN, "mint"), -op.coins);
        postings.insert((account::wallet(&op.user), COIN, "wallet"), op.coins);
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
        // One row per (target, seq): a key repeated inside the batch is
        // the same gift and is posted once.
        let mut seen: foldhash::HashSet<(&str, u64)> = foldhash::HashSet::with_capacity_and_hasher(
            batch.gifts.len(),
            foldhash::fast::RandomState::default(),
        );
        let gifts: Vec<&PendingGift> = batch
            .gifts
            .iter()
            .filter(|g| seen.insert((g.target.as_str(), g.seq)))
            .collect();
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
        for g in &gifts {
            targets.push(g.target.as_str());
            seqs.push(
                i64::try_from(g.seq)
                    .map_err(|_| Error::bad_request(format!("gift seq {} out of range", g.seq)))?,
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

        let mut tx = self.pool.begin().await?;
        // The same batch committed concurrently (another worker, a retry)
        // waits here for the first transaction and then finds its row.
        let inserted = sqlx::query(
            "INSERT INTO operations (op_id, kind, detail, created_ms) VALUES ($1, 'batch', $2, $3) ON CONFLICT (op_id) DO NOTHING",
        )
        .bind(&op_id)
        .bind(&detail)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        // Gift rows are keyed by (target, seq): a gift already in the
        // ledger (committed under another batch grouping, e.g. after a
        // re-claim) is skipped, and only inserted rows are posted. Rows go
        // in key order so two batches sharing gifts lock them alike.
        let mut posted: Vec<&PendingGift> = Vec::with_capacity(len);
        if len > 0 {
            let rows = sqlx::query(
                "INSERT INTO gifts (target, seq, op_id, sender, client_id, creator, gift, count, coins, diamonds, balance_after, ts_ms, message)
                 SELECT g.target, g.seq, $1, g.sender, g.client_id, g.creator, g.gift, g.count, g.coins, g.diamonds, g.balance_after, g.ts_ms, g.message
                 FROM UNNEST($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
                             $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[])
                      AS g(target, seq, sender, client_id, creator, gift, count, coins, diamonds, balance_after, ts_ms, message)
                 ORDER BY g.target, g.seq
                 ON CONFLICT (target, seq) DO NOTHING
                 RETURNING target, seq",
            )
            .bind(&op_id)
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
            .fetch_all(&mut *tx)
            .await?;
            let mut fresh: HashSet<(String, i64)> = HashSet::with_capacity(rows.len());
            for r in &rows {
                fresh.insert((r.try_get(0)?, r.try_get(1)?));
            }
            posted.extend(gifts.iter().copied().filter(|g| {
                i64::try_from(g.seq).is_ok_and(|seq| fresh.contains(&(g.target.clone(), seq)))
            }));
        }
        if posted.len() < batch.gifts.len() {
            tracing::warn!(batch = %batch.id, skipped = batch.gifts.len() - posted.len(), "gifts already in the ledger were not applied again");
        }
        let postings = batch_postings(posted.iter().copied());
        apply_postings(&mut tx, &op_id, &postings).await?;
        // When the creators' diamonds settled (the hold starts here).
        let (creators, amounts): (Vec<&str>, Vec<i64>) =
            settlement_rows(posted.iter().copied()).into_iter().unzip();
        if !creators.is_empty() {
            sqlx::query("INSERT INTO settlements (op_id, creator, diamonds, settled_ms) SELECT $1, s.creator, s.diamonds, $4 FROM UNNEST($2::text[], $3::bigint[]) AS s(creator, diamonds)")
                .bind(&op_id)
                .bind(&creators)
                .bind(&amounts)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn snapshot(&self, recent_ms: i64, seq_gap: u64) -> Result<Snapshot> {
        let mut s = Snapshot::default();
        let mut tx = self.read_snapshot().await?;
        for r in sqlx::query(
            "SELECT account, amount FROM balances WHERE kind = 'wallet' AND currency = $1",
        )
        .bind(COIN)
        .fetch_all(&mut *tx)
        .await?
        {
            let acct: String = r.try_get(0)?;
            if let Some(user) = acct.strip_prefix("wallet:") {
                s.wallets.push((user.to_string(), r.try_get(1)?));
            }
        }
        s.credit_ops = sqlx::query_scalar("SELECT op_id FROM operations WHERE kind <> 'batch'")
            .fetch_all(&mut *tx)
            .await?;
        let since = now_ms().saturating_sub(recent_ms);
        for r in sqlx::query(&format!(
            "SELECT {GIFT_COLUMNS} FROM gifts WHERE ts_ms >= $1 ORDER BY ts_ms, target, seq"
        ))
        .bind(since)
        .fetch_all(&mut *tx)
        .await?
        {
            s.recent_gifts.push(gift_from_row(&r)?);
        }
        let rows = sqlx::query(
            "SELECT 'room:' || r.room, r.creator, r.live, (SELECT MAX(g.seq) FROM gifts g WHERE g.target = 'room:' || r.room) FROM rooms r
             UNION ALL
             SELECT 'video:' || v.video, v.creator, TRUE, (SELECT MAX(g.seq) FROM gifts g WHERE g.target = 'video:' || v.video) FROM videos v",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        for r in rows {
            let key: String = r.try_get(0)?;
            let Some(target) = Target::from_key(&key) else {
                continue;
            };
            let max_seq: Option<i64> = r.try_get(3)?;
            let seq = to_u64(max_seq.unwrap_or(0), "seq")?;
            let seq = if seq_gap > 0 && max_seq.is_some() {
                seq.saturating_add(seq_gap)
            } else {
                seq
            };
            s.targets.push((
                target,
                TargetInfo {
                    creator: r.try_get(1)?,
                    live: r.try_get(2)?,
                    seq,
                },
            ));
        }
        Ok(s)
    }

    async fn open_target(&self, target: &Target, creator: &str) -> Result<()> {
        // One atomic upsert: it inserts a new target, or re-opens (room) /
        // keeps (video) one owned by `creator`; for another owner the
        // conflict's WHERE fails and no row comes back.
        let sql = match target.kind {
            TargetKind::Room => {
                "INSERT INTO rooms (room, creator, live, opened_ms) VALUES ($1, $2, TRUE, $3)
                 ON CONFLICT (room) DO UPDATE SET live = TRUE, opened_ms = EXCLUDED.opened_ms, ended_ms = NULL
                 WHERE rooms.creator = EXCLUDED.creator
                 RETURNING creator"
            }
            TargetKind::Video => {
                "INSERT INTO videos (video, creator, created_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (video) DO UPDATE SET creator = EXCLUDED.creator
                 WHERE videos.creator = EXCLUDED.creator
                 RETURNING creator"
            }
        };
        let owner: Option<String> = sqlx::query_scalar(sql)
            .bind(&target.id)
            .bind(creator)
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        match owner {
            Some(_) => Ok(()),
            None => Err(Error::forbidden(format!(
                "`{}` belongs to another creator",
                target.id
            ))),
        }
    }

    async fn end_room(&self, room: &str) -> Result<()> {
        sqlx::query("UPDATE rooms SET live = FALSE, ended_ms = $2 WHERE room = $1")
            .bind(room)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn target(&self, target: &Target) -> Result<Option<TargetRecord>> {
        let sql = match target.kind {
            TargetKind::Room => "SELECT creator, live FROM rooms WHERE room = $1",
            TargetKind::Video => "SELECT creator, TRUE FROM videos WHERE video = $1",
        };
        let row = sqlx::query(sql)
            .bind(&target.id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(TargetRecord {
                creator: r.try_get(0)?,
                live: r.try_get(1)?,
            })
        })
        .transpose()
    }

    async fn live_rooms(&self, creator: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rooms WHERE creator = $1 AND live")
            .bind(creator)
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn has_gift(&self, target: &str, seq: u64) -> Result<bool> {
        let Ok(seq) = i64::try_from(seq) else {
            return Ok(false);
        };
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM gifts WHERE target = $1 AND seq = $2)",
        )
        .bind(target)
        .bind(seq)
        .fetch_one(&self.pool)
        .await?;
        Ok(found)
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
        let mut tx = self.read_snapshot().await?;
        // SUM(bigint) is NUMERIC in PostgreSQL: cast back (an overflow is
        // an error, never a wrapped number).
        for r in sqlx::query("SELECT currency, SUM(amount)::BIGINT FROM entries GROUP BY currency")
            .fetch_all(&mut *tx)
            .await?
        {
            t.entry_sums.insert(r.try_get(0)?, r.try_get(1)?);
        }
        let r = sqlx::query(
            "SELECT
                 COALESCE(SUM(amount) FILTER (WHERE kind = 'mint' AND currency = $1), 0)::BIGINT,
                 COALESCE(SUM(amount) FILTER (WHERE kind = 'wallet' AND currency = $1), 0)::BIGINT,
                 COALESCE(SUM(amount) FILTER (WHERE kind = 'spent' AND currency = $1), 0)::BIGINT,
                 COALESCE(SUM(amount) FILTER (WHERE kind = 'mint' AND currency = $2), 0)::BIGINT,
                 COALESCE(SUM(amount) FILTER (WHERE kind = 'debt' AND currency = $1), 0)::BIGINT
             FROM balances",
        )
        .bind(COIN)
        .bind(DIAMOND)
        .fetch_one(&mut *tx)
        .await?;
        t.coins_minted = -r.try_get::<i64, _>(0)?;
        t.coins_in_wallets = r.try_get(1)?;
        t.coins_spent = r.try_get(2)?;
        t.diamonds_credited = -r.try_get::<i64, _>(3)?;
        t.coins_in_debts = r.try_get(4)?;
        let r = sqlx::query("SELECT COUNT(*), COALESCE(SUM(coins), 0)::BIGINT, COALESCE(SUM(diamonds), 0)::BIGINT FROM gifts").fetch_one(&mut *tx).await?;
        (t.gifts, t.gift_coins, t.gift_diamonds) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        t.batches = sqlx::query_scalar("SELECT COUNT(*) FROM operations WHERE kind = 'batch'")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(t)
    }

    async fn swap_clean_mark(&self, clean: bool) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // A brand-new ledger has nothing to lose: seed it as clean, then
        // read and replace the mark under a row lock so two nodes swapping
        // at once each see the other's write.
        sqlx::query("INSERT INTO meta (key, value) VALUES ('clean_shutdown', '1') ON CONFLICT (key) DO NOTHING").execute(&mut *tx).await?;
        let prev: String =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'clean_shutdown' FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query("UPDATE meta SET value = $1 WHERE key = 'clean_shutdown'")
            .bind(if clean { "1" } else { "0" })
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(prev != "0")
    }

    async fn stripe_event_seen(&self, id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stripe_events WHERE event_id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    async fn record_stripe_event(&self, event: &StripeEventRef) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
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
        let mut tx = self.pool.begin().await?;
        if !insert_event(&mut tx, &op.event).await? {
            return Ok(false);
        }
        let paid_now = sqlx::query("UPDATE purchases SET paid = TRUE WHERE payment_intent = $1 AND paid = FALSE AND buyer = $2 AND coins = $3 AND amount_cents = $4")
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
        let postings = purchase_postings(op, to_debt);
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
            paid: r.get(5),
            coins_to_debt: r.get(6),
        }))
    }

    async fn refund(&self, op: &RefundOp) -> Result<bool> {
        if op.coins_taken < 0 || op.coins_taken > op.coins_reversed || op.coins_reversed < 0 {
            return Err(Error::bad_request("refund: bad coin amounts"));
        }
        let op_id = OpKey::Refund(&op.payment_intent, op.cents_refunded_total).op_id();
        let mut tx = self.pool.begin().await?;
        if !insert_event(&mut tx, &op.event).await? {
            return Ok(false);
        }
        let row = sqlx::query(
            "SELECT buyer, cents_refunded FROM purchases WHERE payment_intent = $1 AND paid = TRUE FOR UPDATE",
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
        apply_postings(&mut tx, &op_id, &postings).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn dispute_withdrawn(&self, op: &DisputeOp) -> Result<bool> {
        if op.coins_taken < 0 || op.coins_taken > op.coins_reversed || op.cents < 0 {
            return Err(Error::bad_request("dispute: bad amounts"));
        }
        let op_id = OpKey::Dispute(&op.dispute_id).op_id();
        let mut tx = self.pool.begin().await?;
        if !insert_event(&mut tx, &op.event).await? {
            return Ok(false);
        }
        let row = sqlx::query(
            "SELECT buyer FROM purchases WHERE payment_intent = $1 AND paid = TRUE FOR UPDATE",
        )
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
        apply_postings(&mut tx, &op_id, &postings).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn dispute_reinstated(&self, event: &StripeEventRef, dispute_id: &str) -> Result<bool> {
        let op_id = OpKey::DisputeReinstated(dispute_id).op_id();
        let mut tx = self.pool.begin().await?;
        if !insert_event(&mut tx, event).await? {
            return Ok(false);
        }
        let row = sqlx::query(
            "SELECT d.payment_intent, p.buyer, d.cents, d.coins_reversed FROM disputes d JOIN purchases p ON p.payment_intent = d.payment_intent WHERE d.dispute_id = $1 AND d.status = 'withdrawn' FOR UPDATE OF d",
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
            payouts_enabled: r.get::<bool, _>(1),
        }))
    }

    async fn put_payout_account(&self, creator: &str, acct: &str) -> Result<PayoutAccount> {
        sqlx::query("INSERT INTO payout_accounts (creator, account, payouts_enabled, updated_ms) VALUES ($1, $2, FALSE, $3) ON CONFLICT (creator) DO NOTHING")
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
        let mut tx = self.pool.begin().await?;
        if !insert_event(&mut tx, event).await? {
            return Ok(false);
        }
        // Only an event newer than the last one applied (Stripe does not
        // order events: an old "enabled" must not undo a newer "disabled").
        let n = sqlx::query(
            "UPDATE payout_accounts SET payouts_enabled = $2, updated_ms = $3, event_created = $4 WHERE account = $1 AND event_created <= $4",
        )
        .bind(acct)
        .bind(payouts_enabled)
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
        let mut tx = self.pool.begin().await?;
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
        let postings = tip_postings(&tip);
        apply_postings(&mut tx, &op_id, &postings).await?;
        tx.commit().await?;
        Ok(Some(tip))
    }

    fn set_payout_limits(&self, limits: PayoutLimits) {
        *self.limits.write() = limits;
    }

    async fn payout_funds(&self, creator: &str) -> Result<PayoutFunds> {
        let hold_ms = self.limits.read().hold_ms;
        let mut tx = self.read_snapshot().await?;
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
        let mut tx = self.pool.begin().await?;
        if !insert_event(&mut tx, &op.event).await? {
            return Ok(false);
        }
        let row = sqlx::query("SELECT creator, amount_cents, cents_reversed FROM tips WHERE payment_intent = $1 AND status = 'succeeded' FOR UPDATE")
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
        let mut tx = self.pool.begin().await?;
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
        let mut tx = self.pool.begin().await?;
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
        let mut tx = self.pool.begin().await?;
        // The cash-out row decides a replay (its id is unique, and was so
        // before migration 0006 too; a concurrent insert of the same id
        // waits here for the other transaction), then the operation row.
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
        let postings = cashout_begin_postings(c);
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
        let mut tx = self.pool.begin().await?;
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
        let postings = cashout_end_postings(&c, end);
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
        let mut tx = self.pool.begin().await?;
        // One admin's grants are judged one at a time, on every node.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('giftstream.grant:' || $1, 0))")
            .bind(admin)
            .execute(&mut *tx)
            .await?;
        let inserted = insert_operation(&mut tx, &op.op_id, &op.kind, &detail).await?;
        if !inserted {
            let stored: String =
                sqlx::query_scalar("SELECT detail FROM operations WHERE op_id = $1")
                    .bind(&op.op_id)
                    .fetch_one(&mut *tx)
                    .await?;
            return super::replayed_credit(op, &stored);
        }
        let granted: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(coins), 0)::BIGINT FROM grants WHERE admin = $1 AND created_ms > $2",
        )
        .bind(admin)
        .bind(now - 86_400_000)
        .fetch_one(&mut *tx)
        .await?;
        if granted.saturating_add(op.coins) > coins_per_day_max {
            // Rolled back: the operation row goes with it.
            return Err(super::grant_cap_error(admin, granted, coins_per_day_max));
        }
        sqlx::query("INSERT INTO grants (op_id, admin, grantee, coins, created_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(&op.op_id)
            .bind(admin)
            .bind(&op.user)
            .bind(op.coins)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let mut postings = Postings::new();
        postings.insert((account::MINT.to_string(), COIN, "mint"), -op.coins);
        postings.insert((account::wallet(&op.user), COIN, "wallet"), op.coins);
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
        use sqlx::Connection;
        if let Some(mut conn) = self.lock.lock().await.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(EXCLUSIVE_LOCK_KEY)
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
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

/// The columns [`cashout_from_row`] reads, in order.
const CASHOUT_COLUMNS: &str = "cashout_id, creator, diamonds, amount_cents, status, transfer, transfer_key, transfer_group, attempt, attempt_ms, failures, next_try_ms";

fn cashout_from_row(r: &PgRow) -> CashoutRecord {
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
/// inside `tx`, its row locked until the transaction ends).
async fn debt_balance(tx: &mut sqlx::Transaction<'_, Postgres>, user: &str) -> Result<i64> {
    let debt: Option<i64> = sqlx::query_scalar(
        "SELECT amount FROM balances WHERE account = $1 AND currency = $2 FOR UPDATE",
    )
    .bind(account::debt(user))
    .bind(COIN)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(debt.unwrap_or(0))
}

/// Record a Stripe event id in `tx`; false when it was already applied.
async fn insert_event(tx: &mut Transaction<'_, Postgres>, event: &StripeEventRef) -> Result<bool> {
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

/// Record an operation under its id in `tx`; false when the id exists.
async fn insert_operation(
    tx: &mut Transaction<'_, Postgres>,
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

/// A balance read inside `tx` (0 when the account has none).
async fn balance_in(tx: &mut Transaction<'_, Postgres>, acct: &str, currency: &str) -> Result<i64> {
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
    tx: &mut Transaction<'_, Postgres>,
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
    tx: &mut Transaction<'_, Postgres>,
    c: &CashoutRecord,
    limits: &PayoutLimits,
) -> Result<()> {
    // Cash-outs of one creator are checked one at a time (across nodes).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("cashout:{}", c.creator))
        .execute(&mut **tx)
        .await?;
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
    tx: &mut Transaction<'_, Postgres>,
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

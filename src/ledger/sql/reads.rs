//! The studio's reads ([`StudioLedger`]): a creator's gifts, tips and
//! cash-outs under a cursor, daily sums and top supporters.
//!
//! Owns: their SQL, once for both dialects (only syntax SQLite and
//! PostgreSQL share: row-value comparisons, integer division).
//! Must not: write, or open a transaction (each read is one statement).

use async_trait::async_trait;

use super::SqlLedger;
use crate::error::Result;
use crate::ledger::studio::{
    CreatorCashout, CreatorGift, CreatorTip, DailyEarnings, StudioCursor, StudioLedger, Supporter,
    DAY_MS,
};
use crate::model::Fiat;

/// A `gifts` row of the history.
#[derive(sqlx::FromRow)]
struct GiftRow {
    target: String,
    seq: i64,
    sender: String,
    gift: String,
    count: i64,
    diamonds: i64,
    message: Option<String>,
    ts_ms: i64,
}

/// A `tips` row of the history.
#[derive(sqlx::FromRow)]
struct TipRow {
    payment_intent: String,
    sender: String,
    target: String,
    amount_cents: i64,
    #[sqlx(try_from = "String")]
    currency: Fiat,
    message: String,
    status: String,
    cents_reversed: i64,
    created_ms: i64,
}

/// A `cashouts` row of the history.
#[derive(sqlx::FromRow)]
struct CashoutRow {
    cashout_id: String,
    diamonds: i64,
    amount_cents: i64,
    #[sqlx(try_from = "String")]
    currency: Fiat,
    status: String,
    created_ms: i64,
    finished_ms: Option<i64>,
}

const GIFTS: &str = "SELECT target, seq, sender, gift, count, diamonds, message, ts_ms FROM gifts WHERE creator = $1";
const GIFTS_AFTER: &str = " AND (ts_ms, seq, target) < ($3, $4, $5)";
const GIFTS_ORDER: &str = " ORDER BY ts_ms DESC, seq DESC, target DESC LIMIT $2";
const TIPS: &str = "SELECT payment_intent, sender, target, amount_cents, currency, message, status, cents_reversed, created_ms FROM tips WHERE creator = $1";
const TIPS_AFTER: &str = " AND (created_ms, payment_intent) < ($3, $4)";
const TIPS_ORDER: &str = " ORDER BY created_ms DESC, payment_intent DESC LIMIT $2";
const CASHOUTS: &str = "SELECT cashout_id, diamonds, amount_cents, currency, status, created_ms, finished_ms FROM cashouts WHERE creator = $1";
const CASHOUTS_AFTER: &str = " AND (created_ms, cashout_id) < ($3, $4)";
const CASHOUTS_ORDER: &str = " ORDER BY created_ms DESC, cashout_id DESC LIMIT $2";
// 86400000: a day in ms ([`DAY_MS`]), integer division in both engines.
const DAILY_GIFTS: &str = "SELECT ts_ms / 86400000 AS d, CAST(SUM(diamonds) AS BIGINT) AS s FROM gifts WHERE creator = $1 AND ts_ms >= $2 GROUP BY ts_ms / 86400000";
const DAILY_TIPS: &str = "SELECT created_ms / 86400000 AS d, CAST(SUM(amount_cents) AS BIGINT) AS s, currency FROM tips WHERE creator = $1 AND status = 'succeeded' AND created_ms >= $2 GROUP BY created_ms / 86400000, currency";
const SUPPORTERS: &str = "SELECT sender, CAST(SUM(diamonds) AS BIGINT) AS d FROM gifts WHERE creator = $1 GROUP BY sender ORDER BY d DESC, sender LIMIT $2";

/// `base`, the cursor condition when paging, then `order`.
fn paged(base: &str, after_sql: &str, order: &str, after: Option<&StudioCursor>) -> String {
    let mut q = String::with_capacity(base.len() + after_sql.len() + order.len());
    q.push_str(base);
    if after.is_some() {
        q.push_str(after_sql);
    }
    q.push_str(order);
    q
}

per_dialect! {
    impl SqlLedger<D> {
        /// Rows of `R` for a paged history query (`$1` creator, `$2` limit,
        /// then the cursor's ms, its n when `with_n` (gifts), its key).
        async fn studio_page<R>(&self, sql: &str, creator: &str, len_max: i64, after: Option<&StudioCursor>, with_n: bool) -> Result<Vec<R>>
        where
            R: for<'r> sqlx::FromRow<'r, <DB as sqlx::Database>::Row> + Send + Unpin,
        {
            let mut q = sqlx::query_as::<DB, R>(sql).bind(creator).bind(len_max);
            if let Some(c) = after {
                q = q.bind(c.ms);
                if with_n {
                    q = q.bind(c.n);
                }
                q = q.bind(c.key.as_str());
            }
            Ok(q.fetch_all(&self.pool).await?)
        }

        /// `(day, sum)` rows of a daily query.
        async fn studio_daily(&self, sql: &str, creator: &str, since_ms: i64) -> Result<Vec<(i64, i64)>> {
            Ok(sqlx::query_as::<DB, (i64, i64)>(sql)
                .bind(creator)
                .bind(since_ms - since_ms.rem_euclid(DAY_MS))
                .fetch_all(&self.pool)
                .await?)
        }
    }

    #[async_trait]
    impl StudioLedger for SqlLedger<D> {
        async fn creator_gifts(&self, creator: &str, len_max: i64, after: Option<&StudioCursor>) -> Result<Vec<CreatorGift>> {
            let sql = paged(GIFTS, GIFTS_AFTER, GIFTS_ORDER, after);
            let rows: Vec<GiftRow> = self.studio_page(&sql, creator, len_max, after, true).await?;
            Ok(rows
                .into_iter()
                .map(|r| CreatorGift {
                    target: r.target,
                    seq: r.seq,
                    sender: r.sender,
                    gift: r.gift,
                    count: r.count,
                    diamonds: r.diamonds,
                    message: r.message,
                    ts: r.ts_ms,
                })
                .collect())
        }

        async fn creator_tips(&self, creator: &str, len_max: i64, after: Option<&StudioCursor>) -> Result<Vec<CreatorTip>> {
            let sql = paged(TIPS, TIPS_AFTER, TIPS_ORDER, after);
            let rows: Vec<TipRow> = self.studio_page(&sql, creator, len_max, after, false).await?;
            Ok(rows
                .into_iter()
                .map(|r| CreatorTip {
                    payment_intent: r.payment_intent,
                    sender: r.sender,
                    target: r.target,
                    amount_cents: r.amount_cents,
                    currency: r.currency,
                    message: r.message,
                    status: r.status,
                    cents_reversed: r.cents_reversed,
                    created_ms: r.created_ms,
                })
                .collect())
        }

        async fn creator_cashouts(&self, creator: &str, len_max: i64, after: Option<&StudioCursor>) -> Result<Vec<CreatorCashout>> {
            let sql = paged(CASHOUTS, CASHOUTS_AFTER, CASHOUTS_ORDER, after);
            let rows: Vec<CashoutRow> = self.studio_page(&sql, creator, len_max, after, false).await?;
            Ok(rows
                .into_iter()
                .map(|r| CreatorCashout {
                    cashout_id: r.cashout_id,
                    diamonds: r.diamonds,
                    amount_cents: r.amount_cents,
                    currency: r.currency,
                    status: r.status,
                    created_ms: r.created_ms,
                    finished_ms: r.finished_ms,
                })
                .collect())
        }

        async fn creator_daily(&self, creator: &str, since_ms: i64) -> Result<Vec<DailyEarnings>> {
            let gifts = self.studio_daily(DAILY_GIFTS, creator, since_ms).await?;
            let tips = sqlx::query_as::<DB, (i64, i64, String)>(DAILY_TIPS)
                .bind(creator)
                .bind(since_ms - since_ms.rem_euclid(DAY_MS))
                .fetch_all(&self.pool)
                .await?;
            let mut days = std::collections::BTreeMap::<i64, DailyEarnings>::new();
            let day = |d: i64| DailyEarnings { day_ms: d * DAY_MS, diamonds: 0, tips_cents: 0, tips: Default::default() };
            for (d, s) in gifts {
                days.entry(d).or_insert_with(|| day(d)).diamonds += s;
            }
            for (d, s, currency) in tips {
                let fiat = Fiat::try_from(currency).map_err(crate::error::Error::internal)?;
                let e = days.entry(d).or_insert_with(|| day(d));
                *e.tips.entry(fiat).or_default() += s;
                if fiat == Fiat::Usd {
                    e.tips_cents += s;
                }
            }
            Ok(days.into_values().collect())
        }

        async fn creator_supporters(&self, creator: &str, len_max: i64) -> Result<Vec<Supporter>> {
            let rows = sqlx::query_as::<DB, (String, i64)>(SUPPORTERS)
                .bind(creator)
                .bind(len_max)
                .fetch_all(&self.pool)
                .await?;
            Ok(rows.into_iter().map(|(user, diamonds)| Supporter { user, diamonds }).collect())
        }
    }
}

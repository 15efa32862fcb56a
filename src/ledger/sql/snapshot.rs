//! What a restart and the reconciler read: snapshot, totals, balances, and
//! the clean-shutdown mark.
//!
//! Owns: the SQL of `snapshot`, `totals`, `balance` and `swap_clean_mark`.
//! Multi-statement reads run in one read transaction, so they see one
//! state while other nodes commit. Must not: write anything but the mark.

use super::rows::{GiftRow, TargetRow, GIFT_COLUMNS};
use super::{to_u64, Dialect, SqlLedger};
use crate::ledger::error::LedgerResult;
use crate::ledger::{Totals, COIN, DIAMOND};
use crate::model::{PendingGift, Snapshot, Target, TargetInfo};
use crate::protocol::now_ms;

/// The balance sums of [`Totals`].
#[derive(sqlx::FromRow)]
struct BalanceSums {
    mint_coins: i64,
    wallet_coins: i64,
    spent_coins: i64,
    mint_diamonds: i64,
    debt_coins: i64,
}

/// The gift sums of [`Totals`].
#[derive(sqlx::FromRow)]
struct GiftSums {
    gifts: i64,
    coins: i64,
    diamonds: i64,
}

per_dialect! {
    impl SqlLedger<D> {
        /// See [`crate::ledger::Ledger::snapshot`].
        pub(super) async fn snapshot(&self, recent_ms: i64, seq_gap: u64) -> LedgerResult<Snapshot> {
            let mut s = Snapshot::default();
            let mut tx = D::begin_read(&self.pool).await?;
            let wallets: Vec<(String, i64)> = sqlx::query_as(
                "SELECT account, amount FROM balances WHERE kind = 'wallet' AND currency = $1",
            )
            .bind(COIN)
            .fetch_all(&mut *tx)
            .await?;
            for (acct, amount) in wallets {
                if let Some(user) = acct.strip_prefix("wallet:") {
                    s.wallets.push((user.to_string(), amount));
                }
            }
            s.credit_ops = sqlx::query_scalar("SELECT op_id FROM operations WHERE kind <> 'batch'")
                .fetch_all(&mut *tx)
                .await?;
            let since = now_ms().saturating_sub(recent_ms);
            let gifts: Vec<GiftRow> = sqlx::query_as(&format!(
                "SELECT {GIFT_COLUMNS} FROM gifts WHERE ts_ms >= $1 ORDER BY ts_ms, target, seq"
            ))
            .bind(since)
            .fetch_all(&mut *tx)
            .await?;
            s.recent_gifts = gifts
                .into_iter()
                .map(PendingGift::try_from)
                .collect::<LedgerResult<_>>()?;
            let targets: Vec<TargetRow> = sqlx::query_as(
                "SELECT 'room:' || r.room AS key, r.creator, r.live, (SELECT MAX(g.seq) FROM gifts g WHERE g.target = 'room:' || r.room) AS max_seq FROM rooms r
                 UNION ALL
                 SELECT 'video:' || v.video, v.creator, TRUE, (SELECT MAX(g.seq) FROM gifts g WHERE g.target = 'video:' || v.video) FROM videos v",
            )
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            for r in targets {
                let Some(target) = Target::from_key(&r.key) else {
                    continue;
                };
                let seq = to_u64(r.max_seq.unwrap_or(0), "seq")?;
                let seq = if seq_gap > 0 && r.max_seq.is_some() {
                    seq.saturating_add(seq_gap)
                } else {
                    seq
                };
                s.targets.push((
                    target,
                    TargetInfo {
                        creator: r.creator,
                        live: r.live,
                        seq,
                    },
                ));
            }
            Ok(s)
        }

        /// See [`crate::ledger::Ledger::balance`].
        pub(super) async fn balance(&self, acct: &str, currency: &str) -> LedgerResult<i64> {
            let v: Option<i64> = sqlx::query_scalar(
                "SELECT amount FROM balances WHERE account = $1 AND currency = $2",
            )
            .bind(acct)
            .bind(currency)
            .fetch_optional(&self.pool)
            .await?;
            Ok(v.unwrap_or(0))
        }

        /// See [`crate::ledger::Ledger::totals`].
        pub(super) async fn totals(&self) -> LedgerResult<Totals> {
            let mut t = Totals::default();
            let mut tx = D::begin_read(&self.pool).await?;
            // SUM(bigint) is NUMERIC in PostgreSQL: cast back (an overflow
            // is an error, never a wrapped number).
            let sums: Vec<(String, i64)> = sqlx::query_as(
                "SELECT currency, CAST(SUM(amount) AS BIGINT) FROM entries GROUP BY currency",
            )
            .fetch_all(&mut *tx)
            .await?;
            t.entry_sums = sums.into_iter().collect();
            let b: BalanceSums = sqlx::query_as(
                "SELECT
                     CAST(COALESCE(SUM(amount) FILTER (WHERE kind = 'mint' AND currency = $1), 0) AS BIGINT) AS mint_coins,
                     CAST(COALESCE(SUM(amount) FILTER (WHERE kind = 'wallet' AND currency = $1), 0) AS BIGINT) AS wallet_coins,
                     CAST(COALESCE(SUM(amount) FILTER (WHERE kind = 'spent' AND currency = $1), 0) AS BIGINT) AS spent_coins,
                     CAST(COALESCE(SUM(amount) FILTER (WHERE kind = 'mint' AND currency = $2), 0) AS BIGINT) AS mint_diamonds,
                     CAST(COALESCE(SUM(amount) FILTER (WHERE kind = 'debt' AND currency = $1), 0) AS BIGINT) AS debt_coins
                 FROM balances",
            )
            .bind(COIN)
            .bind(DIAMOND)
            .fetch_one(&mut *tx)
            .await?;
            t.coins_minted = -b.mint_coins;
            t.coins_in_wallets = b.wallet_coins;
            t.coins_spent = b.spent_coins;
            t.diamonds_credited = -b.mint_diamonds;
            t.coins_in_debts = b.debt_coins;
            let g: GiftSums = sqlx::query_as(
                "SELECT COUNT(*) AS gifts, CAST(COALESCE(SUM(coins), 0) AS BIGINT) AS coins, CAST(COALESCE(SUM(diamonds), 0) AS BIGINT) AS diamonds FROM gifts",
            )
            .fetch_one(&mut *tx)
            .await?;
            (t.gifts, t.gift_coins, t.gift_diamonds) = (g.gifts, g.coins, g.diamonds);
            t.batches = sqlx::query_scalar("SELECT COUNT(*) FROM operations WHERE kind = 'batch'")
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(t)
        }

        /// See [`crate::ledger::Ledger::swap_clean_mark`]. A brand-new
        /// ledger has nothing to lose: it is seeded as clean, then the mark
        /// is read and replaced under the write lock (a row lock where the
        /// dialect locks rows), so two nodes swapping at once each see the
        /// other's write.
        pub(super) async fn swap_clean_mark(&self, clean: bool) -> LedgerResult<bool> {
            let mut tx = D::begin_write(&self.pool).await?;
            sqlx::query("INSERT INTO meta (key, value) VALUES ('clean_shutdown', '1') ON CONFLICT (key) DO NOTHING")
                .execute(&mut *tx)
                .await?;
            let prev: String = sqlx::query_scalar(&format!(
                "SELECT value FROM meta WHERE key = 'clean_shutdown'{}",
                D::FOR_UPDATE
            ))
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("UPDATE meta SET value = $1 WHERE key = 'clean_shutdown'")
                .bind(if clean { "1" } else { "0" })
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(prev != "0")
        }
    }
}

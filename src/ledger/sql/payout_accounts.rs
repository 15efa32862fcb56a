//! Creators' connected accounts and what they may cash out.
//!
//! Owns: the SQL of `payout_account`, `put_payout_account`,
//! `account_updated` and `payout_funds` (held, available, clawed back,
//! unrecovered). Must not: apply an `account.updated` older than the last
//! one applied.

use super::{Dialect, SqlLedger};
use crate::ledger::error::{LedgerError, LedgerResult};
use crate::ledger::{account, Fiat, PayoutAccount, PayoutFunds, StripeEventRef, DIAMOND};
use crate::protocol::now_ms;

/// A `payout_accounts` row.
#[derive(sqlx::FromRow)]
struct PayoutAccountRow {
    account: String,
    payouts_enabled: bool,
}

/// A creator's tip reversals in one currency, cents.
#[derive(sqlx::FromRow)]
struct TipReversalSums {
    currency: String,
    reversed: i64,
    recovered: i64,
}

per_dialect! {
    impl SqlLedger<D> {
        /// See [`crate::ledger::Ledger::payout_account`].
        pub(super) async fn payout_account(&self, creator: &str) -> LedgerResult<Option<PayoutAccount>> {
            let row: Option<PayoutAccountRow> = sqlx::query_as(
                "SELECT account, payouts_enabled FROM payout_accounts WHERE creator = $1",
            )
            .bind(creator)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.map(|r| PayoutAccount {
                account: r.account,
                payouts_enabled: r.payouts_enabled,
            }))
        }

        /// See [`crate::ledger::Ledger::put_payout_account`].
        pub(super) async fn put_payout_account(&self, creator: &str, acct: &str) -> LedgerResult<PayoutAccount> {
            sqlx::query("INSERT INTO payout_accounts (creator, account, payouts_enabled, updated_ms) VALUES ($1, $2, FALSE, $3) ON CONFLICT (creator) DO NOTHING")
                .bind(creator)
                .bind(acct)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
            self.payout_account(creator)
                .await?
                .ok_or_else(|| LedgerError::invariant("payout account vanished"))
        }

        /// See [`crate::ledger::Ledger::account_updated`]: only an event
        /// newer than the last one applied (Stripe does not order events:
        /// an old "enabled" must not undo a newer "disabled").
        pub(super) async fn account_updated(
            &self,
            event: &StripeEventRef,
            acct: &str,
            payouts_enabled: bool,
            created: i64,
        ) -> LedgerResult<bool> {
            let mut tx = D::begin_write(&self.pool).await?;
            if !Self::insert_event(&mut tx, event).await? {
                return Ok(false);
            }
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

        /// See [`crate::ledger::Ledger::payout_funds`].
        pub(super) async fn payout_funds(&self, creator: &str) -> LedgerResult<PayoutFunds> {
            let hold_ms = self.limits.read().hold_ms;
            let mut tx = D::begin_read(&self.pool).await?;
            let balance = Self::balance_in(&mut tx, &account::earnings(creator), DIAMOND).await?;
            let held = Self::held_diamonds(&mut tx, creator, now_ms() - hold_ms)
                .await?
                .clamp(0, balance.max(0));
            let reversed = Self::balance_in(&mut tx, &account::clawed_back(creator), DIAMOND).await?;
            let unrecovered = Self::balance_in(&mut tx, &account::unrecovered(creator), DIAMOND).await?;
            let sums: Vec<TipReversalSums> = sqlx::query_as("SELECT currency, CAST(COALESCE(SUM(cents_reversed), 0) AS BIGINT) AS reversed, CAST(COALESCE(SUM(cents_recovered), 0) AS BIGINT) AS recovered FROM tips WHERE creator = $1 GROUP BY currency")
                .bind(creator)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            let mut by_currency = std::collections::BTreeMap::new();
            for t in sums {
                let fiat = Fiat::parse(&t.currency)
                    .ok_or_else(|| LedgerError::invariant("tip in an unknown currency"))?;
                by_currency.insert(fiat, (t.reversed, t.recovered));
            }
            let usd = by_currency.get(&Fiat::Usd).copied().unwrap_or_default();
            Ok(PayoutFunds {
                diamonds_held: held,
                diamonds_available: balance - held,
                diamonds_reversed: reversed,
                diamonds_unrecovered: -unrecovered,
                tips_reversed_cents: usd.0,
                tips_recovered_cents: usd.1,
                tips_reversed_by_currency: by_currency,
            })
        }
    }
}

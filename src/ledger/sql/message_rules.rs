//! The SQL of [`MessageRulesLedger`]: a creator's message settings, muted
//! words and kept-back messages, once for both dialects.
//!
//! Owns: those statements; each write runs in one transaction with its
//! `moderation_audit` row. Reads `creator_moderators` (written by the
//! moderators flow) to authorize a moderator.
//! Must not: normalise text or decide what is kept back.

use async_trait::async_trait;
use sqlx::Transaction;

use super::{Dialect, SqlLedger};
use crate::error::{Error, Result};
use crate::ledger::message_rules::{
    Decided, KeptMessage, MessageRulesLedger, MessagesCursor, ModeratedMessage, ModerationSettings,
    MutedWordRow,
};
use crate::protocol::now_ms;

const MESSAGE_COLUMNS: &str = "id, kind, target, seq, sender, message, state, reason, created_ms, decided_by, decided_ms, ref";
/// A tip's message shows in the queue once the tip is paid.
const PAID_TIPS_ONLY: &str = " AND (kind <> 'tip' OR EXISTS (SELECT 1 FROM tips WHERE tips.payment_intent = moderated_messages.ref AND tips.status <> 'pending'))";

/// The settings row.
#[derive(sqlx::FromRow)]
struct SettingsRow {
    builtin_langs: String,
    review_account_age_days: Option<i64>,
    review_coins_below: Option<i64>,
    message_interval_ms: i64,
}

per_dialect! {
    impl SqlLedger<D> {
        /// One `moderation_audit` row, in `tx`.
        async fn audit(
            tx: &mut Transaction<'_, DB>,
            creator: &str,
            actor: &str,
            action: &str,
            target: &str,
            detail: &str,
        ) -> Result<()> {
            sqlx::query("INSERT INTO moderation_audit (creator, actor, action, target, detail, at_ms) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(creator)
                .bind(actor)
                .bind(action)
                .bind(target)
                .bind(detail)
                .bind(now_ms())
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
    }

    #[async_trait]
    impl MessageRulesLedger for SqlLedger<D> {
        async fn moderation_settings(&self, creator: &str) -> Result<Option<ModerationSettings>> {
            let row: Option<SettingsRow> = sqlx::query_as("SELECT builtin_langs, review_account_age_days, review_coins_below, message_interval_ms FROM creator_moderation_settings WHERE creator = $1")
                .bind(creator)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.map(|r| ModerationSettings {
                builtin_langs: r
                    .builtin_langs
                    .split(',')
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect(),
                review_account_age_days: r.review_account_age_days,
                review_coins_below: r.review_coins_below,
                message_interval_ms: r.message_interval_ms,
            }))
        }

        async fn moderation_settings_set(&self, creator: &str, actor: &str, s: &ModerationSettings) -> Result<()> {
            let mut tx = D::begin_write(&self.pool).await?;
            sqlx::query("INSERT INTO creator_moderation_settings (creator, builtin_langs, review_account_age_days, review_coins_below, message_interval_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (creator) DO UPDATE SET builtin_langs = excluded.builtin_langs, review_account_age_days = excluded.review_account_age_days, review_coins_below = excluded.review_coins_below, message_interval_ms = excluded.message_interval_ms, updated_ms = excluded.updated_ms")
                .bind(creator)
                .bind(s.builtin_langs.join(","))
                .bind(s.review_account_age_days)
                .bind(s.review_coins_below)
                .bind(s.message_interval_ms)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            let detail = serde_json::to_string(s).unwrap_or_default();
            Self::audit(&mut tx, creator, actor, "settings_set", creator, &detail).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn muted_words(&self, creator: &str) -> Result<Vec<MutedWordRow>> {
            let rows: Vec<(String, String, String)> = sqlx::query_as("SELECT normalised, mode, original FROM creator_muted_words WHERE creator = $1 ORDER BY original, mode")
                .bind(creator)
                .fetch_all(&self.pool)
                .await?;
            Ok(rows
                .into_iter()
                .map(|(normalised, mode, original)| MutedWordRow { normalised, mode, original })
                .collect())
        }

        async fn muted_words_set(&self, creator: &str, actor: &str, words: &[MutedWordRow]) -> Result<()> {
            let mut tx = D::begin_write(&self.pool).await?;
            sqlx::query("DELETE FROM creator_muted_words WHERE creator = $1")
                .bind(creator)
                .execute(&mut *tx)
                .await?;
            let now = now_ms();
            for w in words {
                sqlx::query("INSERT INTO creator_muted_words (creator, normalised, mode, original, created_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (creator, normalised, mode) DO NOTHING")
                    .bind(creator)
                    .bind(&w.normalised)
                    .bind(&w.mode)
                    .bind(&w.original)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            let detail = format!("{} words", words.len());
            Self::audit(&mut tx, creator, actor, "words_set", creator, &detail).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn message_kept(&self, m: &KeptMessage) -> Result<()> {
            sqlx::query("INSERT INTO moderated_messages (id, creator, kind, target, seq, ref, sender, message, state, reason, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING")
                .bind(&m.id)
                .bind(&m.creator)
                .bind(&m.kind)
                .bind(&m.target)
                .bind(m.seq)
                .bind(&m.reference)
                .bind(&m.sender)
                .bind(&m.message)
                .bind(&m.state)
                .bind(&m.reason)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn kept_message_of(&self, reference: &str) -> Result<Option<ModeratedMessage>> {
            Ok(sqlx::query_as(&format!("SELECT {MESSAGE_COLUMNS} FROM moderated_messages WHERE ref = $1"))
                .bind(reference)
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn kept_messages(&self, creator: &str, state: Option<&str>, len_max: i64, after: Option<&MessagesCursor>) -> Result<Vec<ModeratedMessage>> {
            let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM moderated_messages WHERE creator = $1{PAID_TIPS_ONLY}");
            let mut n = 2;
            if state.is_some() {
                sql.push_str(&format!(" AND state = ${n}"));
                n += 1;
            }
            if after.is_some() {
                sql.push_str(&format!(" AND (created_ms, id) < (${}, ${})", n, n + 1));
                n += 2;
            }
            sql.push_str(&format!(" ORDER BY created_ms DESC, id DESC LIMIT ${n}"));
            let mut q = sqlx::query_as::<DB, ModeratedMessage>(&sql).bind(creator);
            if let Some(s) = state {
                q = q.bind(s);
            }
            if let Some(c) = after {
                q = q.bind(c.created_ms).bind(c.id.as_str());
            }
            Ok(q.bind(len_max).fetch_all(&self.pool).await?)
        }

        async fn message_decide(&self, creator: &str, id: &str, actor: &str, approve: bool) -> Result<Decided> {
            let want = if approve { "approved" } else { "rejected" };
            let mut tx = D::begin_write(&self.pool).await?;
            let row: Option<ModeratedMessage> = sqlx::query_as(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM moderated_messages WHERE creator = $1 AND id = $2{PAID_TIPS_ONLY}{}",
                super::for_update_of::<D>("moderated_messages")
            ))
            .bind(creator)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(mut row) = row else {
                return Ok(Decided::Missing);
            };
            if row.state == want {
                return Ok(Decided::Already(row));
            }
            if row.state != "held" {
                return Ok(Decided::Other(row));
            }
            let now = now_ms();
            let n = sqlx::query("UPDATE moderated_messages SET state = $1, decided_by = $2, decided_ms = $3 WHERE id = $4 AND state = 'held'")
                .bind(want)
                .bind(actor)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n != 1 {
                return Err(Error::internal("a held message changed under its lock"));
            }
            let action = if approve { "approve" } else { "reject" };
            Self::audit(&mut tx, creator, actor, action, id, &row.kind).await?;
            tx.commit().await?;
            row.state = want.to_string();
            row.decided_by = Some(actor.to_string());
            row.decided_ms = Some(now);
            Ok(Decided::Now(row))
        }
    }
}

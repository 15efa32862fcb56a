//! Blocks, moderators and the moderation audit ([`ModerationLedger`]).
//!
//! Owns: their SQL, once for both dialects, and [`SqlLedger::insert_audit`]
//! (the one audit insert, for any moderation action in its transaction).
//! Each action is one write transaction: the check of who may act, the
//! change, and its audit row (written only when something changed).
//! Must not: enforce blocks (the counters engine does) or read outside a
//! statement of its own.

use async_trait::async_trait;
use sqlx::Transaction;

use super::{Dialect, SqlLedger};
use crate::error::{Error, Result};
use crate::ledger::moderation::{
    action, AuditEntry, Block, ModerationLedger, Moderator, UserAction,
};

const IS_BLOCKED: &str = "SELECT COUNT(*) FROM creator_blocks WHERE creator = $1 AND user_id = $2";
const IS_MODERATOR: &str =
    "SELECT COUNT(*) FROM creator_moderators WHERE creator = $1 AND user_id = $2";
const BLOCK: &str = "INSERT INTO creator_blocks (creator, user_id, blocked_by, created_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (creator, user_id) DO NOTHING";
const UNBLOCK: &str = "DELETE FROM creator_blocks WHERE creator = $1 AND user_id = $2";
const BLOCKS_FIRST: &str = "SELECT user_id, blocked_by, created_ms FROM creator_blocks WHERE creator = $1 ORDER BY created_ms DESC, user_id DESC LIMIT $2";
const BLOCKS_AFTER: &str = "SELECT user_id, blocked_by, created_ms FROM creator_blocks WHERE creator = $1 AND (created_ms, user_id) < ($3, $4) ORDER BY created_ms DESC, user_id DESC LIMIT $2";
const ALL_BLOCKS: &str = "SELECT creator, user_id FROM creator_blocks ORDER BY creator, user_id";
const MOD_ADD: &str = "INSERT INTO creator_moderators (creator, user_id, added_by, created_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (creator, user_id) DO NOTHING";
const MOD_REMOVE: &str = "DELETE FROM creator_moderators WHERE creator = $1 AND user_id = $2";
const MODERATORS: &str = "SELECT user_id, added_by, created_ms FROM creator_moderators WHERE creator = $1 ORDER BY created_ms, user_id";
const MODERATING: &str =
    "SELECT creator FROM creator_moderators WHERE user_id = $1 ORDER BY creator";
const AUDIT_INSERT: &str = "INSERT INTO moderation_audit (creator, actor, action, target, detail, at_ms) VALUES ($1, $2, $3, $4, $5, $6)";
const AUDIT_FIRST: &str = "SELECT id, actor, action, target, detail, at_ms FROM moderation_audit WHERE creator = $1 ORDER BY id DESC LIMIT $2";
const AUDIT_BEFORE: &str = "SELECT id, actor, action, target, detail, at_ms FROM moderation_audit WHERE creator = $1 AND id < $3 ORDER BY id DESC LIMIT $2";

/// A `creator_blocks` or `creator_moderators` row: user, by whom, when.
type UserRow = (String, String, i64);
/// A `moderation_audit` row.
type AuditRow = (i64, String, String, String, String, i64);

per_dialect! {
    impl SqlLedger<D> {
        /// Record one moderation action of `creator`'s in `tx` (every
        /// action writes its row in its own transaction).
        pub(crate) async fn insert_audit(
            tx: &mut Transaction<'_, DB>,
            creator: &str,
            actor: &str,
            action: &str,
            target: &str,
            detail: &str,
            at_ms: i64,
        ) -> Result<()> {
            sqlx::query(AUDIT_INSERT)
                .bind(creator)
                .bind(actor)
                .bind(action)
                .bind(target)
                .bind(detail)
                .bind(at_ms)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// Whether `(creator, user)` has a row of `sql` (a COUNT), in `tx`.
        async fn has_row(tx: &mut Transaction<'_, DB>, sql: &str, creator: &str, user: &str) -> Result<bool> {
            let n: i64 = sqlx::query_scalar(sql)
                .bind(creator)
                .bind(user)
                .fetch_one(&mut **tx)
                .await?;
            Ok(n > 0)
        }
    }

    #[async_trait]
    impl ModerationLedger for SqlLedger<D> {
        async fn set_block(&self, a: UserAction<'_>, blocked: bool) -> Result<bool> {
            let mut tx = D::begin_write(&self.pool).await?;
            if a.actor != a.creator {
                if !Self::has_row(&mut tx, IS_MODERATOR, a.creator, a.actor).await? {
                    return Err(Error::forbidden(
                        "only the creator or one of their moderators may block or unblock",
                    ));
                }
                if a.user == a.creator || Self::has_row(&mut tx, IS_MODERATOR, a.creator, a.user).await? {
                    return Err(Error::forbidden(
                        "a moderator may not block or unblock the creator or another moderator",
                    ));
                }
            }
            let q = if blocked {
                sqlx::query(BLOCK)
                    .bind(a.creator)
                    .bind(a.user)
                    .bind(a.actor)
                    .bind(a.now_ms)
            } else {
                sqlx::query(UNBLOCK).bind(a.creator).bind(a.user)
            };
            let changed = q.execute(&mut *tx).await?.rows_affected() == 1;
            if changed {
                let what = if blocked { action::BLOCK } else { action::UNBLOCK };
                Self::insert_audit(&mut tx, a.creator, a.actor, what, a.user, "", a.now_ms).await?;
            }
            tx.commit().await?;
            Ok(changed)
        }

        async fn is_blocked(&self, creator: &str, user: &str) -> Result<bool> {
            let n: i64 = sqlx::query_scalar(IS_BLOCKED)
                .bind(creator)
                .bind(user)
                .fetch_one(&self.pool)
                .await?;
            Ok(n > 0)
        }

        async fn blocks(&self, creator: &str, len_max: i64, after: Option<(i64, String)>) -> Result<Vec<Block>> {
            let rows: Vec<UserRow> = match &after {
                None => sqlx::query_as(BLOCKS_FIRST).bind(creator).bind(len_max).fetch_all(&self.pool).await?,
                Some((ms, user)) => {
                    sqlx::query_as(BLOCKS_AFTER)
                        .bind(creator)
                        .bind(len_max)
                        .bind(*ms)
                        .bind(user.as_str())
                        .fetch_all(&self.pool)
                        .await?
                }
            };
            Ok(rows
                .into_iter()
                .map(|(user, blocked_by, created_ms)| Block { user, blocked_by, created_ms })
                .collect())
        }

        async fn all_blocks(&self) -> Result<Vec<(String, String)>> {
            Ok(sqlx::query_as(ALL_BLOCKS).fetch_all(&self.pool).await?)
        }

        async fn set_moderator(&self, a: UserAction<'_>, on: bool) -> Result<bool> {
            if a.actor != a.creator {
                return Err(Error::forbidden("only the creator adds or removes their moderators"));
            }
            let mut tx = D::begin_write(&self.pool).await?;
            let q = if on {
                sqlx::query(MOD_ADD)
                    .bind(a.creator)
                    .bind(a.user)
                    .bind(a.actor)
                    .bind(a.now_ms)
            } else {
                sqlx::query(MOD_REMOVE).bind(a.creator).bind(a.user)
            };
            let changed = q.execute(&mut *tx).await?.rows_affected() == 1;
            if changed {
                let what = if on { action::MODERATOR_ADD } else { action::MODERATOR_REMOVE };
                Self::insert_audit(&mut tx, a.creator, a.actor, what, a.user, "", a.now_ms).await?;
            }
            tx.commit().await?;
            Ok(changed)
        }

        async fn moderators(&self, creator: &str) -> Result<Vec<Moderator>> {
            let rows: Vec<UserRow> = sqlx::query_as(MODERATORS).bind(creator).fetch_all(&self.pool).await?;
            Ok(rows
                .into_iter()
                .map(|(user, added_by, created_ms)| Moderator { user, added_by, created_ms })
                .collect())
        }

        async fn is_moderator(&self, creator: &str, user: &str) -> Result<bool> {
            let n: i64 = sqlx::query_scalar(IS_MODERATOR)
                .bind(creator)
                .bind(user)
                .fetch_one(&self.pool)
                .await?;
            Ok(n > 0)
        }

        async fn moderating(&self, user: &str) -> Result<Vec<String>> {
            Ok(sqlx::query_scalar(MODERATING).bind(user).fetch_all(&self.pool).await?)
        }

        async fn audit(&self, creator: &str, len_max: i64, before_id: Option<i64>) -> Result<Vec<AuditEntry>> {
            let rows: Vec<AuditRow> = match before_id {
                None => sqlx::query_as(AUDIT_FIRST).bind(creator).bind(len_max).fetch_all(&self.pool).await?,
                Some(id) => {
                    sqlx::query_as(AUDIT_BEFORE)
                        .bind(creator)
                        .bind(len_max)
                        .bind(id)
                        .fetch_all(&self.pool)
                        .await?
                }
            };
            Ok(rows
                .into_iter()
                .map(|(id, actor, action, target, detail, at_ms)| AuditEntry { id, actor, action, target, detail, at_ms })
                .collect())
        }
    }
}

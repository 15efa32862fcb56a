//! The durable registry of rooms and videos.
//!
//! Owns: the SQL of `open_target`, `end_room`, `target`, `live_rooms` and
//! `has_gift`. Must not: hand a room or video of one creator to another.

use super::SqlLedger;
use crate::ledger::error::{LedgerError, LedgerResult};
use crate::ledger::TargetRecord;
use crate::model::{Target, TargetKind};
use crate::protocol::now_ms;

/// A target as `target` reads it.
#[derive(sqlx::FromRow)]
struct TargetRecordRow {
    creator: String,
    live: bool,
}

per_dialect! {
    impl SqlLedger<D> {
        /// See [`crate::ledger::Ledger::open_target`]: one atomic upsert
        /// that inserts a new target, or re-opens (room) / keeps (video)
        /// one owned by `creator`; for another owner the conflict's WHERE
        /// fails and no row comes back.
        pub(super) async fn open_target(&self, target: &Target, creator: &str) -> LedgerResult<()> {
            let sql = match target.kind {
                TargetKind::Room => {
                    "INSERT INTO rooms (room, creator, live, opened_ms) VALUES ($1, $2, TRUE, $3)
                     ON CONFLICT (room) DO UPDATE SET live = TRUE, opened_ms = excluded.opened_ms, ended_ms = NULL
                     WHERE rooms.creator = excluded.creator
                     RETURNING creator"
                }
                TargetKind::Video => {
                    "INSERT INTO videos (video, creator, created_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (video) DO UPDATE SET creator = excluded.creator
                     WHERE videos.creator = excluded.creator
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
                None => Err(LedgerError::NotOwner(target.id.clone())),
            }
        }

        /// See [`crate::ledger::Ledger::end_room`].
        pub(super) async fn end_room(&self, room: &str) -> LedgerResult<()> {
            sqlx::query("UPDATE rooms SET live = FALSE, ended_ms = $2 WHERE room = $1")
                .bind(room)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        /// See [`crate::ledger::Ledger::target`].
        pub(super) async fn target(&self, target: &Target) -> LedgerResult<Option<TargetRecord>> {
            let sql = match target.kind {
                TargetKind::Room => "SELECT creator, live FROM rooms WHERE room = $1",
                TargetKind::Video => "SELECT creator, TRUE AS live FROM videos WHERE video = $1",
            };
            let row: Option<TargetRecordRow> = sqlx::query_as(sql)
                .bind(&target.id)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.map(|r| TargetRecord {
                creator: r.creator,
                live: r.live,
            }))
        }

        /// See [`crate::ledger::Ledger::live_rooms`].
        pub(super) async fn live_rooms(&self, creator: &str) -> LedgerResult<u64> {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM rooms WHERE creator = $1 AND live = TRUE")
                    .bind(creator)
                    .fetch_one(&self.pool)
                    .await?;
            Ok(n.max(0) as u64)
        }

        /// See [`crate::ledger::Ledger::has_gift`].
        pub(super) async fn has_gift(&self, target: &str, seq: u64) -> LedgerResult<bool> {
            let Ok(seq) = i64::try_from(seq) else {
                return Ok(false);
            };
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM gifts WHERE target = $1 AND seq = $2")
                    .bind(target)
                    .bind(seq)
                    .fetch_one(&self.pool)
                    .await?;
            Ok(n > 0)
        }
    }
}

//! Followers ([`FollowLedger`]): the edges of `follows`
//! (`migrations/*/0012_followers.sql`), added and removed one at a time
//! (with the `follow` webhook event in the same transaction) or in bulk,
//! pages newest first, and counts per creator.
//!
//! Owns: their SQL, once for both dialects (only syntax SQLite and
//! PostgreSQL share: `ON CONFLICT DO NOTHING`, `RETURNING`, row values).
//! Must not: write anything but `follows` and the webhook outbox, or emit
//! events for bulk changes (a platform syncing its graph is no news to a
//! creator).

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::QueryBuilder;

use super::{Dialect, SqlLedger};
use crate::error::Result;
use crate::ledger::follows::{BulkOutcome, CreatorFacts, FollowCursor, FollowEdge, FollowLedger};

/// Edges per multi-row statement (3 binds an edge on insert: far under
/// SQLite's 32766 and PostgreSQL's 65535 binds).
const EDGES_PER_STATEMENT: usize = 1000;

const FOLLOW: &str = "INSERT INTO follows (creator, follower, created_ms) VALUES ($1, $2, $3) ON CONFLICT (creator, follower) DO NOTHING";
const UNFOLLOW: &str = "DELETE FROM follows WHERE creator = $1 AND follower = $2";
const FOLLOWERS: &str = "SELECT follower, created_ms FROM follows WHERE creator = $1";
const FOLLOWERS_AFTER: &str = " AND (created_ms, follower) < ($3, $4)";
const FOLLOWERS_ORDER: &str = " ORDER BY created_ms DESC, follower DESC LIMIT $2";
const FOLLOWING: &str = "SELECT creator, created_ms FROM follows WHERE follower = $1";
const FOLLOWING_AFTER: &str = " AND (created_ms, creator) < ($3, $4)";
const FOLLOWING_ORDER: &str = " ORDER BY created_ms DESC, creator DESC LIMIT $2";
const COUNT: &str = "SELECT COUNT(*) FROM follows WHERE creator = $1";
const COUNTS: &str = "SELECT creator, COUNT(*) FROM follows GROUP BY creator";
const LIVE_ROOM: &str = "SELECT room FROM rooms WHERE creator = $1 AND live = TRUE ORDER BY opened_ms DESC, room LIMIT 1";
const ROOMS: &str = "SELECT COUNT(*) FROM rooms WHERE creator = $1";
const VIDEOS: &str = "SELECT COUNT(*) FROM videos WHERE creator = $1";

/// The event id of one edge added: the same on a replay of the same add,
/// new for a later follow after an unfollow.
fn follow_event_id(creator: &str, follower: &str, ms: i64) -> String {
    format!("follow:{creator}:{follower}:{ms}")
}

/// `(creator, count)` of the creators of `rows` (one row per changed edge).
fn per_creator(rows: Vec<String>) -> Vec<(String, i64)> {
    let mut m = BTreeMap::<String, i64>::new();
    for c in rows {
        *m.entry(c).or_default() += 1;
    }
    m.into_iter().collect()
}

/// `edges` by (creator, follower), each once: concurrent bulk requests
/// then take their row locks in one order (no deadlock on PostgreSQL),
/// and a pair repeated in a request is one row.
fn in_lock_order(edges: &[(String, String)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = edges.iter().map(|(f, c)| (c.clone(), f.clone())).collect();
    v.sort_unstable();
    v.dedup();
    v.into_iter().map(|(c, f)| (f, c)).collect()
}

/// `base`, the cursor condition when paging, then `order`.
fn paged(base: &str, after_sql: &str, order: &str, after: Option<&FollowCursor>) -> String {
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
        /// `(other side, created_ms)` rows of a page (`$1` the list's
        /// owner, `$2` the limit, then the cursor).
        async fn follow_page(&self, sql: &str, owner: &str, len_max: i64, after: Option<&FollowCursor>) -> Result<Vec<FollowEdge>> {
            let mut q = sqlx::query_as::<DB, (String, i64)>(sql).bind(owner).bind(len_max);
            if let Some(c) = after {
                q = q.bind(c.ms).bind(c.key.as_str());
            }
            let rows = q.fetch_all(&self.pool).await?;
            Ok(rows.into_iter().map(|(user, created_ms)| FollowEdge { user, created_ms }).collect())
        }

        /// A COUNT(*) of `creator`'s rows.
        async fn count_of(&self, sql: &str, creator: &str) -> Result<i64> {
            Ok(sqlx::query_scalar::<DB, i64>(sql).bind(creator).fetch_one(&self.pool).await?)
        }
    }

    #[async_trait]
    impl FollowLedger for SqlLedger<D> {
        async fn follow(&self, follower: &str, creator: &str, now_ms: i64) -> Result<bool> {
            let mut tx = D::begin_write(&self.pool).await?;
            let added = sqlx::query(FOLLOW)
                .bind(creator)
                .bind(follower)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if added {
                let data = serde_json::json!({ "follower": follower, "ts_ms": now_ms });
                let id = follow_event_id(creator, follower, now_ms);
                D::outbox_once(&mut tx, creator, "follow", &id, &data).await?;
            }
            tx.commit().await?;
            Ok(added)
        }

        async fn unfollow(&self, follower: &str, creator: &str) -> Result<bool> {
            let mut tx = D::begin_write(&self.pool).await?;
            let n = sqlx::query(UNFOLLOW)
                .bind(creator)
                .bind(follower)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(n == 1)
        }

        async fn import_follows(&self, edges: &[(String, String)], now_ms: i64) -> Result<BulkOutcome> {
            let sorted = in_lock_order(edges);
            let edges_len = edges.len();
            let edges = sorted.as_slice();
            let mut tx = D::begin_write(&self.pool).await?;
            let mut added: Vec<String> = Vec::new();
            for chunk in edges.chunks(EDGES_PER_STATEMENT) {
                let mut q = QueryBuilder::<DB>::new("INSERT INTO follows (creator, follower, created_ms) ");
                q.push_values(chunk, |mut b, (follower, creator)| {
                    b.push_bind(creator.as_str()).push_bind(follower.as_str()).push_bind(now_ms);
                });
                q.push(" ON CONFLICT (creator, follower) DO NOTHING RETURNING creator");
                let rows: Vec<(String,)> = q.build_query_as().fetch_all(&mut *tx).await?;
                added.extend(rows.into_iter().map(|(c,)| c));
            }
            tx.commit().await?;
            let changed = added.len() as u64;
            Ok(BulkOutcome {
                changed,
                unchanged: edges_len as u64 - changed,
                per_creator: per_creator(added),
            })
        }

        async fn delete_follows(&self, edges: &[(String, String)]) -> Result<BulkOutcome> {
            let sorted = in_lock_order(edges);
            let edges_len = edges.len();
            let edges = sorted.as_slice();
            let mut tx = D::begin_write(&self.pool).await?;
            let mut removed: Vec<String> = Vec::new();
            for chunk in edges.chunks(EDGES_PER_STATEMENT) {
                let mut q = QueryBuilder::<DB>::new("DELETE FROM follows WHERE (creator, follower) IN (VALUES ");
                let mut first = true;
                for (follower, creator) in chunk {
                    q.push(if first { "(" } else { ", (" });
                    first = false;
                    q.push_bind(creator.as_str()).push(", ").push_bind(follower.as_str()).push(")");
                }
                q.push(") RETURNING creator");
                let rows: Vec<(String,)> = q.build_query_as().fetch_all(&mut *tx).await?;
                removed.extend(rows.into_iter().map(|(c,)| c));
            }
            tx.commit().await?;
            let changed = removed.len() as u64;
            Ok(BulkOutcome {
                changed,
                unchanged: edges_len as u64 - changed,
                per_creator: per_creator(removed),
            })
        }

        async fn followers_page(&self, creator: &str, len_max: i64, after: Option<&FollowCursor>) -> Result<Vec<FollowEdge>> {
            let sql = paged(FOLLOWERS, FOLLOWERS_AFTER, FOLLOWERS_ORDER, after);
            self.follow_page(&sql, creator, len_max, after).await
        }

        async fn following_page(&self, user: &str, len_max: i64, after: Option<&FollowCursor>) -> Result<Vec<FollowEdge>> {
            let sql = paged(FOLLOWING, FOLLOWING_AFTER, FOLLOWING_ORDER, after);
            self.follow_page(&sql, user, len_max, after).await
        }

        async fn follower_count(&self, creator: &str) -> Result<i64> {
            self.count_of(COUNT, creator).await
        }

        async fn follower_counts(&self) -> Result<Vec<(String, i64)>> {
            Ok(sqlx::query_as::<DB, (String, i64)>(COUNTS).fetch_all(&self.pool).await?)
        }

        async fn creator_facts(&self, creator: &str) -> Result<CreatorFacts> {
            let live_room: Option<String> = sqlx::query_scalar::<DB, String>(LIVE_ROOM)
                .bind(creator)
                .fetch_optional(&self.pool)
                .await?;
            let rooms = self.count_of(ROOMS, creator).await?;
            let videos = self.count_of(VIDEOS, creator).await?;
            Ok(CreatorFacts { known: rooms + videos > 0, live_room, videos })
        }
    }
}

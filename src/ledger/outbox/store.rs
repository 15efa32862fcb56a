//! [`WebhookStore`] of each engine: one SQL text for both dialects, the
//! engine-specific parts (how a write transaction begins, the PostgreSQL
//! outbox lock) passed to one macro.

use sqlx::{PgPool, Row, SqlitePool};

use super::{
    frame_events, pg_lock, sqlite_lock, unframe, Attempt, ClaimedEndpoint, DeliveryRecord,
    NewEndpoint, OutboxEvent, WebhookEndpoint, WebhookStore, INSERT_EVENT_ONCE,
};
use crate::error::{Error, Result};
use crate::protocol::now_ms;

/// The webhook store of the SQLite ledger.
pub struct SqliteWebhooks(pub SqlitePool);

/// The webhook store of the PostgreSQL ledger.
pub struct PgWebhooks(pub PgPool);

const ENDPOINT_COLUMNS: &str =
    "id, url, events, created_ms, disabled_ms, disabled_reason, failing_since_ms";

macro_rules! store_impl {
    ($store:ty, $begin:ident, $lock:ident) => {
        #[async_trait::async_trait]
        impl WebhookStore for $store {
            async fn create(&self, ep: &NewEndpoint, len_max: u32) -> Result<WebhookEndpoint> {
                let mut tx = $begin(&self.0).await?;
                $lock(&mut *tx).await?;
                let n: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM webhook_endpoints WHERE creator = $1")
                        .bind(&ep.creator)
                        .fetch_one(&mut *tx)
                        .await?;
                if n >= i64::from(len_max) {
                    return Err(Error::bad_request(format!(
                        "at most {len_max} webhook endpoints per creator (webhooks.endpoints_per_creator_max)"
                    )));
                }
                let created_ms = now_ms();
                sqlx::query("INSERT INTO webhook_endpoints (id, creator, url, secret, events, created_ms, done_id) SELECT $1, $2, $3, $4, $5, $6, COALESCE(MAX(id), 0) FROM webhook_outbox")
                    .bind(&ep.id)
                    .bind(&ep.creator)
                    .bind(&ep.url)
                    .bind(&ep.secret)
                    .bind(frame_events(&ep.events))
                    .bind(created_ms)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(WebhookEndpoint {
                    id: ep.id.clone(),
                    url: ep.url.clone(),
                    events: ep.events.clone(),
                    created_ms,
                    disabled_ms: None,
                    disabled_reason: None,
                    failing_since_ms: None,
                })
            }

            async fn list(&self, creator: &str) -> Result<Vec<WebhookEndpoint>> {
                let rows = sqlx::query(&format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE creator = $1 ORDER BY created_ms, id"
                ))
                .bind(creator)
                .fetch_all(&self.0)
                .await?;
                Ok(rows
                    .iter()
                    .map(|r| WebhookEndpoint {
                        id: r.get(0),
                        url: r.get(1),
                        events: unframe(&r.get::<String, _>(2)),
                        created_ms: r.get(3),
                        disabled_ms: r.get(4),
                        disabled_reason: r.get(5),
                        failing_since_ms: r.get(6),
                    })
                    .collect())
            }

            async fn delete(&self, creator: &str, id: &str) -> Result<bool> {
                let mut tx = $begin(&self.0).await?;
                let n = sqlx::query("DELETE FROM webhook_endpoints WHERE creator = $1 AND id = $2")
                    .bind(creator)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("DELETE FROM webhook_deliveries WHERE endpoint_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn deliveries(
                &self,
                creator: &str,
                id: &str,
                len_max: u32,
            ) -> Result<Option<Vec<DeliveryRecord>>> {
                let found: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM webhook_endpoints WHERE creator = $1 AND id = $2",
                )
                .bind(creator)
                .bind(id)
                .fetch_optional(&self.0)
                .await?;
                if found.is_none() {
                    return Ok(None);
                }
                let rows = sqlx::query("SELECT event_id, attempt, status, error, at_ms, duration_ms FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2")
                    .bind(id)
                    .bind(i64::from(len_max))
                    .fetch_all(&self.0)
                    .await?;
                Ok(Some(
                    rows.iter()
                        .map(|r| DeliveryRecord {
                            event_id: r.get(0),
                            attempt: r.get(1),
                            status: r.get(2),
                            error: r.get(3),
                            at_ms: r.get(4),
                            duration_ms: r.get(5),
                        })
                        .collect(),
                ))
            }

            async fn enqueue_once(
                &self,
                creator: &str,
                kind: &str,
                event_id: &str,
                data: &serde_json::Value,
            ) -> Result<bool> {
                let mut tx = $begin(&self.0).await?;
                $lock(&mut *tx).await?;
                let written = sqlx::query(INSERT_EVENT_ONCE)
                    .bind(event_id)
                    .bind(creator)
                    .bind(kind)
                    .bind(data.to_string())
                    .bind(now_ms())
                    .bind(format!("%,{kind},%"))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(written > 0)
            }

            async fn subscribed(&self, kind: &str) -> Result<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT DISTINCT creator FROM webhook_endpoints WHERE disabled_ms IS NULL AND events LIKE $1",
                )
                .bind(format!("%,{kind},%"))
                .fetch_all(&self.0)
                .await?)
            }

            async fn claim(
                &self,
                owner: &str,
                lease_ms: i64,
                len_max: u32,
            ) -> Result<Vec<ClaimedEndpoint>> {
                let now = now_ms();
                let mut tx = $begin(&self.0).await?;
                let rows = sqlx::query(
                    "UPDATE webhook_endpoints SET lease_owner = $1, lease_until_ms = $3
                     WHERE id IN (
                         SELECT e.id FROM webhook_endpoints e
                         WHERE e.disabled_ms IS NULL AND e.next_try_ms <= $2 AND e.lease_until_ms < $2
                           AND EXISTS (SELECT 1 FROM webhook_outbox o WHERE o.creator = e.creator AND o.id > e.done_id AND e.events LIKE ('%,' || o.type || ',%'))
                         ORDER BY e.next_try_ms LIMIT $4)
                       AND disabled_ms IS NULL AND lease_until_ms < $2
                     RETURNING id, creator, url, secret, events, done_id, attempts, first_try_ms, failing_since_ms",
                )
                .bind(owner)
                .bind(now)
                .bind(now + lease_ms)
                .bind(i64::from(len_max))
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(rows
                    .iter()
                    .map(|r| ClaimedEndpoint {
                        id: r.get(0),
                        creator: r.get(1),
                        url: r.get(2),
                        secret: r.get(3),
                        events: r.get(4),
                        done_id: r.get(5),
                        attempts: r.get(6),
                        first_try_ms: r.get(7),
                        failing_since_ms: r.get(8),
                    })
                    .collect())
            }

            async fn next_event(&self, ep: &ClaimedEndpoint) -> Result<Option<OutboxEvent>> {
                let row = sqlx::query("SELECT id, event_id, creator, type, payload, created_ms FROM webhook_outbox WHERE creator = $1 AND id > $2 AND $3 LIKE ('%,' || type || ',%') ORDER BY id LIMIT 1")
                    .bind(&ep.creator)
                    .bind(ep.done_id)
                    .bind(&ep.events)
                    .fetch_optional(&self.0)
                    .await?;
                Ok(row.map(|r| OutboxEvent {
                    id: r.get(0),
                    event_id: r.get(1),
                    creator: r.get(2),
                    kind: r.get(3),
                    payload: r.get(4),
                    created_ms: r.get(5),
                }))
            }

            async fn record(&self, a: &Attempt, deliveries_max: u32) -> Result<bool> {
                let mut tx = $begin(&self.0).await?;
                let disabled_ms = a.disable.as_ref().map(|_| a.record.at_ms);
                let n = sqlx::query(
                    "UPDATE webhook_endpoints SET done_id = $3, attempts = $4, first_try_ms = $5, next_try_ms = $6,
                         failing_since_ms = $7, disabled_ms = $8, disabled_reason = $9, lease_until_ms = $10
                     WHERE id = $1 AND lease_owner = $2",
                )
                .bind(&a.endpoint_id)
                .bind(&a.owner)
                .bind(a.done_id)
                .bind(a.attempts)
                .bind(a.first_try_ms)
                .bind(a.next_try_ms)
                .bind(a.failing_since_ms)
                .bind(disabled_ms)
                .bind(&a.disable)
                .bind(a.lease_until_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    return Ok(false);
                }
                let r = &a.record;
                sqlx::query("INSERT INTO webhook_deliveries (endpoint_id, event_id, attempt, status, error, at_ms, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(&a.endpoint_id)
                    .bind(&r.event_id)
                    .bind(r.attempt)
                    .bind(r.status)
                    .bind(&r.error)
                    .bind(r.at_ms)
                    .bind(r.duration_ms)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM webhook_deliveries WHERE endpoint_id = $1 AND id <= (SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)")
                    .bind(&a.endpoint_id)
                    .bind(i64::from(deliveries_max))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn release(&self, owner: &str, id: &str) -> Result<()> {
                sqlx::query("UPDATE webhook_endpoints SET lease_owner = NULL, lease_until_ms = 0 WHERE id = $1 AND lease_owner = $2")
                    .bind(id)
                    .bind(owner)
                    .execute(&self.0)
                    .await?;
                Ok(())
            }

            async fn prune(&self, before_ms: i64) -> Result<u64> {
                Ok(sqlx::query("DELETE FROM webhook_outbox WHERE created_ms < $1")
                    .bind(before_ms)
                    .execute(&self.0)
                    .await?
                    .rows_affected())
            }
        }
    };
}

async fn sqlite_begin(pool: &SqlitePool) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

async fn pg_begin(pool: &PgPool) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    pool.begin().await
}

store_impl!(SqliteWebhooks, sqlite_begin, sqlite_lock);
store_impl!(PgWebhooks, pg_begin, pg_lock);

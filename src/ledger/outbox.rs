//! The webhook outbox and endpoints, stored in the ledger database.
//!
//! Owns: the SQL of webhooks (tables of `migrations/*/0008_webhooks.sql`):
//! the outbox rows written inside the ledger's own transactions
//! ([`sqlite_gifts`], [`pg_gifts`], [`sqlite_tip`], [`pg_tip`]: a gift or
//! tip event is written in the transaction that settles it; [`sqlite_once`],
//! [`pg_once`]: a `follow` in the transaction that adds the edge, and only when
//! the creator has an enabled endpoint subscribed to its type, so creators
//! without webhooks pay one indexed lookup per batch), and the
//! [`WebhookStore`] of each engine (endpoints, claims with a lease,
//! delivery attempts, pruning). The SQL text is shared by both dialects
//! (`$n` parameters); on PostgreSQL every outbox write and endpoint
//! creation takes one transaction-scoped advisory lock, so outbox ids
//! commit in increasing order and a delivery cursor never skips a row.
//! Must not: decide retries, sign or send anything (`crate::webhooks` does).

use async_trait::async_trait;
use serde::Serialize;
use sqlx::{PgConnection, Row, SqliteConnection};

use super::TipRecord;
use crate::error::Result;
use crate::model::PendingGift;
use crate::protocol::now_ms;

/// The event types an endpoint may subscribe to.
pub const EVENT_TYPES: &[&str] = &["gift", "tip", "combo_end", "follow"];

/// The transaction-scoped advisory lock ordering outbox writes on
/// PostgreSQL (ASCII "gs-whook").
const PG_OUTBOX_LOCK: i64 = 0x6773_2d77_686f_6f6b;

/// An endpoint as shown to its creator (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookEndpoint {
    /// Endpoint id (`we_...`).
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Subscribed event types.
    pub events: Vec<String>,
    /// Registration time, ms.
    pub created_ms: i64,
    /// When it was disabled, ms (None while enabled).
    pub disabled_ms: Option<i64>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Since when every attempt failed, ms (None while healthy).
    pub failing_since_ms: Option<i64>,
}

/// A new endpoint, with its secret.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    /// Endpoint id.
    pub id: String,
    /// Owner.
    pub creator: String,
    /// Checked URL.
    pub url: String,
    /// Signing secret (`whsec_...`).
    pub secret: String,
    /// Subscribed types (each in [`EVENT_TYPES`]).
    pub events: Vec<String>,
}

/// An endpoint claimed for delivery by one worker (under a lease).
#[derive(Debug, Clone)]
pub struct ClaimedEndpoint {
    /// Endpoint id.
    pub id: String,
    /// Owner.
    pub creator: String,
    /// Destination.
    pub url: String,
    /// Signing secret.
    pub secret: String,
    /// Subscribed types, framed by commas (`,gift,tip,`).
    pub events: String,
    /// Last outbox id done with.
    pub done_id: i64,
    /// Failed attempts at the event after `done_id`.
    pub attempts: i64,
    /// First attempt at that event, ms.
    pub first_try_ms: Option<i64>,
    /// Since when every attempt failed, ms.
    pub failing_since_ms: Option<i64>,
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Outbox id (the creator's order).
    pub id: i64,
    /// Event id (uuid v7), what receivers dedupe on.
    pub event_id: String,
    /// Owner.
    pub creator: String,
    /// Event type.
    pub kind: String,
    /// The event's `data`, JSON text.
    pub payload: String,
    /// When it was written, ms.
    pub created_ms: i64,
}

/// One delivery attempt as shown to the creator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryRecord {
    /// Event id.
    pub event_id: String,
    /// Attempt number for this event, from 1.
    pub attempt: i64,
    /// HTTP status answered (None when there was no answer).
    pub status: Option<i64>,
    /// Why there was no usable answer.
    pub error: Option<String>,
    /// When, ms.
    pub at_ms: i64,
    /// How long it took, ms.
    pub duration_ms: i64,
}

/// An attempt and the endpoint state it leads to (decided by the worker).
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Endpoint id.
    pub endpoint_id: String,
    /// The lease owner (a lost lease records nothing).
    pub owner: String,
    /// The attempt as recorded.
    pub record: DeliveryRecord,
    /// The endpoint's new `done_id`.
    pub done_id: i64,
    /// Failed attempts at the event after `done_id`.
    pub attempts: i64,
    /// First attempt at that event, ms.
    pub first_try_ms: Option<i64>,
    /// Not before, ms.
    pub next_try_ms: i64,
    /// Since when every attempt failed, ms.
    pub failing_since_ms: Option<i64>,
    /// Disable now, with this reason.
    pub disable: Option<String>,
    /// The lease's new end, ms.
    pub lease_until_ms: i64,
}

/// Webhook storage of one ledger engine.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Register an endpoint (it receives events written from now on);
    /// `bad_request` when the creator already has `len_max`.
    async fn create(&self, ep: &NewEndpoint, len_max: u32) -> Result<WebhookEndpoint>;
    /// The creator's endpoints, oldest first.
    async fn list(&self, creator: &str) -> Result<Vec<WebhookEndpoint>>;
    /// Remove an endpoint of the creator (and its attempts); false when
    /// there is none with that id.
    async fn delete(&self, creator: &str, id: &str) -> Result<bool>;
    /// The latest attempts (newest first) of the creator's endpoint; None
    /// when there is no such endpoint.
    async fn deliveries(
        &self,
        creator: &str,
        id: &str,
        len_max: u32,
    ) -> Result<Option<Vec<DeliveryRecord>>>;
    /// Write an event outside the ledger's money transactions (e.g.
    /// `combo_end`, `follow`), when the creator has an enabled endpoint
    /// subscribed to `kind`. Answers whether it was written.
    async fn enqueue(&self, creator: &str, kind: &str, data: &serde_json::Value) -> Result<bool> {
        let event_id = uuid::Uuid::now_v7().to_string();
        self.enqueue_once(creator, kind, &event_id, data).await
    }
    /// [`WebhookStore::enqueue`] under a caller-made `event_id` that names
    /// the event itself (e.g. `combo_end:room:r1:13`): a second write of the
    /// same event writes nothing, so a redelivered source stays
    /// at-least-once without a duplicate. Answers whether it was written.
    async fn enqueue_once(
        &self,
        creator: &str,
        kind: &str,
        event_id: &str,
        data: &serde_json::Value,
    ) -> Result<bool>;
    /// The creators with an enabled endpoint subscribed to `kind`.
    async fn subscribed(&self, kind: &str) -> Result<Vec<String>>;
    /// Claim up to `len_max` enabled endpoints with an event due and no
    /// live lease, leasing them to `owner` until `now + lease_ms`.
    async fn claim(&self, owner: &str, lease_ms: i64, len_max: u32)
        -> Result<Vec<ClaimedEndpoint>>;
    /// The first subscribed event after `done_id`.
    async fn next_event(&self, ep: &ClaimedEndpoint) -> Result<Option<OutboxEvent>>;
    /// Record an attempt and apply its state, keeping the newest
    /// `deliveries_max` attempts; false when the lease was lost.
    async fn record(&self, a: &Attempt, deliveries_max: u32) -> Result<bool>;
    /// End `owner`'s lease on the endpoint.
    async fn release(&self, owner: &str, id: &str) -> Result<()>;
    /// Delete outbox rows written before `before_ms`; answers how many.
    async fn prune(&self, before_ms: i64) -> Result<u64>;
}

/// `,a,b,` of a list of types.
pub fn frame_events(events: &[String]) -> String {
    format!(",{},", events.join(","))
}

/// The subscribed types of a framed list.
fn unframe(events: &str) -> Vec<String> {
    events
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The `data` of a gift event.
fn gift_data(g: &PendingGift) -> serde_json::Value {
    let (kind, id) = g.target.split_once(':').unwrap_or(("room", &g.target));
    serde_json::json!({
        kind: id,
        "seq": g.seq,
        "sender": g.sender,
        "gift": g.gift,
        "count": g.count,
        "coins": g.coins,
        "diamonds": g.diamonds,
        "ts_ms": g.ts,
    })
}

/// The `data` of a tip event.
fn tip_data(t: &TipRecord) -> serde_json::Value {
    let (kind, id) = t.target.split_once(':').unwrap_or(("room", &t.target));
    serde_json::json!({
        kind: id,
        "sender": t.sender,
        "amount_cents": t.amount_cents,
        "currency": t.currency,
        "message": t.message,
        "payment_intent": t.payment_intent,
    })
}

const INSERT_EVENT: &str = "INSERT INTO webhook_outbox (event_id, creator, type, payload, created_ms) SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE creator = $2 AND disabled_ms IS NULL AND events LIKE $6)";

/// [`INSERT_EVENT`], writing nothing when the event id is already there.
pub(crate) const INSERT_EVENT_ONCE: &str = "INSERT INTO webhook_outbox (event_id, creator, type, payload, created_ms) SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE creator = $2 AND disabled_ms IS NULL AND events LIKE $6) ON CONFLICT (event_id) DO NOTHING";

/// Write one event if `creator` has an enabled endpoint subscribed to it.
macro_rules! insert_event {
    ($conn:expr, $creator:expr, $kind:expr, $data:expr) => {{
        sqlx::query(INSERT_EVENT)
            .bind(uuid::Uuid::now_v7().to_string())
            .bind($creator)
            .bind($kind)
            .bind($data.to_string())
            .bind(now_ms())
            .bind(format!("%,{},%", $kind))
            .execute(&mut *$conn)
            .await?;
    }};
}

/// Gift events of a settling batch (SQLite), in the batch's transaction.
pub async fn sqlite_gifts(
    conn: &mut SqliteConnection,
    gifts: &[&PendingGift],
) -> super::error::LedgerResult<()> {
    let mut creators: Vec<&str> = gifts.iter().map(|g| g.creator.as_str()).collect();
    creators.sort_unstable();
    creators.dedup();
    let mut subscribed = Vec::new();
    for chunk in creators.chunks(500) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT DISTINCT creator FROM webhook_endpoints WHERE disabled_ms IS NULL AND events LIKE '%,gift,%' AND creator IN (",
        );
        let mut s = q.separated(", ");
        for c in chunk {
            s.push_bind(*c);
        }
        q.push(")");
        for r in q.build().fetch_all(&mut *conn).await? {
            subscribed.push(r.get::<String, _>(0));
        }
    }
    for g in gifts.iter().filter(|g| subscribed.contains(&g.creator)) {
        insert_event!(conn, &g.creator, "gift", gift_data(g));
    }
    Ok(())
}

/// Gift events of a settling batch (PostgreSQL), in the batch's transaction.
pub async fn pg_gifts(
    conn: &mut PgConnection,
    gifts: &[&PendingGift],
) -> super::error::LedgerResult<()> {
    let mut creators: Vec<&str> = gifts.iter().map(|g| g.creator.as_str()).collect();
    creators.sort_unstable();
    creators.dedup();
    let subscribed: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT creator FROM webhook_endpoints WHERE disabled_ms IS NULL AND events LIKE '%,gift,%' AND creator = ANY($1::text[])",
    )
    .bind(&creators)
    .fetch_all(&mut *conn)
    .await?;
    if subscribed.is_empty() {
        return Ok(());
    }
    pg_lock(conn).await?;
    for g in gifts.iter().filter(|g| subscribed.contains(&g.creator)) {
        insert_event!(conn, &g.creator, "gift", gift_data(g));
    }
    Ok(())
}

/// The tip event of a succeeding tip (SQLite), in its transaction.
pub async fn sqlite_tip(
    conn: &mut SqliteConnection,
    tip: &TipRecord,
) -> super::error::LedgerResult<()> {
    insert_event!(conn, &tip.creator, "tip", tip_data(tip));
    Ok(())
}

/// The tip event of a succeeding tip (PostgreSQL), in its transaction.
pub async fn pg_tip(conn: &mut PgConnection, tip: &TipRecord) -> super::error::LedgerResult<()> {
    let subscribed: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE creator = $1 AND disabled_ms IS NULL AND events LIKE '%,tip,%')")
        .bind(&tip.creator)
        .fetch_one(&mut *conn)
        .await?;
    if subscribed {
        pg_lock(conn).await?;
        insert_event!(conn, &tip.creator, "tip", tip_data(tip));
    }
    Ok(())
}

/// One event under a caller-made event id (SQLite), in the caller's
/// transaction (a `follow` with its edge): written when the creator has
/// an enabled endpoint subscribed to `kind`, once per event id.
pub async fn sqlite_once(
    conn: &mut SqliteConnection,
    creator: &str,
    kind: &str,
    event_id: &str,
    data: &serde_json::Value,
) -> super::error::LedgerResult<()> {
    sqlx::query(INSERT_EVENT_ONCE)
        .bind(event_id)
        .bind(creator)
        .bind(kind)
        .bind(data.to_string())
        .bind(now_ms())
        .bind(format!("%,{kind},%"))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// [`sqlite_once`] on PostgreSQL (the outbox lock taken only when the
/// creator is subscribed).
pub async fn pg_once(
    conn: &mut PgConnection,
    creator: &str,
    kind: &str,
    event_id: &str,
    data: &serde_json::Value,
) -> super::error::LedgerResult<()> {
    let subscribed: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE creator = $1 AND disabled_ms IS NULL AND events LIKE $2)")
        .bind(creator)
        .bind(format!("%,{kind},%"))
        .fetch_one(&mut *conn)
        .await?;
    if subscribed {
        pg_lock(conn).await?;
        sqlx::query(INSERT_EVENT_ONCE)
            .bind(event_id)
            .bind(creator)
            .bind(kind)
            .bind(data.to_string())
            .bind(now_ms())
            .bind(format!("%,{kind},%"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn pg_lock(conn: &mut PgConnection) -> super::error::LedgerResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PG_OUTBOX_LOCK)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn sqlite_lock(_conn: &mut SqliteConnection) -> Result<()> {
    // `BEGIN IMMEDIATE` already serializes writers.
    Ok(())
}

mod store;
pub use store::{PgWebhooks, SqliteWebhooks};

//! Followers as the ledger keeps them: one durable edge per (follower,
//! creator), added and removed one at a time or in bulk, listed newest
//! first under a cursor, and counted per creator (the counters engine's
//! follower counts are rebuilt from these counts).
//!
//! Owns: [`FollowLedger`] (a supertrait of [`super::Ledger`], so every
//! ledger answers it), its row types and [`FollowCursor`]. The SQL is in
//! `super::sql::follows`, written once for both dialects.
//! Must not: keep counts itself (the counters engine does, changed only by
//! what these calls report as really added or removed), or check who may
//! follow whom (the HTTP handlers do).

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;

/// The key of the last row of a page of edges; the next page starts after
/// it (rows are newest first): `(created_ms, the other side's id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowCursor {
    /// When the edge was added, ms since the epoch.
    pub ms: i64,
    /// The follower (a creator's list) or the creator (a user's list).
    pub key: String,
}

/// One edge as a list shows it: the other side and when it was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowEdge {
    /// The follower (in a creator's list) or the creator (in a user's).
    pub user: String,
    /// When the edge was added, ms since the epoch.
    pub created_ms: i64,
}

/// What a bulk import or delete did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    /// Edges added (import) or removed (delete) now.
    pub changed: u64,
    /// Edges already there (import) or already absent (delete), duplicate
    /// lines of the request included.
    pub unchanged: u64,
    /// Per creator, how many of their edges changed now (the counters
    /// engine's adjustments).
    pub per_creator: Vec<(String, i64)>,
}

/// What a creator's public profile reads from the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatorFacts {
    /// Whether the ledger knows the creator (a room or video of theirs).
    pub known: bool,
    /// One of their live rooms, if any (the most recently opened).
    pub live_room: Option<String>,
    /// Their registered videos.
    pub videos: i64,
}

/// What the ledger answers about followers.
#[async_trait]
pub trait FollowLedger: Send + Sync {
    /// Add the edge `follower -> creator` at `now_ms`; true when it was
    /// added now (false: it was there). The `follow` webhook event is
    /// written in the same transaction, under the event id
    /// `follow:CREATOR:FOLLOWER:MS`, when the creator has an endpoint
    /// subscribed to it.
    async fn follow(&self, follower: &str, creator: &str, now_ms: i64) -> Result<bool>;

    /// Remove the edge; true when it was removed now (false: absent).
    async fn unfollow(&self, follower: &str, creator: &str) -> Result<bool>;

    /// Add every `(follower, creator)` edge at `now_ms` in one
    /// transaction (no events).
    async fn import_follows(&self, edges: &[(String, String)], now_ms: i64) -> Result<BulkOutcome>;

    /// Remove every `(follower, creator)` edge in one transaction.
    async fn delete_follows(&self, edges: &[(String, String)]) -> Result<BulkOutcome>;

    /// `creator`'s followers newest first, at most `len_max`, after `after`.
    async fn followers_page(
        &self,
        creator: &str,
        len_max: i64,
        after: Option<&FollowCursor>,
    ) -> Result<Vec<FollowEdge>>;

    /// The creators `user` follows, newest first, at most `len_max`, after
    /// `after`.
    async fn following_page(
        &self,
        user: &str,
        len_max: i64,
        after: Option<&FollowCursor>,
    ) -> Result<Vec<FollowEdge>>;

    /// `creator`'s followers in the ledger.
    async fn follower_count(&self, creator: &str) -> Result<i64>;

    /// Followers per creator (creators without any left out): what the
    /// counters engine's counts are rebuilt from.
    async fn follower_counts(&self) -> Result<Vec<(String, i64)>>;

    /// What a creator's profile shows besides followers.
    async fn creator_facts(&self, creator: &str) -> Result<CreatorFacts>;
}

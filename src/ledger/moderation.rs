//! What a creator controls on their stream, as the ledger keeps it: the
//! users they blocked, their moderators, and the audit of every moderation
//! action (issue 17; tables in `migrations/*/0011_moderation.sql`).
//!
//! Owns: [`ModerationLedger`] (a supertrait of [`super::Ledger`], so every
//! ledger answers it), its row types, the action names ([`action`]) and
//! the rule of who may block whom ([`ModerationLedger::set_block`]). The
//! SQL is in `super::sql::moderation`, written once for both dialects;
//! every action writes its audit row in its own transaction.
//! Must not: enforce a block (the counters engine caches the blocks and
//! refuses gifts; joins and tips ask it), or cache anything (it is the
//! system of record the cache is rebuilt from).

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;

/// The audit's action names (`moderation_audit.action`), shared with the
/// message rules (`words_set`, `settings_set`, `approve`, `reject`).
pub mod action {
    /// A user was blocked.
    pub const BLOCK: &str = "block";
    /// A user was unblocked.
    pub const UNBLOCK: &str = "unblock";
    /// A moderator was added.
    pub const MODERATOR_ADD: &str = "moderator_add";
    /// A moderator was removed.
    pub const MODERATOR_REMOVE: &str = "moderator_remove";
}

/// One user a creator blocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Block {
    /// The blocked user.
    pub user: String,
    /// Who blocked them (the creator or one of their moderators).
    pub blocked_by: String,
    /// When, ms since the epoch.
    pub created_ms: i64,
}

/// One moderator of a creator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moderator {
    /// The moderator.
    pub user: String,
    /// Who added them (the creator).
    pub added_by: String,
    /// When, ms since the epoch.
    pub created_ms: i64,
}

/// One moderation action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Its id (increasing).
    pub id: i64,
    /// Who did it.
    pub actor: String,
    /// What ([`action`]).
    pub action: String,
    /// On what: a user, a message id.
    pub target: String,
    /// More about it (may be empty).
    pub detail: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
}

/// A moderation action on one user: who does what to whom, for whom.
#[derive(Debug, Clone, Copy)]
pub struct UserAction<'a> {
    /// The creator whose stream it is.
    pub creator: &'a str,
    /// The user acted on.
    pub user: &'a str,
    /// Who acts: the creator, or (blocks only) one of their moderators.
    pub actor: &'a str,
    /// When, ms since the epoch.
    pub now_ms: i64,
}

/// What the ledger keeps of blocks, moderators and the audit.
#[async_trait]
pub trait ModerationLedger: Send + Sync {
    /// Block (`blocked`) or unblock `a.user` on `a.creator`'s stream, with
    /// its audit row, in one transaction. The actor must be the creator or
    /// one of their moderators (`forbidden` otherwise), and a moderator
    /// may not act on the creator or on another moderator (`forbidden`).
    /// Answers whether anything changed (a repeat writes nothing, not even
    /// an audit row).
    async fn set_block(&self, a: UserAction<'_>, blocked: bool) -> Result<bool>;

    /// Whether `user` is blocked by `creator`.
    async fn is_blocked(&self, creator: &str, user: &str) -> Result<bool>;

    /// `creator`'s blocks newest first, at most `len_max`, after the key
    /// `(created_ms, user)` of the last one of the page before.
    async fn blocks(
        &self,
        creator: &str,
        len_max: i64,
        after: Option<(i64, String)>,
    ) -> Result<Vec<Block>>;

    /// Every block as `(creator, user)`, ordered by creator (rebuilding the
    /// counters engine's cache).
    async fn all_blocks(&self) -> Result<Vec<(String, String)>>;

    /// Add (`on`) or remove `a.user` as a moderator of `a.creator` (the
    /// actor, who must be the creator), with its audit row, in one
    /// transaction. Answers whether anything changed.
    async fn set_moderator(&self, a: UserAction<'_>, on: bool) -> Result<bool>;

    /// `creator`'s moderators, oldest first.
    async fn moderators(&self, creator: &str) -> Result<Vec<Moderator>>;

    /// Whether `user` moderates `creator`'s stream.
    async fn is_moderator(&self, creator: &str, user: &str) -> Result<bool>;

    /// The creators `user` moderates, by name.
    async fn moderating(&self, user: &str) -> Result<Vec<String>>;

    /// `creator`'s moderation actions newest first, at most `len_max`,
    /// with an id below `before_id` when given.
    async fn audit(
        &self,
        creator: &str,
        len_max: i64,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditEntry>>;
}

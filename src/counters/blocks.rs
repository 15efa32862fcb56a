//! The counters engines' cache of creators' blocks (issue 17): the
//! [`BlockCache`] every engine answers (a supertrait of
//! [`super::Counters`]). The in-process engine keeps them in
//! `memory::blocks`, Redis a set per creator (`redis::blocks`).
//!
//! Owns: each creator's set of blocked users and the block generation
//! (moved on by every change, so a rebuild from a ledger read taken
//! before a change does not undo it). The gift itself checks the set in
//! its atomic step (`memory`, `lua/gift.lua`).
//! Must not: decide who may block (the ledger does), or hold its lock
//! across an `.await`.

use async_trait::async_trait;

use super::Result;

/// Creators' blocked users, cached in the counters engine so that every
/// node checks them cheaply (the ledger is the truth it is rebuilt from).
#[async_trait]
pub trait BlockCache: Send + Sync {
    /// Block (`blocked`) or unblock `user` on `creator`'s stream in the
    /// cache every node reads (the ledger holds the block first): a blocked
    /// sender's [`Counters::gift`] to the creator's targets is refused
    /// (`forbidden`) in its atomic step. Moves the block generation on.
    async fn set_block(&self, creator: &str, user: &str, blocked: bool) -> Result<()>;

    /// Whether `creator` blocked `user` (joins and tips ask).
    async fn is_blocked(&self, creator: &str, user: &str) -> Result<bool>;

    /// The block generation: moved on by every [`BlockCache::set_block`].
    async fn blocks_generation(&self) -> Result<u64>;

    /// Replace `creator`'s blocked users by `users` (read from the ledger
    /// after the generation was `generation`), unless a block changed
    /// since: then nothing changes and the answer is false (read again).
    async fn rebuild_blocks(
        &self,
        creator: &str,
        users: &[String],
        generation: u64,
    ) -> Result<bool>;

    /// Creators with at least one blocked user in the cache.
    async fn blocked_creators(&self) -> Result<Vec<String>>;
}

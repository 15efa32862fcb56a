//! Creators' blocks in Redis: a set per creator (`{gs}:blk:<creator>`,
//! read by `gift.lua` itself) and the block generation (`{gs}:blkgen`,
//! moved on by every change, so a rebuild from an older ledger read is
//! refused rather than undo a change made meanwhile).

use super::keys::*;
use super::scripts::*;
use super::*;

/// The prefix of every creator's block set.
pub(super) fn blocks_prefix() -> String {
    key(&["blk", ""])
}

fn blocks_key(creator: &str) -> String {
    key(&["blk", creator])
}

fn generation_key() -> String {
    key(&["blkgen"])
}

#[async_trait]
impl crate::counters::BlockCache for RedisCounters {
    /// On Redis: the set and the generation in one MULTI.
    async fn set_block(&self, creator: &str, user: &str, blocked: bool) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd(if blocked { "SADD" } else { "SREM" })
            .arg(blocks_key(creator))
            .arg(user)
            .ignore();
        pipe.cmd("INCR").arg(generation_key()).ignore();
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(redis_err)
    }

    /// On Redis.
    async fn is_blocked(&self, creator: &str, user: &str) -> Result<bool> {
        redis::cmd("SISMEMBER")
            .arg(blocks_key(creator))
            .arg(user)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)
    }

    /// On Redis.
    async fn blocks_generation(&self) -> Result<u64> {
        Ok(self.get_i64(&generation_key()).await?.unwrap_or(0).max(0) as u64)
    }

    /// On Redis: one script.
    async fn rebuild_blocks(
        &self,
        creator: &str,
        users: &[String],
        generation: u64,
    ) -> Result<bool> {
        static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
        let script = SCRIPT.get_or_init(|| Script::new(include_str!("../lua/blocks_rebuild.lua")));
        let mut inv = script.key(blocks_key(creator));
        inv.key(generation_key()).arg(generation);
        for u in users {
            inv.arg(u);
        }
        let n: i64 = inv
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(n == 1)
    }

    /// On Redis (SCAN of the sets).
    async fn blocked_creators(&self) -> Result<Vec<String>> {
        self.scan_suffixes(&blocks_prefix()).await
    }
}

//! The in-process engine's cache of creators' blocks: [`BlockSets`] and
//! its [`BlockCache`] answers.
//!
//! Owns: each creator's set of blocked users and the block generation
//! (moved on by every change, so a rebuild from a ledger read taken
//! before a change does not undo it).
//! Must not: hold its lock across an `.await`.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use parking_lot::RwLock;

use super::MemoryCounters;
use crate::counters::{BlockCache, Result};

#[async_trait]
impl BlockCache for MemoryCounters {
    async fn set_block(&self, creator: &str, user: &str, blocked: bool) -> Result<()> {
        self.blocks.set(creator, user, blocked);
        Ok(())
    }

    async fn is_blocked(&self, creator: &str, user: &str) -> Result<bool> {
        Ok(self.blocks.contains(creator, user))
    }

    async fn blocks_generation(&self) -> Result<u64> {
        Ok(self.blocks.generation())
    }

    async fn rebuild_blocks(&self, creator: &str, users: &[String], gen: u64) -> Result<bool> {
        Ok(self.blocks.rebuild(creator, users, gen))
    }

    async fn blocked_creators(&self) -> Result<Vec<String>> {
        Ok(self.blocks.creators())
    }
}

/// Blocked users per creator, with the generation of the last change.
#[derive(Default)]
pub struct BlockSets {
    inner: RwLock<(u64, HashMap<String, HashSet<String>>)>,
}

impl BlockSets {
    /// Block or unblock `user` on `creator`'s stream.
    pub fn set(&self, creator: &str, user: &str, blocked: bool) {
        let mut g = self.inner.write();
        g.0 += 1;
        if blocked {
            g.1.entry(creator.to_string())
                .or_default()
                .insert(user.to_string());
        } else if let Some(set) = g.1.get_mut(creator) {
            set.remove(user);
            if set.is_empty() {
                g.1.remove(creator);
            }
        }
    }

    /// Whether `creator` blocked `user`.
    pub fn contains(&self, creator: &str, user: &str) -> bool {
        self.inner
            .read()
            .1
            .get(creator)
            .is_some_and(|s| s.contains(user))
    }

    /// The generation of the last change.
    pub fn generation(&self) -> u64 {
        self.inner.read().0
    }

    /// Replace `creator`'s set by `users` if no change happened since
    /// `generation`; false (nothing changed) otherwise.
    pub fn rebuild(&self, creator: &str, users: &[String], generation: u64) -> bool {
        let mut g = self.inner.write();
        if g.0 != generation {
            return false;
        }
        if users.is_empty() {
            g.1.remove(creator);
        } else {
            g.1.insert(creator.to_string(), users.iter().cloned().collect());
        }
        true
    }

    /// Creators with at least one block.
    pub fn creators(&self) -> Vec<String> {
        self.inner.read().1.keys().cloned().collect()
    }
}

//! Follower counts in process: the memory engine's map of creator ->
//! followers.
//!
//! Owns: [`FollowerCounts`]. Atomic per creator (one map entry changes
//! under its shard's lock), so concurrent adjustments never lose one.
//! Must not: decide when a count changes (only after the ledger reported
//! an edge really added or removed, `crate::app::follows`).

use dashmap::DashMap;

/// Followers per creator, in this process.
#[derive(Default)]
pub struct FollowerCounts(DashMap<String, i64>);

impl FollowerCounts {
    /// `creator`'s count (0 when none).
    pub fn get(&self, creator: &str) -> i64 {
        self.0.get(creator).map(|v| *v).unwrap_or(0)
    }

    /// Add `delta` to `creator`'s count; the new count.
    pub fn adjust(&self, creator: &str, delta: i64) -> i64 {
        let mut e = self.0.entry(creator.to_string()).or_insert(0);
        *e += delta;
        *e
    }

    /// Replace every count by `counts`.
    pub fn set_all(&self, counts: &[(String, i64)]) {
        self.0.clear();
        for (c, n) in counts {
            self.0.insert(c.clone(), *n);
        }
    }
}

//! The per-node cache of creators' message rules.
//!
//! Owns: [`RulesCache`]: a creator's compiled rules are read from the
//! ledger at most once per `moderation.rules_cache_ms` per node (so a
//! change made on one node applies on every other within that time, and
//! at once on the node that made it: [`RulesCache::invalidate`]), and at
//! most `moderation.rules_cache_len_max` creators are kept (past it, the
//! expired entries go, then the oldest).
//! Must not: hold a lock across a ledger read.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::rules::MessageRules;
use crate::error::Result;
use crate::ledger::Ledger;

/// Creators' rules, read through with a short TTL.
pub struct RulesCache {
    ttl: Duration,
    len_max: usize,
    entries: Mutex<HashMap<String, (Instant, Arc<MessageRules>)>>,
}

impl RulesCache {
    /// A cache keeping rules `ttl_ms`, for at most `len_max` creators.
    pub fn new(ttl_ms: u64, len_max: usize) -> RulesCache {
        RulesCache {
            ttl: Duration::from_millis(ttl_ms),
            len_max: len_max.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `creator`'s rules: cached, or read from `ledger` now.
    pub async fn get(&self, ledger: &dyn Ledger, creator: &str) -> Result<Arc<MessageRules>> {
        if let Some((at, rules)) = self.entries.lock().get(creator) {
            if at.elapsed() < self.ttl {
                return Ok(rules.clone());
            }
        }
        let settings = ledger.moderation_settings(creator).await?;
        let words = ledger.muted_words(creator).await?;
        let rules = Arc::new(MessageRules::new(settings.as_ref(), &words));
        let now = Instant::now();
        let mut m = self.entries.lock();
        if m.len() >= self.len_max && !m.contains_key(creator) {
            let ttl = self.ttl;
            m.retain(|_, (at, _)| at.elapsed() < ttl);
            if m.len() >= self.len_max {
                if let Some(oldest) = m
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
                {
                    m.remove(&oldest);
                }
            }
        }
        m.insert(creator.to_string(), (now, rules.clone()));
        Ok(rules)
    }

    /// Forget `creator`'s rules (they changed on this node).
    pub fn invalidate(&self, creator: &str) {
        self.entries.lock().remove(creator);
    }

    /// Creators cached now.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Nothing cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

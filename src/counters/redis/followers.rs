//! Follower counts in Redis: one hash, `{gs}:fl` (creator -> followers),
//! shared by every node.
//!
//! Owns: reading, adjusting (`HINCRBY`, atomic, so concurrent follows on
//! any node never lose one) and replacing the counts (one `MULTI`), and
//! the `{gs}:flloaded` mark that says the counts were loaded from the
//! ledger (a wipe removes it, so the next start loads them again).
//! Must not: decide when a count changes (after the ledger reported an
//! edge really added or removed), or read the ledger (the caller passes
//! its counts).

use super::keys::*;
use super::scripts::*;
use super::*;

/// Fields per `HSET` while replacing the counts.
const FIELDS_PER_HSET: usize = 1000;

impl RedisCounters {
    /// `creator`'s count (0 when none).
    pub(super) async fn followers_op(&self, creator: &str) -> Result<i64> {
        let n: Option<i64> = redis::cmd("HGET")
            .arg(followers_key())
            .arg(creator)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(n.unwrap_or(0))
    }

    /// Every count held (creator -> followers).
    pub(super) async fn all_followers(&self) -> Result<BTreeMap<String, i64>> {
        let all: HashMap<String, i64> = redis::cmd("HGETALL")
            .arg(followers_key())
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)?;
        Ok(all.into_iter().collect())
    }

    /// Add `delta` to `creator`'s count; the new count.
    pub(super) async fn adjust_followers_op(&self, creator: &str, delta: i64) -> Result<i64> {
        redis::cmd("HINCRBY")
            .arg(followers_key())
            .arg(creator)
            .arg(delta)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err)
    }

    /// Replace every count by `counts` in one `MULTI`, and mark them
    /// loaded. With `unless_loaded`, nothing happens when the mark is
    /// there (taken with `SET NX`, so one starting node loads them).
    /// Answers whether they were replaced.
    pub(super) async fn set_followers_op(
        &self,
        counts: &[(String, i64)],
        unless_loaded: bool,
    ) -> Result<bool> {
        let mut conn = self.conn();
        if unless_loaded {
            let took: Option<String> = redis::cmd("SET")
                .arg(followers_loaded_key())
                .arg(1)
                .arg("NX")
                .query_async(&mut conn)
                .await
                .map_err(redis_err)?;
            if took.is_none() {
                return Ok(false);
            }
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("DEL").arg(followers_key()).ignore();
        for chunk in counts.chunks(FIELDS_PER_HSET) {
            let mut hset = redis::cmd("HSET");
            hset.arg(followers_key());
            for (creator, n) in chunk {
                hset.arg(creator).arg(*n);
            }
            pipe.add_command(hset).ignore();
        }
        pipe.cmd("SET").arg(followers_loaded_key()).arg(1).ignore();
        let () = pipe.query_async(&mut conn).await.map_err(redis_err)?;
        Ok(true)
    }
}

/// Set a count only if it still holds what was read (`''` for none).
const FOLLOWERS_CAS: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if (v or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1";

impl RedisCounters {
    /// The counts that differ from the ledger's, as (creator, Redis,
    /// ledger); with `repair`, each set to the ledger's unless a follow
    /// changed it meanwhile (answered as skipped). Redis is read before
    /// the ledger, so a follow committed in between shows as a count that
    /// moved, not as drift to undo.
    pub(super) async fn reconcile_followers<L: crate::model::GiftRecords + ?Sized>(
        &self,
        ledger: &L,
        repair: bool,
    ) -> Result<(Vec<(String, i64, i64)>, usize)> {
        let held = self.all_followers().await?;
        let mut want: BTreeMap<String, i64> = ledger.follower_counts().await?.into_iter().collect();
        for c in held.keys() {
            want.entry(c.clone()).or_insert(0);
        }
        let drift: Vec<(String, i64, i64)> = want
            .into_iter()
            .filter_map(|(c, n)| {
                let h = held.get(&c).copied().unwrap_or(0);
                (h != n).then_some((c, h, n))
            })
            .collect();
        let mut skipped = 0;
        if repair {
            let cas = Script::new(FOLLOWERS_CAS);
            for (creator, _, n) in &drift {
                let seen = held.get(creator).map(|v| v.to_string()).unwrap_or_default();
                let done: i64 = cas
                    .key(followers_key())
                    .arg(creator)
                    .arg(seen)
                    .arg(*n)
                    .invoke_async(&mut self.conn())
                    .await
                    .map_err(redis_err)?;
                if done == 0 {
                    skipped += 1;
                }
            }
            let () = redis::cmd("SET")
                .arg(followers_loaded_key())
                .arg(1)
                .query_async(&mut self.conn())
                .await
                .map_err(redis_err)?;
        }
        Ok((drift, skipped))
    }
}

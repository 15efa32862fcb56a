//! Blocks and moderators (issue 17): the operations behind the moderation
//! routes, and the rebuild of the counters engine's block cache.
//!
//! Owns: the order of a block (ledger with its audit row first, then the
//! cache every node reads, then the drop of the user's open subscriptions
//! on every node), who acts for whom (a creator token for the creator's
//! own routes; the creator or a moderator, by the ledger's rule, on
//! `/v1/creators/{creator}/blocks`), and [`rebuild_block_cache`] (at start
//! and by `giftstream reconcile`).
//! Must not: hold SQL (the ledger's [`crate::ledger::moderation`]) or
//! transport details (http and hub do).

use crate::auth::{Identity, Role};
use crate::counters::Counters;
use crate::error::{Error, Result};
use crate::ledger::moderation::UserAction;
use crate::ledger::Ledger;
use crate::protocol::{check_name, now_ms};

use super::AppState;

/// Rebuild attempts when blocks keep changing during a rebuild.
const REBUILD_ATTEMPTS_MAX: u32 = 5;

/// Who acts on `creator`'s stream: `me` routes need the creator's own
/// creator token; on `/v1/creators/{creator}/...` the creator (creator
/// token) or any user the ledger finds among their moderators.
fn actor<'a>(who: &'a Identity, creator: &str) -> Result<&'a str> {
    if who.user == creator && who.role != Role::Creator {
        return Err(Error::forbidden(
            "the creator acts with a creator token (a viewer token of theirs may not)",
        ));
    }
    Ok(&who.user)
}

/// Block (`blocked`) or unblock `user` on `creator`'s stream as `who`:
/// the ledger first (with its audit row; it refuses an actor who is
/// neither the creator nor their moderator), then the cache, then, on a
/// block, the user's open subscriptions to the creator's rooms and videos
/// end on every node. A repeat changes nothing in the ledger but applies
/// the cache and the drop again (so a retry after a failure completes).
pub async fn set_block(
    state: &AppState,
    who: &Identity,
    creator: &str,
    user: &str,
    blocked: bool,
) -> Result<()> {
    check_name("creator", creator)?;
    check_name("user", user)?;
    if user == creator && who.user == creator {
        return Err(Error::bad_request("a creator cannot block themself"));
    }
    let actor = actor(who, creator)?;
    let action = UserAction {
        creator,
        user,
        actor,
        now_ms: now_ms(),
    };
    state.ledger.set_block(action, blocked).await?;
    // The ledger holds it: a failure from here on is completed by a retry.
    state
        .counters
        .set_block(creator, user, blocked)
        .await
        .map_err(|e| Error::from(e).into_outcome_unknown())?;
    if blocked {
        state
            .relay
            .drop_blocked(creator, user)
            .await
            .map_err(Error::into_outcome_unknown)?;
    }
    Ok(())
}

/// Add (`on`) or remove `user` as a moderator of `who` (a creator).
pub async fn set_moderator(state: &AppState, who: &Identity, user: &str, on: bool) -> Result<()> {
    who.require(Role::Creator)?;
    check_name("user", user)?;
    if user == who.user {
        return Err(Error::bad_request("a creator cannot moderate for themself"));
    }
    let action = UserAction {
        creator: &who.user,
        user,
        actor: &who.user,
        now_ms: now_ms(),
    };
    state.ledger.set_moderator(action, on).await?;
    Ok(())
}

/// Make the counters engine's block cache what the ledger holds: every
/// creator's set is replaced by the ledger's (creators without blocks are
/// emptied). A rebuild that a block or unblock overtook (the block
/// generation moved on) is read again, at most `REBUILD_ATTEMPTS_MAX`
/// times. Answers how many creators' sets were rebuilt.
pub async fn rebuild_block_cache(ledger: &dyn Ledger, counters: &dyn Counters) -> Result<usize> {
    for _ in 0..REBUILD_ATTEMPTS_MAX {
        let generation = counters.blocks_generation().await?;
        let mut sets: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (creator, user) in ledger.all_blocks().await? {
            sets.entry(creator).or_default().push(user);
        }
        for creator in counters.blocked_creators().await? {
            sets.entry(creator).or_default();
        }
        let mut rebuilt = 0;
        let mut overtaken = false;
        for (creator, users) in &sets {
            if counters.rebuild_blocks(creator, users, generation).await? {
                rebuilt += 1;
            } else {
                overtaken = true;
                break;
            }
        }
        if !overtaken {
            return Ok(rebuilt);
        }
    }
    Err(Error::internal(
        "blocks kept changing while the block cache was rebuilt; run `giftstream reconcile` again",
    ))
}

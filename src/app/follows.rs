//! Follows: the operations behind the follower routes, shared by every
//! node.
//!
//! Owns: the order of a follow (the edge in the ledger, with its webhook
//! event in the same transaction; then, only when the ledger really added
//! or removed the edge, the counters engine's count and the creator's
//! inbox), the bulk import and delete (one ledger transaction, counts
//! adjusted per creator, no events), and the creator's public profile.
//! Must not: check tokens (the HTTP handlers do) or hold SQL.

use serde::Serialize;

use super::AppState;
use crate::error::{Error, Result};
use crate::ledger::follows::BulkOutcome;
use crate::protocol::{now_ms, ServerMsg};

/// A follow or unfollow: whether the edge changed, and the count after.
#[derive(Debug, Clone, Serialize)]
pub struct FollowAnswer {
    /// The creator.
    pub creator: String,
    /// Whether the caller follows them now.
    pub following: bool,
    /// Whether this call changed it (false: it already was so).
    pub changed: bool,
    /// The creator's followers (the counters engine's count).
    pub followers: i64,
}

/// `follower` follows `creator` (idempotent); `bad_request` for oneself.
pub async fn follow(st: &AppState, follower: &str, creator: &str) -> Result<FollowAnswer> {
    if follower == creator {
        return Err(Error::bad_request("a creator cannot follow themselves"));
    }
    let ts = now_ms();
    let changed = st.ledger.follow(follower, creator, ts).await?;
    let followers = if changed {
        let n = st.counters.adjust_followers(creator, 1).await?;
        let msg = ServerMsg::FollowEvent {
            creator: creator.to_string(),
            follower: follower.to_string(),
            ts,
        };
        // The edge is in the ledger; the inbox event is best-effort (the
        // webhook event was written with the edge).
        if let Err(e) = st.relay.publish_inbox(creator, &msg).await {
            tracing::warn!(creator, error = %e.report(), "follow_event not put in the inbox");
        }
        n
    } else {
        st.counters.followers(creator).await?
    };
    Ok(FollowAnswer {
        creator: creator.to_string(),
        following: true,
        changed,
        followers: followers.max(0),
    })
}

/// `follower` stops following `creator` (idempotent).
pub async fn unfollow(st: &AppState, follower: &str, creator: &str) -> Result<FollowAnswer> {
    if follower == creator {
        return Err(Error::bad_request("a creator cannot follow themselves"));
    }
    let changed = st.ledger.unfollow(follower, creator).await?;
    let followers = if changed {
        st.counters.adjust_followers(creator, -1).await?
    } else {
        st.counters.followers(creator).await?
    };
    Ok(FollowAnswer {
        creator: creator.to_string(),
        following: false,
        changed,
        followers: followers.max(0),
    })
}

/// Apply a bulk change's per-creator counts to the counters engine.
async fn adjust_all(st: &AppState, outcome: &BulkOutcome, sign: i64) -> Result<()> {
    for (creator, n) in &outcome.per_creator {
        st.counters.adjust_followers(creator, sign * n).await?;
    }
    Ok(())
}

/// Add `(follower, creator)` edges in one ledger transaction (no events).
pub async fn import(st: &AppState, edges: &[(String, String)]) -> Result<BulkOutcome> {
    let outcome = st.ledger.import_follows(edges, now_ms()).await?;
    adjust_all(st, &outcome, 1).await?;
    Ok(outcome)
}

/// Remove `(follower, creator)` edges in one ledger transaction.
pub async fn delete(st: &AppState, edges: &[(String, String)]) -> Result<BulkOutcome> {
    let outcome = st.ledger.delete_follows(edges).await?;
    adjust_all(st, &outcome, -1).await?;
    Ok(outcome)
}

/// A creator's public profile.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// The creator's id.
    pub creator: String,
    /// Their name: the id when the ledger knows them (a room or video),
    /// else null (giftstream stores no display names).
    pub name: Option<String>,
    /// Followers (the counters engine's count).
    pub followers: i64,
    /// One of their live rooms, if any.
    pub live_room: Option<String>,
    /// Their registered videos.
    pub videos: i64,
    /// Marketplace status.
    pub marketplace: MarketplaceStatus,
}

/// What the profile says of the marketplace (for now: eligibility by
/// followers, `marketplace.followers_min`).
#[derive(Debug, Clone, Serialize)]
pub struct MarketplaceStatus {
    /// Followers at or above `marketplace.followers_min`.
    pub eligible: bool,
    /// The threshold.
    pub followers_min: u64,
}

/// `creator`'s public profile.
pub async fn profile(st: &AppState, creator: &str) -> Result<Profile> {
    let followers = st.counters.followers(creator).await?.max(0);
    let facts = st.ledger.creator_facts(creator).await?;
    let min = st.cfg.marketplace.followers_min;
    Ok(Profile {
        creator: creator.to_string(),
        name: facts.known.then(|| creator.to_string()),
        followers,
        live_room: facts.live_room,
        videos: facts.videos,
        marketplace: MarketplaceStatus {
            eligible: followers as u64 >= min,
            followers_min: min,
        },
    })
}

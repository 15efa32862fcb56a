//! The Creator Marketplace's profiles and eligibility: brands' profiles,
//! creators' marketplace profiles with the stats giftstream knows, joining
//! (and what is missing to join), and the input rules of `[marketplace]`.
//! Campaigns and applications are [`super::campaigns`].
//!
//! Owns: the validation of every marketplace text and list
//! (`marketplace.*_len_max`), the eligibility rule (followers at or above a
//! threshold and payouts enabled; what is missing named in `missing`), the
//! one place a creator's follower count is read ([`followers_of`]), and
//! the stats of a creator (followers, viewers of the last 30 days' lives,
//! gifts received).
//! Must not: check roles (the HTTP handlers do) or hold SQL.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use crate::error::{Error, ErrorCode, Result};
use crate::hub::tally::ViewerSummary;
use crate::ledger::marketplace::{BrandProfile, LiveRecord, MarketCreator, RateItem};
use crate::protocol::now_ms;
use crate::protocol::text::check_text;

/// The period of the viewer stats: 30 days.
pub const STATS_PERIOD_MS: i64 = 30 * 86_400_000;

/// A creator's followers: the counters engine's count (kept from the
/// ledger's `follows` edges; rebuilt at start and by reconcile).
pub async fn followers_of(st: &AppState, creator: &str) -> Result<i64> {
    Ok(st.counters.followers(creator).await?.max(0))
}

/// Whether the creator's connected account has payouts enabled.
pub async fn payouts_enabled(st: &AppState, creator: &str) -> Result<bool> {
    Ok(st
        .ledger
        .payout_account(creator)
        .await?
        .is_some_and(|a| a.payouts_enabled))
}

/// `bad_request` naming `what` unless `text` is 1..=`len_max` characters
/// under the text rule (no control or bidirectional character; a long
/// text may hold line breaks).
pub(super) fn check_field(what: &str, text: &str, len_max: usize, long: bool) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::bad_request(format!("{what} must not be empty")));
    }
    let plain = if long {
        text.replace('\n', " ")
    } else {
        text.to_string()
    };
    check_text(what, &plain, len_max)
}

/// `bad_request` unless `url` is an `http://` or `https://` URL with a
/// host, at most `len_max` characters.
pub(super) fn check_url(what: &str, url: &str, len_max: usize) -> Result<()> {
    check_field(what, url, len_max, false)?;
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| Error::bad_request(format!("{what} must be an http(s) URL")))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.contains(char::is_whitespace) {
        return Err(Error::bad_request(format!("{what} must be an http(s) URL")));
    }
    Ok(())
}

/// `bad_request` unless `list` has at most `marketplace.list_len_max`
/// entries; answers its tags lowercased (tags compare that way), each
/// checked as a short text, duplicates dropped.
pub(super) fn tags(st: &AppState, what: &str, list: &[String]) -> Result<Vec<String>> {
    let m = &st.cfg.marketplace;
    if list.len() > m.list_len_max {
        return Err(Error::bad_request(format!(
            "{what} must have at most {} entries (marketplace.list_len_max)",
            m.list_len_max
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for t in list {
        check_field(what, t, m.name_len_max, false)?;
        let t = t.to_lowercase();
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// What a brand writes of its profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrandInput {
    /// Display name.
    pub name: String,
    /// `http(s)://` URL.
    pub website: String,
    /// Industry.
    pub industry: String,
}

/// Write `brand`'s profile.
pub async fn put_brand(st: &AppState, brand: &str, input: BrandInput) -> Result<BrandProfile> {
    let m = &st.cfg.marketplace;
    check_field("name", &input.name, m.name_len_max, false)?;
    check_url("website", &input.website, m.url_len_max)?;
    check_field("industry", &input.industry, m.name_len_max, false)?;
    let p = BrandProfile {
        brand: brand.to_string(),
        name: input.name,
        website: input.website,
        industry: input.industry,
        updated_ms: now_ms(),
    };
    st.ledger.put_brand(&p).await?;
    Ok(p)
}

/// `brand`'s profile; `bad_request` "no such brand" (404) without one.
pub async fn brand(st: &AppState, brand: &str) -> Result<BrandProfile> {
    st.ledger
        .brand(brand)
        .await?
        .ok_or_else(|| Error::bad_request(format!("no such brand `{brand}`")))
}

/// What a creator writes of their marketplace profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatorInput {
    /// About them.
    #[serde(default)]
    pub bio: String,
    /// Niche tags.
    #[serde(default)]
    pub niches: Vec<String>,
    /// Language tags.
    #[serde(default)]
    pub languages: Vec<String>,
    /// Rate card.
    #[serde(default)]
    pub rate_card: Vec<RateItem>,
    /// Sample links.
    #[serde(default)]
    pub samples: Vec<String>,
}

/// Write `creator`'s marketplace profile (joining is separate).
pub async fn put_creator(
    st: &AppState,
    creator: &str,
    input: CreatorInput,
) -> Result<MarketCreator> {
    let m = &st.cfg.marketplace;
    if !input.bio.is_empty() {
        check_field("bio", &input.bio, m.text_len_max, true)?;
    }
    let niches = tags(st, "niches", &input.niches)?;
    let languages = tags(st, "languages", &input.languages)?;
    if input.rate_card.len() > m.list_len_max || input.samples.len() > m.list_len_max {
        return Err(Error::bad_request(format!(
            "rate_card and samples must have at most {} entries (marketplace.list_len_max)",
            m.list_len_max
        )));
    }
    for r in &input.rate_card {
        check_field(
            "rate_card deliverable",
            &r.deliverable,
            m.name_len_max,
            false,
        )?;
        if r.cents <= 0 || r.cents > m.budget_cents_max {
            return Err(Error::bad_request(format!(
                "rate_card cents must be 1..={} (marketplace.budget_cents_max)",
                m.budget_cents_max
            )));
        }
    }
    for s in &input.samples {
        check_url("samples", s, m.url_len_max)?;
    }
    let p = MarketCreator {
        creator: creator.to_string(),
        bio: input.bio,
        niches,
        languages,
        rate_card: input.rate_card,
        samples: input.samples,
        joined_ms: None,
        updated_ms: now_ms(),
    };
    st.ledger.put_market_creator(&p).await
}

/// What giftstream knows of a creator, for brands.
#[derive(Debug, Clone, Serialize)]
pub struct CreatorStats {
    /// Followers now.
    pub followers: i64,
    /// Lives ended in the last 30 days.
    pub lives_30d: i64,
    /// Average viewers of those lives (the mean of each live's
    /// time-weighted average).
    pub avg_viewers_30d: i64,
    /// Most viewers at once in those lives.
    pub peak_viewers_30d: i64,
    /// Diamonds earned from settled gifts, all time.
    pub gift_diamonds: i64,
    /// Settled gift units received, all time.
    pub gifts: i64,
}

/// `creator`'s stats.
pub async fn stats(st: &AppState, creator: &str) -> Result<CreatorStats> {
    let followers = followers_of(st, creator).await?;
    let lives = st
        .ledger
        .live_stats(creator, now_ms() - STATS_PERIOD_MS)
        .await?;
    let gifts = st.ledger.gift_stats(creator).await?;
    Ok(CreatorStats {
        followers,
        lives_30d: lives.lives,
        avg_viewers_30d: lives.avg_viewers,
        peak_viewers_30d: lives.peak_viewers,
        gift_diamonds: gifts.diamonds,
        gifts: gifts.gifts,
    })
}

/// A creator's marketplace profile with their stats and standing.
#[derive(Debug, Clone, Serialize)]
pub struct CreatorView {
    /// The profile (an empty one, not joined, when never written).
    #[serde(flatten)]
    pub profile: MarketCreator,
    /// Whether they joined (listed).
    pub joined: bool,
    /// Their stats.
    pub stats: CreatorStats,
}

/// `creator`'s marketplace profile as anyone sees it (`public`: `bad_request`
/// "no such marketplace creator" (404) unless they joined), or as they
/// see it themselves.
pub async fn creator_view(st: &AppState, creator: &str, public: bool) -> Result<CreatorView> {
    let profile = st.ledger.market_creator(creator).await?;
    let joined = profile.as_ref().is_some_and(|p| p.joined_ms.is_some());
    if public && !joined {
        return Err(Error::bad_request(format!(
            "no such marketplace creator `{creator}`"
        )));
    }
    let profile = profile.unwrap_or_else(|| MarketCreator {
        creator: creator.to_string(),
        bio: String::new(),
        niches: vec![],
        languages: vec![],
        rate_card: vec![],
        samples: vec![],
        joined_ms: None,
        updated_ms: 0,
    });
    Ok(CreatorView {
        profile,
        joined,
        stats: stats(st, creator).await?,
    })
}

/// Record an ended live's viewers for the stats (best effort: a failure is
/// logged, the live is ended regardless).
pub async fn record_live(st: &AppState, room: &str, creator: &str, v: ViewerSummary) {
    let rec = LiveRecord {
        room: room.to_string(),
        creator: creator.to_string(),
        opened_ms: v.opened_ms,
        ended_ms: now_ms(),
        peak_viewers: i64::try_from(v.peak).unwrap_or(i64::MAX),
        avg_viewers: i64::try_from(v.avg).unwrap_or(i64::MAX),
    };
    if let Err(e) = st.ledger.record_live(&rec).await {
        tracing::warn!(room, error = %e.report(), "live viewers not recorded");
    }
}

/// `not_eligible` with `missing` (one key per unmet requirement:
/// `followers`, how many are missing below `followers_min`; `payouts`,
/// true when payouts are not enabled), or Ok when none is unmet.
pub async fn check_eligible(st: &AppState, creator: &str, followers_min: i64) -> Result<()> {
    let followers = followers_of(st, creator).await?;
    let payouts = payouts_enabled(st, creator).await?;
    let mut missing = serde_json::Map::new();
    if followers < followers_min {
        missing.insert("followers".into(), json!(followers_min - followers));
    }
    if !payouts {
        missing.insert("payouts".into(), json!(true));
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::NotEligible,
        format!(
            "not eligible: {followers} of {followers_min} followers needed, payouts {}",
            if payouts { "enabled" } else { "not enabled" }
        ),
    )
    .with_detail("missing", serde_json::Value::Object(missing)))
}

/// `creator` joins the marketplace: at or above `marketplace.followers_min`
/// followers with payouts enabled (else `not_eligible` with `missing`).
/// Joining again answers the profile (the first join's time kept).
pub async fn join(st: &AppState, creator: &str) -> Result<CreatorView> {
    let min = i64::try_from(st.cfg.marketplace.followers_min).unwrap_or(i64::MAX);
    check_eligible(st, creator, min).await?;
    st.ledger.join_market(creator, now_ms()).await?;
    creator_view(st, creator, false).await
}

//! The Creator Marketplace's campaigns and applications: brands write,
//! publish and close campaigns, invite creators, accept or decline
//! applications; creators list the open campaigns they are eligible for,
//! apply and withdraw.
//!
//! Owns: the campaign input rules (lengths under `[marketplace]`, budget,
//! deadline in the future, minimum followers at or above
//! `marketplace.followers_min`), who owns what (a brand acts on its own
//! campaigns only, a creator on their own applications), and the rule that
//! only joined creators apply, and only while their followers reach the
//! campaign's minimum and their payouts are enabled (a creator who fell
//! below stays listed but cannot apply until back above).
//! Must not: check roles (the HTTP handlers do), hold SQL, or decide state
//! moves (the ledger applies [`crate::ledger::market_states`]).

use serde::{Deserialize, Serialize};

use super::marketplace::{check_eligible, check_field, followers_of, stats, tags, CreatorStats};
use super::AppState;
use crate::error::{Error, Result};
use crate::ledger::market_states::{
    ApplicationAction, ApplicationState, CampaignAction, CampaignState,
};
use crate::ledger::marketplace::{
    Application, ApplicationMove, Campaign, CampaignDraft, Contract, MarketCursor,
    OpenCampaignsQuery,
};
use crate::protocol::{check_name, now_ms};

/// A new id with `prefix` (`cmp_`, `app_`): time-ordered, unguessable.
fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

/// What a brand writes of a campaign.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    /// Title.
    pub title: String,
    /// The brief.
    pub brief: String,
    /// What the creator delivers.
    pub deliverables: Vec<String>,
    /// The most paid to one creator, cents.
    pub budget_cents: i64,
    /// ISO currency (three letters; stored lowercase).
    pub currency: String,
    /// Deadline, ms since the epoch (in the future).
    pub deadline_ms: i64,
    /// Followers a creator needs (default and minimum:
    /// `marketplace.followers_min`).
    #[serde(default)]
    pub followers_min: Option<i64>,
    /// Niche tags.
    #[serde(default)]
    pub niches: Vec<String>,
}

/// The campaign's fields, checked.
fn draft(st: &AppState, input: CampaignInput) -> Result<CampaignDraft> {
    let m = &st.cfg.marketplace;
    check_field("title", &input.title, m.name_len_max, false)?;
    check_field("brief", &input.brief, m.text_len_max, true)?;
    if input.deliverables.is_empty() || input.deliverables.len() > m.list_len_max {
        return Err(Error::bad_request(format!(
            "deliverables must have 1..={} entries (marketplace.list_len_max)",
            m.list_len_max
        )));
    }
    for d in &input.deliverables {
        check_field("deliverables", d, m.name_len_max, false)?;
    }
    if !(1..=m.budget_cents_max).contains(&input.budget_cents) {
        return Err(Error::bad_request(format!(
            "budget_cents must be 1..={} (marketplace.budget_cents_max)",
            m.budget_cents_max
        )));
    }
    let currency = input.currency.to_ascii_lowercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(Error::bad_request(
            "currency must be a three-letter ISO code",
        ));
    }
    if input.deadline_ms <= now_ms() {
        return Err(Error::bad_request("deadline_ms must be in the future"));
    }
    let floor = i64::try_from(m.followers_min).unwrap_or(i64::MAX);
    let followers_min = input.followers_min.unwrap_or(floor);
    if followers_min < floor {
        return Err(Error::bad_request(format!(
            "followers_min must be at least {floor} (marketplace.followers_min)"
        )));
    }
    Ok(CampaignDraft {
        title: input.title,
        brief: input.brief,
        deliverables: input.deliverables,
        budget_cents: input.budget_cents,
        currency,
        deadline_ms: input.deadline_ms,
        followers_min,
        niches: tags(st, "niches", &input.niches)?,
    })
}

/// A campaign of `brand`; `bad_request` "no such campaign" (404) when it
/// does not exist or is another brand's.
pub async fn own_campaign(st: &AppState, brand: &str, id: &str) -> Result<Campaign> {
    check_name("campaign", id)?;
    match st.ledger.campaign(id).await? {
        Some(c) if c.brand == brand => Ok(c),
        _ => Err(Error::bad_request(format!("no such campaign `{id}`"))),
    }
}

/// `brand` writes a new campaign (a draft).
pub async fn create(st: &AppState, brand: &str, input: CampaignInput) -> Result<Campaign> {
    let draft = draft(st, input)?;
    let now = now_ms();
    let c = Campaign {
        campaign: new_id("cmp_"),
        brand: brand.to_string(),
        draft,
        state: CampaignState::Draft,
        created_ms: now,
        updated_ms: now,
        published_ms: None,
    };
    st.ledger.create_campaign(&c).await?;
    Ok(c)
}

/// `brand` rewrites its campaign (a draft only: `conflict` otherwise).
pub async fn edit(st: &AppState, brand: &str, id: &str, input: CampaignInput) -> Result<Campaign> {
    own_campaign(st, brand, id).await?;
    let draft = draft(st, input)?;
    st.ledger.edit_campaign(id, &draft, now_ms()).await
}

/// `brand` publishes or closes its campaign.
pub async fn move_campaign(
    st: &AppState,
    brand: &str,
    id: &str,
    action: CampaignAction,
) -> Result<Campaign> {
    own_campaign(st, brand, id).await?;
    st.ledger.move_campaign(id, action, now_ms()).await
}

/// A campaign as its brand sees it: with its contracts.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignView {
    /// The campaign.
    #[serde(flatten)]
    pub campaign: Campaign,
    /// Its contracts.
    pub contracts: Vec<Contract>,
}

/// `brand`'s campaign with its contracts.
pub async fn view(st: &AppState, brand: &str, id: &str) -> Result<CampaignView> {
    let campaign = own_campaign(st, brand, id).await?;
    let contracts = st.ledger.campaign_contracts(id).await?;
    Ok(CampaignView {
        campaign,
        contracts,
    })
}

/// `brand`'s campaigns, newest first.
pub async fn brand_campaigns(
    st: &AppState,
    brand: &str,
    len_max: i64,
    after: Option<&MarketCursor>,
) -> Result<Vec<Campaign>> {
    st.ledger.brand_campaigns(brand, len_max, after).await
}

/// The open campaigns `creator` is eligible for (minimum followers at or
/// below theirs), newest published first, optionally of one niche and at
/// least one budget.
pub async fn open_for(
    st: &AppState,
    creator: &str,
    niche: Option<String>,
    budget_min_cents: Option<i64>,
    len_max: i64,
    after: Option<MarketCursor>,
) -> Result<Vec<Campaign>> {
    let followers = followers_of(st, creator).await?;
    st.ledger
        .open_campaigns(&OpenCampaignsQuery {
            followers,
            niche: niche.map(|n| n.to_lowercase()),
            budget_min_cents,
            len_max,
            after,
        })
        .await
}

/// What a creator writes to apply.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyInput {
    /// Why them.
    pub pitch: String,
    /// Their price, cents (at most the campaign's budget).
    pub price_cents: i64,
}

/// `creator` applies to an open campaign (or answers an invitation).
pub async fn apply(
    st: &AppState,
    creator: &str,
    id: &str,
    input: ApplyInput,
) -> Result<Application> {
    check_name("campaign", id)?;
    check_field("pitch", &input.pitch, st.cfg.marketplace.text_len_max, true)?;
    let c = st
        .ledger
        .campaign(id)
        .await?
        .filter(|c| c.state != CampaignState::Draft)
        .ok_or_else(|| Error::bad_request(format!("no such campaign `{id}`")))?;
    if input.price_cents <= 0 || input.price_cents > c.draft.budget_cents {
        return Err(Error::bad_request(format!(
            "price_cents must be 1..={} (the campaign's budget)",
            c.draft.budget_cents
        )));
    }
    let joined = st
        .ledger
        .market_creator(creator)
        .await?
        .is_some_and(|p| p.joined_ms.is_some());
    if !joined {
        return Err(Error::forbidden(
            "join the marketplace first (POST /v1/marketplace/creators/me)",
        ));
    }
    // Listed creators who fell below the minimum stay listed, but apply
    // only once back at or above it.
    check_eligible(st, creator, c.draft.followers_min).await?;
    st.ledger
        .apply(
            &new_id("app_"),
            id,
            creator,
            &input.pitch,
            input.price_cents,
            now_ms(),
        )
        .await
}

/// What a brand writes to invite.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteInput {
    /// The creator invited (a joined marketplace creator).
    pub creator: String,
}

/// `brand` invites a joined creator to its open campaign.
pub async fn invite(
    st: &AppState,
    brand: &str,
    id: &str,
    input: InviteInput,
) -> Result<Application> {
    own_campaign(st, brand, id).await?;
    check_name("creator", &input.creator)?;
    let listed = st
        .ledger
        .market_creator(&input.creator)
        .await?
        .is_some_and(|p| p.joined_ms.is_some());
    if !listed {
        return Err(Error::bad_request(format!(
            "no such marketplace creator `{}`",
            input.creator
        )));
    }
    st.ledger
        .invite(&new_id("app_"), id, &input.creator, now_ms())
        .await
}

/// An application with its creator's stats (a brand's list).
#[derive(Debug, Clone, Serialize)]
pub struct Applicant {
    /// The application.
    #[serde(flatten)]
    pub application: Application,
    /// The creator's stats now.
    pub stats: CreatorStats,
}

/// The applications of `brand`'s campaign with their creators' stats.
pub async fn applicants(
    st: &AppState,
    brand: &str,
    id: &str,
    len_max: i64,
    after: Option<&MarketCursor>,
) -> Result<Vec<Applicant>> {
    own_campaign(st, brand, id).await?;
    let apps = st.ledger.campaign_applications(id, len_max, after).await?;
    let mut out = Vec::with_capacity(apps.len());
    for a in apps {
        let stats = stats(st, &a.creator).await?;
        out.push(Applicant {
            application: a,
            stats,
        });
    }
    Ok(out)
}

/// `creator`'s applications and invitations, newest first.
pub async fn creator_applications(
    st: &AppState,
    creator: &str,
    len_max: i64,
    after: Option<&MarketCursor>,
) -> Result<Vec<Application>> {
    st.ledger
        .creator_applications(creator, len_max, after)
        .await
}

/// How many of a creator's newest applications
/// [`creator_contracts`] looks through.
pub const CONTRACTS_SCAN_MAX: i64 = 100;

/// The contracts of `creator`: those made from their newest
/// [`CONTRACTS_SCAN_MAX`] applications that were accepted, newest first
/// (a read for the marketplace page).
pub async fn creator_contracts(st: &AppState, creator: &str) -> Result<Vec<Contract>> {
    let apps = st
        .ledger
        .creator_applications(creator, CONTRACTS_SCAN_MAX, None)
        .await?;
    let mut out: Vec<Contract> = Vec::new();
    let mut campaigns_seen: Vec<&str> = Vec::new();
    for a in apps
        .iter()
        .filter(|a| a.state == ApplicationState::Accepted)
    {
        if campaigns_seen.contains(&a.campaign.as_str()) {
            continue;
        }
        campaigns_seen.push(&a.campaign);
        let mine = st.ledger.campaign_contracts(&a.campaign).await?;
        out.extend(mine.into_iter().filter(|c| c.creator == creator));
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.created_ms));
    Ok(out)
}

/// `brand` accepts or declines an application to one of its campaigns.
pub async fn brand_moves(
    st: &AppState,
    brand: &str,
    application: &str,
    action: ApplicationAction,
) -> Result<ApplicationMove> {
    check_name("application", application)?;
    let a = st.ledger.application(application).await?;
    let owned = match &a {
        Some(a) => st
            .ledger
            .campaign(&a.campaign)
            .await?
            .is_some_and(|c| c.brand == brand),
        None => false,
    };
    if !owned {
        return Err(Error::bad_request(format!(
            "no such application `{application}`"
        )));
    }
    st.ledger
        .move_application(application, action, now_ms())
        .await
}

/// `creator` withdraws their application (or declines an invitation).
pub async fn withdraw(st: &AppState, creator: &str, application: &str) -> Result<ApplicationMove> {
    check_name("application", application)?;
    let mine = st
        .ledger
        .application(application)
        .await?
        .is_some_and(|a| a.creator == creator);
    if !mine {
        return Err(Error::bad_request(format!(
            "no such application `{application}`"
        )));
    }
    st.ledger
        .move_application(application, ApplicationAction::Withdraw, now_ms())
        .await
}

//! The Creator Marketplace as the ledger keeps it: brands' profiles,
//! creators' marketplace profiles (and whether they joined), campaigns,
//! applications and invitations, the contract an accepted application
//! becomes, and the stats a brand sees of a creator (viewers of their
//! lives, gifts received).
//!
//! Owns: [`MarketplaceLedger`] (a supertrait of [`super::Ledger`], so every
//! ledger answers it) and its row types. The SQL is in
//! `super::sql::marketplace` (profiles, campaigns, stats) and
//! `super::sql::market_deals` (applications, contracts), written once for
//! both dialects; every state change goes through
//! [`super::market_states`] and moves a row only from the state it read.
//! Must not: check roles, eligibility or input lengths (the app layer
//! does), or touch money (escrow: [`super::escrow`]).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::market_states::{
    ApplicationAction, ApplicationState, CampaignAction, CampaignState, ContractState,
};
use crate::error::Result;

/// A brand's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrandProfile {
    /// The brand's user id.
    pub brand: String,
    /// Display name.
    pub name: String,
    /// `http(s)://` URL.
    pub website: String,
    /// Industry, free text.
    pub industry: String,
    /// Last written, ms since the epoch.
    pub updated_ms: i64,
}

/// One line of a creator's rate card: a deliverable and its price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateItem {
    /// What (e.g. "60 s integration in a live").
    pub deliverable: String,
    /// Price in cents.
    pub cents: i64,
}

/// A creator's marketplace profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketCreator {
    /// The creator's user id.
    pub creator: String,
    /// About them.
    pub bio: String,
    /// Niche tags.
    pub niches: Vec<String>,
    /// Languages (tags such as `en`, `fr`).
    pub languages: Vec<String>,
    /// Rate card.
    pub rate_card: Vec<RateItem>,
    /// Links to sample work (`http(s)://`).
    pub samples: Vec<String>,
    /// When they joined the marketplace (null: not joined).
    pub joined_ms: Option<i64>,
    /// Last written, ms since the epoch.
    pub updated_ms: i64,
}

/// What a brand writes of a campaign (creating it, or editing a draft).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignDraft {
    /// Title.
    pub title: String,
    /// The brief.
    pub brief: String,
    /// What the creator delivers.
    pub deliverables: Vec<String>,
    /// The most the brand pays one creator, cents.
    pub budget_cents: i64,
    /// ISO currency, lowercase.
    pub currency: String,
    /// Deadline, ms since the epoch.
    pub deadline_ms: i64,
    /// Followers a creator needs (at least `marketplace.followers_min`).
    pub followers_min: i64,
    /// Niche tags.
    pub niches: Vec<String>,
}

/// A campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Campaign {
    /// Its id.
    pub campaign: String,
    /// The brand's user id.
    pub brand: String,
    /// What the brand wrote.
    #[serde(flatten)]
    pub draft: CampaignDraft,
    /// Its state.
    pub state: CampaignState,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Last changed, ms since the epoch.
    pub updated_ms: i64,
    /// Published, ms since the epoch (null while a draft).
    pub published_ms: Option<i64>,
}

/// An application, or an invitation (`origin`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Application {
    /// Its id.
    pub application: String,
    /// The campaign.
    pub campaign: String,
    /// The creator.
    pub creator: String,
    /// `applied` (the creator's) or `invited` (the brand's).
    pub origin: String,
    /// The creator's pitch (null until they apply).
    pub pitch: Option<String>,
    /// The creator's price, cents (null until they apply).
    pub price_cents: Option<i64>,
    /// Its state.
    pub state: ApplicationState,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Last changed, ms since the epoch.
    pub updated_ms: i64,
}

/// What the creator delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deliverable {
    /// `http(s)://` link to the work.
    pub url: String,
    /// The creator's note.
    pub note: String,
    /// When submitted, ms since the epoch.
    pub submitted_ms: i64,
}

/// Which way a contract's escrow is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutKind {
    /// A Transfer of the price less the fee to the creator's connected
    /// account (approval).
    Transfer,
    /// A Refund of the price to the brand (rejection, cancellation).
    Refund,
}

impl PayoutKind {
    /// As stored and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutKind::Transfer => "transfer",
            PayoutKind::Refund => "refund",
        }
    }

    /// A stored kind.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Transfer, Self::Refund]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A contract's payout as its parties see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractPayout {
    /// Transfer or refund.
    pub kind: PayoutKind,
    /// `pending` (Stripe's answer not recorded yet), `completed`, `failed`
    /// (Stripe refused: the money is back in escrow, for an operator) or
    /// `flagged` (Stripe holds a Transfer that does not match: the same).
    pub status: String,
    /// Cents moved: the price less the fee (transfer), the price (refund).
    pub amount_cents: i64,
    /// The platform's fee, cents (0 for a refund).
    pub fee_cents: i64,
    /// `tr_...` or `re_...` once known.
    pub stripe_id: Option<String>,
}

/// A contract: an accepted application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contract {
    /// Its id (the application's id).
    pub contract: String,
    /// The application it came from.
    pub application: String,
    /// The campaign.
    pub campaign: String,
    /// The brand.
    pub brand: String,
    /// The creator.
    pub creator: String,
    /// The agreed price, cents.
    pub price_cents: i64,
    /// The campaign's currency.
    pub currency: String,
    /// Its state.
    pub state: ContractState,
    /// Made, ms since the epoch.
    pub created_ms: i64,
    /// Last moved, ms since the epoch.
    pub updated_ms: i64,
    /// The brand's PaymentIntent (`pi_...`), once created.
    pub payment_intent: Option<String>,
    /// When the payment reached the escrow.
    pub paid_ms: Option<i64>,
    /// The creator's deliverable, once submitted.
    pub deliverable: Option<Deliverable>,
    /// When the review ends and the deliverable is approved automatically
    /// (`submitted_ms + marketplace.review_s_max * 1000`).
    pub review_due_ms: Option<i64>,
    /// A dispute of the brand's charge holds the payout.
    pub disputed: bool,
    /// The payout (a Transfer on approval, a Refund after a rejection or
    /// cancellation of a funded contract), once started.
    pub payout: Option<ContractPayout>,
}

/// A creator's lives over a period, from the `live_viewers` records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LiveStats {
    /// Lives that ended in the period.
    pub lives: i64,
    /// Average of their average viewers (0 without lives).
    pub avg_viewers: i64,
    /// Largest peak (0 without lives).
    pub peak_viewers: i64,
}

/// What a creator received in settled gifts, all time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GiftStats {
    /// Diamonds earned.
    pub diamonds: i64,
    /// Gift units.
    pub gifts: i64,
}

/// One ended live's viewers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRecord {
    /// The room.
    pub room: String,
    /// Its creator.
    pub creator: String,
    /// When this live opened, ms since the epoch.
    pub opened_ms: i64,
    /// When it ended.
    pub ended_ms: i64,
    /// Most viewers at once.
    pub peak_viewers: i64,
    /// Time-weighted average viewers.
    pub avg_viewers: i64,
}

/// The key of the last row of a page (rows newest first): `(ms, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketCursor {
    /// The row's time (`published_ms` of an open campaign, else
    /// `created_ms`).
    pub ms: i64,
    /// The row's id.
    pub key: String,
}

/// Which open campaigns a creator sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCampaignsQuery {
    /// The creator's followers: campaigns asking for more are left out.
    pub followers: i64,
    /// Only campaigns with this niche.
    pub niche: Option<String>,
    /// Only campaigns whose budget is at least this.
    pub budget_min_cents: Option<i64>,
    /// Rows at most.
    pub len_max: i64,
    /// After this row.
    pub after: Option<MarketCursor>,
}

/// What accepting, declining or withdrawing did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplicationMove {
    /// The application after the move.
    pub application: Application,
    /// The contract made (accept only).
    pub contract: Option<Contract>,
}

/// What the ledger answers about the marketplace.
#[async_trait]
pub trait MarketplaceLedger: Send + Sync {
    /// Write a brand's profile (insert or replace).
    async fn put_brand(&self, profile: &BrandProfile) -> Result<()>;

    /// A brand's profile, if written.
    async fn brand(&self, brand: &str) -> Result<Option<BrandProfile>>;

    /// Write a creator's marketplace profile (insert or replace), keeping
    /// `joined_ms` as stored; answers the row.
    async fn put_market_creator(&self, profile: &MarketCreator) -> Result<MarketCreator>;

    /// A creator's marketplace profile, if any.
    async fn market_creator(&self, creator: &str) -> Result<Option<MarketCreator>>;

    /// Mark the creator joined at `now_ms` (an empty profile when they
    /// had none; an earlier join is kept); answers the row.
    async fn join_market(&self, creator: &str, now_ms: i64) -> Result<MarketCreator>;

    /// Write a new campaign (a draft).
    async fn create_campaign(&self, campaign: &Campaign) -> Result<()>;

    /// A campaign, if any.
    async fn campaign(&self, campaign: &str) -> Result<Option<Campaign>>;

    /// Replace a campaign's fields, only while its state allows
    /// [`CampaignAction::Edit`] (`conflict` otherwise); answers it.
    async fn edit_campaign(
        &self,
        campaign: &str,
        draft: &CampaignDraft,
        now_ms: i64,
    ) -> Result<Campaign>;

    /// Move a campaign by `action` (`conflict` when its state does not
    /// allow it, also when another move won the race); answers it.
    async fn move_campaign(
        &self,
        campaign: &str,
        action: CampaignAction,
        now_ms: i64,
    ) -> Result<Campaign>;

    /// A brand's campaigns, newest first.
    async fn brand_campaigns(
        &self,
        brand: &str,
        len_max: i64,
        after: Option<&MarketCursor>,
    ) -> Result<Vec<Campaign>>;

    /// Open campaigns, newest published first, under `query`.
    async fn open_campaigns(&self, query: &OpenCampaignsQuery) -> Result<Vec<Campaign>>;

    /// The creator applies to an open campaign: a new application, or the
    /// answer to their invitation; `conflict` when the campaign is not
    /// open or an application of theirs is past `invited`.
    async fn apply(
        &self,
        id: &str,
        campaign: &str,
        creator: &str,
        pitch: &str,
        price_cents: i64,
        now_ms: i64,
    ) -> Result<Application>;

    /// The brand invites a creator to an open campaign; `conflict` when
    /// the campaign is not open or the creator already has an application.
    async fn invite(
        &self,
        id: &str,
        campaign: &str,
        creator: &str,
        now_ms: i64,
    ) -> Result<Application>;

    /// An application, if any.
    async fn application(&self, application: &str) -> Result<Option<Application>>;

    /// Move an application by `action` (accept, decline, withdraw):
    /// only from the state read, so of two racing moves one wins and the
    /// other is `conflict`; an accept needs the campaign open and makes
    /// the contract (`awaiting_payment`) in the same transaction.
    async fn move_application(
        &self,
        application: &str,
        action: ApplicationAction,
        now_ms: i64,
    ) -> Result<ApplicationMove>;

    /// A campaign's applications, newest first.
    async fn campaign_applications(
        &self,
        campaign: &str,
        len_max: i64,
        after: Option<&MarketCursor>,
    ) -> Result<Vec<Application>>;

    /// A creator's applications and invitations, newest first.
    async fn creator_applications(
        &self,
        creator: &str,
        len_max: i64,
        after: Option<&MarketCursor>,
    ) -> Result<Vec<Application>>;

    /// The contracts of a campaign.
    async fn campaign_contracts(&self, campaign: &str) -> Result<Vec<Contract>>;

    /// Record one ended live's viewers (once per room and opening).
    async fn record_live(&self, live: &LiveRecord) -> Result<()>;

    /// A creator's lives that ended at or after `since_ms`.
    async fn live_stats(&self, creator: &str, since_ms: i64) -> Result<LiveStats>;

    /// A creator's settled gifts, all time.
    async fn gift_stats(&self, creator: &str) -> Result<GiftStats>;
}

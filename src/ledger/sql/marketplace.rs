//! The marketplace's profiles, campaigns and stats
//! ([`MarketplaceLedger`], with `market_deals` for applications and
//! contracts): `brands`, `market_creators`, `campaigns`,
//! `campaign_niches` and `live_viewers` of
//! `migrations/*/0014_marketplace.sql`, and the stats read from `gifts`.
//!
//! Owns: their SQL, once for both dialects (lists stored as JSON text;
//! dynamic filters built with `QueryBuilder`, which numbers binds for each
//! engine), and the campaign moves: the row is read under its lock, the
//! move checked by [`CampaignState::next`], then written `WHERE state =
//! <read>`.
//! Must not: check roles, lengths or eligibility (the app layer does).

use async_trait::async_trait;
use sqlx::{QueryBuilder, Transaction};

use super::{Dialect, SqlLedger};
use crate::error::{Error, Result};
use crate::ledger::market_states::{ApplicationAction, CampaignAction, CampaignState};
use crate::ledger::marketplace::{
    Application, ApplicationMove, BrandProfile, Campaign, CampaignDraft, Contract, GiftStats,
    LiveRecord, LiveStats, MarketCreator, MarketCursor, MarketplaceLedger, OpenCampaignsQuery,
};

/// The columns of a campaign row, in [`CampaignRow`]'s order.
pub(super) const CAMPAIGN_COLS: &str = "campaign, brand, title, brief, deliverables, budget_cents, currency, deadline_ms, followers_min, niches, state, created_ms, updated_ms, published_ms";

/// A `campaigns` row.
#[derive(sqlx::FromRow)]
pub(super) struct CampaignRow {
    campaign: String,
    brand: String,
    title: String,
    brief: String,
    deliverables: String,
    budget_cents: i64,
    currency: String,
    deadline_ms: i64,
    followers_min: i64,
    niches: String,
    state: String,
    created_ms: i64,
    updated_ms: i64,
    published_ms: Option<i64>,
}

/// A `market_creators` row.
#[derive(sqlx::FromRow)]
struct CreatorRow {
    creator: String,
    bio: String,
    niches: String,
    languages: String,
    rate_card: String,
    samples: String,
    joined_ms: Option<i64>,
    updated_ms: i64,
}

/// A stored JSON list back to values; a row that does not decode is the
/// ledger's fault.
pub(super) fn list<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<Vec<T>> {
    serde_json::from_str(s).map_err(|e| Error::internal(format!("stored {what}: {e}")))
}

/// A list as stored.
pub(super) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

impl CampaignRow {
    pub(super) fn into_campaign(self) -> Result<Campaign> {
        let state = CampaignState::parse(&self.state)
            .ok_or_else(|| Error::internal(format!("stored campaign state {}", self.state)))?;
        Ok(Campaign {
            campaign: self.campaign,
            brand: self.brand,
            draft: CampaignDraft {
                title: self.title,
                brief: self.brief,
                deliverables: list(&self.deliverables, "deliverables")?,
                budget_cents: self.budget_cents,
                currency: self.currency,
                deadline_ms: self.deadline_ms,
                followers_min: self.followers_min,
                niches: list(&self.niches, "niches")?,
            },
            state,
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
            published_ms: self.published_ms,
        })
    }
}

impl CreatorRow {
    fn into_creator(self) -> Result<MarketCreator> {
        Ok(MarketCreator {
            creator: self.creator,
            bio: self.bio,
            niches: list(&self.niches, "niches")?,
            languages: list(&self.languages, "languages")?,
            rate_card: list(&self.rate_card, "rate card")?,
            samples: list(&self.samples, "samples")?,
            joined_ms: self.joined_ms,
            updated_ms: self.updated_ms,
        })
    }
}

/// `bad_request` "no such campaign" (answered 404 by the HTTP layer).
pub(super) fn no_campaign(id: &str) -> Error {
    Error::bad_request(format!("no such campaign `{id}`"))
}

const CREATOR_COLS: &str =
    "creator, bio, niches, languages, rate_card, samples, joined_ms, updated_ms";

per_dialect! {
    impl SqlLedger<D> {
        /// A campaign read in `tx`, locked where the dialect locks rows.
        pub(super) async fn campaign_for_update(tx: &mut Transaction<'_, DB>, id: &str) -> Result<Campaign> {
            let sql = format!("SELECT {CAMPAIGN_COLS} FROM campaigns WHERE campaign = $1{}", D::FOR_UPDATE);
            let row: Option<CampaignRow> = sqlx::query_as(&sql).bind(id).fetch_optional(&mut **tx).await?;
            row.ok_or_else(|| no_campaign(id))?.into_campaign()
        }

        /// Replace the niche rows of a campaign in `tx`.
        async fn set_niches(tx: &mut Transaction<'_, DB>, id: &str, niches: &[String]) -> Result<()> {
            sqlx::query("DELETE FROM campaign_niches WHERE campaign = $1").bind(id).execute(&mut **tx).await?;
            for n in niches {
                sqlx::query("INSERT INTO campaign_niches (niche, campaign) VALUES ($1, $2) ON CONFLICT (niche, campaign) DO NOTHING")
                    .bind(n.as_str())
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        /// Campaign rows of a built query.
        async fn campaigns_of(&self, mut q: QueryBuilder<'_, DB>) -> Result<Vec<Campaign>> {
            let rows: Vec<CampaignRow> = q.build_query_as().fetch_all(&self.pool).await?;
            rows.into_iter().map(CampaignRow::into_campaign).collect()
        }
    }

    #[async_trait]
    impl MarketplaceLedger for SqlLedger<D> {
        async fn put_brand(&self, p: &BrandProfile) -> Result<()> {
            let mut tx = D::begin_write(&self.pool).await?;
            sqlx::query("INSERT INTO brands (brand, name, website, industry, updated_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (brand) DO UPDATE SET name = excluded.name, website = excluded.website, industry = excluded.industry, updated_ms = excluded.updated_ms")
                .bind(&p.brand)
                .bind(&p.name)
                .bind(&p.website)
                .bind(&p.industry)
                .bind(p.updated_ms)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }

        async fn brand(&self, brand: &str) -> Result<Option<BrandProfile>> {
            let row: Option<(String, String, String, String, i64)> = sqlx::query_as("SELECT brand, name, website, industry, updated_ms FROM brands WHERE brand = $1")
                .bind(brand)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.map(|(brand, name, website, industry, updated_ms)| BrandProfile { brand, name, website, industry, updated_ms }))
        }

        async fn put_market_creator(&self, p: &MarketCreator) -> Result<MarketCreator> {
            let mut tx = D::begin_write(&self.pool).await?;
            sqlx::query("INSERT INTO market_creators (creator, bio, niches, languages, rate_card, samples, joined_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7) ON CONFLICT (creator) DO UPDATE SET bio = excluded.bio, niches = excluded.niches, languages = excluded.languages, rate_card = excluded.rate_card, samples = excluded.samples, updated_ms = excluded.updated_ms")
                .bind(&p.creator)
                .bind(&p.bio)
                .bind(json(&p.niches))
                .bind(json(&p.languages))
                .bind(json(&p.rate_card))
                .bind(json(&p.samples))
                .bind(p.updated_ms)
                .execute(&mut *tx)
                .await?;
            let row: CreatorRow = sqlx::query_as(&format!("SELECT {CREATOR_COLS} FROM market_creators WHERE creator = $1"))
                .bind(&p.creator)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            row.into_creator()
        }

        async fn market_creator(&self, creator: &str) -> Result<Option<MarketCreator>> {
            let row: Option<CreatorRow> = sqlx::query_as(&format!("SELECT {CREATOR_COLS} FROM market_creators WHERE creator = $1"))
                .bind(creator)
                .fetch_optional(&self.pool)
                .await?;
            row.map(CreatorRow::into_creator).transpose()
        }

        async fn join_market(&self, creator: &str, now_ms: i64) -> Result<MarketCreator> {
            let mut tx = D::begin_write(&self.pool).await?;
            sqlx::query("INSERT INTO market_creators (creator, bio, niches, languages, rate_card, samples, joined_ms, updated_ms) VALUES ($1, '', '[]', '[]', '[]', '[]', $2, $2) ON CONFLICT (creator) DO UPDATE SET joined_ms = COALESCE(market_creators.joined_ms, excluded.joined_ms)")
                .bind(creator)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            let row: CreatorRow = sqlx::query_as(&format!("SELECT {CREATOR_COLS} FROM market_creators WHERE creator = $1"))
                .bind(creator)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            row.into_creator()
        }

        async fn create_campaign(&self, c: &Campaign) -> Result<()> {
            let mut tx = D::begin_write(&self.pool).await?;
            let d = &c.draft;
            let n = sqlx::query(&format!("INSERT INTO campaigns ({CAMPAIGN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (campaign) DO NOTHING"))
                .bind(&c.campaign)
                .bind(&c.brand)
                .bind(&d.title)
                .bind(&d.brief)
                .bind(json(&d.deliverables))
                .bind(d.budget_cents)
                .bind(&d.currency)
                .bind(d.deadline_ms)
                .bind(d.followers_min)
                .bind(json(&d.niches))
                .bind(c.state.as_str())
                .bind(c.created_ms)
                .bind(c.updated_ms)
                .bind(c.published_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(Error::new(crate::error::ErrorCode::Conflict, format!("campaign `{}` exists", c.campaign)));
            }
            Self::set_niches(&mut tx, &c.campaign, &d.niches).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn campaign(&self, id: &str) -> Result<Option<Campaign>> {
            let row: Option<CampaignRow> = sqlx::query_as(&format!("SELECT {CAMPAIGN_COLS} FROM campaigns WHERE campaign = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            row.map(CampaignRow::into_campaign).transpose()
        }

        async fn edit_campaign(&self, id: &str, d: &CampaignDraft, now_ms: i64) -> Result<Campaign> {
            let mut tx = D::begin_write(&self.pool).await?;
            let c = Self::campaign_for_update(&mut tx, id).await?;
            let next = c.state.next(CampaignAction::Edit)?;
            let n = sqlx::query("UPDATE campaigns SET title = $1, brief = $2, deliverables = $3, budget_cents = $4, currency = $5, deadline_ms = $6, followers_min = $7, niches = $8, state = $9, updated_ms = $10 WHERE campaign = $11 AND state = $12")
                .bind(&d.title)
                .bind(&d.brief)
                .bind(json(&d.deliverables))
                .bind(d.budget_cents)
                .bind(&d.currency)
                .bind(d.deadline_ms)
                .bind(d.followers_min)
                .bind(json(&d.niches))
                .bind(next.as_str())
                .bind(now_ms)
                .bind(id)
                .bind(c.state.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n != 1 {
                return Err(Error::internal("campaign changed under its lock"));
            }
            Self::set_niches(&mut tx, id, &d.niches).await?;
            let out = Self::campaign_for_update(&mut tx, id).await?;
            tx.commit().await?;
            Ok(out)
        }

        async fn move_campaign(&self, id: &str, action: CampaignAction, now_ms: i64) -> Result<Campaign> {
            let mut tx = D::begin_write(&self.pool).await?;
            let c = Self::campaign_for_update(&mut tx, id).await?;
            let next = c.state.next(action)?;
            let published = if action == CampaignAction::Publish { Some(now_ms) } else { c.published_ms };
            let n = sqlx::query("UPDATE campaigns SET state = $1, updated_ms = $2, published_ms = $3 WHERE campaign = $4 AND state = $5")
                .bind(next.as_str())
                .bind(now_ms)
                .bind(published)
                .bind(id)
                .bind(c.state.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n != 1 {
                return Err(Error::internal("campaign changed under its lock"));
            }
            let out = Self::campaign_for_update(&mut tx, id).await?;
            tx.commit().await?;
            Ok(out)
        }

        async fn brand_campaigns(&self, brand: &str, len_max: i64, after: Option<&MarketCursor>) -> Result<Vec<Campaign>> {
            let mut q = QueryBuilder::<DB>::new(format!("SELECT {CAMPAIGN_COLS} FROM campaigns WHERE brand = "));
            q.push_bind(brand.to_string());
            if let Some(c) = after {
                q.push(" AND (created_ms, campaign) < (").push_bind(c.ms).push(", ").push_bind(c.key.clone()).push(")");
            }
            q.push(" ORDER BY created_ms DESC, campaign DESC LIMIT ").push_bind(len_max);
            self.campaigns_of(q).await
        }

        async fn open_campaigns(&self, f: &OpenCampaignsQuery) -> Result<Vec<Campaign>> {
            let mut q = QueryBuilder::<DB>::new(format!("SELECT {CAMPAIGN_COLS} FROM campaigns c WHERE state = 'open' AND followers_min <= "));
            q.push_bind(f.followers);
            if let Some(b) = f.budget_min_cents {
                q.push(" AND budget_cents >= ").push_bind(b);
            }
            if let Some(n) = &f.niche {
                q.push(" AND EXISTS (SELECT 1 FROM campaign_niches n WHERE n.campaign = c.campaign AND n.niche = ").push_bind(n.clone()).push(")");
            }
            if let Some(c) = &f.after {
                q.push(" AND (published_ms, campaign) < (").push_bind(c.ms).push(", ").push_bind(c.key.clone()).push(")");
            }
            q.push(" ORDER BY published_ms DESC, campaign DESC LIMIT ").push_bind(f.len_max);
            self.campaigns_of(q).await
        }

        async fn apply(&self, id: &str, campaign: &str, creator: &str, pitch: &str, price_cents: i64, now_ms: i64) -> Result<Application> {
            self.deal_apply(id, campaign, creator, pitch, price_cents, now_ms).await
        }

        async fn invite(&self, id: &str, campaign: &str, creator: &str, now_ms: i64) -> Result<Application> {
            self.deal_invite(id, campaign, creator, now_ms).await
        }

        async fn application(&self, id: &str) -> Result<Option<Application>> {
            self.deal_application(id).await
        }

        async fn move_application(&self, id: &str, action: ApplicationAction, now_ms: i64) -> Result<ApplicationMove> {
            self.deal_move(id, action, now_ms).await
        }

        async fn campaign_applications(&self, campaign: &str, len_max: i64, after: Option<&MarketCursor>) -> Result<Vec<Application>> {
            self.deal_page("campaign", campaign, len_max, after).await
        }

        async fn creator_applications(&self, creator: &str, len_max: i64, after: Option<&MarketCursor>) -> Result<Vec<Application>> {
            self.deal_page("creator", creator, len_max, after).await
        }

        async fn campaign_contracts(&self, campaign: &str) -> Result<Vec<Contract>> {
            self.deal_contracts(campaign).await
        }

        async fn record_live(&self, l: &LiveRecord) -> Result<()> {
            let mut tx = D::begin_write(&self.pool).await?;
            sqlx::query("INSERT INTO live_viewers (room, opened_ms, creator, ended_ms, peak_viewers, avg_viewers) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (room, opened_ms) DO NOTHING")
                .bind(&l.room)
                .bind(l.opened_ms)
                .bind(&l.creator)
                .bind(l.ended_ms)
                .bind(l.peak_viewers.max(0))
                .bind(l.avg_viewers.max(0))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }

        async fn live_stats(&self, creator: &str, since_ms: i64) -> Result<LiveStats> {
            let (lives, avg, peak): (i64, i64, i64) = sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(ROUND(AVG(avg_viewers)), 0) AS BIGINT), CAST(COALESCE(MAX(peak_viewers), 0) AS BIGINT) FROM live_viewers WHERE creator = $1 AND ended_ms >= $2")
                .bind(creator)
                .bind(since_ms)
                .fetch_one(&self.pool)
                .await?;
            Ok(LiveStats { lives, avg_viewers: avg, peak_viewers: peak })
        }

        async fn gift_stats(&self, creator: &str) -> Result<GiftStats> {
            let (diamonds, gifts): (i64, i64) = sqlx::query_as("SELECT CAST(COALESCE(SUM(diamonds), 0) AS BIGINT), CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM gifts WHERE creator = $1")
                .bind(creator)
                .fetch_one(&self.pool)
                .await?;
            Ok(GiftStats { diamonds, gifts })
        }
    }
}

//! The marketplace's applications, invitations and contracts
//! (`applications` and `contracts` of `migrations/*/0014_marketplace.sql`),
//! the second half of [`crate::ledger::marketplace::MarketplaceLedger`].
//!
//! Owns: their SQL, once for both dialects, and the rule that makes racing
//! moves safe: a move reads the row under its lock (`FOR UPDATE` on
//! PostgreSQL, the write lock of `BEGIN IMMEDIATE` on SQLite), checks it
//! with [`ApplicationState::next`], and writes `WHERE state = <read>`; an
//! accept makes its contract (one per application, `UNIQUE`) in the same
//! transaction. Of two accepts, or an accept and a withdraw, one wins.
//! Must not: check roles or eligibility (the app layer does), or move a
//! contract past `awaiting_payment` (escrow: `super::escrow`).

use sqlx::Transaction;

use super::marketplace::no_campaign;
use super::{Dialect, SqlLedger};
use crate::error::{Error, ErrorCode, Result};
use crate::ledger::market_states::{
    ApplicationAction, ApplicationState, CampaignAction, ContractState,
};
use crate::ledger::marketplace::{Application, ApplicationMove, Contract, MarketCursor};

const APP_COLS: &str =
    "application, campaign, creator, origin, pitch, price_cents, state, created_ms, updated_ms";
const CONTRACT_COLS: &str =
    "contract, application, campaign, brand, creator, price_cents, currency, state, created_ms";

/// An `applications` row.
#[derive(sqlx::FromRow)]
struct AppRow {
    application: String,
    campaign: String,
    creator: String,
    origin: String,
    pitch: Option<String>,
    price_cents: Option<i64>,
    state: String,
    created_ms: i64,
    updated_ms: i64,
}

impl AppRow {
    fn into_app(self) -> Result<Application> {
        let state = ApplicationState::parse(&self.state)
            .ok_or_else(|| Error::internal(format!("stored application state {}", self.state)))?;
        Ok(Application {
            application: self.application,
            campaign: self.campaign,
            creator: self.creator,
            origin: self.origin,
            pitch: self.pitch,
            price_cents: self.price_cents,
            state,
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
        })
    }
}

/// `bad_request` "no such application" (answered 404 by the HTTP layer).
fn no_application(id: &str) -> Error {
    Error::bad_request(format!("no such application `{id}`"))
}

/// `conflict`: the creator already has an application in `state`.
fn already(state: ApplicationState) -> Error {
    Error::new(
        ErrorCode::Conflict,
        format!(
            "the creator already has an application to this campaign (it is {})",
            state.as_str()
        ),
    )
}

per_dialect! {
    impl SqlLedger<D> {
        /// An application read in `tx`, locked where the dialect locks rows.
        async fn app_in(tx: &mut Transaction<'_, DB>, id: &str) -> Result<Option<Application>> {
            let sql = format!("SELECT {APP_COLS} FROM applications WHERE application = $1{}", D::FOR_UPDATE);
            let row: Option<AppRow> = sqlx::query_as(&sql).bind(id).fetch_optional(&mut **tx).await?;
            row.map(AppRow::into_app).transpose()
        }

        /// The creator's application to a campaign, read in `tx` under its lock.
        async fn app_of(tx: &mut Transaction<'_, DB>, campaign: &str, creator: &str) -> Result<Option<Application>> {
            let sql = format!("SELECT {APP_COLS} FROM applications WHERE campaign = $1 AND creator = $2{}", D::FOR_UPDATE);
            let row: Option<AppRow> = sqlx::query_as(&sql).bind(campaign).bind(creator).fetch_optional(&mut **tx).await?;
            row.map(AppRow::into_app).transpose()
        }

        /// Insert an application (`origin` applied or invited); false when
        /// the creator has one for this campaign already.
        #[allow(clippy::too_many_arguments)]
        async fn insert_app(tx: &mut Transaction<'_, DB>, id: &str, campaign: &str, creator: &str, origin: &str, pitch: Option<&str>, price: Option<i64>, state: ApplicationState, now_ms: i64) -> Result<bool> {
            let n = sqlx::query(&format!("INSERT INTO applications ({APP_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT DO NOTHING"))
                .bind(id)
                .bind(campaign)
                .bind(creator)
                .bind(origin)
                .bind(pitch)
                .bind(price)
                .bind(state.as_str())
                .bind(now_ms)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            Ok(n == 1)
        }

        /// See [`MarketplaceLedger::apply`](crate::ledger::marketplace::MarketplaceLedger::apply).
        pub(super) async fn deal_apply(&self, id: &str, campaign: &str, creator: &str, pitch: &str, price: i64, now_ms: i64) -> Result<Application> {
            let mut tx = D::begin_write(&self.pool).await?;
            let c = Self::campaign_for_update(&mut tx, campaign).await?;
            c.state.next(CampaignAction::Engage)?;
            match Self::app_of(&mut tx, campaign, creator).await? {
                None => {
                    if !Self::insert_app(&mut tx, id, campaign, creator, "applied", Some(pitch), Some(price), ApplicationState::Applied, now_ms).await? {
                        return Err(Error::new(ErrorCode::Conflict, "the creator already has an application to this campaign (or the id is taken)"));
                    }
                }
                Some(a) => {
                    let next = a.state.next(ApplicationAction::Apply).map_err(|_| already(a.state))?;
                    let n = sqlx::query("UPDATE applications SET state = $1, pitch = $2, price_cents = $3, updated_ms = $4 WHERE application = $5 AND state = $6")
                        .bind(next.as_str())
                        .bind(pitch)
                        .bind(price)
                        .bind(now_ms)
                        .bind(&a.application)
                        .bind(a.state.as_str())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if n != 1 {
                        return Err(Error::internal("application changed under its lock"));
                    }
                }
            }
            let out = Self::app_of(&mut tx, campaign, creator).await?.ok_or_else(|| Error::internal("application vanished"))?;
            tx.commit().await?;
            Ok(out)
        }

        /// See [`MarketplaceLedger::invite`](crate::ledger::marketplace::MarketplaceLedger::invite).
        pub(super) async fn deal_invite(&self, id: &str, campaign: &str, creator: &str, now_ms: i64) -> Result<Application> {
            let mut tx = D::begin_write(&self.pool).await?;
            let c = Self::campaign_for_update(&mut tx, campaign).await?;
            c.state.next(CampaignAction::Engage)?;
            if let Some(a) = Self::app_of(&mut tx, campaign, creator).await? {
                return Err(already(a.state));
            }
            if !Self::insert_app(&mut tx, id, campaign, creator, "invited", None, None, ApplicationState::Invited, now_ms).await? {
                return Err(Error::new(ErrorCode::Conflict, "the creator already has an application to this campaign (or the id is taken)"));
            }
            let out = Self::app_in(&mut tx, id).await?.ok_or_else(|| Error::internal("application vanished"))?;
            tx.commit().await?;
            Ok(out)
        }

        /// See [`MarketplaceLedger::application`](crate::ledger::marketplace::MarketplaceLedger::application).
        pub(super) async fn deal_application(&self, id: &str) -> Result<Option<Application>> {
            let row: Option<AppRow> = sqlx::query_as(&format!("SELECT {APP_COLS} FROM applications WHERE application = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            row.map(AppRow::into_app).transpose()
        }

        /// See [`MarketplaceLedger::move_application`](crate::ledger::marketplace::MarketplaceLedger::move_application).
        pub(super) async fn deal_move(&self, id: &str, action: ApplicationAction, now_ms: i64) -> Result<ApplicationMove> {
            let mut tx = D::begin_write(&self.pool).await?;
            let a = Self::app_in(&mut tx, id).await?.ok_or_else(|| no_application(id))?;
            let next = a.state.next(action)?;
            let campaign = if action == ApplicationAction::Accept {
                let c = Self::campaign_for_update(&mut tx, &a.campaign).await.map_err(|_| no_campaign(&a.campaign))?;
                c.state.next(CampaignAction::Engage)?;
                Some(c)
            } else {
                None
            };
            // Only from the state read: a move that lost a race changes nothing.
            let n = sqlx::query("UPDATE applications SET state = $1, updated_ms = $2 WHERE application = $3 AND state = $4")
                .bind(next.as_str())
                .bind(now_ms)
                .bind(id)
                .bind(a.state.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n != 1 {
                let now = Self::app_in(&mut tx, id).await?.map_or("gone", |x| x.state.as_str());
                return Err(Error::new(ErrorCode::Conflict, format!("the application is {now}")));
            }
            let contract = match campaign {
                Some(c) => {
                    let price = a.price_cents.ok_or_else(|| Error::internal("an applied application without a price"))?;
                    let n = sqlx::query(&format!("INSERT INTO contracts ({CONTRACT_COLS}, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT DO NOTHING"))
                        .bind(id)
                        .bind(id)
                        .bind(&c.campaign)
                        .bind(&c.brand)
                        .bind(&a.creator)
                        .bind(price)
                        .bind(&c.draft.currency)
                        .bind(ContractState::AwaitingPayment.as_str())
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if n != 1 {
                        return Err(Error::new(ErrorCode::Conflict, "the application already has a contract"));
                    }
                    Some(Self::contract_in(&mut tx, id).await?.ok_or_else(|| Error::internal("contract vanished"))?)
                }
                None => None,
            };
            let application = Self::app_in(&mut tx, id).await?.ok_or_else(|| Error::internal("application vanished"))?;
            tx.commit().await?;
            Ok(ApplicationMove { application, contract })
        }

        /// Applications by `column` (`campaign` or `creator`), newest first.
        pub(super) async fn deal_page(&self, column: &str, value: &str, len_max: i64, after: Option<&MarketCursor>) -> Result<Vec<Application>> {
            let column = if column == "campaign" { "campaign" } else { "creator" };
            let mut sql = format!("SELECT {APP_COLS} FROM applications WHERE {column} = $1");
            if after.is_some() {
                sql.push_str(" AND (created_ms, application) < ($3, $4)");
            }
            sql.push_str(" ORDER BY created_ms DESC, application DESC LIMIT $2");
            let mut q = sqlx::query_as::<DB, AppRow>(&sql).bind(value).bind(len_max);
            if let Some(c) = after {
                q = q.bind(c.ms).bind(c.key.as_str());
            }
            q.fetch_all(&self.pool).await?.into_iter().map(AppRow::into_app).collect()
        }

        /// A campaign's contracts, oldest first.
        pub(super) async fn deal_contracts(&self, campaign: &str) -> Result<Vec<Contract>> {
            self.esc_contracts_by("campaign", campaign, i64::MAX, None).await
        }
    }
}

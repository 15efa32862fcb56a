//! Videos as the ledger reads them: a video's page (creator, title,
//! totals, top supporters, latest gifts with their messages) and a
//! creator's video list, and the title write.
//!
//! Owns: [`VideoLedger`] (a supertrait of [`super::Ledger`], so every
//! ledger answers it) and its SQL, written once for both dialects (the
//! queries use only syntax SQLite and PostgreSQL share) and implemented
//! for each engine by the `video_ledger!` macro.
//! Must not: write anything but a video's title (gifts reach the ledger
//! through the settlement batch only), or read unsettled gifts (what is
//! shown is what the ledger holds).

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;

/// Top supporters on a video's page.
pub const VIDEO_TOP_LEN: i64 = 10;
/// Latest gifts on a video's page.
pub const VIDEO_LATEST_LEN: i64 = 20;

/// Gift totals of a video (settled gifts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VideoTotals {
    /// Gift rows.
    pub gifts: i64,
    /// Coins spent on it.
    pub coins: i64,
    /// Diamonds its creator earned.
    pub diamonds: i64,
}

/// One supporter of a video.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VideoSupporter {
    /// User id.
    pub user: String,
    /// Diamonds they gave the video.
    pub diamonds: i64,
}

/// One settled gift on a video.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VideoGift {
    /// The video's seq of the gift.
    pub seq: u64,
    /// Sender.
    pub sender: String,
    /// Catalog gift id.
    pub gift: String,
    /// Units.
    pub count: u32,
    /// Coins.
    pub coins: i64,
    /// Diamonds.
    pub diamonds: i64,
    /// The sender's message (null when none).
    pub message: Option<String>,
    /// Acceptance time, ms since the epoch.
    pub ts: i64,
}

/// A video's page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VideoPage {
    /// Video id.
    pub video: String,
    /// Its creator.
    pub creator: String,
    /// Its title (null when none).
    pub title: Option<String>,
    /// When it was registered, ms since the epoch.
    pub created_ms: i64,
    /// Totals of its settled gifts.
    pub totals: VideoTotals,
    /// Its [`VIDEO_TOP_LEN`] largest supporters by diamonds.
    pub top: Vec<VideoSupporter>,
    /// Its [`VIDEO_LATEST_LEN`] latest settled gifts, newest first.
    pub latest: Vec<VideoGift>,
}

/// One video of a creator's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VideoEntry {
    /// Video id.
    pub video: String,
    /// Its title (null when none).
    pub title: Option<String>,
    /// When it was registered, ms since the epoch.
    pub created_ms: i64,
}

/// What the ledger answers about videos.
#[async_trait]
pub trait VideoLedger: Send + Sync {
    /// Set the title of `video` if `creator` owns it (an empty title
    /// clears it); false when no such video of theirs.
    async fn set_video_title(&self, video: &str, creator: &str, title: &str) -> Result<bool>;

    /// A video's page, if it is registered.
    async fn video_page(&self, video: &str) -> Result<Option<VideoPage>>;

    /// `creator`'s videos newest first, at most `len_max`, after the key
    /// `(created_ms, video)` of the last one of the page before.
    async fn creator_videos(
        &self,
        creator: &str,
        len_max: i64,
        after: Option<(i64, String)>,
    ) -> Result<Vec<VideoEntry>>;
}

const SET_TITLE: &str = "UPDATE videos SET title = $3 WHERE video = $1 AND creator = $2";
const VIDEO: &str = "SELECT creator, title, created_ms FROM videos WHERE video = $1";
const TOTALS: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(coins), 0) AS BIGINT), CAST(COALESCE(SUM(diamonds), 0) AS BIGINT) FROM gifts WHERE target = $1";
const TOP: &str = "SELECT sender, CAST(SUM(diamonds) AS BIGINT) AS d FROM gifts WHERE target = $1 GROUP BY sender ORDER BY d DESC, sender LIMIT $2";
/// A message the creator's rules kept back is not in the gift's row (only
/// in `moderated_messages`): once approved it shows here too.
const LATEST: &str = "SELECT g.seq, g.sender, g.gift, g.count, g.coins, g.diamonds, \
     COALESCE(g.message, (SELECT m.message FROM moderated_messages m \
       WHERE m.target = g.target AND m.seq = g.seq AND m.kind = 'gift' AND m.state = 'approved')), \
     g.ts_ms FROM gifts g WHERE g.target = $1 ORDER BY g.seq DESC LIMIT $2";
const LIST_FIRST: &str = "SELECT video, title, created_ms FROM videos WHERE creator = $1 ORDER BY created_ms DESC, video DESC LIMIT $2";
const LIST_AFTER: &str = "SELECT video, title, created_ms FROM videos WHERE creator = $1 AND (created_ms < $3 OR (created_ms = $3 AND video < $4)) ORDER BY created_ms DESC, video DESC LIMIT $2";

/// [`VideoLedger`] for a ledger type with a sqlx `pool` field.
macro_rules! video_ledger {
    ($ledger:ty) => {
        #[async_trait]
        impl VideoLedger for $ledger {
            async fn set_video_title(
                &self,
                video: &str,
                creator: &str,
                title: &str,
            ) -> Result<bool> {
                let title = (!title.is_empty()).then_some(title);
                let n = sqlx::query(SET_TITLE)
                    .bind(video)
                    .bind(creator)
                    .bind(title)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n > 0)
            }

            async fn video_page(&self, video: &str) -> Result<Option<VideoPage>> {
                use sqlx::Row;
                let Some(v) = sqlx::query(VIDEO)
                    .bind(video)
                    .fetch_optional(&self.pool)
                    .await?
                else {
                    return Ok(None);
                };
                let target = crate::model::Target::video(video).key();
                let t = sqlx::query(TOTALS)
                    .bind(&target)
                    .fetch_one(&self.pool)
                    .await?;
                let top = sqlx::query(TOP)
                    .bind(&target)
                    .bind(VIDEO_TOP_LEN)
                    .fetch_all(&self.pool)
                    .await?;
                let latest = sqlx::query(LATEST)
                    .bind(&target)
                    .bind(VIDEO_LATEST_LEN)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(Some(VideoPage {
                    video: video.to_string(),
                    creator: v.try_get(0)?,
                    title: v.try_get(1)?,
                    created_ms: v.try_get(2)?,
                    totals: VideoTotals {
                        gifts: t.try_get(0)?,
                        coins: t.try_get(1)?,
                        diamonds: t.try_get(2)?,
                    },
                    top: top
                        .iter()
                        .map(|r| {
                            Ok(VideoSupporter {
                                user: r.try_get(0)?,
                                diamonds: r.try_get(1)?,
                            })
                        })
                        .collect::<Result<_>>()?,
                    latest: latest
                        .iter()
                        .map(|r| {
                            Ok(VideoGift {
                                seq: r.try_get::<i64, _>(0)?.max(0) as u64,
                                sender: r.try_get(1)?,
                                gift: r.try_get(2)?,
                                count: r.try_get::<i64, _>(3)?.clamp(0, u32::MAX as i64) as u32,
                                coins: r.try_get(4)?,
                                diamonds: r.try_get(5)?,
                                message: r.try_get(6)?,
                                ts: r.try_get(7)?,
                            })
                        })
                        .collect::<Result<_>>()?,
                }))
            }

            async fn creator_videos(
                &self,
                creator: &str,
                len_max: i64,
                after: Option<(i64, String)>,
            ) -> Result<Vec<VideoEntry>> {
                use sqlx::Row;
                let rows = match &after {
                    None => {
                        sqlx::query(LIST_FIRST)
                            .bind(creator)
                            .bind(len_max)
                            .fetch_all(&self.pool)
                            .await?
                    }
                    Some((ms, video)) => {
                        sqlx::query(LIST_AFTER)
                            .bind(creator)
                            .bind(len_max)
                            .bind(*ms)
                            .bind(video)
                            .fetch_all(&self.pool)
                            .await?
                    }
                };
                rows.iter()
                    .map(|r| {
                        Ok(VideoEntry {
                            video: r.try_get(0)?,
                            title: r.try_get(1)?,
                            created_ms: r.try_get(2)?,
                        })
                    })
                    .collect()
            }
        }
    };
}

video_ledger!(super::sqlite::SqliteLedger);
video_ledger!(super::postgres::PgLedger);

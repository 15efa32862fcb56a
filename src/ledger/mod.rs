//! The durable ledger: double entry, integer amounts, idempotent writes.
//!
//! Owns: the [`Ledger`] trait and its engines ([`sqlite::SqliteLedger`],
//! [`postgres::PgLedger`]), the account naming scheme, and the durable
//! registry of rooms and videos. Each write is one transaction keyed by an
//! operation id under a UNIQUE constraint, so a replay changes nothing.
//! Must not: decide whether a gift is allowed (the counters engine does),
//! or hold balances in memory (it is the system of record).

pub mod postgres;
pub mod sqlite;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::wallet::{Batch, PendingGift, Snapshot, Target};

/// Coins, the viewers' currency.
pub const COIN: &str = "COIN";
/// Diamonds, the creators' currency.
pub const DIAMOND: &str = "DIAMOND";

/// Account names. The mint issues currency (its balance goes negative).
pub mod account {
    /// Issues coins (grants, purchases) and diamonds (gift credits).
    pub const MINT: &str = "mint";
    /// Where coins spent on gifts go.
    pub const SPENT: &str = "spent:gifts";
    /// A viewer's coin wallet.
    pub fn wallet(user: &str) -> String {
        format!("wallet:{user}")
    }
    /// A creator's settled diamonds.
    pub fn earnings(creator: &str) -> String {
        format!("earnings:{creator}")
    }
}

/// A credit of coins from outside (an admin grant; later a purchase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditOp {
    /// Operation id, unique across the ledger (e.g. `grant:ID`).
    pub op_id: String,
    /// `grant` or `purchase`.
    pub kind: String,
    /// Whose wallet.
    pub user: String,
    /// How many coins (> 0).
    pub coins: i64,
}

/// What [`Ledger::credit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditOutcome {
    /// False when the op id was already in the ledger.
    pub applied_now: bool,
    /// The op as first recorded (a replay answers the original).
    pub op: CreditOp,
}

/// A creator's earnings as the ledger knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LedgerEarnings {
    /// Diamonds settled and not cashed out.
    pub diamonds_settled: i64,
    /// Diamonds cashed out.
    pub diamonds_cashed_out: i64,
    /// Tips received, cents.
    pub tips_cents: i64,
}

/// Whole-ledger sums, for conservation checks and `reconcile`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Sum of all entries per currency (must be zero for each).
    pub entry_sums: BTreeMap<String, i64>,
    /// Coins issued by the mint.
    pub coins_minted: i64,
    /// Coins held in wallets.
    pub coins_in_wallets: i64,
    /// Coins spent on gifts.
    pub coins_spent: i64,
    /// Diamonds credited to creators.
    pub diamonds_credited: i64,
    /// Gift rows.
    pub gifts: i64,
    /// Sum of gift rows' coins.
    pub gift_coins: i64,
    /// Sum of gift rows' diamonds.
    pub gift_diamonds: i64,
    /// Batches committed.
    pub batches: i64,
}

/// A room or video as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRecord {
    /// Its creator.
    pub creator: String,
    /// Live (always true for a video).
    pub live: bool,
}

/// The ledger.
#[async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// Credit coins once per op id. A replay answers the original op; the
    /// same id with other parameters is `bad_request`.
    async fn credit(&self, op: &CreditOp) -> Result<CreditOutcome>;

    /// Commit a settlement batch in one transaction. Returns false when the
    /// batch id was already committed (nothing written). Gifts already in
    /// the ledger under their (target, seq) are skipped, not posted twice.
    async fn commit_batch(&self, batch: &Batch) -> Result<bool>;

    /// Balances, credit op ids, gifts newer than `recent_ms`, and targets
    /// with their first safe seq (`seq_gap` added after an unclean stop).
    async fn snapshot(&self, recent_ms: i64, seq_gap: u64) -> Result<Snapshot>;

    /// Record a room (re)opened or a video registered for `creator`;
    /// `forbidden` if the id belongs to another creator.
    async fn open_target(&self, target: &Target, creator: &str) -> Result<()>;

    /// Record a room's live as ended.
    async fn end_room(&self, room: &str) -> Result<()>;

    /// A room or video, if recorded.
    async fn target(&self, target: &Target) -> Result<Option<TargetRecord>>;

    /// Whether the gift `(target key, seq)` is in the ledger (settled).
    async fn has_gift(&self, target: &str, seq: u64) -> Result<bool>;

    /// Balance of one account in one currency.
    async fn balance(&self, account: &str, currency: &str) -> Result<i64>;

    /// A creator's settled earnings (derived from balances; cash-outs and
    /// tips join when payments land).
    async fn earnings(&self, creator: &str) -> Result<LedgerEarnings> {
        Ok(LedgerEarnings {
            diamonds_settled: self.balance(&account::earnings(creator), DIAMOND).await?,
            diamonds_cashed_out: 0,
            tips_cents: 0,
        })
    }

    /// Whole-ledger sums.
    async fn totals(&self) -> Result<Totals>;

    /// Set the clean-shutdown mark; answers the previous one (true when the
    /// last run stopped cleanly after a final flush).
    async fn swap_clean_mark(&self, clean: bool) -> Result<bool>;
}

/// The postings of a batch: (account, currency, kind) -> amount, summing to
/// zero per currency.
pub fn batch_postings<'a>(
    gifts: impl IntoIterator<Item = &'a PendingGift>,
) -> BTreeMap<(String, &'static str, &'static str), i64> {
    let mut p: BTreeMap<(String, &'static str, &'static str), i64> = BTreeMap::new();
    for g in gifts {
        *p.entry((account::wallet(&g.sender), COIN, "wallet"))
            .or_default() -= g.coins;
        *p.entry((account::SPENT.to_string(), COIN, "spent"))
            .or_default() += g.coins;
        *p.entry((account::earnings(&g.creator), DIAMOND, "earnings"))
            .or_default() += g.diamonds;
        *p.entry((account::MINT.to_string(), DIAMOND, "mint"))
            .or_default() -= g.diamonds;
    }
    p.retain(|_, v| *v != 0);
    debug_assert_eq!(
        p.iter()
            .filter(|k| k.0 .1 == COIN)
            .map(|(_, v)| v)
            .sum::<i64>(),
        0
    );
    debug_assert_eq!(
        p.iter()
            .filter(|k| k.0 .1 == DIAMOND)
            .map(|(_, v)| v)
            .sum::<i64>(),
        0
    );
    p
}

/// Open a ledger by URL (`sqlite:...`, `postgres://...` or `postgresql://...`).
pub async fn open(url: &str, pool_len_max: u32) -> anyhow::Result<std::sync::Arc<dyn Ledger>> {
    if url.starts_with("sqlite:") {
        return Ok(std::sync::Arc::new(
            sqlite::SqliteLedger::open(url, pool_len_max).await?,
        ));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(std::sync::Arc::new(
            postgres::PgLedger::open(url, pool_len_max).await?,
        ));
    }
    anyhow::bail!("ledger.url `{url}`: engine not available")
}

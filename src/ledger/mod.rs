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
/// US dollars, in cents (coin purchases, tips, cash-outs).
pub const USD: &str = "USD";

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
    /// Card holders paying through Stripe (external: goes negative by
    /// what they paid).
    pub const STRIPE_CUSTOMERS: &str = "stripe:customers";
    /// The platform's Stripe balance (external: cash-outs can exceed
    /// recorded sales, e.g. of granted coins).
    pub const STRIPE_PLATFORM: &str = "stripe:platform";
    /// Coins a user owes after a refund of coins already spent (debt:
    /// negative by what is owed).
    pub fn debt(user: &str) -> String {
        format!("debt:{user}")
    }
    /// Tips that reached a creator's connected account, cents.
    pub fn tips(creator: &str) -> String {
        format!("tips:{creator}")
    }
    /// Diamonds of cash-outs waiting for their Transfer's outcome.
    pub fn cashout_pending(creator: &str) -> String {
        format!("cashout_pending:{creator}")
    }
    /// Diamonds cashed out.
    pub fn cashed_out(creator: &str) -> String {
        format!("cashed_out:{creator}")
    }
    /// Cents transferred to a creator's connected account by cash-outs.
    pub fn payouts(creator: &str) -> String {
        format!("payouts:{creator}")
    }
}

/// A Stripe event as the ledger records it (once per id, in the same
/// transaction as its effect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeEventRef {
    /// `evt_...`.
    pub id: String,
    /// Its type, e.g. `payment_intent.succeeded`.
    pub kind: String,
}

/// A coin purchase paid through Stripe (`payment_intent.succeeded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseOp {
    /// The event that reported the payment.
    pub event: StripeEventRef,
    /// `pi_...`: the purchase's identity (op id `purchase:{pi}`).
    pub payment_intent: String,
    /// The buyer.
    pub user: String,
    /// Coins bought (> 0).
    pub coins: i64,
    /// Price paid, cents (> 0).
    pub amount_cents: i64,
}

/// A purchase as recorded, with what refunds took back so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseRecord {
    /// The buyer.
    pub user: String,
    /// Coins bought.
    pub coins: i64,
    /// Price paid, cents.
    pub amount_cents: i64,
    /// Coins already reversed by refunds.
    pub coins_reversed: i64,
    /// Cents refunded so far.
    pub cents_refunded: i64,
    /// Whether `payment_intent.succeeded` credited it.
    pub paid: bool,
    /// Of `coins`, those that repaid the buyer's debt when it was paid (the
    /// wallet got the rest).
    pub coins_to_debt: i64,
}

/// A refund (`charge.refunded`): the counters engine took `coins_taken`
/// of `coins_reversed` from the wallet; the rest is recorded as a debt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOp {
    /// The event that reported the refund.
    pub event: StripeEventRef,
    /// The purchase's PaymentIntent.
    pub payment_intent: String,
    /// Cents refunded in total after this refund (Stripe's cumulative
    /// `amount_refunded`); the op id is `refund:{pi}:{this}`.
    pub cents_refunded_total: i64,
    /// Coins this refund reverses.
    pub coins_reversed: i64,
    /// Of those, coins taken from the wallet (the rest becomes a debt).
    pub coins_taken: i64,
}

/// A chargeback (`charge.dispute.funds_withdrawn`): Stripe took `cents` of
/// a purchase back from the platform; the counters engine took
/// `coins_taken` of the `coins_reversed` coins they bought, the rest is
/// recorded as a debt (as for a refund). Op id `dispute:{dispute_id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeOp {
    /// The event that reported it.
    pub event: StripeEventRef,
    /// `dp_...`.
    pub dispute_id: String,
    /// The purchase's PaymentIntent.
    pub payment_intent: String,
    /// Cents withdrawn.
    pub cents: i64,
    /// Coins this dispute reverses.
    pub coins_reversed: i64,
    /// Of those, coins taken from the wallet (the rest becomes a debt).
    pub coins_taken: i64,
}

/// A dispute as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeRecord {
    /// The purchase's PaymentIntent.
    pub payment_intent: String,
    /// The buyer.
    pub user: String,
    /// Cents withdrawn.
    pub cents: i64,
    /// Coins reversed when the funds were withdrawn.
    pub coins_reversed: i64,
    /// Whether the platform won (`charge.dispute.funds_reinstated`): the
    /// coins and cents came back (op `dispute:{id}:reinstated`).
    pub reinstated: bool,
    /// Of the coins given back, those that repaid the buyer's debt (the
    /// wallet got the rest).
    pub coins_to_debt: i64,
}

/// A creator's Stripe Connect account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayoutAccount {
    /// `acct_...`.
    pub account: String,
    /// Stripe says payouts are enabled.
    pub payouts_enabled: bool,
}

/// A tip, 100% to the creator (a destination charge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TipRecord {
    /// `pi_...` of the destination charge.
    pub payment_intent: String,
    /// `sender:client id`, unique.
    pub tip_key: String,
    /// Tipper.
    pub sender: String,
    /// Creator receiving it.
    pub creator: String,
    /// `room:ID` or `video:ID`.
    pub target: String,
    /// Cents (> 0).
    pub amount_cents: i64,
    /// The tipper's message.
    pub message: String,
}

/// A cash-out of diamonds to a creator's connected account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CashoutRecord {
    /// The cash-out id (`creator:client id`), also the Transfer's
    /// Idempotency-Key.
    pub cashout_id: String,
    /// Whose diamonds.
    pub creator: String,
    /// Diamonds (> 0).
    pub diamonds: i64,
    /// Cents transferred for them (> 0).
    pub amount_cents: i64,
    /// `pending`, `completed` or `reversed`.
    pub status: String,
    /// `tr_...` once completed.
    pub transfer: Option<String>,
}

/// How a pending cash-out ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CashoutEnd {
    /// The Transfer succeeded: diamonds are cashed out, cents paid.
    Completed {
        /// `tr_...`.
        transfer: String,
    },
    /// Stripe refused the Transfer: diamonds go back to earnings.
    Reversed,
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
    /// Diamonds of cash-outs waiting for their Transfer.
    pub diamonds_cashout_pending: i64,
    /// Cents transferred by completed cash-outs.
    pub cashed_out_cents: i64,
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
    /// Coins owed after refunds of coins already spent (<= 0): minted =
    /// in wallets + spent + this.
    pub coins_in_debts: i64,
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

    /// How many rooms of `creator` are live (`limits.live_rooms_per_creator_max`).
    async fn live_rooms(&self, creator: &str) -> Result<u64>;

    /// Balance of one account in one currency.
    async fn balance(&self, account: &str, currency: &str) -> Result<i64>;

    /// A creator's settled earnings, cash-outs and tips (derived from
    /// balances).
    async fn earnings(&self, creator: &str) -> Result<LedgerEarnings> {
        Ok(LedgerEarnings {
            diamonds_settled: self.balance(&account::earnings(creator), DIAMOND).await?,
            diamonds_cashed_out: self.balance(&account::cashed_out(creator), DIAMOND).await?,
            tips_cents: self.balance(&account::tips(creator), USD).await?,
            diamonds_cashout_pending: self
                .balance(&account::cashout_pending(creator), DIAMOND)
                .await?,
            cashed_out_cents: self.balance(&account::payouts(creator), USD).await?,
        })
    }

    /// Whether the Stripe event `id` was already applied.
    async fn stripe_event_seen(&self, id: &str) -> Result<bool>;

    /// Record an event that has no ledger effect (acknowledged, ignored).
    /// False when it was already recorded.
    async fn record_stripe_event(&self, event: &StripeEventRef) -> Result<bool>;

    /// Record a purchase whose PaymentIntent was just created (unpaid;
    /// `op.event` is not used). A repeat changes nothing.
    async fn purchase_created(&self, op: &PurchaseOp) -> Result<()>;

    /// Credit a paid purchase once: op `purchase:{pi}` (mint → wallet in
    /// coins; customers → platform in cents), the purchase marked paid and
    /// the event row, in one transaction. False (and only the event
    /// recorded) when the event or the purchase was already applied, or no
    /// unpaid purchase with these parameters was created here.
    async fn purchase(&self, op: &PurchaseOp) -> Result<bool>;

    /// A purchase by PaymentIntent id.
    async fn purchase_record(&self, payment_intent: &str) -> Result<Option<PurchaseRecord>>;

    /// Record a refund once (see [`RefundOp`]). False when already applied.
    async fn refund(&self, op: &RefundOp) -> Result<bool>;

    /// Record a chargeback once (see [`DisputeOp`]): the dispute row, the
    /// purchase's reversed coins and the postings of a refund. False when
    /// the event or the dispute was already applied, or the purchase is not
    /// a paid one of ours.
    async fn dispute_withdrawn(&self, op: &DisputeOp) -> Result<bool>;

    /// A won dispute (`charge.dispute.funds_reinstated`), once: the cents
    /// come back to the platform and the coins to the buyer — first to
    /// their debt, the rest to the wallet (recorded as the dispute's
    /// `coins_to_debt`). False when the event was already applied or the
    /// dispute is not a withdrawn one.
    async fn dispute_reinstated(&self, event: &StripeEventRef, dispute_id: &str) -> Result<bool>;

    /// A dispute by id.
    async fn dispute_record(&self, dispute_id: &str) -> Result<Option<DisputeRecord>>;

    /// The creator's connected account, if any.
    async fn payout_account(&self, creator: &str) -> Result<Option<PayoutAccount>>;

    /// Record `account` for `creator` unless one is recorded; answers the
    /// account recorded (the first one wins).
    async fn put_payout_account(&self, creator: &str, account: &str) -> Result<PayoutAccount>;

    /// `account.updated`: set `payouts_enabled` for the account, once per
    /// event. False when the event was already applied.
    async fn account_updated(
        &self,
        event: &StripeEventRef,
        account: &str,
        payouts_enabled: bool,
    ) -> Result<bool>;

    /// Record a tip whose PaymentIntent was created (pending). A replay
    /// with the same PaymentIntent changes nothing.
    async fn tip_created(&self, tip: &TipRecord) -> Result<()>;

    /// The tip's PaymentIntent succeeded: post customers → tips:{creator}
    /// in cents, once. Answers the tip when applied now (None when the
    /// event or tip was already applied, or the PaymentIntent is no tip).
    async fn tip_succeeded(
        &self,
        event: &StripeEventRef,
        payment_intent: &str,
    ) -> Result<Option<TipRecord>>;

    /// Start a cash-out: diamonds move earnings → cashout_pending (op
    /// `cashout:{id}`). `insufficient_funds` when fewer are settled. A
    /// replay with the same parameters answers the recorded cash-out; other
    /// parameters are `bad_request`.
    async fn cashout_begin(&self, c: &CashoutRecord) -> Result<CashoutRecord>;

    /// End a pending cash-out once (completed or reversed). False when it
    /// had already ended.
    async fn cashout_end(&self, cashout_id: &str, end: &CashoutEnd) -> Result<bool>;

    /// A cash-out by id.
    async fn cashout(&self, cashout_id: &str) -> Result<Option<CashoutRecord>>;

    /// Cash-outs still pending (recovery at start), at most `len_max`.
    async fn cashouts_pending(&self, len_max: usize) -> Result<Vec<CashoutRecord>>;

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
    // Summed per sender and per creator on borrowed names first: one
    // account name is built per distinct account, not four per gift (the
    // per-gift `format!` and string compares were 4 % of the ingest
    // profile).
    let mut spent: foldhash::HashMap<&str, i64> = foldhash::HashMap::default();
    let mut earned: foldhash::HashMap<&str, i64> = foldhash::HashMap::default();
    let (mut coins, mut diamonds) = (0i64, 0i64);
    for g in gifts {
        *spent.entry(g.sender.as_str()).or_default() += g.coins;
        *earned.entry(g.creator.as_str()).or_default() += g.diamonds;
        coins += g.coins;
        diamonds += g.diamonds;
    }
    let mut p: BTreeMap<(String, &'static str, &'static str), i64> = BTreeMap::new();
    for (sender, c) in spent {
        *p.entry((account::wallet(sender), COIN, "wallet"))
            .or_default() -= c;
    }
    p.insert((account::SPENT.to_string(), COIN, "spent"), coins);
    for (creator, d) in earned {
        *p.entry((account::earnings(creator), DIAMOND, "earnings"))
            .or_default() += d;
    }
    p.insert((account::MINT.to_string(), DIAMOND, "mint"), -diamonds);
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

/// The postings of a purchase: coins from the mint, first to the buyer's
/// debt (`to_debt`, at most what is owed), the rest to the wallet; cents
/// from the customers to the platform's Stripe balance.
pub fn purchase_postings(op: &PurchaseOp, to_debt: i64) -> Postings {
    debug_assert!(
        (0..=op.coins).contains(&to_debt),
        "repays at most the purchase"
    );
    let mut p = Postings::new();
    p.insert((account::MINT.into(), COIN, "mint"), -op.coins);
    p.insert(
        (account::wallet(&op.user), COIN, "wallet"),
        op.coins - to_debt,
    );
    p.insert((account::debt(&op.user), COIN, "debt"), to_debt);
    p.insert(
        (account::STRIPE_CUSTOMERS.into(), USD, "external"),
        -op.amount_cents,
    );
    p.insert(
        (account::STRIPE_PLATFORM.into(), USD, "external"),
        op.amount_cents,
    );
    p.retain(|_, v| *v != 0);
    p
}

/// Coins of a purchase of `coins` that repay a debt balance of `debt_balance`
/// (a debt account's balance is negative while coins are owed).
pub fn debt_repayment(coins: i64, debt_balance: i64) -> i64 {
    debt_balance.saturating_neg().clamp(0, coins.max(0))
}

/// The postings of a refund of `cents` (this refund's part): the reversed
/// coins go back to the mint, taken from the wallet, the rest recorded as
/// the user's debt; the cents go back from the platform to the customer.
pub fn refund_postings(user: &str, op: &RefundOp, cents: i64) -> Postings {
    reversal_postings(user, op.coins_reversed, op.coins_taken, cents)
}

/// The postings of money taken back (a refund or a chargeback): the
/// reversed coins go back to the mint, `coins_taken` of them from the
/// wallet and the rest recorded as the user's debt; the cents go back from
/// the platform to the customer.
pub fn reversal_postings(
    user: &str,
    coins_reversed: i64,
    coins_taken: i64,
    cents: i64,
) -> Postings {
    let mut p = Postings::new();
    let debt = coins_reversed - coins_taken;
    p.insert((account::MINT.into(), COIN, "mint"), coins_reversed);
    p.insert((account::wallet(user), COIN, "wallet"), -coins_taken);
    p.insert((account::debt(user), COIN, "debt"), -debt);
    p.insert((account::STRIPE_CUSTOMERS.into(), USD, "external"), cents);
    p.insert((account::STRIPE_PLATFORM.into(), USD, "external"), -cents);
    p.retain(|_, v| *v != 0);
    p
}

/// The postings of a tip: cents from the customer straight to the
/// creator's connected account (a destination charge, no fee).
pub fn tip_postings(tip: &TipRecord) -> Postings {
    let mut p = Postings::new();
    p.insert(
        (account::STRIPE_CUSTOMERS.into(), USD, "external"),
        -tip.amount_cents,
    );
    p.insert((account::tips(&tip.creator), USD, "tips"), tip.amount_cents);
    p
}

/// The postings that start a cash-out.
pub fn cashout_begin_postings(c: &CashoutRecord) -> Postings {
    let mut p = Postings::new();
    p.insert(
        (account::earnings(&c.creator), DIAMOND, "earnings"),
        -c.diamonds,
    );
    p.insert(
        (
            account::cashout_pending(&c.creator),
            DIAMOND,
            "cashout_pending",
        ),
        c.diamonds,
    );
    p
}

/// The postings that end a cash-out.
pub fn cashout_end_postings(c: &CashoutRecord, end: &CashoutEnd) -> Postings {
    let mut p = Postings::new();
    p.insert(
        (
            account::cashout_pending(&c.creator),
            DIAMOND,
            "cashout_pending",
        ),
        -c.diamonds,
    );
    match end {
        CashoutEnd::Completed { .. } => {
            p.insert(
                (account::cashed_out(&c.creator), DIAMOND, "cashed_out"),
                c.diamonds,
            );
            p.insert(
                (account::STRIPE_PLATFORM.into(), USD, "external"),
                -c.amount_cents,
            );
            p.insert(
                (account::payouts(&c.creator), USD, "payouts"),
                c.amount_cents,
            );
        }
        CashoutEnd::Reversed => {
            p.insert(
                (account::earnings(&c.creator), DIAMOND, "earnings"),
                c.diamonds,
            );
        }
    }
    p
}

/// Postings keyed by (account, currency, kind).
pub type Postings = BTreeMap<(String, &'static str, &'static str), i64>;

/// Whether a database error is a CHECK violation (a balance that would go
/// below zero).
pub(crate) fn is_check_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.code().as_deref() == Some("23514")
                || d.code().as_deref() == Some("275")
                || d.message().contains("CHECK constraint failed")
        }
        _ => false,
    }
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

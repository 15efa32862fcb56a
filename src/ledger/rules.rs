//! The money rules, as plain functions next to the postings: debt
//! repayment on purchase, the clawback plan of reversed coins, the payout
//! hold and daily limits, grant caps and credit replays.
//!
//! Owns: decisions on numbers read from the ledger. Must not: touch the
//! database (the SQL flows read the inputs and write the outcome).

use std::collections::BTreeMap;

use super::types::*;
use super::{account, Postings, DIAMOND};
use crate::error::Result;
use crate::model::PayoutLimits;

/// Coins of a purchase of `coins` that repay a debt balance of `debt_balance`
/// (a debt account's balance is negative while coins are owed).
pub fn debt_repayment(coins: i64, debt_balance: i64) -> i64 {
    debt_balance.saturating_neg().clamp(0, coins.max(0))
}

/// A gift of a buyer whose purchase was refunded or disputed, as a
/// clawback sees it (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClawbackGift {
    /// `room:ID` or `video:ID`.
    pub target: String,
    /// Its seq.
    pub seq: i64,
    /// The settlement batch's op id.
    pub op_id: String,
    /// Who earned it.
    pub creator: String,
    /// Coins it cost.
    pub coins: i64,
    /// Diamonds it earned.
    pub diamonds: i64,
    /// Coins of it already clawed back by an earlier reversal.
    pub coins_clawed: i64,
    /// Diamonds of its settlement (batch, creator) still on hold and not
    /// clawed back yet (0 once the hold passed).
    pub settlement_held: i64,
    /// The creator's earnings balance (settled, not cashed out).
    pub earnings: i64,
}

/// What a clawback does: coins per gift, diamonds per settlement, postings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClawbackPlan {
    /// (target, seq, coins reversed now).
    pub gifts: Vec<(String, i64, i64)>,
    /// (settlement op id, creator, diamonds clawed now).
    pub settlements: Vec<(String, String, i64)>,
    /// Diamonds taken back from earnings on hold.
    pub clawed: i64,
    /// Diamonds that could not be (already available or cashed out): the
    /// platform's loss.
    pub lost: i64,
    /// earnings → clawed_back, and unrecovered → platform loss.
    pub postings: Postings,
}

/// Claw back the diamonds of a buyer's gifts for `coins` reversed coins:
/// newest gift first, each for at most its coins not clawed back yet,
/// converted at the gift's own diamonds/coins (rounded down); diamonds
/// still on hold are taken from the creator's earnings, the rest is
/// recorded as the platform's loss, never dropped.
pub fn plan_clawback(gifts: &[ClawbackGift], coins: i64) -> ClawbackPlan {
    use std::collections::HashMap;
    let mut plan = ClawbackPlan::default();
    let mut left = coins.max(0);
    let mut held: HashMap<(&str, &str), i64> = HashMap::new();
    let mut earnings: HashMap<&str, i64> = HashMap::new();
    let mut per_settlement: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut per_creator: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for g in gifts {
        if left == 0 {
            break;
        }
        let open = (g.coins - g.coins_clawed).max(0);
        let take = left.min(open);
        if take == 0 || g.coins <= 0 {
            continue;
        }
        left -= take;
        plan.gifts.push((g.target.clone(), g.seq, take));
        let diamonds = ((g.diamonds as i128 * take as i128) / g.coins as i128) as i64;
        let h = held
            .entry((g.op_id.as_str(), g.creator.as_str()))
            .or_insert(g.settlement_held.max(0));
        let e = earnings
            .entry(g.creator.as_str())
            .or_insert(g.earnings.max(0));
        let claw = diamonds.min(*h).min(*e);
        *h -= claw;
        *e -= claw;
        if claw > 0 {
            *per_settlement
                .entry((g.op_id.clone(), g.creator.clone()))
                .or_default() += claw;
        }
        let c = per_creator.entry(g.creator.as_str()).or_default();
        c.0 += claw;
        c.1 += diamonds - claw;
    }
    for (creator, (claw, lost)) in per_creator {
        plan.clawed += claw;
        plan.lost += lost;
        let p = &mut plan.postings;
        *p.entry((account::earnings(creator), DIAMOND, "earnings"))
            .or_default() -= claw;
        *p.entry((account::clawed_back(creator), DIAMOND, "clawed_back"))
            .or_default() += claw;
        *p.entry((account::unrecovered(creator), DIAMOND, "external"))
            .or_default() -= lost;
        *p.entry((account::PLATFORM_LOSS.into(), DIAMOND, "loss"))
            .or_default() += lost;
    }
    plan.postings.retain(|_, v| *v != 0);
    plan.settlements = per_settlement
        .into_iter()
        .map(|((op, c), d)| (op, c, d))
        .collect();
    plan
}

/// Why a cash-out is refused by the hold or the daily limits, if it is:
/// `available` diamonds now, and the creator's cash-outs (count, cents)
/// in the last 24 hours.
pub fn cashout_refusal(
    c: &CashoutRecord,
    limits: &PayoutLimits,
    available: i64,
    day: (i64, i64),
) -> Option<crate::error::Error> {
    use crate::error::{Error, ErrorCode};
    if day.0 >= limits.cashouts_per_day_max {
        return Some(Error::new(
            ErrorCode::RateLimited,
            format!(
                "at most {} cash-outs per 24 hours (payouts.cashouts_per_day_max)",
                limits.cashouts_per_day_max
            ),
        ));
    }
    if day.1.saturating_add(c.amount_cents) > limits.cashout_cents_per_day_max {
        return Some(Error::new(
            ErrorCode::RateLimited,
            format!(
                "at most {} cents cashed out per 24 hours (payouts.cashout_cents_per_day_max)",
                limits.cashout_cents_per_day_max
            ),
        ));
    }
    if c.diamonds > available {
        return Some(Error::new(
            ErrorCode::InsufficientFunds,
            format!(
                "only {available} diamonds are available (settled diamonds are held for payouts.hold_s)"
            ),
        ));
    }
    None
}

/// The answer to a credit whose op id is already recorded with `detail`:
/// the original when the parameters match, else `bad_request`.
pub(crate) fn replayed_credit(op: &CreditOp, detail: &str) -> Result<CreditOutcome> {
    let first: CreditOp = serde_json::from_str(detail).map_err(|_| {
        crate::error::Error::bad_request(format!(
            "id `{}` was used for another kind of operation",
            op.op_id
        ))
    })?;
    if first != *op {
        return Err(crate::error::Error::bad_request(format!(
            "id `{}` was already used with other parameters",
            op.op_id
        )));
    }
    Ok(CreditOutcome {
        applied_now: false,
        op: first,
    })
}

/// `rate_limited`: `admin` granted `granted` coins in the last 24 hours and
/// may grant at most `max`.
pub(crate) fn grant_cap_error(admin: &str, granted: i64, max: i64) -> crate::error::Error {
    crate::error::Error::new(
        crate::error::ErrorCode::RateLimited,
        format!(
            "admin `{admin}` granted {granted} coins in the last 24 hours; at most {max} (admin.grant_coins_per_day_max)"
        ),
    )
}

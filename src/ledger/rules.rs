//! The money rules, as plain functions next to the postings: debt
//! repayment on purchase, the clawback plan of reversed coins, the payout
//! hold and daily limits, grant caps and credit replays.
//!
//! Owns: decisions on numbers read from the ledger. Must not: touch the
//! database (the SQL flows read the inputs and write the outcome).

use std::collections::BTreeMap;

use super::error::{LedgerError, LedgerResult};
use super::types::*;
use super::{account, Postings, DIAMOND};
use crate::model::PayoutLimits;

/// Coins of a purchase of `coins` that repay a debt balance of `debt_balance`
/// (a debt account's balance is negative while coins are owed).
pub fn debt_repayment(coins: i64, debt_balance: i64) -> i64 {
    debt_balance.saturating_neg().clamp(0, coins.max(0))
}

/// A gift of a buyer whose purchase was refunded or disputed, as a
/// clawback sees it (newest first).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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

/// Whether a refund's or chargeback's coins add up: of `coins_reversed`,
/// `coins_taken` from the wallet (the rest becomes a debt), neither below
/// zero.
pub fn valid_reversal(coins_reversed: i64, coins_taken: i64) -> bool {
    (0..=coins_reversed).contains(&coins_taken)
}

/// Why a cash-out is refused by the hold or the daily limits, if it is:
/// `available` diamonds now, and the creator's cash-outs in the last 24
/// hours (count in every currency, cents in the cash-out's currency).
pub fn cashout_refusal(
    c: &CashoutRecord,
    limits: &PayoutLimits,
    available: i64,
    day: (i64, i64),
) -> Option<LedgerError> {
    if day.0 >= limits.cashouts_per_day_max {
        return Some(LedgerError::CashoutsPerDay {
            max: limits.cashouts_per_day_max,
        });
    }
    let cents_max = limits.cents_per_day_max(c.currency);
    if day.1.saturating_add(c.amount_cents) > cents_max {
        return Some(LedgerError::CashoutCentsPerDay { max: cents_max });
    }
    if c.diamonds > available {
        return Some(LedgerError::NotAvailable { available });
    }
    None
}

/// Diamonds of a creator available for a cash-out: the earnings `balance`
/// less the `held` diamonds still in the payout hold (never below zero).
pub fn available_diamonds(balance: i64, held: i64) -> i64 {
    (balance - held.max(0)).max(0)
}

/// The answer to a credit whose op id is already recorded with `detail`:
/// the original when the parameters match, else a typed refusal.
pub fn replayed_credit(op: &CreditOp, detail: &str) -> LedgerResult<CreditOutcome> {
    let first: CreditOp =
        serde_json::from_str(detail).map_err(|_| LedgerError::IdOtherKind(op.op_id.clone()))?;
    if first != *op {
        return Err(LedgerError::IdReused(op.op_id.clone()));
    }
    Ok(CreditOutcome {
        applied_now: false,
        op: first,
    })
}

/// Refuse a grant when `admin` granted `granted` coins in the last 24 hours
/// and `coins` more would exceed `max`.
pub fn grant_cap(admin: &str, granted: i64, coins: i64, max: i64) -> LedgerResult<()> {
    if granted.saturating_add(coins) > max {
        return Err(LedgerError::GrantCap {
            admin: admin.to_string(),
            granted,
            max,
        });
    }
    Ok(())
}

/// Where a chargeback stands: withdrawn (funds taken by Stripe, coins
/// reversed), then possibly reinstated (the platform won) — once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeStatus {
    /// `charge.dispute.funds_withdrawn` applied.
    Withdrawn,
    /// `charge.dispute.funds_reinstated` applied after the withdrawal.
    Reinstated,
}

impl DisputeStatus {
    /// The text stored in `disputes.status`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DisputeStatus::Withdrawn => "withdrawn",
            DisputeStatus::Reinstated => "reinstated",
        }
    }

    /// The status stored as `s` (an unknown text reads as withdrawn: only a
    /// reinstatement is ever recorded over it).
    pub fn parse(s: &str) -> Self {
        if s == DisputeStatus::Reinstated.as_str() {
            DisputeStatus::Reinstated
        } else {
            DisputeStatus::Withdrawn
        }
    }

    /// The status after the platform wins, if it can still win: only a
    /// withdrawn dispute is reinstated, and only once.
    pub fn reinstate(self) -> Option<Self> {
        match self {
            DisputeStatus::Withdrawn => Some(DisputeStatus::Reinstated),
            DisputeStatus::Reinstated => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gift(seq: i64, creator: &str, coins: i64, diamonds: i64) -> ClawbackGift {
        ClawbackGift {
            target: "room:r".into(),
            seq,
            op_id: format!("batch:{seq}"),
            creator: creator.into(),
            coins,
            diamonds,
            coins_clawed: 0,
            settlement_held: diamonds,
            earnings: 1_000,
        }
    }

    #[test]
    fn debt_is_repaid_first_and_at_most_the_purchase() {
        assert_eq!(debt_repayment(100, 0), 0);
        assert_eq!(debt_repayment(100, -30), 30);
        assert_eq!(debt_repayment(100, -300), 100);
        assert_eq!(debt_repayment(100, 5), 0, "a positive balance owes nothing");
        assert_eq!(debt_repayment(-1, -30), 0);
        assert_eq!(debt_repayment(10, i64::MIN), 10);
    }

    #[test]
    fn clawback_takes_newest_gifts_first_at_their_own_rate() {
        let gifts = [gift(2, "cat", 10, 5), gift(1, "cat", 10, 8)];
        let plan = plan_clawback(&gifts, 15);
        assert_eq!(
            plan.gifts,
            vec![("room:r".into(), 2, 10), ("room:r".into(), 1, 5)]
        );
        // 5 diamonds of the first gift, 8 * 5 / 10 = 4 of the second.
        assert_eq!(plan.clawed, 9);
        assert_eq!(plan.lost, 0);
        assert_eq!(
            plan.postings
                .get(&(account::earnings("cat"), DIAMOND, "earnings")),
            Some(&-9)
        );
        assert_eq!(plan.postings.values().sum::<i64>(), 0);
    }

    #[test]
    fn clawback_beyond_the_hold_is_the_platforms_loss() {
        let mut g = gift(1, "cat", 10, 10);
        g.settlement_held = 4;
        let plan = plan_clawback(&[g], 10);
        assert_eq!((plan.clawed, plan.lost), (4, 6));
        assert_eq!(plan.settlements, vec![("batch:1".into(), "cat".into(), 4)]);
        assert_eq!(
            plan.postings
                .get(&(account::PLATFORM_LOSS.into(), DIAMOND, "loss")),
            Some(&6)
        );
        assert_eq!(plan.postings.values().sum::<i64>(), 0);
    }

    #[test]
    fn clawback_skips_coins_already_clawed_and_nothing_for_nothing() {
        let mut g = gift(1, "cat", 10, 10);
        g.coins_clawed = 10;
        assert_eq!(plan_clawback(&[g], 5), ClawbackPlan::default());
        assert_eq!(
            plan_clawback(&[gift(1, "cat", 10, 10)], 0),
            ClawbackPlan::default()
        );
    }

    fn limits() -> PayoutLimits {
        PayoutLimits {
            cashouts_per_day_max: 2,
            cashout_cents_per_day_max: 1_000,
            ..PayoutLimits::default()
        }
    }

    fn cashout(diamonds: i64, amount_cents: i64) -> CashoutRecord {
        CashoutRecord {
            diamonds,
            amount_cents,
            ..CashoutRecord::default()
        }
    }

    #[test]
    fn cashout_limits_are_checked_count_then_cents_then_hold() {
        let l = limits();
        assert!(cashout_refusal(&cashout(10, 100), &l, 10, (1, 900)).is_none());
        assert!(matches!(
            cashout_refusal(&cashout(10, 100), &l, 10, (2, 0)),
            Some(LedgerError::CashoutsPerDay { max: 2 })
        ));
        assert!(matches!(
            cashout_refusal(&cashout(10, 101), &l, 10, (1, 900)),
            Some(LedgerError::CashoutCentsPerDay { max: 1_000 })
        ));
        assert!(matches!(
            cashout_refusal(&cashout(11, 100), &l, 10, (0, 0)),
            Some(LedgerError::NotAvailable { available: 10 })
        ));
        assert_eq!(available_diamonds(10, 4), 6);
        assert_eq!(available_diamonds(10, 40), 0);
        assert_eq!(available_diamonds(10, -4), 10);
    }

    #[test]
    fn credit_replays_answer_the_original_or_refuse() {
        let op = CreditOp {
            op_id: "grant:1".into(),
            kind: "grant".into(),
            user: "ann".into(),
            coins: 5,
        };
        let stored = serde_json::to_string(&op).unwrap();
        let again = replayed_credit(&op, &stored).unwrap();
        assert!(!again.applied_now);
        assert_eq!(again.op, op);
        let other = CreditOp {
            coins: 6,
            ..op.clone()
        };
        assert!(matches!(
            replayed_credit(&other, &stored),
            Err(LedgerError::IdReused(_))
        ));
        assert!(matches!(
            replayed_credit(&op, "{}"),
            Err(LedgerError::IdOtherKind(_))
        ));
    }

    #[test]
    fn grants_are_capped_per_admin() {
        assert!(grant_cap("root", 90, 10, 100).is_ok());
        let e = grant_cap("root", 90, 11, 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "admin `root` granted 90 coins in the last 24 hours; at most 100 (admin.grant_coins_per_day_max)"
        );
    }

    #[test]
    fn a_reversal_takes_at_most_the_coins_it_reverses() {
        assert!(valid_reversal(10, 0));
        assert!(valid_reversal(10, 10));
        assert!(valid_reversal(0, 0));
        assert!(!valid_reversal(10, 11));
        assert!(!valid_reversal(10, -1));
        assert!(!valid_reversal(-1, -1));
    }

    #[test]
    fn a_dispute_is_reinstated_once() {
        let s = DisputeStatus::parse("withdrawn");
        assert_eq!(s, DisputeStatus::Withdrawn);
        let won = s.reinstate().unwrap();
        assert_eq!(won.as_str(), "reinstated");
        assert_eq!(DisputeStatus::parse(won.as_str()), won);
        assert_eq!(won.reinstate(), None);
    }
}

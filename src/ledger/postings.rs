//! The double-entry postings of every ledger operation, as pure functions.
//!
//! Owns: which accounts an operation moves, by how much (summing to zero
//! per currency). Must not: touch the database or decide whether an
//! operation is allowed (see `super::rules`).

use std::collections::BTreeMap;

use super::types::*;
use super::{account, COIN, DIAMOND};
use crate::model::{Fiat, PendingGift};

/// Postings keyed by (account, currency, kind).
pub type Postings = BTreeMap<(String, &'static str, &'static str), i64>;

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
/// (of the purchase's currency) from the customers to the platform's Stripe
/// balance.
pub fn purchase_postings(op: &PurchaseOp, to_debt: i64) -> Postings {
    let fiat = op.currency.code();
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
        (account::STRIPE_CUSTOMERS.into(), fiat, "external"),
        -op.amount_cents,
    );
    p.insert(
        (account::STRIPE_PLATFORM.into(), fiat, "external"),
        op.amount_cents,
    );
    p.retain(|_, v| *v != 0);
    p
}

/// The postings of a refund of `cents` (this refund's part): the reversed
/// coins go back to the mint, taken from the wallet, the rest recorded as
/// the user's debt; the cents (in the purchase's currency `fiat`) go back
/// from the platform to the customer.
pub fn refund_postings(user: &str, op: &RefundOp, cents: i64, fiat: Fiat) -> Postings {
    reversal_postings(user, op.coins_reversed, op.coins_taken, cents, fiat)
}

/// The postings of money taken back (a refund or a chargeback): the
/// reversed coins go back to the mint, `coins_taken` of them from the
/// wallet and the rest recorded as the user's debt; the cents (in the
/// purchase's currency `fiat`) go back from the platform to the customer.
pub fn reversal_postings(
    user: &str,
    coins_reversed: i64,
    coins_taken: i64,
    cents: i64,
    fiat: Fiat,
) -> Postings {
    let fiat = fiat.code();
    let mut p = Postings::new();
    let debt = coins_reversed - coins_taken;
    p.insert((account::MINT.into(), COIN, "mint"), coins_reversed);
    p.insert((account::wallet(user), COIN, "wallet"), -coins_taken);
    p.insert((account::debt(user), COIN, "debt"), -debt);
    p.insert((account::STRIPE_CUSTOMERS.into(), fiat, "external"), cents);
    p.insert((account::STRIPE_PLATFORM.into(), fiat, "external"), -cents);
    p.retain(|_, v| *v != 0);
    p
}

/// The postings of a tip: cents from the customer straight to the
/// creator's connected account (a destination charge, no fee), in the
/// tip's currency.
pub fn tip_postings(tip: &TipRecord) -> Postings {
    let fiat = tip.currency.code();
    let mut p = Postings::new();
    p.insert(
        (account::STRIPE_CUSTOMERS.into(), fiat, "external"),
        -tip.amount_cents,
    );
    p.insert(
        (account::tips(&tip.creator), fiat, "tips"),
        tip.amount_cents,
    );
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
                (
                    account::STRIPE_PLATFORM.into(),
                    c.currency.code(),
                    "external",
                ),
                -c.amount_cents,
            );
            p.insert(
                (account::payouts(&c.creator), c.currency.code(), "payouts"),
                c.amount_cents,
            );
        }
        CashoutEnd::Reversed | CashoutEnd::Flagged { .. } => {
            p.insert(
                (account::earnings(&c.creator), DIAMOND, "earnings"),
                c.diamonds,
            );
        }
    }
    p
}

/// The postings of a won tip dispute from its withdrawal's `entries` (in
/// the tip's currency `fiat`): the cents come back (customers → platform),
/// the recorded loss is taken back, and when `repaid` the creator's
/// recovered cents go back to them (the withdrawal negated whole).
pub fn tip_reinstated_postings(entries: &[(String, i64)], repaid: bool, fiat: Fiat) -> Postings {
    let fiat = fiat.code();
    let mut p = Postings::new();
    let cents = entries
        .iter()
        .find(|(a, _)| a == account::STRIPE_CUSTOMERS)
        .map_or(0, |(_, v)| *v);
    for (acct, amount) in entries {
        let kind = if acct.starts_with("tips:") {
            if !repaid {
                continue;
            }
            "tips"
        } else if acct == account::PLATFORM_LOSS {
            "loss"
        } else if acct == account::STRIPE_PLATFORM && !repaid {
            *p.entry((acct.clone(), fiat, "external")).or_default() += cents;
            continue;
        } else {
            "external"
        };
        *p.entry((acct.clone(), fiat, kind)).or_default() -= amount;
    }
    p.retain(|_, v| *v != 0);
    p
}

/// (cents, cents recovered from the creator) of a tip reversal's entries.
pub fn tip_amounts_of(entries: &[(String, i64)]) -> (i64, i64) {
    let get = |f: &dyn Fn(&str) -> bool| {
        entries
            .iter()
            .filter(|(a, _)| f(a))
            .map(|(_, v)| *v)
            .sum::<i64>()
    };
    (
        get(&|a| a == account::STRIPE_CUSTOMERS),
        -get(&|a| a.starts_with("tips:")),
    )
}

/// The postings that undo a chargeback's clawback when the platform wins
/// the dispute (the coins are paid after all): the diamond entries of the
/// withdrawal op, negated — clawed-back diamonds go back to the creators'
/// earnings and the loss recorded for the rest is taken back.
pub fn clawback_undo_postings(entries: &[(String, i64)]) -> Postings {
    let mut p = Postings::new();
    for (acct, amount) in entries {
        let kind = if acct.starts_with("earnings:") {
            "earnings"
        } else if acct.starts_with("clawed_back:") {
            "clawed_back"
        } else if acct == account::PLATFORM_LOSS {
            "loss"
        } else {
            "external"
        };
        *p.entry((acct.clone(), DIAMOND, kind)).or_default() -= amount;
    }
    p.retain(|_, v| *v != 0);
    p
}

/// The postings of a tip refunded or disputed: the platform pays the
/// customer back, the transfer reversal brings `recovered` back from the
/// creator's account, and the rest is the platform's loss (all in the
/// tip's currency `fiat`).
pub fn tip_reversal_postings(creator: &str, cents: i64, recovered: i64, fiat: Fiat) -> Postings {
    let fiat = fiat.code();
    let mut p = Postings::new();
    let lost = cents - recovered;
    *p.entry((account::STRIPE_CUSTOMERS.into(), fiat, "external"))
        .or_default() += cents;
    *p.entry((account::STRIPE_PLATFORM.into(), fiat, "external"))
        .or_default() += recovered - cents;
    *p.entry((account::tips(creator), fiat, "tips")).or_default() -= recovered;
    *p.entry((account::unrecovered(creator), fiat, "external"))
        .or_default() -= lost;
    *p.entry((account::PLATFORM_LOSS.into(), fiat, "loss"))
        .or_default() += lost;
    p.retain(|_, v| *v != 0);
    p
}

/// The settlement rows of a batch: diamonds per creator of the gifts
/// posted now (the hold starts at the batch's commit).
pub fn settlement_rows<'a>(
    gifts: impl IntoIterator<Item = &'a PendingGift>,
) -> BTreeMap<&'a str, i64> {
    let mut m: BTreeMap<&str, i64> = BTreeMap::new();
    for g in gifts {
        *m.entry(g.creator.as_str()).or_default() += g.diamonds;
    }
    m.retain(|_, d| *d > 0);
    m
}

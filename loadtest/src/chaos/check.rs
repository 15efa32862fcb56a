//! The checker: after each fault (load paused, the cluster recovered, the
//! settlement caught up) and at the end, through the public API, the
//! ledger's tables (read-only SQL) and the Stripe double's Transfers.
//!
//! Owns: [`check`] and its invariants, each answered as a violation line
//! naming the first wrong entry:
//! 1. per currency, the ledger's entries sum to zero;
//! 2. coins: minted = wallets + spent + debts in the ledger, and minted =
//!    what the clients were granted + bought (each purchase once, however
//!    often its event came);
//! 3. gifts: no client id twice in the ledger, none the clients never sent,
//!    each with the sender and coins sent; each acked gift in the ledger
//!    exactly once, except (`gift.ack = "counter"`) gifts acked just
//!    before a fault that may lose them (README's failure table), counted
//!    as lost whole (the ledger has no half gift by construction; the
//!    sender's wallet must agree with the ledger);
//! 4. every sender's wallet (API) = its ledger wallet = granted + bought −
//!    its gifts in the ledger;
//! 5. diamonds per creator: settled + cash-out pending + cashed out (API)
//!    = the diamonds of its gifts in the ledger, nothing pending;
//! 6. Transfers: at most one per cash-out (the double counts one per
//!    Idempotency-Key), and per creator their sum = cashed-out cents (API);
//! 7. viewers: the violations they recorded (see [`super::viewers`]);
//! 8. tips: each paid tip in the ledger once, with its cents, and per
//!    creator the ledger's paid tips = `tips_cents` (API) = the tips whose
//!    event some node took, however often it came.
//!
//! Must not: write anything.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;

use super::books::Fate;
use super::cluster::{Double, Pg};
use super::faults::Kind;
use super::load::World;
use crate::token::Role;

/// How the checker judges a lost acked gift.
pub struct Rules {
    /// `gift.ack = "ledger"`: no acked gift may be lost.
    pub ledger_ack: bool,
    /// `appendfsync always`.
    pub fsync_always: bool,
}

fn num(s: &str) -> i64 {
    s.trim().parse().unwrap_or(0)
}

/// Wait (bounded) until nothing is pending: diamonds not yet settled and
/// cash-outs not yet answered by Stripe. Answers what was still pending.
pub async fn settle(w: &World, bound: Duration) -> Option<String> {
    let t0 = Instant::now();
    let mut rng = StdRng::from_entropy();
    let mut last = String::new();
    while t0.elapsed() < bound {
        let mut pending = Vec::new();
        for c in &w.creators {
            let (_, base) = w.nodes.pick(&mut rng);
            let tok = w.tokens.sign(c, Role::Creator).unwrap_or_default();
            let (st, e) = w
                .call(
                    reqwest::Method::GET,
                    &format!("{base}/v1/creators/{c}/earnings"),
                    &tok,
                    None,
                )
                .await;
            let p = e["diamonds_pending"].as_i64().unwrap_or(-1);
            let cp = e["diamonds_cashout_pending"].as_i64().unwrap_or(-1);
            if st != 200 || p != 0 || cp != 0 {
                pending.push(format!(
                    "{c}: http {st} diamonds_pending {p} cashout_pending {cp}"
                ));
            }
        }
        if pending.is_empty() {
            return None;
        }
        last = pending.join("; ");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Some(last)
}

/// GET through some node, retried (bounded) until it answers 200.
async fn get(w: &World, path: &str, token: &str) -> anyhow::Result<Value> {
    let mut rng = StdRng::from_entropy();
    for _ in 0..20 {
        let (_, base) = w.nodes.pick(&mut rng);
        let (st, v) = w
            .call(reqwest::Method::GET, &format!("{base}{path}"), token, None)
            .await;
        if st == 200 {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("GET {path}: no 200")
}

/// Check every invariant; answers the violations (empty: all hold).
pub async fn check(
    w: &World,
    pg: &Pg,
    double: &Double,
    rules: &Rules,
    faults: &BTreeMap<u64, (Kind, Instant)>,
) -> anyhow::Result<Vec<String>> {
    let mut bad = Vec::new();
    // 1. Entries sum to zero per currency.
    for row in pg
        .query("SELECT currency, SUM(amount) FROM entries GROUP BY currency ORDER BY 1")
        .await?
    {
        if num(&row[1]) != 0 {
            bad.push(format!(
                "ledger entries of {} sum to {}, not 0",
                row[0], row[1]
            ));
        }
    }
    // 2. Coins.
    let mut sums: HashMap<String, i64> = HashMap::new();
    for row in pg
        .query("SELECT kind, SUM(amount) FROM balances WHERE currency = 'COIN' GROUP BY kind")
        .await?
    {
        sums.insert(row[0].clone(), num(&row[1]));
    }
    let s = |k: &str| sums.get(k).copied().unwrap_or(0);
    let minted = -s("mint");
    if minted != s("wallet") + s("spent") + s("debt") {
        bad.push(format!(
            "coins minted {minted} != wallets {} + spent {} + debts {}",
            s("wallet"),
            s("spent"),
            s("debt")
        ));
    }
    let wallets: HashMap<String, i64> = pg
        .query("SELECT account, amount FROM balances WHERE kind = 'wallet' AND currency = 'COIN'")
        .await?
        .into_iter()
        .map(|r| (r[0].trim_start_matches("wallet:").to_string(), num(&r[1])))
        .collect();
    let rows = pg
        .query("SELECT client_id, sender, target, coins, diamonds, creator FROM gifts")
        .await?;
    let mut in_ledger: HashMap<String, u32> = HashMap::new();
    let mut spent_by: HashMap<String, i64> = HashMap::new();
    let mut diamonds_of: HashMap<String, i64> = HashMap::new();
    {
        let mut b = w.books.inner.lock();
        let credited: i64 = b.granted.values().sum::<i64>()
            + b.purchases
                .values()
                .filter(|p| p.delivered)
                .map(|p| p.coins)
                .sum::<i64>();
        if minted != credited {
            bad.push(format!(
                "coins minted in the ledger {minted} != granted + bought as the clients know it {credited}"
            ));
        }
        // 3. Gifts.
        for r in &rows {
            let (id, sender, target, coins) = (&r[0], &r[1], &r[2], num(&r[3]));
            *spent_by.entry(sender.clone()).or_default() += coins;
            *diamonds_of.entry(r[5].clone()).or_default() += num(&r[4]);
            let n = in_ledger.entry(id.clone()).or_default();
            *n += 1;
            if *n == 2 {
                bad.push(format!("gift {id} of {sender} is in the ledger twice"));
            }
            match b.gifts.get(id) {
                None if id.starts_with(&w.run) => {
                    bad.push(format!("gift {id} in the ledger was never sent"))
                }
                None => {}
                Some(g) if g.sender != *sender || g.target != *target || g.coins != coins => bad.push(format!(
                    "gift {id} in the ledger as ({sender}, {target}, {coins} coins), sent as ({}, {}, {} coins)",
                    g.sender, g.target, g.coins
                )),
                Some(g) if g.fate == Fate::Lost => {
                    bad.push(format!("gift {id} counted lost is in the ledger"))
                }
                Some(_) => {}
            }
        }
        let mut lost = 0;
        for (id, g) in b.gifts.iter_mut() {
            if g.fate != Fate::Acked || in_ledger.contains_key(id) {
                continue;
            }
            // Redis killed with `everysec` loses at most its last second
            // of writes (1.5 s allowed for the fsync's own time); data
            // lost whole loses every gift not settled yet.
            let allowed = !rules.ledger_ack
                && faults.get(&g.window).is_some_and(|(k, t)| {
                    k.may_lose_acked(rules.fsync_always)
                        && (*k == Kind::RedisFlush || g.at + Duration::from_millis(1500) >= *t)
                });
            if allowed {
                g.fate = Fate::Lost;
                lost += 1;
            } else {
                bad.push(format!(
                    "acked gift {id} ({} -> {}, {} coins, acked before fault {}) is not in the ledger",
                    g.sender, g.target, g.coins, g.window
                ));
            }
        }
        b.counts.gifts_lost_allowed += lost;
        // 4. Wallets, ledger side.
        let senders: Vec<String> = b.granted.keys().cloned().collect();
        for u in &senders {
            let bought: i64 = b
                .purchases
                .values()
                .filter(|p| p.delivered && p.user == *u)
                .map(|p| p.coins)
                .sum();
            let want = b.granted[u] + bought - spent_by.get(u).copied().unwrap_or(0);
            let have = wallets.get(u).copied().unwrap_or(0);
            if want != have {
                bad.push(format!(
                    "wallet of {u} in the ledger {have} != granted {} + bought {bought} - its gifts in the ledger",
                    b.granted[u]
                ));
            }
        }
        bad.extend(b.violations.iter().cloned());
    }
    // 4. Wallets as the API answers them (Redis) = the ledger's.
    for u in &w.senders {
        let tok = w.tokens.sign(u, Role::Viewer)?;
        let v = get(w, "/v1/wallet", &tok).await?;
        let api = v["coins"].as_i64().unwrap_or(-1);
        let ledger = wallets.get(u).copied().unwrap_or(0);
        if api != ledger {
            bad.push(format!(
                "wallet of {u}: the API says {api}, the ledger {ledger}"
            ));
        }
    }
    // 8. Tips, ledger side: one row per PaymentIntent (its key), so a
    // tip paid twice shows as cents the clients did not pay.
    let mut tipped: HashMap<String, (i64, i64)> = HashMap::new();
    {
        let b = w.books.inner.lock();
        for p in b.purchases.values().filter(|p| p.delivered) {
            if let Some((creator, cents)) = &p.tip {
                let t = tipped.entry(creator.clone()).or_default();
                t.0 += 1;
                t.1 += cents;
            }
        }
    }
    for row in pg
        .query("SELECT creator, COUNT(*), SUM(amount_cents) FROM tips WHERE status = 'succeeded' GROUP BY creator ORDER BY 1")
        .await?
    {
        let want = tipped.get(&row[0]).copied().unwrap_or((0, 0));
        if (num(&row[1]), num(&row[2])) != want {
            bad.push(format!(
                "tips to {}: the ledger has {} paid for {} cents, the clients paid {} for {} cents",
                row[0], row[1], row[2], want.0, want.1
            ));
        }
    }
    // 5. Diamonds and 6. Transfers.
    let transfers = double.transfers().await?;
    let mut per_cashout: HashMap<String, u32> = HashMap::new();
    let mut cents_to: HashMap<String, i64> = HashMap::new();
    for t in &transfers {
        let id = t["metadata"]["giftstream_cashout"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        let n = per_cashout.entry(id.clone()).or_default();
        *n += 1;
        if *n == 2 {
            bad.push(
                format!("cash-out {id} has two Transfers at Stripe: {transfers:?}")
                    .chars()
                    .take(600)
                    .collect(),
            );
        }
        let dest = t["destination"].as_str().unwrap_or("").to_string();
        *cents_to.entry(dest).or_default() += t["amount"].as_i64().unwrap_or(0);
    }
    for c in &w.creators {
        let tok = w.tokens.sign(c, Role::Creator)?;
        let e = get(w, &format!("/v1/creators/{c}/earnings"), &tok).await?;
        let f = |k: &str| e[k].as_i64().unwrap_or(0);
        let have = f("diamonds_settled") + f("diamonds_cashout_pending") + f("diamonds_cashed_out");
        let want = diamonds_of.get(c).copied().unwrap_or(0);
        if have != want || f("diamonds_pending") != 0 {
            bad.push(format!(
                "diamonds of {c}: settled {} + cash-out pending {} + cashed out {} = {have} (pending {}), its gifts in the ledger {want}",
                f("diamonds_settled"),
                f("diamonds_cashout_pending"),
                f("diamonds_cashed_out"),
                f("diamonds_pending")
            ));
        }
        let tips = tipped.get(c).map_or(0, |t| t.1);
        if f("tips_cents") != tips {
            bad.push(format!(
                "tips of {c}: the API says {} cents, the clients paid {tips}",
                f("tips_cents")
            ));
        }
        let acct = w.accounts.get(c).cloned().unwrap_or_default();
        let moved = cents_to.get(&acct).copied().unwrap_or(0);
        if moved != f("cashed_out_cents") {
            bad.push(format!(
                "creator {c}: Transfers to {acct} sum to {moved} cents, cashed out {} cents",
                f("cashed_out_cents")
            ));
        }
    }
    Ok(bad)
}

//! Ledger conformance: one set of tests, each written once against
//! `Arc<dyn Ledger>`, run on every engine — SQLite in memory, SQLite in a
//! file, and PostgreSQL (a fresh database per test; skipped only when no
//! server is configured and services are not required).

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;

use giftstream::error::ErrorCode;
use giftstream::ledger::{
    self, account, CashoutEnd, CashoutRecord, CreditOp, DisputeOp, EarlyReversal, Ledger,
    PurchaseOp, RefundOp, StripeEventRef, TargetRecord, TipRecord, TipReversalOp, Totals, COIN,
    DIAMOND, USD,
};
use giftstream::model::{Batch, PayoutLimits, PendingGift, Target, TargetInfo};
use giftstream::protocol::now_ms;

mod moderation;
use moderation::blocks_moderators_and_audit;

// ---- engines ---------------------------------------------------------------

/// Connections per ledger pool in these tests.
const POOL_LEN: u32 = 8;

/// A ledger under test, with whatever must outlive it (a temp dir).
struct Engine {
    ledger: Arc<dyn Ledger>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite_memory() -> Option<Engine> {
    let ledger = ledger::open("sqlite::memory:", POOL_LEN)
        .await
        .expect("open sqlite in memory");
    Some(Engine { ledger, _dir: None })
}

async fn sqlite_file() -> Option<Engine> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let ledger = ledger::open(&url, POOL_LEN)
        .await
        .expect("open sqlite file");
    Some(Engine {
        ledger,
        _dir: Some(dir),
    })
}

async fn postgres() -> Option<Engine> {
    let url = common::services::fresh_postgres_url().await?;
    let ledger = ledger::open(&url, POOL_LEN)
        .await
        .unwrap_or_else(|e| panic!("open postgres ledger at {url}: {e:#}"));
    Some(Engine { ledger, _dir: None })
}

/// For each test fn, one `#[tokio::test]` per engine: `<engine>::<test>`.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        conformance!(@engine sqlite_memory: $($test),*);
        conformance!(@engine sqlite_file: $($test),*);
        conformance!(@engine postgres: $($test),*);
    };
    (@engine $engine:ident: $($test:ident),*) => {
        mod $engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(engine) = super::$engine().await else { return };
                    super::$test(engine.ledger.clone()).await;
                }
            )*
        }
    };
}

conformance!(
    blocks_moderators_and_audit,
    credit_is_idempotent,
    commit_batch_is_applied_once,
    gift_in_two_batches_is_posted_once,
    gift_repeated_inside_one_batch_is_posted_once,
    entries_balance_and_totals_match_gifts,
    overdraft_batch_fails_and_writes_nothing,
    snapshot_restores_wallets_ops_gifts_and_targets,
    open_target_ownership_reopen_and_has_gift,
    swap_clean_mark_answers_the_previous_mark,
    concurrent_commits_apply_everything_exactly_once,
    purchase_is_applied_once_per_event_and_payment_intent,
    refund_takes_what_is_left_and_records_a_debt_the_next_purchases_repay,
    dispute_reverses_then_reinstates_once,
    tip_is_posted_once_to_the_creator,
    cashout_pends_then_completes_or_reverses_once,
    cashout_ids_that_look_like_end_records_do_not_collide,
    cashout_attempts_backoff_and_flagged_end,
    grants_record_the_admin_and_stop_at_the_daily_cap,
    account_updated_and_ignored_events_apply_once,
    account_updated_older_than_the_last_applied_changes_nothing,
    held_diamonds_cannot_be_cashed_out_until_the_hold_passes,
    cashouts_per_day_and_cents_per_day_are_limited,
    refund_claws_back_held_diamonds_newest_first_and_records_the_rest_as_loss,
    dispute_claws_back_held_diamonds_too,
    tip_refund_and_dispute_are_recorded_once_and_sum_to_zero,
    early_reversals_are_parked_until_their_event_applies,
);

// ---- builders and checks -----------------------------------------------------

fn grant(op_id: &str, user: &str, coins: i64) -> CreditOp {
    CreditOp {
        op_id: op_id.to_string(),
        kind: "grant".to_string(),
        user: user.to_string(),
        coins,
    }
}

/// A gift as the counters engine hands it to settlement.
fn gift(
    target: &str,
    seq: u64,
    sender: &str,
    creator: &str,
    coins: i64,
    balance_after: i64,
) -> PendingGift {
    PendingGift {
        target: target.to_string(),
        seq,
        sender: sender.to_string(),
        client_id: format!("c-{target}-{seq}"),
        creator: creator.to_string(),
        gift: "rose".to_string(),
        count: 1,
        coins,
        diamonds: coins / 2,
        balance_after,
        ts: now_ms(),
        message: None,
    }
}

fn batch(id: &str, gifts: Vec<PendingGift>) -> Batch {
    let ticket_max = gifts.len() as u64;
    Batch {
        id: id.to_string(),
        gifts,
        ticket_max,
    }
}

async fn credit(l: &Arc<dyn Ledger>, op_id: &str, user: &str, coins: i64) {
    let out = l.credit(&grant(op_id, user, coins)).await.expect("credit");
    assert!(out.applied_now, "{op_id} applied");
}

async fn wallet(l: &Arc<dyn Ledger>, user: &str) -> i64 {
    l.balance(&account::wallet(user), COIN)
        .await
        .expect("balance")
}

async fn totals(l: &Arc<dyn Ledger>) -> Totals {
    l.totals().await.expect("totals")
}

/// Invariant 1 on the ledger alone.
fn assert_conserved(t: &Totals) {
    for (currency, sum) in &t.entry_sums {
        assert_eq!(*sum, 0, "entries of {currency} sum to zero: {t:?}");
    }
    assert_eq!(
        t.coins_minted,
        t.coins_in_wallets + t.coins_spent + t.coins_in_debts,
        "coins minted = in wallets + spent + debts (<= 0): {t:?}"
    );
    assert_eq!(
        t.coins_spent, t.gift_coins,
        "coins spent = gift rows' coins: {t:?}"
    );
    assert_eq!(
        t.diamonds_credited, t.gift_diamonds,
        "diamonds credited = gift rows' diamonds: {t:?}"
    );
}

// ---- the tests -----------------------------------------------------------------

async fn credit_is_idempotent(l: Arc<dyn Ledger>) {
    let op = grant("grant:1", "alice", 100);
    let first = l.credit(&op).await.expect("credit");
    assert!(first.applied_now);
    assert_eq!(first.op, op);
    assert_eq!(wallet(&l, "alice").await, 100);

    let replay = l.credit(&op).await.expect("replay");
    assert!(!replay.applied_now, "a replay is not applied again");
    assert_eq!(replay.op, op, "a replay answers the original op");
    assert_eq!(wallet(&l, "alice").await, 100, "credited once");

    let other_coins = l
        .credit(&grant("grant:1", "alice", 50))
        .await
        .expect_err("same id, other coins");
    assert_eq!(other_coins.code, ErrorCode::BadRequest);
    let other_user = l
        .credit(&grant("grant:1", "bob", 100))
        .await
        .expect_err("same id, other user");
    assert_eq!(other_user.code, ErrorCode::BadRequest);
    let not_positive = l
        .credit(&grant("grant:2", "alice", 0))
        .await
        .expect_err("zero coins");
    assert_eq!(not_positive.code, ErrorCode::BadRequest);
    assert_eq!(wallet(&l, "alice").await, 100);
    assert_eq!(wallet(&l, "bob").await, 0);

    credit(&l, "grant:3", "alice", 25).await;
    assert_eq!(wallet(&l, "alice").await, 125);
    let t = totals(&l).await;
    assert_eq!(
        (t.coins_minted, t.coins_in_wallets, t.coins_spent),
        (125, 125, 0)
    );
    assert_eq!(l.balance(account::MINT, COIN).await.expect("mint"), -125);
    assert_conserved(&t);
}

async fn commit_batch_is_applied_once(l: Arc<dyn Ledger>) {
    credit(&l, "grant:a", "alice", 1000).await;
    let b = batch(
        "b1",
        vec![
            gift("room:r1", 1, "alice", "carol", 10, 990),
            gift("room:r1", 2, "alice", "carol", 20, 970),
            gift("room:r1", 3, "alice", "carol", 30, 940),
        ],
    );
    assert!(
        l.commit_batch(&b).await.expect("commit"),
        "first commit applies"
    );
    let after_first = totals(&l).await;
    assert!(
        !l.commit_batch(&b).await.expect("recommit"),
        "the same batch again is refused"
    );
    assert_eq!(totals(&l).await, after_first, "a replay changes nothing");

    assert_eq!(after_first.batches, 1);
    assert_eq!(
        (
            after_first.gifts,
            after_first.gift_coins,
            after_first.gift_diamonds
        ),
        (3, 60, 30)
    );
    assert_eq!(
        (
            after_first.coins_minted,
            after_first.coins_in_wallets,
            after_first.coins_spent
        ),
        (1000, 940, 60)
    );
    assert_eq!(after_first.diamonds_credited, 30);
    assert_conserved(&after_first);
    assert_eq!(wallet(&l, "alice").await, 940);
    assert_eq!(l.balance(account::SPENT, COIN).await.expect("spent"), 60);
    assert_eq!(
        l.balance(&account::earnings("carol"), DIAMOND)
            .await
            .expect("earnings"),
        30
    );
    assert_eq!(l.balance(account::MINT, DIAMOND).await.expect("mint"), -30);
    assert_eq!(
        l.earnings("carol")
            .await
            .expect("earnings")
            .diamonds_settled,
        30
    );
    for seq in 1..=3 {
        assert!(l.has_gift("room:r1", seq).await.expect("has_gift"));
    }
    assert!(!l.has_gift("room:r1", 4).await.expect("has_gift"));

    // An empty batch is recorded (once) and posts nothing.
    assert!(l
        .commit_batch(&batch("empty", vec![]))
        .await
        .expect("empty"));
    assert!(!l
        .commit_batch(&batch("empty", vec![]))
        .await
        .expect("empty again"));
    let t = totals(&l).await;
    assert_eq!(t.batches, 2);
    assert_eq!(Totals { batches: 1, ..t }, after_first);
}

async fn gift_repeated_inside_one_batch_is_posted_once(l: Arc<dyn Ledger>) {
    credit(&l, "grant:a", "alice", 500).await;
    let g1 = gift("room:r1", 1, "alice", "carol", 10, 490);
    let g2 = gift("room:r1", 2, "alice", "carol", 20, 470);
    assert!(l
        .commit_batch(&batch("dup", vec![g1.clone(), g2, g1]))
        .await
        .expect("commit"));
    let t = totals(&l).await;
    assert_eq!((t.gifts, t.coins_spent, t.diamonds_credited), (2, 30, 15));
    assert_conserved(&t);
    assert_eq!(wallet(&l, "alice").await, 470);
}

async fn gift_in_two_batches_is_posted_once(l: Arc<dyn Ledger>) {
    credit(&l, "grant:a", "alice", 500).await;
    let g1 = gift("room:r1", 1, "alice", "carol", 10, 490);
    let g2 = gift("room:r1", 2, "alice", "carol", 20, 470);
    let g3 = gift("room:r1", 3, "alice", "carol", 40, 430);
    assert!(l
        .commit_batch(&batch("first", vec![g1.clone(), g2.clone()]))
        .await
        .expect("first"));
    // A re-claimed drain regrouped: g2 again, under another batch id.
    assert!(l
        .commit_batch(&batch("second", vec![g2.clone(), g3.clone()]))
        .await
        .expect("second"));
    // Only already-posted gifts: recorded as a batch, nothing posted.
    assert!(l
        .commit_batch(&batch("third", vec![g3, g1]))
        .await
        .expect("third"));

    let t = totals(&l).await;
    assert_eq!(t.batches, 3);
    assert_eq!((t.gifts, t.gift_coins, t.gift_diamonds), (3, 70, 35));
    assert_eq!(t.coins_spent, 70);
    assert_eq!(t.diamonds_credited, 35);
    assert_conserved(&t);
    assert_eq!(wallet(&l, "alice").await, 430);
    assert_eq!(
        l.earnings("carol")
            .await
            .expect("earnings")
            .diamonds_settled,
        35
    );
}

async fn entries_balance_and_totals_match_gifts(l: Arc<dyn Ledger>) {
    let senders = ["s0", "s1", "s2", "s3", "s4"];
    for s in senders {
        credit(&l, &format!("grant:{s}"), s, 10_000).await;
    }
    l.credit(&CreditOp {
        op_id: "purchase:p1".into(),
        kind: "purchase".into(),
        user: "s0".into(),
        coins: 500,
    })
    .await
    .expect("purchase");

    // A large batch (over SQLite's rows-per-statement chunk) across rooms,
    // a video and several creators.
    let mut gifts = Vec::new();
    let mut left: BTreeMap<&str, i64> = senders.iter().map(|s| (*s, 10_000)).collect();
    *left.entry("s0").or_default() += 500;
    let mut expected_diamonds: BTreeMap<&str, i64> = BTreeMap::new();
    for i in 0..2500u64 {
        let sender = senders[(i % 5) as usize];
        let (target, creator) = match i % 3 {
            0 => ("room:big", "carol"),
            1 => ("room:other", "dave"),
            _ => ("video:v1", "erin"),
        };
        let coins = 1 + (i % 4) as i64;
        let bal = left.get_mut(sender).expect("sender");
        *bal -= coins;
        let mut g = gift(target, i + 1, sender, creator, coins, *bal);
        g.diamonds = coins * 3 / 4;
        *expected_diamonds.entry(creator).or_default() += g.diamonds;
        gifts.push(g);
    }
    let coins_total: i64 = gifts.iter().map(|g| g.coins).sum();
    let diamonds_total: i64 = gifts.iter().map(|g| g.diamonds).sum();
    assert!(l
        .commit_batch(&batch("big", gifts))
        .await
        .expect("big batch"));

    let t = totals(&l).await;
    assert_conserved(&t);
    assert_eq!(t.entry_sums.get(COIN), Some(&0));
    assert_eq!(t.entry_sums.get(DIAMOND), Some(&0));
    assert_eq!(t.gifts, 2500);
    assert_eq!(t.gift_coins, coins_total);
    assert_eq!(t.gift_diamonds, diamonds_total);
    assert_eq!(t.coins_minted, 50_500);
    assert_eq!(t.coins_in_wallets, 50_500 - coins_total);
    for (sender, coins) in &left {
        assert_eq!(wallet(&l, sender).await, *coins, "wallet of {sender}");
    }
    for (creator, diamonds) in &expected_diamonds {
        assert_eq!(
            l.earnings(creator)
                .await
                .expect("earnings")
                .diamonds_settled,
            *diamonds,
            "earnings of {creator}"
        );
    }
    assert_eq!(
        l.earnings("nobody")
            .await
            .expect("earnings")
            .diamonds_settled,
        0
    );
}

async fn overdraft_batch_fails_and_writes_nothing(l: Arc<dyn Ledger>) {
    credit(&l, "grant:a", "alice", 50).await;
    credit(&l, "grant:b", "bob", 100).await;
    assert!(l
        .commit_batch(&batch(
            "ok",
            vec![gift("room:r1", 1, "bob", "carol", 30, 70)]
        ))
        .await
        .expect("ok"));
    let before = totals(&l).await;

    // bob's gift alone is fine; alice's two gifts add up to 60 > 50.
    let bad = batch(
        "bad",
        vec![
            gift("room:r1", 2, "bob", "carol", 10, 60),
            gift("room:r1", 3, "alice", "carol", 30, 20),
            gift("room:r1", 4, "alice", "carol", 30, 0),
        ],
    );
    assert!(
        l.commit_batch(&bad).await.is_err(),
        "an overdrawing batch fails"
    );
    assert_eq!(
        totals(&l).await,
        before,
        "nothing written, no batch op recorded"
    );
    assert_eq!(wallet(&l, "alice").await, 50);
    assert_eq!(wallet(&l, "bob").await, 70);
    for seq in 2..=4 {
        assert!(
            !l.has_gift("room:r1", seq).await.expect("has_gift"),
            "gift {seq} not written"
        );
    }

    // The batch id was not consumed: the affordable part commits under it.
    let fixed = batch(
        "bad",
        vec![
            gift("room:r1", 2, "bob", "carol", 10, 60),
            gift("room:r1", 3, "alice", "carol", 30, 20),
        ],
    );
    assert!(
        l.commit_batch(&fixed).await.expect("fixed"),
        "the failed batch left no op behind"
    );
    assert_eq!(wallet(&l, "alice").await, 20);
    assert_eq!(wallet(&l, "bob").await, 60);
    let t = totals(&l).await;
    assert_eq!(t.batches, 2);
    assert_conserved(&t);
}

async fn snapshot_restores_wallets_ops_gifts_and_targets(l: Arc<dyn Ledger>) {
    credit(&l, "grant:a", "alice", 100).await;
    credit(&l, "grant:b", "bob", 50).await;
    l.open_target(&Target::room("r1"), "carol")
        .await
        .expect("open r1");
    l.open_target(&Target::room("r2"), "carol")
        .await
        .expect("open r2");
    l.open_target(&Target::video("v1"), "dave")
        .await
        .expect("open v1");
    l.end_room("r2").await.expect("end r2");

    let mut old = gift("room:r1", 1, "alice", "carol", 10, 90);
    old.ts = now_ms() - 600_000;
    let recent = vec![
        gift("room:r1", 2, "alice", "carol", 20, 70),
        gift("video:v1", 1, "bob", "dave", 5, 45),
    ];
    let mut all = vec![old.clone()];
    all.extend(recent.iter().cloned());
    assert!(l.commit_batch(&batch("b1", all)).await.expect("commit"));

    let s = l.snapshot(60_000, 0).await.expect("snapshot");
    let mut wallets = s.wallets.clone();
    wallets.sort();
    assert_eq!(
        wallets,
        vec![("alice".to_string(), 70), ("bob".to_string(), 45)]
    );
    let mut ops = s.credit_ops.clone();
    ops.sort();
    assert_eq!(
        ops,
        vec!["grant:a".to_string(), "grant:b".to_string()],
        "credit ops only, no batch"
    );
    let mut gifts = s.recent_gifts.clone();
    gifts.sort_by(|a, b| (&a.target, a.seq).cmp(&(&b.target, b.seq)));
    assert_eq!(gifts, recent, "gifts newer than recent_ms, every field");

    let targets = |s: &giftstream::model::Snapshot| {
        let mut t: Vec<(String, TargetInfo)> = s
            .targets
            .iter()
            .map(|(t, i)| (t.key(), i.clone()))
            .collect();
        t.sort_by(|a, b| a.0.cmp(&b.0));
        t
    };
    let info = |creator: &str, live: bool, seq: u64| TargetInfo {
        creator: creator.to_string(),
        live,
        seq,
    };
    assert_eq!(
        targets(&s),
        vec![
            ("room:r1".to_string(), info("carol", true, 2)),
            ("room:r2".to_string(), info("carol", false, 0)),
            ("video:v1".to_string(), info("dave", true, 1)),
        ]
    );

    // After an unclean stop: the gap is added only where gifts exist.
    let s = l.snapshot(60_000, 100).await.expect("snapshot with gap");
    assert_eq!(
        targets(&s),
        vec![
            ("room:r1".to_string(), info("carol", true, 102)),
            ("room:r2".to_string(), info("carol", false, 0)),
            ("video:v1".to_string(), info("dave", true, 101)),
        ]
    );
    // A longer memory reaches the old gift too.
    let s = l
        .snapshot(3_600_000, 0)
        .await
        .expect("snapshot, long memory");
    assert_eq!(s.recent_gifts.len(), 3);
    assert!(s.recent_gifts.contains(&old));
}

async fn open_target_ownership_reopen_and_has_gift(l: Arc<dyn Ledger>) {
    let room = Target::room("r1");
    assert_eq!(l.target(&room).await.expect("target"), None);
    l.open_target(&room, "carol").await.expect("open");
    let live = |creator: &str, live: bool| {
        Some(TargetRecord {
            creator: creator.to_string(),
            live,
        })
    };
    assert_eq!(l.target(&room).await.expect("target"), live("carol", true));

    let e = l
        .open_target(&room, "dave")
        .await
        .expect_err("another creator");
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert_eq!(
        l.target(&room).await.expect("target"),
        live("carol", true),
        "unchanged by the refused open"
    );

    l.end_room("r1").await.expect("end");
    assert_eq!(l.target(&room).await.expect("target"), live("carol", false));
    let e = l
        .open_target(&room, "dave")
        .await
        .expect_err("another creator, ended room");
    assert_eq!(e.code, ErrorCode::Forbidden);
    l.open_target(&room, "carol").await.expect("re-open");
    assert_eq!(l.target(&room).await.expect("target"), live("carol", true));
    l.open_target(&room, "carol").await.expect("open twice");

    // Videos: their own namespace, always live, owned the same way.
    let video = Target::video("r1");
    assert_eq!(l.target(&video).await.expect("target"), None);
    l.open_target(&video, "dave").await.expect("register video");
    assert_eq!(l.target(&video).await.expect("target"), live("dave", true));
    l.open_target(&video, "dave").await.expect("register again");
    let e = l
        .open_target(&video, "carol")
        .await
        .expect_err("another creator's video");
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert_eq!(l.target(&room).await.expect("target"), live("carol", true));

    credit(&l, "grant:a", "alice", 100).await;
    assert!(!l.has_gift("room:r1", 1).await.expect("has_gift"));
    assert!(l
        .commit_batch(&batch(
            "b1",
            vec![gift("room:r1", 1, "alice", "carol", 10, 90)]
        ))
        .await
        .expect("commit"));
    assert!(l.has_gift("room:r1", 1).await.expect("has_gift"));
    assert!(!l.has_gift("room:r1", 2).await.expect("has_gift"));
    assert!(!l.has_gift("video:r1", 1).await.expect("has_gift"));
    assert!(!l.has_gift("room:r1", u64::MAX).await.unwrap_or(false));
}

async fn swap_clean_mark_answers_the_previous_mark(l: Arc<dyn Ledger>) {
    assert!(
        l.swap_clean_mark(false).await.expect("swap"),
        "a brand-new ledger counts as clean"
    );
    assert!(
        !l.swap_clean_mark(false).await.expect("swap"),
        "a run that never stopped cleanly"
    );
    assert!(!l.swap_clean_mark(true).await.expect("swap"));
    assert!(
        l.swap_clean_mark(false).await.expect("swap"),
        "the last run stopped cleanly"
    );
    assert!(!l.swap_clean_mark(true).await.expect("swap"));
    assert!(l.swap_clean_mark(true).await.expect("swap"));
}

async fn concurrent_commits_apply_everything_exactly_once(l: Arc<dyn Ledger>) {
    const TASKS: usize = 8;
    const GIFTS: u64 = 25;
    const COINS: i64 = 7;
    for i in 0..TASKS {
        credit(&l, &format!("grant:s{i}"), &format!("s{i}"), 1000).await;
    }
    credit(&l, "grant:shared", "shared", 1000).await;
    credit(&l, "grant:overlap", "overlap", 1000).await;

    let mut handles = Vec::new();
    // Disjoint batches: one sender and room each, all sharing the hot
    // accounts (the mint, spent:gifts) and two creators.
    for i in 0..TASKS {
        let gifts = (1..=GIFTS)
            .map(|seq| {
                gift(
                    &format!("room:r{i}"),
                    seq,
                    &format!("s{i}"),
                    if i % 2 == 0 { "carol" } else { "dave" },
                    COINS,
                    1000 - COINS * seq as i64,
                )
            })
            .collect();
        let b = batch(&format!("disjoint-{i}"), gifts);
        let l = l.clone();
        handles.push(tokio::spawn(async move {
            (b.id.clone(), l.commit_batch(&b).await)
        }));
    }
    // The same batch from two workers at once.
    let shared = batch(
        "shared",
        (1..=GIFTS)
            .map(|seq| {
                gift(
                    "room:shared",
                    seq,
                    "shared",
                    "carol",
                    COINS,
                    1000 - COINS * seq as i64,
                )
            })
            .collect(),
    );
    for _ in 0..2 {
        let (l, b) = (l.clone(), shared.clone());
        handles.push(tokio::spawn(async move {
            (b.id.clone(), l.commit_batch(&b).await)
        }));
    }
    // The same gifts regrouped under two batch ids, in opposite orders.
    let overlap: Vec<PendingGift> = (1..=GIFTS)
        .map(|seq| {
            gift(
                "room:overlap",
                seq,
                "overlap",
                "dave",
                COINS,
                1000 - COINS * seq as i64,
            )
        })
        .collect();
    let mut reversed = overlap.clone();
    reversed.reverse();
    for b in [batch("overlap-a", overlap), batch("overlap-b", reversed)] {
        let l = l.clone();
        handles.push(tokio::spawn(async move {
            (b.id.clone(), l.commit_batch(&b).await)
        }));
    }

    let mut applied: BTreeMap<String, usize> = BTreeMap::new();
    for h in handles {
        let (id, result) = h.await.expect("task");
        let now = result.unwrap_or_else(|e| panic!("commit {id}: {e}"));
        *applied.entry(id).or_default() += usize::from(now);
    }
    for i in 0..TASKS {
        assert_eq!(applied[&format!("disjoint-{i}")], 1);
    }
    assert_eq!(
        applied["shared"], 1,
        "the same batch from two workers applies once"
    );
    assert_eq!(applied["overlap-a"], 1);
    assert_eq!(applied["overlap-b"], 1);

    let t = totals(&l).await;
    assert_conserved(&t);
    let gifts_total = (TASKS as i64 + 2) * GIFTS as i64;
    assert_eq!(t.batches, TASKS as i64 + 3);
    assert_eq!(t.gifts, gifts_total);
    assert_eq!(t.gift_coins, gifts_total * COINS);
    assert_eq!(t.coins_spent, gifts_total * COINS);
    assert_eq!(t.coins_minted, (TASKS as i64 + 2) * 1000);
    for user in (0..TASKS)
        .map(|i| format!("s{i}"))
        .chain(["shared".to_string(), "overlap".to_string()])
    {
        assert_eq!(
            wallet(&l, &user).await,
            1000 - GIFTS as i64 * COINS,
            "wallet of {user}"
        );
    }
    let per_batch = GIFTS as i64 * (COINS / 2);
    let carol = l
        .earnings("carol")
        .await
        .expect("earnings")
        .diamonds_settled;
    let dave = l.earnings("dave").await.expect("earnings").diamonds_settled;
    assert_eq!(carol, per_batch * (TASKS as i64 / 2 + 1));
    assert_eq!(dave, per_batch * (TASKS as i64 / 2 + 1));
}

// ---- engine selection and several nodes --------------------------------------

#[tokio::test]
async fn open_routes_by_url_scheme() {
    let e = ledger::open("mysql://localhost/x", POOL_LEN)
        .await
        .err()
        .expect("unknown scheme refused");
    assert!(e.to_string().contains("engine not available"), "{e}");
    let Some(url) = common::services::fresh_postgres_url().await else {
        return;
    };
    let url = url.replacen("postgres://", "postgresql://", 1);
    let l = ledger::open(&url, POOL_LEN)
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e:#}"));
    credit(&l, "grant:a", "alice", 5).await;
    assert_eq!(wallet(&l, "alice").await, 5);
}

/// Two nodes open one PostgreSQL ledger at once (migrations race under
/// sqlx's lock) and write through separate pools: replays and duplicate
/// batches are still applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_nodes_share_one_ledger() {
    let Some(url) = common::services::fresh_postgres_url().await else {
        return;
    };
    let (a, b) = tokio::join!(ledger::open(&url, POOL_LEN), ledger::open(&url, POOL_LEN));
    let (a, b) = (a.expect("open node a"), b.expect("open node b"));

    let op = grant("grant:a", "alice", 300);
    let (ra, rb) = tokio::join!(a.credit(&op), b.credit(&op));
    let (ra, rb) = (ra.expect("credit on a"), rb.expect("credit on b"));
    assert!(
        ra.applied_now ^ rb.applied_now,
        "exactly one node applies the credit"
    );
    assert_eq!(wallet(&b, "alice").await, 300);

    a.open_target(&Target::room("r1"), "carol")
        .await
        .expect("open on a");
    let e = b
        .open_target(&Target::room("r1"), "dave")
        .await
        .expect_err("other creator on b");
    assert_eq!(e.code, ErrorCode::Forbidden);

    let gifts = (1..=10)
        .map(|seq| gift("room:r1", seq, "alice", "carol", 10, 300 - 10 * seq as i64))
        .collect();
    let bt = batch("b1", gifts);
    let (ca, cb) = tokio::join!(a.commit_batch(&bt), b.commit_batch(&bt));
    assert!(
        ca.expect("commit on a") ^ cb.expect("commit on b"),
        "exactly one node commits the batch"
    );
    let (ta, tb) = (totals(&a).await, totals(&b).await);
    assert_eq!(ta, tb, "both nodes read the same ledger");
    assert_eq!((ta.batches, ta.gifts, ta.coins_spent), (1, 10, 100));
    assert_conserved(&ta);
    assert!(b.has_gift("room:r1", 10).await.expect("has_gift"));

    assert!(a.swap_clean_mark(false).await.expect("swap on a"));
    assert!(
        !b.swap_clean_mark(true).await.expect("swap on b"),
        "b sees a's mark"
    );
}

// ---- payments ------------------------------------------------------------------

fn ev(id: &str, kind: &str) -> StripeEventRef {
    StripeEventRef {
        id: id.to_string(),
        kind: kind.to_string(),
    }
}

fn purchase_op(event: &str, pi: &str, user: &str, coins: i64, cents: i64) -> PurchaseOp {
    PurchaseOp {
        currency: giftstream::model::Fiat::Usd,
        event: ev(event, "payment_intent.succeeded"),
        payment_intent: pi.to_string(),
        user: user.to_string(),
        coins,
        amount_cents: cents,
    }
}

/// Record the purchase at creation, then apply its payment event.
async fn buy(l: &Arc<dyn Ledger>, op: PurchaseOp) -> Result<bool, giftstream::error::Error> {
    l.purchase_created(&op).await?;
    l.purchase(&op).await
}

async fn purchase_is_applied_once_per_event_and_payment_intent(l: Arc<dyn Ledger>) {
    assert!(buy(&l, purchase_op("evt_1", "pi_1", "ann", 70, 99))
        .await
        .unwrap());
    // The same event again, and another event for the same PaymentIntent.
    assert!(!buy(&l, purchase_op("evt_1", "pi_1", "ann", 70, 99))
        .await
        .unwrap());
    assert!(!buy(&l, purchase_op("evt_2", "pi_1", "ann", 70, 99))
        .await
        .unwrap());
    // A payment for a purchase not created here credits nothing.
    assert!(!l
        .purchase(&purchase_op("evt_9", "pi_foreign", "eve", 70, 99))
        .await
        .unwrap());
    assert!(l.purchase_record("pi_foreign").await.unwrap().is_none());
    assert!(l.stripe_event_seen("evt_1").await.unwrap());
    assert!(l.stripe_event_seen("evt_2").await.unwrap());
    assert!(!l.stripe_event_seen("evt_3").await.unwrap());
    assert_eq!(wallet(&l, "ann").await, 70);
    assert_eq!(l.balance(account::STRIPE_PLATFORM, USD).await.unwrap(), 99);
    let rec = l.purchase_record("pi_1").await.unwrap().expect("recorded");
    assert_eq!(
        (rec.user.as_str(), rec.coins, rec.amount_cents),
        ("ann", 70, 99)
    );
    let t = totals(&l).await;
    assert_conserved(&t);
    assert_eq!(t.entry_sums.get(USD), Some(&0));
    // The purchase's op id counts as a credit op for the counters' restore.
    let s = l.snapshot(60_000, 0).await.unwrap();
    assert!(s.credit_ops.contains(&"purchase:pi_1".to_string()));
}

async fn refund_takes_what_is_left_and_records_a_debt_the_next_purchases_repay(l: Arc<dyn Ledger>) {
    assert!(buy(&l, purchase_op("evt_p", "pi_r", "bob", 70, 99))
        .await
        .unwrap());
    // Bob spent 50 of his 70 coins.
    assert!(l
        .commit_batch(&batch("b1", vec![gift("room:r", 1, "bob", "cat", 50, 20)]))
        .await
        .unwrap());
    let op = RefundOp {
        event: ev("evt_r", "charge.refunded"),
        payment_intent: "pi_r".into(),
        cents_refunded_total: 99,
        coins_reversed: 70,
        coins_taken: 20,
    };
    assert!(l.refund(&op).await.unwrap());
    assert!(!l.refund(&op).await.unwrap(), "same event: once");
    let again = RefundOp {
        event: ev("evt_r2", "charge.refunded"),
        ..op.clone()
    };
    assert!(
        !l.refund(&again).await.unwrap(),
        "same refund, other event: once"
    );
    assert_eq!(wallet(&l, "bob").await, 0);
    assert_eq!(l.balance(&account::debt("bob"), COIN).await.unwrap(), -50);
    assert_eq!(l.balance(account::STRIPE_PLATFORM, USD).await.unwrap(), 0);
    let rec = l.purchase_record("pi_r").await.unwrap().unwrap();
    assert_eq!((rec.coins_reversed, rec.cents_refunded), (70, 99));
    // The next purchases repay the debt first: 10 coins all to it, then
    // 60 coins: 40 to it and 20 to the wallet.
    assert!(buy(&l, purchase_op("evt_p2", "pi_r2", "bob", 10, 15))
        .await
        .unwrap());
    assert_eq!(wallet(&l, "bob").await, 0);
    assert_eq!(l.balance(&account::debt("bob"), COIN).await.unwrap(), -40);
    let rec = l.purchase_record("pi_r2").await.unwrap().unwrap();
    assert_eq!(rec.coins_to_debt, 10);
    assert!(buy(&l, purchase_op("evt_p3", "pi_r3", "bob", 60, 80))
        .await
        .unwrap());
    assert!(
        !buy(&l, purchase_op("evt_p3b", "pi_r3", "bob", 60, 80))
            .await
            .unwrap(),
        "repaid once"
    );
    assert_eq!(wallet(&l, "bob").await, 20);
    assert_eq!(l.balance(&account::debt("bob"), COIN).await.unwrap(), 0);
    let rec = l.purchase_record("pi_r3").await.unwrap().unwrap();
    assert_eq!(rec.coins_to_debt, 40);
    // Taking more than the wallet holds is refused whole.
    let too_much = RefundOp {
        event: ev("evt_r3", "charge.refunded"),
        payment_intent: "pi_r3".into(),
        cents_refunded_total: 80,
        coins_reversed: 60,
        coins_taken: 21,
    };
    assert!(l.refund(&too_much).await.is_err());
    assert_eq!(wallet(&l, "bob").await, 20);
    let t = totals(&l).await;
    assert_conserved(&t);
    assert_eq!(t.coins_in_debts, 0);
}

async fn dispute_reverses_then_reinstates_once(l: Arc<dyn Ledger>) {
    assert!(buy(&l, purchase_op("evt_pd", "pi_d", "dee", 70, 99))
        .await
        .unwrap());
    // Dee spent 50 of her 70 coins; then her bank disputed the charge.
    assert!(l
        .commit_batch(&batch("bd", vec![gift("room:r", 1, "dee", "cat", 50, 20)]))
        .await
        .unwrap());
    let op = DisputeOp {
        event: ev("evt_dw", "charge.dispute.funds_withdrawn"),
        dispute_id: "dp_1".into(),
        payment_intent: "pi_d".into(),
        cents: 99,
        coins_reversed: 70,
        coins_taken: 20,
    };
    assert!(l.dispute_withdrawn(&op).await.unwrap());
    assert!(!l.dispute_withdrawn(&op).await.unwrap(), "same event: once");
    let again = DisputeOp {
        event: ev("evt_dw2", "charge.dispute.funds_withdrawn"),
        ..op.clone()
    };
    assert!(
        !l.dispute_withdrawn(&again).await.unwrap(),
        "same dispute: once"
    );
    assert_eq!(wallet(&l, "dee").await, 0);
    assert_eq!(l.balance(&account::debt("dee"), COIN).await.unwrap(), -50);
    assert_eq!(l.balance(account::STRIPE_PLATFORM, USD).await.unwrap(), 0);
    let rec = l.dispute_record("dp_1").await.unwrap().expect("recorded");
    assert_eq!(
        (
            rec.user.as_str(),
            rec.cents,
            rec.coins_reversed,
            rec.reinstated
        ),
        ("dee", 99, 70, false)
    );
    assert_eq!(
        l.purchase_record("pi_d")
            .await
            .unwrap()
            .unwrap()
            .coins_reversed,
        70
    );
    // Nothing more can be reversed on that purchase.
    let more = DisputeOp {
        event: ev("evt_dw3", "charge.dispute.funds_withdrawn"),
        dispute_id: "dp_2".into(),
        coins_taken: 0,
        coins_reversed: 1,
        ..op.clone()
    };
    assert!(
        l.dispute_withdrawn(&more).await.is_err(),
        "over the coins bought"
    );
    assert!(
        l.dispute_record("dp_2").await.unwrap().is_none(),
        "refused whole"
    );

    // The platform won: the cents come back, and the coins, debt first.
    let won = ev("evt_dr", "charge.dispute.funds_reinstated");
    assert!(l.dispute_reinstated(&won, "dp_1").await.unwrap());
    assert!(
        !l.dispute_reinstated(&won, "dp_1").await.unwrap(),
        "same event: once"
    );
    assert!(
        !l.dispute_reinstated(&ev("evt_dr2", "charge.dispute.funds_reinstated"), "dp_1")
            .await
            .unwrap(),
        "same dispute: once"
    );
    assert!(!l
        .dispute_reinstated(&ev("evt_dr3", "charge.dispute.funds_reinstated"), "dp_none")
        .await
        .unwrap());
    assert_eq!(wallet(&l, "dee").await, 20);
    assert_eq!(l.balance(&account::debt("dee"), COIN).await.unwrap(), 0);
    assert_eq!(l.balance(account::STRIPE_PLATFORM, USD).await.unwrap(), 99);
    let rec = l.dispute_record("dp_1").await.unwrap().unwrap();
    assert_eq!((rec.reinstated, rec.coins_to_debt), (true, 50));
    assert_eq!(
        l.purchase_record("pi_d")
            .await
            .unwrap()
            .unwrap()
            .coins_reversed,
        0
    );
    // A dispute of a purchase not made here changes nothing.
    let foreign = DisputeOp {
        event: ev("evt_dw9", "charge.dispute.funds_withdrawn"),
        dispute_id: "dp_9".into(),
        payment_intent: "pi_foreign".into(),
        ..op
    };
    assert!(!l.dispute_withdrawn(&foreign).await.unwrap());
    let t = totals(&l).await;
    assert_conserved(&t);
    assert_eq!(t.coins_in_debts, 0);
    for (cur, sum) in &t.entry_sums {
        assert_eq!(*sum, 0, "{cur} entries sum to zero");
    }
}

async fn tip_is_posted_once_to_the_creator(l: Arc<dyn Ledger>) {
    let tip = TipRecord {
        currency: giftstream::model::Fiat::Usd,
        payment_intent: "pi_t".into(),
        tip_key: "vic:t1".into(),
        sender: "vic".into(),
        creator: "cat".into(),
        target: "room:r".into(),
        amount_cents: 500,
        message: "gg".into(),
    };
    l.tip_created(&tip).await.unwrap();
    l.tip_created(&tip).await.unwrap();
    let got = l
        .tip_succeeded(&ev("evt_t", "payment_intent.succeeded"), "pi_t")
        .await
        .unwrap();
    assert_eq!(got, Some(tip.clone()));
    assert_eq!(
        l.tip_succeeded(&ev("evt_t", "payment_intent.succeeded"), "pi_t")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        l.tip_succeeded(&ev("evt_t2", "payment_intent.succeeded"), "pi_t")
            .await
            .unwrap(),
        None
    );
    assert_eq!(l.earnings("cat").await.unwrap().tips_cents, 500);
    assert_conserved(&totals(&l).await);
}

async fn cashout_pends_then_completes_or_reverses_once(l: Arc<dyn Ledger>) {
    credit(&l, "grant:c", "vic", 4000).await;
    assert!(l
        .commit_batch(&batch("b1", vec![gift("room:r", 1, "vic", "cat", 4000, 0)]))
        .await
        .unwrap());
    assert_eq!(l.earnings("cat").await.unwrap().diamonds_settled, 2000);
    let c = |id: &str, d: i64| CashoutRecord {
        cashout_id: id.to_string(),
        creator: "cat".into(),
        diamonds: d,
        amount_cents: d / 2,
        status: "pending".into(),
        transfer: None,
        transfer_key: format!("key-{id}-{d}"),
        transfer_group: format!("group-{id}"),
        ..Default::default()
    };
    let e = l.cashout_begin(&c("cat:big", 2001)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InsufficientFunds);
    assert!(
        l.cashout("cat:big").await.unwrap().is_none(),
        "nothing written"
    );
    let a = l.cashout_begin(&c("cat:a", 1200)).await.unwrap();
    assert_eq!(a.status, "pending");
    assert_eq!(
        l.cashout_begin(&c("cat:a", 1200)).await.unwrap().status,
        "pending"
    );
    assert_eq!(
        l.cashout_begin(&c("cat:a", 1300)).await.unwrap_err().code,
        ErrorCode::BadRequest
    );
    l.cashout_begin(&c("cat:b", 800)).await.unwrap();
    let e = l.earnings("cat").await.unwrap();
    assert_eq!((e.diamonds_settled, e.diamonds_cashout_pending), (0, 2000));
    assert_eq!(l.cashouts_pending(10).await.unwrap().len(), 2);
    let done = CashoutEnd::Completed {
        transfer: "tr_1".into(),
    };
    assert!(l.cashout_end("cat:a", &done).await.unwrap());
    assert!(!l.cashout_end("cat:a", &done).await.unwrap());
    assert!(
        !l.cashout_end("cat:a", &CashoutEnd::Reversed).await.unwrap(),
        "exactly one end"
    );
    assert!(l.cashout_end("cat:b", &CashoutEnd::Reversed).await.unwrap());
    let e = l.earnings("cat").await.unwrap();
    assert_eq!(
        (
            e.diamonds_settled,
            e.diamonds_cashout_pending,
            e.diamonds_cashed_out,
            e.cashed_out_cents
        ),
        (800, 0, 1200, 600)
    );
    assert_eq!(
        l.cashout("cat:a")
            .await
            .unwrap()
            .unwrap()
            .transfer
            .as_deref(),
        Some("tr_1")
    );
    assert!(l.cashouts_pending(10).await.unwrap().is_empty());
    let t = totals(&l).await;
    assert_conserved(&t);
    assert_eq!(t.entry_sums.get(USD), Some(&0));
}

async fn account_updated_and_ignored_events_apply_once(l: Arc<dyn Ledger>) {
    assert!(l.payout_account("cat").await.unwrap().is_none());
    let a = l.put_payout_account("cat", "acct_1").await.unwrap();
    assert!(!a.payouts_enabled);
    assert_eq!(
        l.put_payout_account("cat", "acct_2").await.unwrap().account,
        "acct_1",
        "first wins"
    );
    assert!(l
        .account_updated(&ev("evt_a", "account.updated"), "acct_1", true, 100)
        .await
        .unwrap());
    assert!(!l
        .account_updated(&ev("evt_a", "account.updated"), "acct_1", false, 100)
        .await
        .unwrap());
    assert!(
        l.payout_account("cat")
            .await
            .unwrap()
            .unwrap()
            .payouts_enabled
    );
    assert!(l
        .record_stripe_event(&ev("evt_x", "customer.created"))
        .await
        .unwrap());
    assert!(!l
        .record_stripe_event(&ev("evt_x", "customer.created"))
        .await
        .unwrap());
}

// ---- money safety (issue 11) -----------------------------------------------------

async fn account_updated_older_than_the_last_applied_changes_nothing(l: Arc<dyn Ledger>) {
    l.put_payout_account("cy", "acct_c").await.unwrap();
    let enabled = |l: Arc<dyn Ledger>| async move {
        l.payout_account("cy")
            .await
            .unwrap()
            .unwrap()
            .payouts_enabled
    };
    assert!(l
        .account_updated(&ev("evt_on", "account.updated"), "acct_c", true, 100)
        .await
        .unwrap());
    // Stripe disables payouts (newer), then an older "enabled" arrives late.
    assert!(l
        .account_updated(&ev("evt_off", "account.updated"), "acct_c", false, 300)
        .await
        .unwrap());
    assert!(!l
        .account_updated(&ev("evt_late", "account.updated"), "acct_c", true, 200)
        .await
        .unwrap());
    assert!(!enabled(l.clone()).await, "stays disabled");
    assert!(l.stripe_event_seen("evt_late").await.unwrap());
    assert!(l
        .account_updated(&ev("evt_on2", "account.updated"), "acct_c", true, 301)
        .await
        .unwrap());
    assert!(enabled(l.clone()).await);
}

fn limits(hold_ms: i64, per_day: i64, cents_per_day: i64) -> PayoutLimits {
    PayoutLimits {
        fiat_cents_per_day_max: Default::default(),
        hold_ms,
        cashouts_per_day_max: per_day,
        cashout_cents_per_day_max: cents_per_day,
    }
}

fn cashout_of(creator: &str, id: &str, diamonds: i64) -> CashoutRecord {
    CashoutRecord {
        cashout_id: format!("{creator}:{id}"),
        creator: creator.into(),
        diamonds,
        amount_cents: diamonds / 2,
        status: "pending".into(),
        transfer: None,
        transfer_key: format!("key-{creator}-{id}"),
        transfer_group: format!("group-{creator}-{id}"),
        ..Default::default()
    }
}

async fn held_diamonds_cannot_be_cashed_out_until_the_hold_passes(l: Arc<dyn Ledger>) {
    l.set_payout_limits(limits(2000, 100, 1_000_000));
    credit(&l, "grant:h", "vic", 4000).await;
    assert!(l
        .commit_batch(&batch("b1", vec![gift("room:h", 1, "vic", "hal", 4000, 0)]))
        .await
        .unwrap());
    let f = l.payout_funds("hal").await.unwrap();
    assert_eq!((f.diamonds_held, f.diamonds_available), (2000, 0));
    let e = l.earnings("hal").await.unwrap();
    assert_eq!((e.diamonds_settled, e.funds.diamonds_held), (2000, 2000));
    // A gift then an immediate cash-out: refused, nothing written.
    let err = l
        .cashout_begin(&cashout_of("hal", "now", 100))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InsufficientFunds, "{err:?}");
    assert!(l.cashout("hal:now").await.unwrap().is_none());
    assert_eq!(
        l.balance(&account::earnings("hal"), DIAMOND).await.unwrap(),
        2000
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let f = l.payout_funds("hal").await.unwrap();
    assert_eq!((f.diamonds_held, f.diamonds_available), (0, 2000));
    // More settles now: held again, the older diamonds are available.
    credit(&l, "grant:h2", "vic", 600).await;
    assert!(l
        .commit_batch(&batch("b2", vec![gift("room:h", 2, "vic", "hal", 600, 0)]))
        .await
        .unwrap());
    let f = l.payout_funds("hal").await.unwrap();
    assert_eq!((f.diamonds_held, f.diamonds_available), (300, 2000));
    let err = l
        .cashout_begin(&cashout_of("hal", "all", 2300))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InsufficientFunds);
    let c = l
        .cashout_begin(&cashout_of("hal", "ok", 2000))
        .await
        .unwrap();
    assert_eq!(c.status, "pending");
    let f = l.payout_funds("hal").await.unwrap();
    assert_eq!((f.diamonds_held, f.diamonds_available), (300, 0));
    assert_conserved(&totals(&l).await);
}

async fn cashouts_per_day_and_cents_per_day_are_limited(l: Arc<dyn Ledger>) {
    l.set_payout_limits(limits(0, 2, 1000));
    credit(&l, "grant:v", "vic", 10_000).await;
    assert!(l
        .commit_batch(&batch(
            "b1",
            vec![gift("room:v", 1, "vic", "val", 10_000, 0)]
        ))
        .await
        .unwrap());
    // 600 diamonds = 300 cents each.
    l.cashout_begin(&cashout_of("val", "a", 600)).await.unwrap();
    l.cashout_begin(&cashout_of("val", "b", 600)).await.unwrap();
    let err = l
        .cashout_begin(&cashout_of("val", "c", 200))
        .await
        .unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::RateLimited,
        "third of the day: {err:?}"
    );
    assert!(l.cashout("val:c").await.unwrap().is_none());
    // The count allows a third; 600 + 500 cents would pass 1000.
    l.set_payout_limits(limits(0, 3, 1000));
    let err = l
        .cashout_begin(&cashout_of("val", "c", 1000))
        .await
        .unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::RateLimited,
        "cents of the day: {err:?}"
    );
    // A replay of a started cash-out is answered, not limited.
    assert_eq!(
        l.cashout_begin(&cashout_of("val", "a", 600))
            .await
            .unwrap()
            .status,
        "pending"
    );
    // A refused (reversed) cash-out does not count.
    assert!(l.cashout_end("val:a", &CashoutEnd::Reversed).await.unwrap());
    l.cashout_begin(&cashout_of("val", "c", 1000))
        .await
        .unwrap();
    let e = l.earnings("val").await.unwrap();
    assert_eq!(
        (e.diamonds_settled, e.diamonds_cashout_pending),
        (5000 - 1600, 1600)
    );
    assert_conserved(&totals(&l).await);
}

/// `sender`'s gift of `coins` to `creator` at `ts`.
fn gift_at(
    target: &str,
    seq: u64,
    sender: &str,
    creator: &str,
    coins: i64,
    ts: i64,
) -> PendingGift {
    PendingGift {
        ts,
        ..gift(target, seq, sender, creator, coins, 0)
    }
}

async fn refund_claws_back_held_diamonds_newest_first_and_records_the_rest_as_loss(
    l: Arc<dyn Ledger>,
) {
    l.set_payout_limits(limits(2000, 100, 1_000_000));
    assert!(buy(&l, purchase_op("evt_hp", "pi_h", "hal", 100, 150))
        .await
        .unwrap());
    let t0 = now_ms();
    // 40 coins to ann (20 diamonds), settled long enough ago to be available.
    assert!(l
        .commit_batch(&batch(
            "b0",
            vec![gift_at("room:a", 1, "hal", "ann", 40, t0)]
        ))
        .await
        .unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    // Then 30 coins to bea and 20 to ann: still on hold.
    assert!(l
        .commit_batch(&batch(
            "b1",
            vec![
                gift_at("room:b", 1, "hal", "bea", 30, t0 + 2200),
                gift_at("room:a", 2, "hal", "ann", 20, t0 + 2201),
            ]
        ))
        .await
        .unwrap());
    assert_eq!(wallet(&l, "hal").await, 10);
    let held = |c: &'static str| {
        let l = l.clone();
        async move { l.payout_funds(c).await.unwrap() }
    };
    assert_eq!(
        (
            held("ann").await.diamonds_held,
            held("ann").await.diamonds_available
        ),
        (10, 20)
    );
    // Half refunded: 50 coins back, 10 from the wallet, 40 were spent:
    // newest first, ann's 20 coins (10 diamonds), then 20 of bea's 30
    // coins (10 of her 15 diamonds).
    let half = RefundOp {
        event: ev("evt_h1", "charge.refunded"),
        payment_intent: "pi_h".into(),
        cents_refunded_total: 75,
        coins_reversed: 50,
        coins_taken: 10,
    };
    assert!(l.refund(&half).await.unwrap());
    assert!(!l.refund(&half).await.unwrap(), "once");
    let bal = |a: String, c: &'static str| {
        let l = l.clone();
        async move { l.balance(&a, c).await.unwrap() }
    };
    assert_eq!(bal(account::earnings("ann"), DIAMOND).await, 20);
    assert_eq!(bal(account::earnings("bea"), DIAMOND).await, 5);
    assert_eq!(bal(account::clawed_back("ann"), DIAMOND).await, 10);
    assert_eq!(bal(account::clawed_back("bea"), DIAMOND).await, 10);
    assert_eq!(bal(account::PLATFORM_LOSS.into(), DIAMOND).await, 0);
    let b = held("bea").await;
    assert_eq!(
        (b.diamonds_held, b.diamonds_available, b.diamonds_reversed),
        (5, 0, 10)
    );
    // The rest refunded: 50 coins, all spent: bea's last 10 coins (5
    // diamonds, on hold), then ann's 40 (20 diamonds, no longer held: the
    // platform's loss).
    let rest = RefundOp {
        event: ev("evt_h2", "charge.refunded"),
        payment_intent: "pi_h".into(),
        cents_refunded_total: 150,
        coins_reversed: 50,
        coins_taken: 0,
    };
    assert!(l.refund(&rest).await.unwrap());
    assert_eq!(bal(account::earnings("ann"), DIAMOND).await, 20);
    assert_eq!(bal(account::earnings("bea"), DIAMOND).await, 0);
    assert_eq!(bal(account::clawed_back("bea"), DIAMOND).await, 15);
    assert_eq!(bal(account::unrecovered("ann"), DIAMOND).await, -20);
    assert_eq!(bal(account::PLATFORM_LOSS.into(), DIAMOND).await, 20);
    let a = held("ann").await;
    assert_eq!(
        (
            a.diamonds_held,
            a.diamonds_available,
            a.diamonds_reversed,
            a.diamonds_unrecovered
        ),
        (0, 20, 10, 20)
    );
    assert_eq!(bal(account::debt("hal"), COIN).await, -90);
    let t = totals(&l).await;
    assert_conserved(&t);
    assert_eq!(t.entry_sums.get(DIAMOND), Some(&0));
}

async fn dispute_claws_back_held_diamonds_too(l: Arc<dyn Ledger>) {
    l.set_payout_limits(limits(60_000, 100, 1_000_000));
    assert!(buy(&l, purchase_op("evt_dp", "pi_dc", "dex", 70, 99))
        .await
        .unwrap());
    assert!(l
        .commit_batch(&batch("b1", vec![gift("room:d", 1, "dex", "dot", 60, 10)]))
        .await
        .unwrap());
    let op = DisputeOp {
        event: ev("evt_dw", "charge.dispute.funds_withdrawn"),
        dispute_id: "dp_c".into(),
        payment_intent: "pi_dc".into(),
        cents: 99,
        coins_reversed: 70,
        coins_taken: 10,
    };
    assert!(l.dispute_withdrawn(&op).await.unwrap());
    assert!(!l.dispute_withdrawn(&op).await.unwrap());
    assert_eq!(
        l.balance(&account::earnings("dot"), DIAMOND).await.unwrap(),
        0
    );
    assert_eq!(
        l.balance(&account::clawed_back("dot"), DIAMOND)
            .await
            .unwrap(),
        30
    );
    // No cash-out of clawed-back diamonds.
    let err = l
        .cashout_begin(&cashout_of("dot", "x", 10))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InsufficientFunds);
    assert_conserved(&totals(&l).await);
    // The platform wins the dispute: the coins are paid after all, the
    // clawed-back diamonds return to the creator, once.
    let won = ev("evt_dwon", "charge.dispute.funds_reinstated");
    assert!(l.dispute_reinstated(&won, "dp_c").await.unwrap());
    assert!(!l.dispute_reinstated(&won, "dp_c").await.unwrap());
    assert_eq!(
        l.balance(&account::earnings("dot"), DIAMOND).await.unwrap(),
        30
    );
    assert_eq!(
        l.balance(&account::clawed_back("dot"), DIAMOND)
            .await
            .unwrap(),
        0
    );
    assert_conserved(&totals(&l).await);
}

async fn tip_refund_and_dispute_are_recorded_once_and_sum_to_zero(l: Arc<dyn Ledger>) {
    for (pi, key) in [("pi_t1", "tom:t1"), ("pi_t2", "tom:t2")] {
        l.tip_created(&TipRecord {
            currency: giftstream::model::Fiat::Usd,
            payment_intent: pi.into(),
            tip_key: key.into(),
            sender: "tom".into(),
            creator: "tia".into(),
            target: "room:t".into(),
            amount_cents: 500,
            message: String::new(),
        })
        .await
        .unwrap();
        assert!(l
            .tip_succeeded(&ev(&format!("evt_s_{pi}"), "payment_intent.succeeded"), pi)
            .await
            .unwrap()
            .is_some());
    }
    l.tip_transfer("pi_t1", "tr_1").await.unwrap();
    l.tip_transfer("pi_t1", "tr_other").await.unwrap();
    let (_, tr, reversed, recovered) = l.tip_record("pi_t1").await.unwrap().unwrap();
    assert_eq!((tr.as_deref(), reversed, recovered), (Some("tr_1"), 0, 0));
    // 200 of tip 1 refunded, all recovered from the creator.
    let op = TipReversalOp {
        event: ev("evt_tr", "charge.refunded"),
        payment_intent: "pi_t1".into(),
        op_id: "tip_refund:pi_t1:200".into(),
        cents: 200,
        recovered: 200,
    };
    assert!(l.tip_reversed(&op).await.unwrap());
    assert!(!l.tip_reversed(&op).await.unwrap(), "same event");
    let other_event = TipReversalOp {
        event: ev("evt_tr2", "charge.refunded"),
        ..op.clone()
    };
    assert!(!l.tip_reversed(&other_event).await.unwrap(), "same op");
    // Tip 2 disputed whole; the reversal recovered only 100.
    let dp = TipReversalOp {
        event: ev("evt_td", "charge.dispute.funds_withdrawn"),
        payment_intent: "pi_t2".into(),
        op_id: "tip_dispute:dp_t".into(),
        cents: 500,
        recovered: 100,
    };
    assert!(l.tip_reversed(&dp).await.unwrap());
    let usd = |a: String| {
        let l = l.clone();
        async move { l.balance(&a, USD).await.unwrap() }
    };
    assert_eq!(usd(account::tips("tia")).await, 1000 - 300);
    assert_eq!(usd(account::STRIPE_PLATFORM.into()).await, -400);
    assert_eq!(usd(account::PLATFORM_LOSS.into()).await, 400);
    assert_eq!(usd(account::unrecovered("tia")).await, -400);
    let f = l.payout_funds("tia").await.unwrap();
    assert_eq!((f.tips_reversed_cents, f.tips_recovered_cents), (700, 300));
    // More than the tip is refused, nothing written.
    let too_much = TipReversalOp {
        event: ev("evt_tr3", "charge.refunded"),
        op_id: "tip_refund:pi_t1:600".into(),
        cents: 400,
        recovered: 0,
        ..op.clone()
    };
    assert!(l.tip_reversed(&too_much).await.is_err());
    // The platform won tip 2's dispute: the cents are back, once.
    let won = ev("evt_tw", "charge.dispute.funds_reinstated");
    assert_eq!(
        l.tip_dispute_amounts("dp_t").await.unwrap(),
        Some((500, 100))
    );
    assert_eq!(l.tip_dispute_amounts("dp_none").await.unwrap(), None);
    // The 100 taken from the creator went back to them (repaid): the
    // withdrawal is undone whole.
    assert!(l
        .tip_dispute_reinstated(&won, "pi_t2", "dp_t", true)
        .await
        .unwrap());
    assert!(!l
        .tip_dispute_reinstated(&won, "pi_t2", "dp_t", true)
        .await
        .unwrap());
    assert!(!l
        .tip_dispute_reinstated(&ev("evt_tw2", "x"), "pi_t2", "dp_none", true)
        .await
        .unwrap());
    assert_eq!(usd(account::STRIPE_PLATFORM.into()).await, 0);
    assert_eq!(usd(account::tips("tia")).await, 800);
    assert_eq!(usd(account::PLATFORM_LOSS.into()).await, 0);
    assert_eq!(usd(account::unrecovered("tia")).await, 0);
    let f = l.payout_funds("tia").await.unwrap();
    assert_eq!((f.tips_reversed_cents, f.tips_recovered_cents), (200, 200));
    let t = totals(&l).await;
    assert_conserved(&t);
    assert_eq!(t.entry_sums.get(USD), Some(&0));
}

async fn early_reversals_are_parked_until_their_event_applies(l: Arc<dyn Ledger>) {
    let r = EarlyReversal {
        event: ev("evt_early", "charge.refunded"),
        payment_intent: "pi_e".into(),
        facts: r#"{"amount_refunded":99}"#.into(),
    };
    assert!(l.park_reversal(&r).await.unwrap());
    assert!(!l.park_reversal(&r).await.unwrap(), "once");
    assert_eq!(l.parked_reversals("pi_e").await.unwrap(), vec![r.clone()]);
    assert!(l.parked_reversals("pi_other").await.unwrap().is_empty());
    // Its event applied (here with no effect): no longer parked.
    assert!(l.record_stripe_event(&r.event).await.unwrap());
    assert!(l.parked_reversals("pi_e").await.unwrap().is_empty());
    assert!(!l.park_reversal(&r).await.unwrap(), "already applied");
}

/// Issue 11, critical 1: the start of cash-out `x:done` was recorded under
/// the same operation id as the completion of cash-out `x`
/// (`cashout:cat:x:done`), so whichever came second rolled back. Fails
/// without typed operation keys (`OpKey`).
async fn cashout_ids_that_look_like_end_records_do_not_collide(l: Arc<dyn Ledger>) {
    credit(&l, "grant:c", "vic", 4000).await;
    assert!(l
        .commit_batch(&batch("b1", vec![gift("room:r", 1, "vic", "cat", 4000, 0)]))
        .await
        .unwrap());
    let c = |id: &str, d: i64| CashoutRecord {
        cashout_id: id.to_string(),
        creator: "cat".into(),
        diamonds: d,
        amount_cents: d / 2,
        status: "pending".into(),
        transfer: None,
        transfer_key: format!("key-{id}"),
        transfer_group: format!("group-{id}"),
        ..Default::default()
    };
    // Client ids `x:done`, then `x`, then `x:reversed`: each begins...
    for (id, d) in [("cat:x:done", 500), ("cat:x", 600), ("cat:x:reversed", 100)] {
        let r = l.cashout_begin(&c(id, d)).await.unwrap();
        assert_eq!((r.status.as_str(), r.diamonds), ("pending", d), "{id}");
    }
    // ...and each ends, once, on its own.
    for (n, id) in ["cat:x:done", "cat:x", "cat:x:reversed"].iter().enumerate() {
        let done = CashoutEnd::Completed {
            transfer: format!("tr_{n}"),
        };
        assert!(l.cashout_end(id, &done).await.unwrap(), "{id} ends");
        let r = l.cashout(id).await.unwrap().unwrap();
        assert_eq!(r.status, "completed", "{id}");
        assert_eq!(r.transfer, Some(format!("tr_{n}")), "{id}");
    }
    let e = l.earnings("cat").await.unwrap();
    assert_eq!(
        (
            e.diamonds_settled,
            e.diamonds_cashout_pending,
            e.diamonds_cashed_out,
            e.cashed_out_cents
        ),
        (800, 0, 1200, 600)
    );
    let t = totals(&l).await;
    assert_conserved(&t);
    assert_eq!(t.entry_sums.get(USD), Some(&0));
    assert_eq!(t.entry_sums.get(DIAMOND), Some(&0));
}

/// A new Transfer attempt is recorded only as the next one of a pending
/// cash-out; a backoff is kept; a flagged end returns the diamonds and
/// records no cents.
async fn cashout_attempts_backoff_and_flagged_end(l: Arc<dyn Ledger>) {
    credit(&l, "grant:c", "vic", 4000).await;
    assert!(l
        .commit_batch(&batch("b1", vec![gift("room:r", 1, "vic", "cat", 4000, 0)]))
        .await
        .unwrap());
    let rec = CashoutRecord {
        cashout_id: "cat:f".into(),
        creator: "cat".into(),
        diamonds: 1000,
        amount_cents: 500,
        status: "pending".into(),
        transfer: None,
        transfer_key: "g-f-1".into(),
        transfer_group: "g-f".into(),
        ..Default::default()
    };
    let r = l.cashout_begin(&rec).await.unwrap();
    assert_eq!(
        (
            r.attempt,
            r.transfer_key.as_str(),
            r.transfer_group.as_str()
        ),
        (1, "g-f-1", "g-f")
    );
    assert!(r.attempt_ms > 0);
    assert!(!l.cashout_new_attempt("cat:f", 3, "g-f-3", 5).await.unwrap());
    assert!(l.cashout_new_attempt("cat:f", 2, "g-f-2", 5).await.unwrap());
    assert!(!l.cashout_new_attempt("cat:f", 2, "g-f-2", 5).await.unwrap());
    l.cashout_defer("cat:f", 3, 1234).await.unwrap();
    let r = l.cashout("cat:f").await.unwrap().unwrap();
    assert_eq!(
        (
            r.attempt,
            r.transfer_key.as_str(),
            r.attempt_ms,
            r.failures,
            r.next_try_ms
        ),
        (2, "g-f-2", 5, 3, 1234)
    );
    let flagged = CashoutEnd::Flagged {
        transfer: "tr_odd".into(),
    };
    assert!(l.cashout_end("cat:f", &flagged).await.unwrap());
    assert!(!l.cashout_end("cat:f", &CashoutEnd::Reversed).await.unwrap());
    let r = l.cashout("cat:f").await.unwrap().unwrap();
    assert_eq!(
        (r.status.as_str(), r.transfer.as_deref()),
        ("flagged", Some("tr_odd"))
    );
    let e = l.earnings("cat").await.unwrap();
    assert_eq!(
        (
            e.diamonds_settled,
            e.diamonds_cashout_pending,
            e.diamonds_cashed_out,
            e.cashed_out_cents
        ),
        (2000, 0, 0, 0)
    );
    assert!(
        !l.cashout_new_attempt("cat:f", 3, "g-f-3", 6).await.unwrap(),
        "ended"
    );
    assert_conserved(&totals(&l).await);
}

/// Issue 11: a grant records its admin, and one admin's grants in 24 hours
/// stop at the cap (`rate_limited`, nothing written); a replay is answered,
/// not counted.
async fn grants_record_the_admin_and_stop_at_the_daily_cap(l: Arc<dyn Ledger>) {
    let g = |id: &str, coins: i64| CreditOp {
        op_id: format!("grant:{id}"),
        kind: "grant".into(),
        user: "vic".into(),
        coins,
    };
    let first = l.grant(&g("a1", 600), "root", 1000).await.unwrap();
    assert!(first.applied_now);
    assert_eq!(
        l.grant_admin("grant:a1").await.unwrap().as_deref(),
        Some("root")
    );
    // A replay answers the original and is not counted against the cap.
    assert!(
        !l.grant(&g("a1", 600), "root", 1000)
            .await
            .unwrap()
            .applied_now
    );
    let e = l.grant(&g("a2", 500), "root", 1000).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::RateLimited, "{e:?}");
    assert_eq!(l.balance(&account::wallet("vic"), COIN).await.unwrap(), 600);
    assert_eq!(
        l.grant_admin("grant:a2").await.unwrap(),
        None,
        "nothing written"
    );
    // Another admin has a cap of their own; the same id is then free.
    assert!(
        l.grant(&g("a2", 500), "ops", 1000)
            .await
            .unwrap()
            .applied_now
    );
    assert_eq!(
        l.grant_admin("grant:a2").await.unwrap().as_deref(),
        Some("ops")
    );
    assert!(
        l.grant(&g("a3", 400), "root", 1000)
            .await
            .unwrap()
            .applied_now
    );
    assert_eq!(
        l.balance(&account::wallet("vic"), COIN).await.unwrap(),
        1500
    );
    assert_conserved(&totals(&l).await);
}

//! The webhook store of each ledger engine (SQLite file, PostgreSQL):
//! outbox rows are written in the settling transaction, only for creators
//! with a subscribed enabled endpoint, never by a replayed or failed batch;
//! a claim is a lease another node cannot take; events come in order.

use crate::common;

use std::sync::Arc;

use giftstream::ledger::outbox::{Attempt, DeliveryRecord, NewEndpoint};
use giftstream::ledger::{self, CreditOp, Ledger, StripeEventRef, TipRecord};
use giftstream::model::{Batch, PendingGift};
use giftstream::protocol::now_ms;
use serde_json::json;

async fn ledgers() -> Vec<(&'static str, Arc<dyn Ledger>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let mut out = vec![("sqlite", ledger::open(&url, 4).await.unwrap(), Some(dir))];
    if let Some(pg) = common::services::fresh_postgres_url().await {
        out.push(("postgres", ledger::open(&pg, 4).await.unwrap(), None));
    }
    out
}

fn gift(seq: u64, sender: &str, creator: &str, coins: i64, balance_after: i64) -> PendingGift {
    PendingGift {
        target: format!("room:{creator}-room"),
        seq,
        sender: sender.into(),
        client_id: format!("c-{creator}-{seq}"),
        creator: creator.into(),
        gift: "rose".into(),
        count: 1,
        coins,
        diamonds: coins / 2,
        balance_after,
        ts: now_ms(),
        message: None,
    }
}

fn batch(id: &str, gifts: Vec<PendingGift>) -> Batch {
    Batch {
        id: id.into(),
        ticket_max: gifts.len() as u64,
        gifts,
    }
}

fn endpoint(id: &str, creator: &str, events: &[&str]) -> NewEndpoint {
    NewEndpoint {
        id: id.into(),
        creator: creator.into(),
        url: "http://127.0.0.1:9/".into(),
        secret: "whsec_t".into(),
        events: events.iter().map(|s| s.to_string()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_outbox_follows_the_ledger_transaction_and_claims_are_leases() {
    for (name, l, _dir) in ledgers().await {
        eprintln!("ledger {name}");
        let store = l.webhooks();
        let credit = |op: &str, user: &str, coins| CreditOp {
            op_id: op.into(),
            kind: "grant".into(),
            user: user.into(),
            coins,
        };
        l.credit(&credit("g:bob", "bob", 100)).await.unwrap();
        // Before any endpoint: nothing is written.
        assert!(l
            .commit_batch(&batch("b0", vec![gift(1, "bob", "cat", 10, 90)]))
            .await
            .unwrap());
        store
            .create(&endpoint("we_cat", "cat", &["gift"]), 5)
            .await
            .unwrap();
        assert!(
            store.claim("A", 10_000, 10).await.unwrap().is_empty(),
            "nothing due"
        );
        // cat has an endpoint for gifts, dog none.
        let b1 = batch(
            "b1",
            vec![
                gift(2, "bob", "cat", 10, 80),
                gift(1, "bob", "dog", 10, 70),
                gift(3, "bob", "cat", 10, 60),
            ],
        );
        assert!(l.commit_batch(&b1).await.unwrap());
        assert!(
            !l.commit_batch(&b1).await.unwrap(),
            "a replay writes nothing"
        );
        // A failing (overdrawing) batch writes no event either.
        let bad = batch("bad", vec![gift(4, "bob", "cat", 1000, -940)]);
        assert!(l.commit_batch(&bad).await.is_err());
        // A tip to cat: cat's endpoint is not subscribed to tips.
        let tip = TipRecord {
            currency: giftstream::model::Fiat::Usd,
            payment_intent: "pi_s".into(),
            tip_key: "bob:t".into(),
            sender: "bob".into(),
            creator: "cat".into(),
            target: "room:cat-room".into(),
            amount_cents: 300,
            message: String::new(),
        };
        l.tip_created(&tip).await.unwrap();
        let ev = StripeEventRef {
            id: "evt_s".into(),
            kind: "payment_intent.succeeded".into(),
        };
        assert!(l.tip_succeeded(&ev, "pi_s").await.unwrap().is_some());
        assert!(!store
            .enqueue("cat", "combo_end", &json!({"count": 2}))
            .await
            .unwrap());
        assert!(!store.enqueue("dog", "gift", &json!({})).await.unwrap());

        let claimed = store.claim("A", 10_000, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(
            store.claim("B", 10_000, 10).await.unwrap().is_empty(),
            "leased to A"
        );
        let mut ep = claimed[0].clone();
        let mut seqs = Vec::new();
        while let Some(e) = store.next_event(&ep).await.unwrap() {
            assert_eq!((e.kind.as_str(), e.creator.as_str()), ("gift", "cat"));
            let data: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
            assert_eq!(data["room"], "cat-room");
            seqs.push(data["seq"].as_u64().unwrap());
            let at = now_ms();
            let a = Attempt {
                endpoint_id: ep.id.clone(),
                owner: "A".into(),
                record: DeliveryRecord {
                    event_id: e.event_id.clone(),
                    attempt: 1,
                    status: Some(200),
                    error: None,
                    at_ms: at,
                    duration_ms: 1,
                },
                done_id: e.id,
                attempts: 0,
                first_try_ms: None,
                next_try_ms: 0,
                failing_since_ms: None,
                disable: None,
                lease_until_ms: at + 10_000,
            };
            assert!(store.record(&a, 1).await.unwrap());
            let mut lost = a.clone();
            lost.owner = "B".into();
            assert!(!store.record(&lost, 1).await.unwrap(), "B holds no lease");
            ep.done_id = e.id;
        }
        assert_eq!(seqs, [2, 3], "cat's gifts of b1, once, in order");
        let d = store
            .deliveries("cat", "we_cat", 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.len(), 1, "pruned to deliveries_max");
        assert!(store
            .deliveries("dog", "we_cat", 10)
            .await
            .unwrap()
            .is_none());
        store.release("A", "we_cat").await.unwrap();
        assert!(
            store.claim("B", 10_000, 10).await.unwrap().is_empty(),
            "all done"
        );

        // Subscribed now: a non-ledger event is enqueued and due.
        store
            .create(&endpoint("we_cat2", "cat", &["combo_end"]), 5)
            .await
            .unwrap();
        assert!(store
            .enqueue("cat", "combo_end", &json!({"count": 2}))
            .await
            .unwrap());
        let c = store.claim("B", 10_000, 10).await.unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].id, "we_cat2");
        let e = store.next_event(&c[0]).await.unwrap().unwrap();
        assert_eq!(e.kind, "combo_end");
        // The cap counts every endpoint of the creator.
        let err = store
            .create(&endpoint("we_cat3", "cat", &["gift"]), 2)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("at most 2"), "{err}");
    }
}

//! Two hub nodes sharing one Redis and one PostgreSQL: a gift sent on one
//! node reaches viewers on the other, in seq order, once; a node's death
//! does not cost its viewers a gift when they resume elsewhere.

use crate::common;

use common::server::{test_config, EngineSpec, TestServer, Ws};
use giftstream::auth::Role;
use serde_json::json;

/// Two nodes on the same Redis + PostgreSQL, or None without the services.
async fn two_nodes() -> Option<(TestServer, TestServer)> {
    let engines = common::server::engines().await;
    let engine: EngineSpec = engines.into_iter().find(|e| e.name == "redis+postgres")?;
    let a = TestServer::start_with(engine.clone(), test_config(&engine)).await;
    let b = TestServer::start_with(engine.clone(), test_config(&engine)).await;
    Some((a, b))
}

async fn ws_on(node: &TestServer, user: &str, role: Role) -> Ws {
    node.ws(user, role).await
}

#[tokio::test]
async fn a_gift_on_one_node_reaches_viewers_on_the_other_in_order_once() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    a.open_room("alice", "cross").await;
    a.grant("v", 1000, "g").await;
    let mut on_a = ws_on(&a, "watcher-a", Role::Viewer).await;
    let mut on_b = ws_on(&b, "watcher-b", Role::Viewer).await;
    on_a.join("cross").await;
    let joined_b = on_b.join("cross").await;
    assert_eq!(joined_b["seq"], 0, "node B knows the room's seq from Redis");
    let mut sender = ws_on(&b, "v", Role::Viewer).await;
    for i in 0..20 {
        assert_eq!(
            sender.gift("cross", "rose", 1, &format!("x{i}")).await["type"],
            "gift_ack"
        );
    }
    for watcher in [&mut on_a, &mut on_b] {
        for seq in 1..=20u64 {
            let ev = watcher.expect("gift_event").await;
            assert_eq!(
                (ev["seq"].as_u64(), ev["sender"].as_str()),
                (Some(seq), Some("v"))
            );
        }
        watcher.ping().await; // nothing else (no duplicate) came before the pong
    }
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn viewers_of_a_dead_node_resume_on_another_without_gap_or_duplicate() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    a.open_room("alice", "failover").await;
    a.grant("v", 1000, "g").await;
    // Node A has the room open (it keeps history); the creator watches on B.
    let mut keeper = ws_on(&a, "keeper", Role::Viewer).await;
    keeper.join("failover").await;
    let mut feed = ws_on(&b, "alice", Role::Creator).await;
    feed.join("failover").await;
    let mut sender = ws_on(&a, "v", Role::Viewer).await;
    for i in 0..10 {
        sender.gift("failover", "rose", 1, &format!("a{i}")).await;
    }
    let mut last_seen = 0;
    for _ in 0..10 {
        last_seen = feed.expect("gift_event").await["seq"].as_u64().unwrap();
    }
    assert_eq!(last_seen, 10);
    // Node B dies; gifts keep flowing through node A meanwhile.
    b.crash_and_restart().await.stop().await;
    for i in 10..15 {
        sender.gift("failover", "rose", 1, &format!("a{i}")).await;
    }
    // The creator reconnects to node A and resumes from the last seq seen.
    let mut feed = ws_on(&a, "alice", Role::Creator).await;
    feed.send(json!({ "type": "resume", "room": "failover", "since": last_seen }))
        .await;
    // Replay and live events form one ordered stream: every seq after
    // `since` exactly once, with `resumed` where the replay ended (an event
    // still in flight between nodes may follow it live).
    let mut seqs = Vec::new();
    let mut resumed_at = None;
    while seqs.last() != Some(&15) || resumed_at.is_none() {
        let v = feed.recv().await;
        match v["type"].as_str() {
            Some("gift_event") => seqs.push(v["seq"].as_u64().unwrap()),
            Some("resumed") => resumed_at = v["seq"].as_u64(),
            other => panic!("unexpected {other:?}: {v}"),
        }
    }
    assert_eq!(
        seqs,
        (11..=15).collect::<Vec<u64>>(),
        "no gap, no duplicate"
    );
    assert!(resumed_at.is_some_and(|r| (last_seen..=15).contains(&r)));
    sender.gift("failover", "rose", 1, "after").await;
    assert_eq!(
        feed.expect("gift_event").await["seq"],
        16,
        "then live, no duplicate"
    );
    a.stop().await;
}

#[tokio::test]
async fn ending_a_room_on_one_node_ends_it_on_every_node_after_its_gifts() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    a.open_room("alice", "finale").await;
    a.grant("v", 100, "g").await;
    let mut on_b = ws_on(&b, "watcher", Role::Viewer).await;
    on_b.join("finale").await;
    let mut on_a = ws_on(&a, "local", Role::Viewer).await;
    on_a.join("finale").await;
    let mut sender = ws_on(&a, "v", Role::Viewer).await;
    for i in 0..5 {
        sender.gift("finale", "rose", 1, &format!("f{i}")).await;
    }
    let (st, _) = a
        .request(
            reqwest::Method::DELETE,
            "/v1/rooms/finale",
            Some(&a.token("alice", Role::Creator)),
            None,
        )
        .await;
    assert_eq!(st, 200);
    for watcher in [&mut on_b, &mut on_a] {
        let (_, before) = watcher.until("room_ended").await;
        let seqs: Vec<u64> = before.iter().filter_map(|v| v["seq"].as_u64()).collect();
        assert_eq!(
            seqs,
            vec![1, 2, 3, 4, 5, 6],
            "every gift and the streak's combo_end first, then room_ended"
        );
    }
    assert_eq!(
        sender.gift("finale", "rose", 1, "late").await["code"],
        "room_not_live"
    );
    b.stop().await;
    a.stop().await;
}

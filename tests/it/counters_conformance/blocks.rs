//! Conformance of the block cache (issue 17), on every engine: a blocked
//! sender's gift is refused inside the atomic step with nothing charged,
//! on the creator's rooms and videos only; unblocking restores it; a
//! rebuild replaces a creator's set unless a change overtook it.

use super::*;

/// Block, gift refused (nothing charged, no seq taken), other senders and
/// other creators unaffected, unblock restores.
pub(super) async fn blocked_sender_is_refused_in_the_gift_step(f: Factory) {
    let (room, video, other) = (f.name("blk"), f.name("blkv"), f.name("blko"));
    let e = f.make(cfg()).await;
    let c = e.c.as_ref();
    e.open_room(&room, "cr").await;
    e.open_room(&other, "cr2").await;
    c.open_target(&Target::video(&video), "cr", 0)
        .await
        .unwrap();
    let rose = gift("rose", 5, 4);
    for u in ["fan", "fan2"] {
        c.credit(u, 100, &format!("op-{u}")).await.unwrap();
    }
    assert!(!c.is_blocked("cr", "fan").await.unwrap());
    c.set_block("cr", "fan", true).await.unwrap();
    assert!(c.is_blocked("cr", "fan").await.unwrap());
    assert!(!c.is_blocked("cr2", "fan").await.unwrap());
    assert!(!c.is_blocked("cr", "fan2").await.unwrap());

    for (i, t) in [Target::room(&room), Target::video(&video)]
        .into_iter()
        .enumerate()
    {
        let r = c
            .gift(req("fan", t.clone(), &rose, 1, &format!("b{i}")))
            .await;
        assert_eq!(answer(r), Answer::Err(ErrorCode::Forbidden), "{t:?}");
        assert_eq!(c.target(&t).await.unwrap().unwrap().seq, 0, "no seq taken");
    }
    assert_eq!(c.balance("fan").await.unwrap(), 100, "nothing charged");
    assert_eq!(c.pending_len().await.unwrap(), 0);
    // Another sender to the same room, the same sender to another creator.
    let r = c
        .gift(req("fan2", Target::room(&room), &rose, 1, "ok1"))
        .await;
    assert_eq!(
        answer(r),
        Answer::Ok {
            seq: 1,
            balance: 95,
            duplicate: false
        }
    );
    let r = c
        .gift(req("fan", Target::room(&other), &rose, 1, "ok2"))
        .await;
    assert_eq!(
        answer(r),
        Answer::Ok {
            seq: 1,
            balance: 95,
            duplicate: false
        }
    );
    c.set_block("cr", "fan", false).await.unwrap();
    assert!(!c.is_blocked("cr", "fan").await.unwrap());
    let r = c
        .gift(req("fan", Target::room(&room), &rose, 1, "b0"))
        .await;
    assert_eq!(
        answer(r),
        Answer::Ok {
            seq: 2,
            balance: 90,
            duplicate: false
        },
        "a refused id is not remembered: the retry after the unblock goes through"
    );
}

/// The generation moves with every change; a rebuild read before a change
/// is refused (nothing changed); one read after replaces the set (empty:
/// the creator is gone from the cache).
pub(super) async fn block_rebuild_respects_the_generation(f: Factory) {
    let e = f.make(cfg()).await;
    let c = e.c.as_ref();
    let g0 = c.blocks_generation().await.unwrap();
    c.set_block("cr", "old", true).await.unwrap();
    let g1 = c.blocks_generation().await.unwrap();
    assert!(g1 > g0, "{g0} -> {g1}");
    assert_eq!(c.blocked_creators().await.unwrap(), vec!["cr".to_string()]);
    let users = vec!["a".to_string(), "b".to_string()];
    assert!(!c.rebuild_blocks("cr", &users, g0).await.unwrap());
    assert!(
        c.is_blocked("cr", "old").await.unwrap(),
        "overtaken: unchanged"
    );
    assert!(!c.is_blocked("cr", "a").await.unwrap());
    assert!(c.rebuild_blocks("cr", &users, g1).await.unwrap());
    assert!(!c.is_blocked("cr", "old").await.unwrap());
    assert!(c.is_blocked("cr", "a").await.unwrap());
    assert!(c.is_blocked("cr", "b").await.unwrap());
    // A rebuild does not move the generation; an empty one clears.
    assert_eq!(c.blocks_generation().await.unwrap(), g1);
    assert!(c.rebuild_blocks("cr", &[], g1).await.unwrap());
    assert!(!c.is_blocked("cr", "a").await.unwrap());
    assert!(c.blocked_creators().await.unwrap().is_empty());
}

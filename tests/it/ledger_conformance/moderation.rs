//! Conformance of blocks, moderators and the audit (issue 17) on every
//! SQL engine: who may act, one audit row per change and none for a
//! repeat or a refusal, pages under a cursor.

use super::*;

use giftstream::ledger::moderation::UserAction;

fn act<'a>(creator: &'a str, user: &'a str, actor: &'a str, now_ms: i64) -> UserAction<'a> {
    UserAction {
        creator,
        user,
        actor,
        now_ms,
    }
}

pub(super) async fn blocks_moderators_and_audit(l: Arc<dyn Ledger>) {
    let t = 1_700_000_000_000;
    // Only the creator adds moderators; a refusal writes nothing.
    let e = l
        .set_moderator(act("cr", "m1", "x", t), true)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert!(l
        .set_moderator(act("cr", "m1", "cr", t), true)
        .await
        .unwrap());
    assert!(!l
        .set_moderator(act("cr", "m1", "cr", t), true)
        .await
        .unwrap());
    assert!(l
        .set_moderator(act("cr", "m2", "cr", t + 1), true)
        .await
        .unwrap());
    assert!(l.is_moderator("cr", "m1").await.unwrap());
    assert!(!l.is_moderator("cr2", "m1").await.unwrap());
    assert_eq!(l.moderating("m1").await.unwrap(), vec!["cr".to_string()]);
    let mods: Vec<(String, String)> = l
        .moderators("cr")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user, m.added_by))
        .collect();
    assert_eq!(
        mods,
        vec![("m1".into(), "cr".into()), ("m2".into(), "cr".into())]
    );

    // The creator blocks; a repeat changes nothing.
    for (i, u) in ["a", "b", "c"].into_iter().enumerate() {
        assert!(
            l.set_block(act("cr", u, "cr", t + 10), true).await.unwrap(),
            "{i}"
        );
    }
    assert!(!l
        .set_block(act("cr", "a", "cr", t + 11), true)
        .await
        .unwrap());
    // A moderator blocks; not the creator, another moderator, or themself.
    assert!(l
        .set_block(act("cr", "d", "m1", t + 20), true)
        .await
        .unwrap());
    for u in ["cr", "m2", "m1"] {
        let e = l
            .set_block(act("cr", u, "m1", t + 21), true)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden, "{u}");
    }
    // A stranger, or a moderator of another creator, may not.
    for actor in ["stranger", "cr2"] {
        let e = l
            .set_block(act("cr", "e", actor, t + 22), true)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden, "{actor}");
    }
    assert!(l.is_blocked("cr", "d").await.unwrap());
    assert!(!l.is_blocked("cr", "e").await.unwrap());
    assert!(!l.is_blocked("cr2", "a").await.unwrap());

    // Pages, newest first: (created_ms, user) descending.
    let p1 = l.blocks("cr", 2, None).await.unwrap();
    let keys: Vec<(&str, &str)> = p1
        .iter()
        .map(|b| (b.user.as_str(), b.blocked_by.as_str()))
        .collect();
    assert_eq!(keys, vec![("d", "m1"), ("c", "cr")]);
    let last = p1.last().unwrap();
    let p2 = l
        .blocks("cr", 2, Some((last.created_ms, last.user.clone())))
        .await
        .unwrap();
    let users: Vec<&str> = p2.iter().map(|b| b.user.as_str()).collect();
    assert_eq!(users, vec!["b", "a"]);
    assert_eq!(p2[0].created_ms, t + 10);
    let all = l.all_blocks().await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0] <= w[1]), "{all:?}");

    // Unblock by the moderator; a repeat changes nothing.
    assert!(l
        .set_block(act("cr", "d", "m1", t + 30), false)
        .await
        .unwrap());
    assert!(!l
        .set_block(act("cr", "d", "m1", t + 31), false)
        .await
        .unwrap());
    assert!(l
        .set_moderator(act("cr", "m1", "cr", t + 40), false)
        .await
        .unwrap());
    let e = l
        .set_block(act("cr", "a", "m1", t + 41), false)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "no longer a moderator");
    assert!(l.is_blocked("cr", "a").await.unwrap());

    // The audit: one row per change, newest first, under a cursor.
    let want = [
        ("moderator_remove", "cr", "m1", t + 40),
        ("unblock", "m1", "d", t + 30),
        ("block", "m1", "d", t + 20),
        ("block", "cr", "c", t + 10),
        ("block", "cr", "b", t + 10),
        ("block", "cr", "a", t + 10),
        ("moderator_add", "cr", "m2", t + 1),
        ("moderator_add", "cr", "m1", t),
    ];
    let mut got = Vec::new();
    let mut before = None;
    loop {
        let page = l.audit("cr", 3, before).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|a| a.id);
        got.extend(page);
    }
    let got: Vec<(&str, &str, &str, i64)> = got
        .iter()
        .map(|a| {
            (
                a.action.as_str(),
                a.actor.as_str(),
                a.target.as_str(),
                a.at_ms,
            )
        })
        .collect();
    assert_eq!(got, want);
    assert!(l.audit("cr2", 10, None).await.unwrap().is_empty());
}

//! Unit tests of the worker's rules (backoff, retry age, disabling).

use super::*;

fn ep(attempts: i64, first: Option<i64>, failing: Option<i64>) -> ClaimedEndpoint {
    ClaimedEndpoint {
        id: "we_1".into(),
        creator: "c".into(),
        url: "http://x/".into(),
        secret: "whsec_x".into(),
        events: ",gift,".into(),
        done_id: 4,
        attempts,
        first_try_ms: first,
        failing_since_ms: failing,
    }
}

fn ev() -> OutboxEvent {
    OutboxEvent {
        id: 7,
        event_id: "e".into(),
        creator: "c".into(),
        kind: "gift".into(),
        payload: "{}".into(),
        created_ms: 1,
    }
}

fn rec(at: i64, status: Option<i64>) -> DeliveryRecord {
    DeliveryRecord {
        event_id: "e".into(),
        attempt: 1,
        status,
        error: status.is_none().then(|| "refused".to_string()),
        at_ms: at,
        duration_ms: 1,
    }
}

#[test]
fn backoff_doubles_with_jitter_and_is_capped() {
    let cfg = WebhooksConfig::default();
    assert_eq!(backoff_ms(&cfg, 1, 1.0), 1000);
    assert_eq!(backoff_ms(&cfg, 2, 1.0), 2000);
    assert_eq!(backoff_ms(&cfg, 4, 0.5), 4000);
    assert_eq!(backoff_ms(&cfg, 30, 1.0), 3_600_000);
    assert_eq!(backoff_ms(&cfg, 1000, 1.0), 3_600_000);
}

#[test]
fn success_moves_on_and_clears_failures() {
    let cfg = WebhooksConfig::default();
    let a = decide(
        &cfg,
        &ep(3, Some(1), Some(1)),
        &ev(),
        rec(100, Some(204)),
        "me",
        10,
        1.0,
    );
    assert_eq!(
        (a.done_id, a.attempts, a.first_try_ms, a.failing_since_ms),
        (7, 0, None, None)
    );
    assert!(a.disable.is_none());
}

#[test]
fn failure_retries_then_fails_the_event_then_disables() {
    let cfg = WebhooksConfig::default();
    let a = decide(
        &cfg,
        &ep(0, None, None),
        &ev(),
        rec(1000, Some(500)),
        "me",
        10,
        1.0,
    );
    assert_eq!((a.done_id, a.attempts, a.next_try_ms), (4, 1, 2000));
    assert_eq!(
        (a.first_try_ms, a.failing_since_ms),
        (Some(1000), Some(1000))
    );
    // Past retry_age_s_max: the event is failed, the endpoint moves on.
    let late = 1000 + 259_200_000;
    let a = decide(
        &cfg,
        &ep(9, Some(1000), Some(1000)),
        &ev(),
        rec(late, None),
        "me",
        10,
        1.0,
    );
    assert_eq!((a.done_id, a.attempts, a.first_try_ms), (7, 0, None));
    assert_eq!(a.failing_since_ms, Some(1000));
    assert!(a.disable.is_none());
    // Failing for longer than disable_after_s: disabled with the reason.
    let later = 1000 + 432_000_001;
    let a = decide(
        &cfg,
        &ep(2, Some(later - 5), Some(1000)),
        &ev(),
        rec(later, None),
        "me",
        10,
        1.0,
    );
    assert_eq!(a.done_id, 4);
    assert!(a.disable.unwrap().contains("refused"));
}

#[test]
fn body_has_id_type_time_creator_and_data() {
    let mut e = ev();
    e.payload = r#"{"seq":3}"#.into();
    let v: serde_json::Value = serde_json::from_str(&body_of(&e)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"id": "e", "type": "gift", "created_ms": 1, "creator": "c", "data": {"seq": 3}})
    );
}

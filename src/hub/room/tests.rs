//! The room task's unit tests.

use super::*;
use crate::hub::outbox::{outbox, OutboxRx};

fn event(seq: u64, sender: &str, diamonds: i64) -> GiftEvent {
    GiftEvent {
        room: "r".into(),
        video: None,
        seq,
        id: format!("id{seq}"),
        sender: sender.into(),
        gift: "rose".into(),
        count: 1,
        combo: 1,
        coins: diamonds,
        diamonds,
        animation: "rose.webp".into(),
        ts: 0,
        message: None,
        message_state: None,
        message_id: None,
        original: None,
    }
}

fn room(gifters_max: usize) -> Room {
    let cfg = HubConfig {
        room_gifters_max: gifters_max,
        ..HubConfig::default()
    };
    Room {
        id: "r".into(),
        topic: Topic::Room("r".into()),
        creator: "c".into(),
        last_seq: 0,
        subs: Vec::new(),
        msgpack_subs: 0,
        coalesce_subs: 0,
        history: VecDeque::new(),
        viewers: Arc::new(AtomicU64::new(0)),
        tally: Arc::new(crate::hub::tally::ViewerTally::new(0)),
        cfg,
        stats: Stats::default(),
        combos: foldhash::HashMap::default(),
        coalesce_due: None,
        relay: None,
        idle_due: None,
        skip_due: None,
    }
}

#[test]
fn gifter_tracking_stays_bounded_and_keeps_the_top() {
    for max in [1, 2, 3, 10] {
        let mut r = room(max);
        for i in 0..200u64 {
            r.on_gift(event(i + 1, &format!("u{}", i % 50), (i % 7) as i64 + 1));
            assert!(
                r.stats.gifters.len() <= max,
                "max {max}: {} tracked",
                r.stats.gifters.len()
            );
        }
        assert_eq!(
            r.stats.diamonds,
            (0..200u64).map(|i| (i % 7) as i64 + 1).sum::<i64>()
        );
    }
    let mut r = room(4);
    for (i, (u, d)) in [("a", 1), ("b", 100), ("c", 2), ("d", 3), ("e", 4), ("f", 5)]
        .iter()
        .enumerate()
    {
        r.on_gift(event(i as u64 + 1, u, *d));
    }
    assert!(
        r.stats.gifters.contains_key("b"),
        "the biggest gifter survives eviction"
    );
}

fn sub(conn_id: u64, len: usize) -> (Subscriber, OutboxRx) {
    let (tx, rx) = outbox(len);
    let s = Subscriber {
        conn_id,
        user: format!("u{conn_id}"),
        encoding: Encoding::Json,
        tx,
        ctl: Arc::new(ConnCtl::default()),
        coalesce: false,
    };
    (s, rx)
}

/// Every frame queued so far, parsed.
fn frames(rx: &mut OutboxRx) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Some(Message::Text(t)) = rx.try_recv() {
        out.push(serde_json::from_str(t.as_str()).unwrap());
    }
    out
}

/// (type, seq) of every frame queued so far but `room_stats` (their
/// timing has its own test: `due_stats_ride_behind_the_next_event_or_go_alone_after_the_ride`).
fn drained(rx: &mut OutboxRx) -> Vec<(String, u64)> {
    frames(rx)
        .into_iter()
        .filter(|v| v["type"] != "room_stats")
        .map(|v| {
            (
                v["type"].as_str().unwrap_or("").to_string(),
                v["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Due stats go out right behind the next event, in the same batch of the
/// socket's queue (one write for both), to coalescing viewers too; stats
/// not yet due wait; and stats that no event carries go out alone when
/// the ride is over.
#[test]
fn due_stats_ride_behind_the_next_event_or_go_alone_after_the_ride() {
    let mut r = room(10);
    let (a, mut rx_a) = sub(1, 100);
    let (mut c, mut rx_c) = sub(2, 100);
    c.coalesce = true;
    r.on_join(a).unwrap();
    r.on_join(c).unwrap();
    frames(&mut rx_a);
    frames(&mut rx_c);
    let kinds = |f: &[serde_json::Value]| -> Vec<(String, u64, i64)> {
        f.iter()
            .map(|v| {
                (
                    v["type"].as_str().unwrap_or("").to_string(),
                    v["seq"].as_u64().unwrap_or(0),
                    v["diamonds"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    };
    let owned = |v: &[(&str, u64, i64)]| -> Vec<(String, u64, i64)> {
        v.iter().map(|(t, s, d)| (t.to_string(), *s, *d)).collect()
    };

    // First stats of the live: due at once, so they ride with the gift
    // that changed them, and count it.
    r.on_gift(event(1, "a", 5));
    assert_eq!(
        kinds(&frames(&mut rx_a)),
        owned(&[("gift_event", 1, 5), ("room_stats", 0, 5)])
    );
    assert_eq!(
        kinds(&frames(&mut rx_c)),
        owned(&[("room_stats", 0, 5)]),
        "a coalescing viewer gets stats without the step"
    );
    assert!(r.stats.ready.is_none() && r.stats.due.is_none());

    // Within the interval: the gift goes alone, the stats wait.
    r.on_gift(event(2, "a", 7));
    assert_eq!(kinds(&frames(&mut rx_a)), owned(&[("gift_event", 2, 7)]));
    let (ready, due) = (r.stats.ready.unwrap(), r.stats.due.unwrap());
    assert_eq!(
        due - ready,
        Duration::from_millis(r.cfg.stats_ride_ms),
        "alone only after the ride"
    );
    assert!(ready > Instant::now(), "not before the interval is over");

    // The interval is over: the next event carries them.
    r.stats.ready = Some(Instant::now());
    r.on_gift(event(3, "b", 1));
    assert_eq!(
        kinds(&frames(&mut rx_a)),
        owned(&[("gift_event", 3, 1), ("room_stats", 0, 13)])
    );
    assert_eq!(kinds(&frames(&mut rx_c)), owned(&[("room_stats", 0, 13)]));

    // No event comes: the timer sends them alone.
    r.on_gift(event(4, "b", 2));
    frames(&mut rx_a);
    assert!(r.stats.ready.is_some(), "changed stats wait");
    r.stats.ready = Some(Instant::now());
    r.stats.due = Some(Instant::now());
    assert!(!r.on_timer());
    assert_eq!(kinds(&frames(&mut rx_a)), owned(&[("room_stats", 0, 15)]));
    assert_eq!(kinds(&frames(&mut rx_c)), owned(&[("room_stats", 0, 15)]));
    assert!(r.stats.ready.is_none() && r.stats.due.is_none());
}

#[test]
fn resume_joins_engine_history_to_the_ring_and_live_events_once() {
    let mut r = room(10);
    for seq in 1..=5 {
        r.on_gift(event(seq, "a", 1));
    }
    // The engine's stream is ahead of this room (7 not received yet).
    let backfill: Vec<SeqEvent> = (2..=7).map(|s| event(s, "a", 1).into()).collect();
    let (s, mut rx) = sub(1, 100);
    r.on_resume(s, 1, Some(backfill)).unwrap();
    for seq in 6..=7 {
        r.on_gift(event(seq, "a", 1));
    }
    let got = drained(&mut rx);
    let want: Vec<(String, u64)> = [2, 3, 4, 5]
        .iter()
        .map(|s| ("gift_event".to_string(), *s))
        .chain([("resumed".to_string(), 5)])
        .chain([6, 7].iter().map(|s| ("gift_event".to_string(), *s)))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_resume_ahead_of_the_room_gets_no_event_it_already_saw() {
    let mut r = room(10);
    for seq in 1..=5 {
        r.on_gift(event(seq, "a", 1));
    }
    let (s, mut rx) = sub(1, 100);
    r.on_resume(s, 8, Some(Vec::new())).unwrap();
    for seq in 6..=9 {
        r.on_gift(event(seq, "a", 1));
    }
    assert_eq!(
        drained(&mut rx),
        vec![("resumed".to_string(), 5), ("gift_event".to_string(), 9)]
    );
}

#[tokio::test]
async fn a_relayed_room_without_subscribers_stops_after_its_linger() {
    let cfg = HubConfig {
        room_linger_ms: 20,
        ..HubConfig::default()
    };
    let changed = Arc::new(Notify::new());
    let h = spawn(
        Topic::Room("r".into()),
        "c".into(),
        0,
        cfg,
        Some(changed.clone()),
    );
    tokio::time::timeout(Duration::from_secs(30), changed.notified())
        .await
        .expect("the room stops and says so");
    assert!(!h.is_open());
}

#[test]
fn stale_and_duplicate_events_are_dropped() {
    let mut r = room(10);
    r.on_gift(event(5, "a", 1));
    r.on_gift(event(5, "a", 1));
    r.on_gift(event(3, "a", 1));
    r.on_gift(event(6, "a", 1));
    assert_eq!(r.last_seq, 6);
    assert_eq!(
        r.history.iter().map(|h| h.seq).collect::<Vec<_>>(),
        vec![5, 6]
    );
    assert_eq!(r.stats.diamonds, 2);
}

/// A video's task names `video` (never `room`) in what it sends, and
/// sends no `room_stats`.
#[test]
fn a_video_names_video_in_joined_events_and_skipped_and_has_no_stats() {
    let mut r = room(10);
    r.id = "v".into();
    r.topic = Topic::Video("v".into());
    let (s, mut rx) = sub(1, 2);
    r.on_join(s).unwrap();
    let frames = |rx: &mut OutboxRx| {
        let mut out = Vec::new();
        while let Some(Message::Text(t)) = rx.try_recv() {
            out.push(serde_json::from_str::<serde_json::Value>(t.as_str()).unwrap());
        }
        out
    };
    let mut ev = event(1, "a", 1);
    ev.room = String::new();
    ev.video = Some("v".into());
    r.on_gift(ev.clone());
    let got = frames(&mut rx);
    assert_eq!(
        got[0],
        serde_json::json!({"type": "joined", "video": "v", "seq": 0, "viewers": 1})
    );
    assert_eq!(got[1]["video"], "v");
    assert!(got[1].get("room").is_none());
    // A full queue: 2 and 3 fit, 4 and 5 are skipped, and the note
    // names the video.
    for seq in 2..=5 {
        r.on_gift(GiftEvent { seq, ..ev.clone() });
    }
    frames(&mut rx);
    r.retry_skip_notes();
    let got = frames(&mut rx);
    assert_eq!(
        got,
        vec![serde_json::json!({"type": "skipped", "video": "v", "from_seq": 4, "to_seq": 5})]
    );
    r.on_timer();
    assert!(
        r.stats.due.is_none() && r.stats.ready.is_none(),
        "no room_stats for a video"
    );
    assert_eq!(
        r.linger(),
        Some(Duration::from_millis(
            r.cfg.history_age_ms_max.max(r.cfg.room_linger_ms)
        ))
    );
}

#[test]
fn a_combo_end_flushes_the_pending_step_first_reaches_everyone_and_stays_in_history() {
    let mut r = room(10);
    let (full, mut full_rx) = sub(1, 100);
    let (mut co, mut co_rx) = sub(2, 100);
    co.coalesce = true;
    r.on_join(full).unwrap();
    r.on_join(co).unwrap();
    for seq in 1..=3 {
        r.on_gift(event(seq, "a", 1));
    }
    let end = ComboEnd {
        room: "r".into(),
        video: None,
        seq: 4,
        sender: "a".into(),
        gift: "rose".into(),
        count: 3,
        coins: 3,
        diamonds: 3,
        seq_first: 1,
        seq_last: 3,
        ts: 0,
    };
    r.on_combo_end(end.clone());
    r.on_combo_end(end); // a redelivery: dropped
    let kinds = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(t, s)| (t.to_string(), *s)).collect()
    };
    assert_eq!(
        drained(&mut full_rx),
        kinds(&[
            ("joined", 0),
            ("gift_event", 1),
            ("gift_event", 2),
            ("gift_event", 3),
            ("combo_end", 4)
        ])
    );
    assert_eq!(
        drained(&mut co_rx),
        kinds(&[("joined", 0), ("gift_event", 3), ("combo_end", 4)]),
        "the latest step, then the end"
    );
    let (s, mut rx) = sub(3, 100);
    r.on_resume(s, 2, None).unwrap();
    assert_eq!(
        drained(&mut rx),
        kinds(&[("gift_event", 3), ("combo_end", 4), ("resumed", 4)])
    );
}

/// A seq that never reached this node (a relayed event lost, seqs that
/// jumped after Redis lost its data) is announced as `skipped` before the
/// next event, to every subscriber that gets each event; a coalescing one
/// is not told (its feed is not every seq), and a subscriber that had
/// already seen past the gap (a resume's backfill) is told only the rest.
#[test]
fn a_gap_in_the_seqs_reaching_the_room_is_announced_before_the_next_event() {
    let mut r = room(8);
    let (a, mut rx_a) = sub(1, 16);
    r.on_join(a).unwrap();
    let (mut c, mut rx_c) = sub(2, 16);
    c.coalesce = true;
    r.on_join(c).unwrap();
    r.on_gift(event(1, "x", 1));
    r.on_gift(event(2, "x", 1));
    r.on_gift(event(400_005, "x", 1));
    r.on_gift(event(400_006, "x", 1));
    assert_eq!(
        drained(&mut rx_a),
        vec![
            ("joined".into(), 0),
            ("gift_event".into(), 1),
            ("gift_event".into(), 2),
            ("skipped".into(), 0),
            ("gift_event".into(), 400_005),
            ("gift_event".into(), 400_006),
        ]
    );
    assert!(
        !drained(&mut rx_c).iter().any(|(t, _)| t == "skipped"),
        "a coalescing feed is not every seq: no note"
    );
    // The note's range is exactly the missing seqs.
    let mut r = room(8);
    let (a, mut rx_a) = sub(1, 16);
    r.on_join(a).unwrap();
    r.on_gift(event(3, "x", 1));
    let frames: Vec<serde_json::Value> = std::iter::from_fn(|| match rx_a.try_recv() {
        Some(Message::Text(t)) => Some(serde_json::from_str(t.as_str()).unwrap()),
        _ => None,
    })
    .collect();
    assert_eq!(frames[1]["type"], "skipped");
    assert_eq!(
        (frames[1]["from_seq"].as_u64(), frames[1]["to_seq"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(frames[2]["seq"], 3);
    // Contiguous seqs: never a note.
    let mut r = room(8);
    let (a, mut rx_a) = sub(1, 16);
    r.on_join(a).unwrap();
    for s in 1..=5 {
        r.on_gift(event(s, "x", 1));
    }
    assert!(!drained(&mut rx_a).iter().any(|(t, _)| t == "skipped"));
}

//! A live's viewers over time: the most at once and the time-weighted
//! average, kept by the room task as its viewer count changes and read
//! when the live ends (the marketplace's viewer stats,
//! `live_viewers` in the ledger).
//!
//! Owns: [`ViewerTally`]. Must not: write anything (the app layer records
//! the summary when the room is ended).

use parking_lot::Mutex;

/// One live's viewers: peak and viewer-milliseconds since it opened here.
#[derive(Debug)]
pub struct ViewerTally(Mutex<Inner>);

#[derive(Debug)]
struct Inner {
    opened_ms: i64,
    last_ms: i64,
    last_n: u64,
    area: u128,
    peak: u64,
}

/// What a tally says at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewerSummary {
    /// When the room's task opened on this node, ms since the epoch.
    pub opened_ms: i64,
    /// Most viewers at once.
    pub peak: u64,
    /// Viewers averaged over the time since it opened (rounded down).
    pub avg: u64,
}

impl ViewerTally {
    /// A tally from `now_ms`, at zero viewers.
    pub fn new(now_ms: i64) -> Self {
        ViewerTally(Mutex::new(Inner {
            opened_ms: now_ms,
            last_ms: now_ms,
            last_n: 0,
            area: 0,
            peak: 0,
        }))
    }

    /// The count is `n` from `now_ms` on.
    pub fn note(&self, n: u64, now_ms: i64) {
        let mut t = self.0.lock();
        let dt = (now_ms - t.last_ms).max(0) as u128;
        t.area += t.last_n as u128 * dt;
        t.last_ms = now_ms.max(t.last_ms);
        t.last_n = n;
        t.peak = t.peak.max(n);
    }

    /// Peak and average up to `now_ms`.
    pub fn summary(&self, now_ms: i64) -> ViewerSummary {
        let t = self.0.lock();
        let dt = (now_ms - t.last_ms).max(0) as u128;
        let area = t.area + t.last_n as u128 * dt;
        let span = (now_ms - t.opened_ms).max(1) as u128;
        ViewerSummary {
            opened_ms: t.opened_ms,
            peak: t.peak,
            avg: u64::try_from(area / span).unwrap_or(u64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_and_time_weighted_average() {
        let t = ViewerTally::new(0);
        t.note(10, 0); // 10 viewers for 1 s
        t.note(30, 1000); // 30 for 1 s
        t.note(0, 2000); // none for 2 s
        let s = t.summary(4000);
        assert_eq!((s.opened_ms, s.peak, s.avg), (0, 30, 10));
        let empty = ViewerTally::new(5).summary(5);
        assert_eq!((empty.peak, empty.avg), (0, 0));
    }
}

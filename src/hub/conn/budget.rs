//! A socket's message budget: how fast its frames are read.
//!
//! Owns: [`Budget`], a token bucket of `hub.socket_msgs_per_s_max` tokens a
//! second (one second of burst) that answers, for each client frame, how
//! long the reader must wait before handling it (the socket is not read
//! meanwhile, so a fast client is slowed by TCP back-pressure instead of
//! being refused), and whether the socket has been slowed without a break
//! for longer than `hub.socket_throttled_ms_max` (then the frame is
//! refused with `rate_limited`, still at the budget's pace).
//! Must not: sleep or touch the socket itself; the reader waits.

use std::time::{Duration, Instant};

/// What to do with one client frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Within budget: handle it now.
    Now,
    /// Over budget: wait this long (not reading the socket), then handle it.
    Wait(Duration),
    /// Over budget past the hard bound: wait this long, then refuse it
    /// with `rate_limited`.
    Refuse(Duration),
}

/// A token bucket with a streak of over-budget frames.
pub(super) struct Budget {
    rate: f64,
    tokens: f64,
    last: Instant,
    /// Since when every frame has had to wait (None: the last one did not).
    slowed_since: Option<Instant>,
    throttled_max: Duration,
}

impl Budget {
    /// `rate_per_s` frames a second, at most `rate_per_s` banked; refusal
    /// after `throttled_max` of unbroken slowing.
    pub(super) fn new(rate_per_s: u32, throttled_max: Duration) -> Budget {
        let rate = f64::from(rate_per_s.max(1));
        Budget {
            rate,
            tokens: rate,
            last: Instant::now(),
            slowed_since: None,
            throttled_max,
        }
    }

    /// Whether a frame arriving at `now` would be handled at once: what
    /// [`Budget::take`] at `now` or later would answer `Now`. Takes nothing.
    pub(super) fn has_token(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        (self.tokens + elapsed * self.rate).min(self.rate) >= 1.0
    }

    /// Take the budget of one frame arriving at `now`: a token now, or
    /// the wait until the next one (which the frame then owns).
    pub(super) fn take(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            self.slowed_since = None;
            return Verdict::Now;
        }
        // The token this frame takes accrues after the wait; the bucket
        // goes below zero by at most one token (the reader waits before
        // reading the next frame).
        let wait = Duration::from_secs_f64(-self.tokens / self.rate);
        let since = *self.slowed_since.get_or_insert(now);
        if now.saturating_duration_since(since) > self.throttled_max {
            Verdict::Refuse(wait)
        } else {
            Verdict::Wait(wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_over_the_budget_waits_then_is_refused_past_the_hard_bound() {
        let t0 = Instant::now();
        let mut b = Budget::new(10, Duration::from_millis(500));
        for _ in 0..10 {
            assert!(b.has_token(t0), "a token is what `take` answers Now for");
            assert_eq!(b.take(t0), Verdict::Now);
        }
        assert!(!b.has_token(t0), "the burst spent every token");
        // The 11th frame at the same instant waits a tenth of a second.
        let Verdict::Wait(w) = b.take(t0) else {
            panic!("over budget: a wait")
        };
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-6, "{w:?}");
        // The reader waited; each next frame again waits 100 ms.
        let mut now = t0 + w;
        let mut waits = 0;
        loop {
            match b.take(now) {
                Verdict::Wait(w) => {
                    waits += 1;
                    now += w;
                }
                Verdict::Refuse(w) => {
                    assert!(now.duration_since(t0) > Duration::from_millis(500));
                    assert!((w.as_secs_f64() - 0.1).abs() < 1e-6, "{w:?}");
                    break;
                }
                Verdict::Now => panic!("never within budget while flooding"),
            }
        }
        assert!((4..=6).contains(&waits), "{waits} waits before refusal");
        // Over budget, no token; a pause refills it.
        assert!(!b.has_token(now));
        assert!(b.has_token(now + Duration::from_secs(1)));
        // A pause refills the budget and ends the streak.
        assert_eq!(b.take(now + Duration::from_secs(1)), Verdict::Now);
        assert!(matches!(
            b.take(now + Duration::from_secs(1)),
            Verdict::Now | Verdict::Wait(_)
        ));
    }
}

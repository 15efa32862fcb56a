//! The in-process side of issue 17's message rules: the per-viewer
//! message slots (`Counters::message_slot`) and approved held messages
//! (`Counters::gift_message`).
//!
//! Owns: [`MessageMarks`] (bounded: past [`MARKS_SWEEP`] entries the
//! expired ones are swept; past [`MARKS_MAX`] live ones a new mark is not
//! kept and the message passes, so memory stays bounded under a flood of
//! distinct viewers). Must not: publish outside the target lock.

use parking_lot::Mutex;

use super::{CountersError, FastMap, MemoryCounters, Result};
use crate::model::Target;
use crate::protocol::GiftMessage;

/// Marks kept before the expired ones are swept.
const MARKS_SWEEP: usize = 65_536;
/// Live marks kept at most.
const MARKS_MAX: usize = 262_144;

/// Per key, until when (ms since the epoch) its slot is taken.
#[derive(Default)]
pub(super) struct MessageMarks(Mutex<FastMap<String, i64>>);

impl MessageMarks {
    /// Take `key`'s slot for `interval_ms` if it is free at `now`.
    pub(super) fn claim(&self, key: &str, interval_ms: u64, now: i64) -> bool {
        let mut m = self.0.lock();
        if m.get(key).is_some_and(|until| *until > now) {
            return false;
        }
        if m.len() >= MARKS_SWEEP {
            m.retain(|_, until| *until > now);
        }
        if m.len() < MARKS_MAX {
            m.insert(key.to_string(), now.saturating_add(interval_ms as i64));
        }
        true
    }
}

impl MemoryCounters {
    /// See [`crate::counters::Counters::gift_message`].
    pub(super) fn gift_message_op(
        &self,
        target: &Target,
        message_id: &str,
        ref_seq: Option<u64>,
        message: &str,
    ) -> Result<u64> {
        let state = self
            .target_state(target)
            .ok_or_else(|| Self::unknown(target))?;
        let mut t = state.lock();
        let permit = self
            .sink
            .reserve(target, &t.creator, t.seq)
            .map_err(CountersError::from)?;
        t.seq += 1;
        let (room, video, _) = target.topic().fields();
        permit.send(GiftMessage {
            room,
            video,
            seq: t.seq,
            message_id: message_id.to_string(),
            ref_seq,
            message: message.to_string(),
        });
        Ok(t.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_taken_for_its_interval_only() {
        let m = MessageMarks::default();
        assert!(m.claim("r|u", 1000, 10));
        assert!(!m.claim("r|u", 1000, 500));
        assert!(m.claim("r|v", 1000, 500));
        assert!(m.claim("r|u", 1000, 1010));
    }
}

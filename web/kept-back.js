// Kept-back messages on the viewer pages and the overlay (issue #17). A gift
// or tip event with `message_state` ("filtered" or "held") carries no
// message for viewers: the pages show the gift without it (never the text,
// even if one came). An approved held message arrives later as its own
// `gift_message` event {message_id, ref_seq, message}: it is shown once
// (by message_id), on the alert of the event it belongs to (the gift's
// seq `ref_seq`; a tip has none: its `message_id`) when that alert is
// still up. No imports: the overlay loads it before its
// strings.

/** Whether an event's message is kept back: then its `message` is never shown. */
export const keptBack = (ev) => !!(ev && ev.message_state);

/** The message of an event that may be shown ('' when none or kept back). */
export const shownMessage = (ev) => (ev && !keptBack(ev) && typeof ev.message === 'string' ? ev.message : '');

/**
 * Which alert shows which event (by seq, and by message id), and which
 * approved messages were shown already. Bounded: the oldest entries go
 * first.
 */
export class Alerts {
  constructor(max = 500) {
    this.byKey = new Map();
    this.approvedIds = new Set();
    this.max = max;
  }

  /** `node` (an alert) shows the event `ev` (a gift step or a tip). */
  remember(ev, node) {
    if (!ev) return;
    for (const k of [ev.seq != null ? `s:${ev.seq}` : null, ev.message_id != null ? `m:${ev.message_id}` : null]) {
      if (!k) continue;
      this.byKey.delete(k);
      this.byKey.set(k, { node, sender: ev.sender });
    }
    while (this.byKey.size > this.max) this.byKey.delete(this.byKey.keys().next().value);
  }

  /**
   * A `gift_message` event: null when its message was shown already (or it
   * has none), else `{node, sender}` of the alert it belongs to (`node`
   * undefined, or no longer in the page, when that alert has gone).
   */
  approved(m) {
    if (!m || typeof m.message !== 'string' || m.message_id == null) return null;
    const id = String(m.message_id);
    if (this.approvedIds.has(id)) return null;
    this.approvedIds.add(id);
    while (this.approvedIds.size > this.max) this.approvedIds.delete(this.approvedIds.values().next().value);
    return (m.ref_seq != null && this.byKey.get(`s:${m.ref_seq}`)) || this.byKey.get(`m:${id}`) || {};
  }
}

//! A socket's outbound frame queue: bounded, many producers (the rooms it
//! joined, its reader's replies, ledger-mode ack tasks), one consumer (its
//! writer task).
//!
//! Owns: the frames waiting for one socket's writer, the bound on them, the
//! wake-ups between producers and the writer, and the writer's stop
//! ([`Stop`], pulled by the connection's kill switch).
//! Must not: make a room wait (rooms only [`Outbox::try_send`]; a full
//! queue is the room's signal to skip or kick), or hold memory an idle
//! socket does not use: the slots grow with use and are given back when the
//! queue drains, where tokio's `mpsc` allocates a 32-slot block (1.5 KiB of
//! `Message`s) per channel up front. With 20,000 idle sockets that block
//! alone was a fifth of the server's memory per connection.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::ws::Message;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Why [`Outbox::try_send`] did not queue the frame (handed back).
#[derive(Debug)]
pub enum TrySendError {
    /// The queue holds `len_max` frames.
    Full(Message),
    /// The writer is gone (the socket closed).
    Closed(Message),
}

/// Why [`Outbox::try_send_all`] queued none of the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchError {
    /// They do not fit, even with the allowance.
    Full,
    /// The writer is gone (the socket closed).
    Closed,
}

/// The writer is gone; the frame is handed back.
#[derive(Debug)]
pub struct Closed(pub Message);

/// Frames in order: the oldest inline, the rest in a deque that is
/// allocated only while two or more wait and given back when they are
/// gone. A socket that gets one frame at a time (a viewer at a few events
/// a second) never allocates; idle sockets hold no slot array.
#[derive(Default)]
struct Frames {
    /// The oldest frame; None only when `rest` is empty too.
    head: Option<Message>,
    /// The frames after `head`.
    rest: VecDeque<Message>,
}

impl Frames {
    fn len(&self) -> usize {
        usize::from(self.head.is_some()) + self.rest.len()
    }

    fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    fn push_back(&mut self, frame: Message) {
        if self.head.is_none() {
            debug_assert!(self.rest.is_empty(), "head is empty only with rest");
            self.head = Some(frame);
        } else {
            self.rest.push_back(frame);
        }
    }

    fn pop_front(&mut self) -> Option<Message> {
        let f = self.head.take()?;
        self.head = self.rest.pop_front();
        if self.rest.is_empty() && self.rest.capacity() > 0 {
            self.rest = VecDeque::new();
        }
        Some(f)
    }

    fn clear(&mut self) {
        self.head = None;
        self.rest = VecDeque::new();
    }
}

struct Queue {
    frames: Frames,
    /// The writer dropped its end.
    closed: bool,
    /// [`Stop::stop`] was called: the writer takes no more frames.
    stopped: bool,
    /// Producers parked in [`Outbox::send`] waiting for a free slot.
    senders_waiting: usize,
}

struct Shared {
    queue: Mutex<Queue>,
    len_max: usize,
    /// Live [`Outbox`] handles; the writer sees the end when it reaches 0.
    senders: AtomicUsize,
    /// A frame was queued, or the last producer left.
    readable: Notify,
    /// A slot was freed, or the writer left.
    writable: Notify,
}

/// The producers' end. Cloning it adds a producer.
pub struct Outbox {
    shared: Arc<Shared>,
}

/// The writer's end.
pub struct OutboxRx {
    shared: Arc<Shared>,
}

/// Stops the writer from outside (the connection's kill switch): its
/// [`OutboxRx::recv`] ends at once, queued frames or not. Not a producer:
/// holding one does not keep the queue open.
#[derive(Clone)]
pub struct Stop {
    shared: Arc<Shared>,
}

impl Stop {
    /// End the writer's [`OutboxRx::recv`] and [`OutboxRx::try_recv`] for
    /// good. An idle writer waits on the queue alone, so this is what wakes
    /// it when its socket is kicked.
    pub fn stop(&self) {
        self.shared.queue.lock().stopped = true;
        self.shared.readable.notify_one();
    }
}

/// A queue of at most `len_max` frames (> 0).
pub fn outbox(len_max: usize) -> (Outbox, OutboxRx) {
    assert!(len_max > 0, "an outbox holds at least one frame");
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            frames: Frames::default(),
            closed: false,
            stopped: false,
            senders_waiting: 0,
        }),
        len_max,
        senders: AtomicUsize::new(1),
        readable: Notify::new(),
        writable: Notify::new(),
    });
    (
        Outbox {
            shared: shared.clone(),
        },
        OutboxRx { shared },
    )
}

impl Outbox {
    /// Queue `frame` now, or hand it back if the queue is full or closed.
    pub fn try_send(&self, frame: Message) -> Result<(), TrySendError> {
        let mut q = self.shared.queue.lock();
        if q.closed {
            return Err(TrySendError::Closed(frame));
        }
        if q.frames.len() >= self.shared.len_max {
            return Err(TrySendError::Full(frame));
        }
        let was_empty = q.frames.is_empty();
        q.frames.push_back(frame);
        drop(q);
        if was_empty {
            // The writer only sleeps on an empty queue.
            self.shared.readable.notify_one();
        }
        Ok(())
    }

    /// Queue all of `frames` in order with nothing from another producer
    /// between them, or none. The queue may go up to `extra_max` frames
    /// past its bound for them: a replay is bounded by the history it comes
    /// from, not by the live queue, and must reach the socket whole.
    pub fn try_send_all(&self, frames: Vec<Message>, extra_max: usize) -> Result<(), BatchError> {
        if frames.is_empty() {
            return Ok(());
        }
        let mut q = self.shared.queue.lock();
        if q.closed {
            return Err(BatchError::Closed);
        }
        if q.frames.len() + frames.len() > self.shared.len_max.saturating_add(extra_max) {
            return Err(BatchError::Full);
        }
        let was_empty = q.frames.is_empty();
        for f in frames {
            q.frames.push_back(f);
        }
        drop(q);
        if was_empty {
            self.shared.readable.notify_one();
        }
        Ok(())
    }

    /// Queue `frame`, waiting for a free slot; fails once the writer is gone.
    pub async fn send(&self, frame: Message) -> Result<(), Closed> {
        loop {
            let writable = self.shared.writable.notified();
            tokio::pin!(writable);
            // Registered before the check, so a slot freed after it wakes us.
            writable.as_mut().enable();
            {
                let mut q = self.shared.queue.lock();
                if q.closed {
                    return Err(Closed(frame));
                }
                if q.frames.len() < self.shared.len_max {
                    let was_empty = q.frames.is_empty();
                    q.frames.push_back(frame);
                    drop(q);
                    if was_empty {
                        self.shared.readable.notify_one();
                    }
                    return Ok(());
                }
                // Counted under the same lock as the check: the writer's
                // next pop sees it and wakes us.
                q.senders_waiting += 1;
            }
            writable.await;
            let mut q = self.shared.queue.lock();
            q.senders_waiting = q.senders_waiting.saturating_sub(1);
        }
    }

    /// Free slots right now.
    pub fn capacity(&self) -> usize {
        let q = self.shared.queue.lock();
        if q.closed {
            return 0;
        }
        self.shared.len_max.saturating_sub(q.frames.len())
    }

    /// Whether the writer is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.queue.lock().closed
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Outbox {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Outbox {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.readable.notify_one();
        }
    }
}

impl OutboxRx {
    /// A handle that stops this writer (see [`Stop`]).
    pub fn stopper(&self) -> Stop {
        Stop {
            shared: self.shared.clone(),
        }
    }

    /// The next frame, waiting for one; None once stopped, or once every
    /// producer is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            match self.take() {
                Take::Frame(f) => return Some(f),
                Take::Stopped => return None,
                Take::Empty => {}
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                // A producer may have queued just before leaving.
                return self.try_recv();
            }
            // `notify_one` keeps a permit when nobody waits, so a frame
            // queued (or a stop) between the check above and this await is
            // not missed.
            self.shared.readable.notified().await;
        }
    }

    /// The next frame if one is queued and the writer is not stopped.
    pub fn try_recv(&mut self) -> Option<Message> {
        match self.take() {
            Take::Frame(f) => Some(f),
            Take::Empty | Take::Stopped => None,
        }
    }

    /// The next frame, or why there is none, under one lock.
    fn take(&mut self) -> Take {
        let mut q = self.shared.queue.lock();
        if q.stopped {
            return Take::Stopped;
        }
        let Some(f) = q.frames.pop_front() else {
            return Take::Empty;
        };
        let wake = q.senders_waiting > 0;
        drop(q);
        if wake {
            self.shared.writable.notify_one();
        }
        Take::Frame(f)
    }
}

/// What [`OutboxRx::take`] found.
enum Take {
    Frame(Message),
    Empty,
    Stopped,
}

impl Drop for OutboxRx {
    fn drop(&mut self) {
        let mut q = self.shared.queue.lock();
        q.closed = true;
        q.frames.clear();
        drop(q);
        self.shared.writable.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Message {
        Message::Text(s.into())
    }

    fn body(m: Option<Message>) -> String {
        match m {
            Some(Message::Text(t)) => t.to_string(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn a_batch_goes_in_whole_within_its_allowance_or_not_at_all() {
        let (tx, mut rx) = outbox(2);
        tx.try_send(text("live")).unwrap();
        let batch = |n: usize| (0..n).map(|i| text(&format!("r{i}"))).collect::<Vec<_>>();
        // 1 queued + 4 > 2 + 2: nothing of it is queued.
        assert_eq!(tx.try_send_all(batch(4), 2), Err(BatchError::Full));
        assert_eq!(tx.capacity(), 1, "a refused batch leaves no frame behind");
        // 1 + 3 <= 2 + 2: all of it, after what was there, in order.
        tx.try_send_all(batch(3), 2).unwrap();
        assert_eq!(tx.capacity(), 0, "over its live bound by the allowance");
        assert!(matches!(tx.try_send(text("x")), Err(TrySendError::Full(_))));
        let got: Vec<String> = (0..4).map(|_| body(rx.try_recv())).collect();
        assert_eq!(got, ["live", "r0", "r1", "r2"]);
        assert!(rx.try_recv().is_none());
        drop(rx);
        assert_eq!(tx.try_send_all(batch(1), 2), Err(BatchError::Closed));
    }

    #[test]
    fn bounded_in_order_and_full_hands_the_frame_back() {
        let (tx, mut rx) = outbox(2);
        assert_eq!(tx.capacity(), 2);
        tx.try_send(text("a")).unwrap();
        tx.try_send(text("b")).unwrap();
        assert_eq!(tx.capacity(), 0);
        match tx.try_send(text("c")) {
            Err(TrySendError::Full(Message::Text(t))) => assert_eq!(t.as_str(), "c"),
            other => panic!("expected Full(c), got {other:?}"),
        }
        assert_eq!(body(rx.try_recv()), "a");
        assert_eq!(body(rx.try_recv()), "b");
        assert!(rx.try_recv().is_none());
        assert_eq!(tx.capacity(), 2);
    }

    #[test]
    fn order_holds_across_the_inline_slot_and_the_deque() {
        let (tx, mut rx) = outbox(8);
        for f in ["a", "b", "c"] {
            tx.try_send(text(f)).unwrap();
        }
        assert_eq!(body(rx.try_recv()), "a");
        tx.try_send(text("d")).unwrap();
        let got: Vec<String> =
            std::iter::from_fn(|| rx.try_recv().map(|m| body(Some(m)))).collect();
        assert_eq!(got, ["b", "c", "d"]);
        tx.try_send(text("e")).unwrap();
        assert_eq!(body(rx.try_recv()), "e");
        assert_eq!(rx.shared.queue.lock().frames.rest.capacity(), 0);
    }

    #[test]
    fn closed_when_the_writer_is_gone() {
        let (tx, rx) = outbox(4);
        tx.try_send(text("a")).unwrap();
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.capacity(), 0);
        assert!(matches!(
            tx.try_send(text("b")),
            Err(TrySendError::Closed(_))
        ));
    }

    #[test]
    fn slots_are_given_back_when_the_queue_drains() {
        let (tx, mut rx) = outbox(256);
        for i in 0..200 {
            tx.try_send(text(&i.to_string())).unwrap();
        }
        while rx.try_recv().is_some() {}
        assert_eq!(rx.shared.queue.lock().frames.rest.capacity(), 0);
    }

    #[tokio::test]
    async fn recv_wakes_on_send_and_ends_when_producers_leave() {
        let (tx, mut rx) = outbox(4);
        let tx2 = tx.clone();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(m) = rx.recv().await {
                got.push(body(Some(m)));
            }
            got
        });
        tokio::task::yield_now().await;
        tx.send(text("a")).await.unwrap();
        tx2.try_send(text("b")).unwrap();
        drop(tx);
        drop(tx2);
        assert_eq!(reader.await.unwrap(), vec!["a", "b"]);
    }

    #[tokio::test]
    async fn a_stop_wakes_an_idle_writer_and_ends_it_with_frames_still_queued() {
        let (tx, mut rx) = outbox(4);
        let stop = rx.stopper();
        let (woke_tx, woke) = tokio::sync::oneshot::channel();
        let writer = tokio::spawn(async move {
            let first = rx.recv().await.map(|m| body(Some(m)));
            let _ = woke_tx.send(first);
            // Stopped: nothing more comes out, queued or not.
            let after = rx.recv().await.map(|m| body(Some(m)));
            (after, rx.try_recv().is_none())
        });
        tokio::task::yield_now().await;
        tx.try_send(text("a")).unwrap();
        assert_eq!(woke.await.unwrap().as_deref(), Some("a"));
        tokio::task::yield_now().await;
        stop.stop();
        tx.try_send(text("b")).unwrap();
        let (after, try_none) = writer.await.unwrap();
        assert_eq!(after, None, "a stopped writer takes no frame");
        assert!(try_none, "try_recv is stopped too");
        assert!(tx.is_closed(), "the writer ended and closed the queue");
    }

    #[tokio::test]
    async fn a_stop_handle_is_not_a_producer() {
        let (tx, mut rx) = outbox(4);
        let _stop = rx.stopper();
        tx.try_send(text("last")).unwrap();
        drop(tx);
        // Only the stop handle is left: the writer still sees the end.
        assert_eq!(body(rx.recv().await), "last");
        let end = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
        assert!(matches!(end, Ok(None)), "recv ended: {end:?}");
    }

    #[tokio::test]
    async fn a_stop_before_the_writer_waits_is_not_lost() {
        let (_tx, mut rx) = outbox(4);
        rx.stopper().stop();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
        assert!(matches!(got, Ok(None)), "recv ended at once: {got:?}");
    }

    #[tokio::test]
    async fn send_waits_for_a_free_slot_and_fails_when_the_writer_leaves() {
        let (tx, mut rx) = outbox(1);
        tx.try_send(text("a")).unwrap();
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move { tx2.send(text("b")).await.is_ok() });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no slot yet");
        assert_eq!(body(rx.try_recv()), "a");
        assert!(waiting.await.unwrap(), "sent once a slot was freed");
        assert_eq!(body(rx.try_recv()), "b");

        tx.try_send(text("c")).unwrap();
        let tx3 = tx.clone();
        let blocked = tokio::spawn(async move { tx3.send(text("d")).await.is_err() });
        tokio::task::yield_now().await;
        drop(rx);
        assert!(blocked.await.unwrap(), "the writer left: Closed");
    }
}

//! The socket's writer task: queued frames out in batches (feed up to
//! `hub.write_batch_len_max`, flush once), then the close frame.
//!
//! Owns: [`write_loop`] and what a write error means ([`is_too_big`]).
//! Must not: decode or answer client frames (the reader does).

use std::future::Future as _;

use super::*;

/// Whether a read error is a frame over the socket's size limit.
pub(super) fn is_too_big(e: &axum::Error) -> bool {
    use std::error::Error as _;
    let mut src: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = src {
        if let Some(t) = s.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
            return matches!(t, tokio_tungstenite::tungstenite::Error::Capacity(_));
        }
        src = s.source();
    }
    e.to_string().contains("Space limit exceeded") || e.to_string().contains("too long")
}

/// Write the socket's queued frames until its queue closes or it is
/// kicked, then send the close frame (bounded by `close_timeout`).
pub(super) async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: OutboxRx,
    ctl: Arc<ConnCtl>,
    batch_len_max: usize,
    close_timeout: Duration,
) {
    // Watched only while a write waits on the socket: an idle writer waits
    // on its queue alone, which a kick stops (see `ConnCtl`).
    let stopped = ctl.kick.cancelled();
    tokio::pin!(stopped);
    let (code, reason) = loop {
        let Some(first) = rx.recv().await else {
            // Stopped by a kick, or every producer is gone.
            break if ctl.kick.is_cancelled() {
                ctl.close_frame()
            } else {
                (1000, "")
            };
        };
        // Feed up to `batch_len_max` queued frames, then flush once (one
        // syscall for the batch). Written as a poll function, not an async
        // block: its state is a frame and a count, where the block's
        // `feed` futures made every idle socket's writer task larger.
        let mut pending = Some(first);
        let mut fed = 0usize;
        let write = std::future::poll_fn(|cx| loop {
            if let Some(frame) = pending.take() {
                match Pin::new(&mut sink).poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        if let Err(e) = Pin::new(&mut sink).start_send(frame) {
                            return Poll::Ready(Err(e));
                        }
                        fed += 1;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        pending = Some(frame);
                        return Poll::Pending;
                    }
                }
                continue;
            }
            if fed < batch_len_max {
                if let Some(frame) = rx.try_recv() {
                    pending = Some(frame);
                    continue;
                }
            }
            return Pin::new(&mut sink).poll_flush(cx);
        });
        // The write first: the kill switch's lock is taken only when the
        // socket would block (a write that never ends waits for a kick).
        tokio::pin!(write);
        let written = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = write.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            stopped.as_mut().poll(cx).map(|()| None)
        })
        .await;
        match written {
            None => break ctl.close_frame(),
            Some(Err(_)) => return,
            Some(Ok(())) => {}
        }
    };
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    // Boxed: once per socket, and inline it would size the writer task of
    // every idle socket.
    let _ = Box::pin(tokio::time::timeout(close_timeout, sink.send(close))).await;
}

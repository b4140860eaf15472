//! A connection's writing half: frames go through a channel to a small task
//! that coalesces them into one `write`, with a bound on the bytes waiting.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::net;

/// Bytes of frames handed to a connection's writer and not yet written, at
/// most (a paused peer stops reading; past this, frames are dropped as lost).
const IN_FLIGHT_BYTES: usize = 32 << 20;

/// A connection's writer: frames go through `tx`; `in_flight` counts the
/// bytes handed over and not yet written.
pub(super) struct Writer {
    tx: UnboundedSender<Bytes>,
    in_flight: Arc<AtomicUsize>,
}

impl Writer {
    /// Start the task that writes frames to `w`; it ends with the connection.
    pub(super) fn spawn(mut w: OwnedWriteHalf) -> Writer {
        let (tx, mut rx): (_, UnboundedReceiver<Bytes>) = unbounded_channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let counter = in_flight.clone();
        actix_rt::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            while let Some(first) = rx.recv().await {
                let mut taken = first.len();
                if net::put_frame(&mut buf, first).is_err() {
                    tracing::error!("not sending a frame above the frame limit");
                }
                while buf.len() < (1 << 20) {
                    match rx.try_recv() {
                        Ok(more) => {
                            taken += more.len();
                            if net::put_frame(&mut buf, more).is_err() {
                                tracing::error!("not sending a frame above the frame limit");
                            }
                        }
                        Err(_) => break,
                    }
                }
                let ok = w.write_all(&buf).await.is_ok();
                counter.fetch_sub(taken, Ordering::Relaxed);
                if !ok {
                    break;
                }
                buf.clear();
            }
            let _ = w.shutdown().await;
        });
        Writer { tx, in_flight }
    }

    /// True while the connection's writing task runs.
    pub(super) fn is_open(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Hand `frame` to the writer; false if the connection is gone or too
    /// much is waiting already.
    pub(super) fn send(&self, frame: Bytes) -> bool {
        let len = frame.len();
        if self.in_flight.load(Ordering::Relaxed) + len > IN_FLIGHT_BYTES {
            return false;
        }
        self.in_flight.fetch_add(len, Ordering::Relaxed);
        self.tx.send(frame).is_ok()
    }
}

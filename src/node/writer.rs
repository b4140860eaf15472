//! A connection's writing half: frames go through a channel to a small task
//! that coalesces them into one `write`, with a bound on the bytes waiting.
//!
//! A reader that takes nothing for [`STALL`] (a paused process) loses the
//! connection, reset rather than closed: what the kernels still hold for it
//! is discarded. Otherwise a peer paused for 30 s would, once resumed, work
//! through every message of those 30 s (tens of MB, seconds of syncs)
//! before it could ask for the snapshot that makes them moot. Messages lost
//! this way are lost messages, which the protocol tolerates.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::net;

/// Bytes of frames handed to a connection's writer and not yet written, at
/// most (a paused peer stops reading; past this, frames are dropped as lost).
const IN_FLIGHT_BYTES: usize = 32 << 20;

/// A write that makes no progress for this long ends the connection.
pub(super) const STALL: Duration = Duration::from_secs(1);

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
                let written = tokio::time::timeout(STALL, w.write_all(&buf)).await;
                counter.fetch_sub(taken, Ordering::Relaxed);
                match written {
                    Ok(Ok(())) => buf.clear(),
                    Ok(Err(_)) => break,
                    Err(_) => {
                        // Reset once the reading half goes too (the owner
                        // sees `is_open` false and drops it).
                        let _ = w.as_ref().set_zero_linger();
                        rx.close();
                        return;
                    }
                }
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

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[actix_rt::test]
    async fn a_reader_that_takes_nothing_is_reset_and_what_waited_is_dropped() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        let (read, write) = stream.into_split();
        let w = Writer::spawn(write);
        // 24 MiB: more than the two kernels buffer, so the writer blocks.
        let frame = Bytes::from(vec![7u8; 1 << 20]);
        for _ in 0..24 {
            assert!(w.send(frame.clone()));
        }
        tokio::time::sleep(STALL * 3).await;
        assert!(
            !w.is_open(),
            "the writer gave up on a reader that took nothing"
        );
        drop(read);
        drop(w);
        // The reader, resuming, sees a reset, not 24 MiB of stale frames.
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        let end = loop {
            match peer.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => total += n,
                Err(e) => break Some(e.kind()),
            }
        };
        assert_eq!(
            end,
            Some(std::io::ErrorKind::ConnectionReset),
            "after {total} bytes"
        );
        assert!(total < 16 << 20, "{total} bytes came through");
    }
}

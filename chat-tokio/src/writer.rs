//! A connection's writer task: takes what the core task queued and writes it in batches — after
//! one `recv`, every frame already waiting is fed to tungstenite's buffer, then one `flush`:
//! one socket write per batch, however many broadcasts a turn of the core made.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::sync::{mpsc, watch};
use tungstenite::Message;

use crate::connection::{linger_after_close, Out, Ws};

/// Writes until the close frame is out, the core forgets the client, or the socket fails. Once
/// the core has closed the client, at most `CLOSE_LINGER` more: a peer that does not read
/// cannot hold the task (and its socket) forever. Gives the sink back for the socket's end,
/// and whether everything was written (`false`: the linger ran out, or the socket failed).
pub(crate) async fn run(
    mut sink: SplitSink<Ws, Message>,
    mut rx: mpsc::UnboundedReceiver<Out>,
    queued: Arc<AtomicUsize>,
    discard: Arc<AtomicBool>,
    closed: watch::Receiver<bool>,
) -> (SplitSink<Ws, Message>, bool) {
    let wrote_all = tokio::select! {
        wrote_all = write(&mut sink, &mut rx, &queued, &discard) => wrote_all,
        () = linger_after_close(closed) => false,
    };
    (sink, wrote_all)
}

async fn write(
    sink: &mut SplitSink<Ws, Message>,
    rx: &mut mpsc::UnboundedReceiver<Out>,
    queued: &AtomicUsize,
    discard: &AtomicBool,
) -> bool {
    while let Some(first) = rx.recv().await {
        let mut batch_bytes = 0;
        let mut last = false;
        let mut next = Some(first);
        while let Some(out) = next {
            let message = match out {
                Out::Text(text, len) => {
                    batch_bytes += len;
                    if discard.load(Ordering::Acquire) {
                        // A slow consumer's frames not started: dropped for its close frame.
                        next = rx.try_recv().ok();
                        continue;
                    }
                    Message::Text(text)
                }
                Out::Ping => Message::Ping(Bytes::new()),
                Out::Close(frame) => {
                    last = true;
                    Message::Close(Some(frame))
                }
            };
            if let Err(e) = sink.feed(message).await {
                log::debug!("websocket write failed: {e}");
                return false;
            }
            if last {
                break;
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = sink.flush().await {
            log::debug!("websocket write failed: {e}");
            return false;
        }
        queued.fetch_sub(batch_bytes, Ordering::AcqRel);
        if last {
            return true;
        }
    }
    true
}

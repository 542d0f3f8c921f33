//! One chat connection after the upgrade: its WebSocket split into a reader task
//! (`reader.rs`) and a writer task (`writer.rs`), and the handle the core task holds.
//!
//! ```text
//!  socket ──► reader task ──Inbound (bounded mpsc)──► core task
//!                                                        │ Out (unbounded mpsc; its bytes
//!  socket ◄── writer task ◄──────────────────────────────┘   counted in `queued`)
//! ```
//!
//! The core task checks `queued` before each frame (the slow-consumer policy, `core_task.rs`);
//! the writer subtracts a batch's bytes once they are written. When the core closes the client
//! it queues the close frame and raises `closing`: both tasks then have [`CLOSE_LINGER`] to
//! finish the close handshake before the socket is dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use chat_adapter::handshake::Accepted;
use chat_protocol::ClientId;
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Utf8Bytes;

use crate::chat::{Admission, Shared};
use crate::core_task::{Inbound, Joined};

/// How long a closing connection has to take its last bytes and answer the close.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// The WebSocket of an upgraded hyper connection.
pub(crate) type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// What the core task asks a writer to send.
#[derive(Debug)]
pub(crate) enum Out {
    /// A text frame, and its length on the wire (counted in `queued`).
    Text(Utf8Bytes, usize),
    Ping,
    /// The last frame.
    Close(CloseFrame),
}

/// The bytes a text frame of `payload` bytes takes on the wire (server frames are unmasked).
pub(crate) fn frame_len(payload: usize) -> usize {
    let header = match payload {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    header + payload
}

/// The core task's side of one connection.
pub(crate) struct ConnHandle {
    tx: mpsc::UnboundedSender<Out>,
    /// Bytes queued for the writer and not yet written.
    pub queued: Arc<AtomicUsize>,
    /// Set with a slow consumer's close: the writer skips the frames it has not started.
    discard: Arc<AtomicBool>,
    /// Raised when the core closes the client (dropping it says the same).
    closing: watch::Sender<bool>,
    pub user: String,
    pub peer: String,
}

impl ConnHandle {
    /// Queues `out`; a writer that is gone (the socket failed) takes nothing, and its reader
    /// reports the end.
    pub fn send(&self, out: Out) {
        let _ = self.tx.send(out);
    }

    /// Queues the close frame last (or alone, `drop_queued`), and starts both tasks' linger.
    pub fn close(self, code: u16, text: &str, drop_queued: bool) {
        if drop_queued {
            self.discard
                .store(true, std::sync::atomic::Ordering::Release);
        }
        self.send(Out::Close(CloseFrame {
            code: CloseCode::from(code),
            reason: text.to_owned().into(),
        }));
        self.closing.send_replace(true);
    }
}

/// A chat client the core has been told of, whose socket is not upgraded yet: the core's
/// frames for it wait in its channel until [`Joining::start`].
pub(crate) struct Joining {
    shared: Arc<Shared>,
    client: ClientId,
    rx: mpsc::UnboundedReceiver<Out>,
    queued: Arc<AtomicUsize>,
    discard: Arc<AtomicBool>,
    closed: watch::Receiver<bool>,
    admission: Admission,
}

/// Tells the core of a new chat client (through the inbox, so it comes before any of its
/// reader's inputs), before its `101` is written, as the mio server does: whoever reads the
/// `101` is in the chat already. `None`: the chat stopped meanwhile.
pub(crate) async fn join(
    shared: Arc<Shared>,
    accepted: Accepted,
    peer: SocketAddr,
    (expires, admin): (Option<std::time::Instant>, bool),
    admission: Admission,
) -> Option<Joining> {
    let client = shared.next_client();
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let discard = Arc::new(AtomicBool::new(false));
    let (closing, closed) = watch::channel(false);
    let conn = ConnHandle {
        tx,
        queued: Arc::clone(&queued),
        discard: Arc::clone(&discard),
        closing,
        user: accepted.user.clone(),
        peer: peer.to_string(),
    };
    let joined = Joined {
        client,
        conn,
        accepted,
        expires,
        admin,
    };
    shared
        .inbox
        .send(Inbound::Connect(Box::new(joined)))
        .await
        .ok()?;
    Some(Joining {
        shared,
        client,
        rx,
        queued,
        discard,
        closed,
        admission,
    })
}

impl Joining {
    /// Runs the client on its upgraded socket: its reader and writer, then the socket's end.
    /// In the caller's task (the one that waited for the upgrade): one task hop less before a
    /// peer that is already gone is noticed.
    pub async fn run(self, ws: Ws) {
        let (sink, stream) = ws.split();
        let closed = self.closed;
        let ((sink, wrote_all), stream) = tokio::join!(
            crate::writer::run(sink, self.rx, self.queued, self.discard, closed.clone()),
            crate::reader::run(stream, self.client, self.shared, closed),
        );
        if let Ok(ws) = sink.reunite(stream) {
            end(ws, wrote_all).await;
        }
        // Counted open until the socket is closed.
        drop(self.admission);
    }

    /// The upgrade failed (the peer went away before it): the client leaves the chat.
    pub async fn abandon(self) {
        let _ = self
            .shared
            .inbox
            .send(Inbound::Ended {
                client: self.client,
                reason: None,
            })
            .await;
    }
}

/// The socket's end, as on the mio server: the last frames (a close answer tungstenite still
/// holds) go out, the write side is shut (the peer reads a FIN after the close frame, even if
/// it never answers it), then what the peer still sends is read and dropped until its EOF or
/// [`CLOSE_LINGER`], so the socket is never closed on unread bytes (a reset, which could reach
/// the peer before the close frame). A writer that could not get its bytes out (the peer does
/// not read) skips the flush: the socket is shut and closed at once.
async fn end(mut ws: Ws, wrote_all: bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        if wrote_all {
            // The sink's close (not `WebSocketStream::close`, which sends a second close
            // frame and fails after the first): flushes a close answer still held.
            let _ = futures_util::SinkExt::close(&mut ws).await;
        }
        let mut io = ws.into_inner();
        if io.shutdown().await.is_err() || !wrote_all {
            return;
        }
        let mut scratch = [0u8; 4096];
        while let Ok(1..) = io.read(&mut scratch).await {}
    })
    .await;
}

/// Resolves once the core has closed the client (or forgotten it), then [`CLOSE_LINGER`] later.
pub(crate) async fn linger_after_close(mut closed: watch::Receiver<bool>) {
    // `Err`: the core dropped the handle (the client left): the same as closed.
    let _ = closed.wait_for(|closing| *closing).await;
    tokio::time::sleep(CLOSE_LINGER).await;
}

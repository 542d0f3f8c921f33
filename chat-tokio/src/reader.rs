//! A connection's reader task: each complete message becomes an input for the core task, and a
//! read error the close code it deserves (the same table as the mio server's,
//! `chat_adapter::ws_rules`). Sending to the core's bounded inbox waits when the core is
//! flooded, so a fast client is slowed down by its own socket, not buffered.

use std::sync::Arc;

use bytes::Bytes;
use chat_protocol::{ClientId, CloseReason, Payload};
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use tokio::sync::watch;
use tungstenite::Message;

use crate::chat::Shared;
use crate::connection::Ws;
use crate::core_task::Inbound;

pub(crate) async fn run(
    mut stream: SplitStream<Ws>,
    client: ClientId,
    shared: Arc<Shared>,
    mut closed: watch::Receiver<bool>,
) -> SplitStream<Ws> {
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            // Closed by the core: what the peer still says is not the chat's any more.
            _ = closed.wait_for(|closing| *closing) => break,
        };
        let input = match next {
            Some(Ok(Message::Text(text))) => {
                // tungstenite checked the UTF-8 already; the core's Payload checks again
                // rather than trust a type it does not know (a linear scan, no copy).
                match Payload::try_from(Bytes::from(text)) {
                    Ok(text) => Inbound::Text { client, text },
                    Err(_) => ended(client, Some(CloseReason::InvalidUtf8)),
                }
            }
            Some(Ok(Message::Binary(_))) => ended(client, Some(CloseReason::Unsupported)),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Inbound::Activity { client },
            // tungstenite queued the reply; the reads below send it.
            Some(Ok(Message::Close(_))) | None => ended(client, None),
            Some(Ok(Message::Frame(_))) => continue,
            Some(Err(e)) => {
                log::debug!("websocket error: {e}");
                ended(client, chat_adapter::ws_rules::read_error_close(&e))
            }
        };
        let last = matches!(input, Inbound::Ended { .. });
        if shared.inbox.send(input).await.is_err() || last {
            break;
        }
    }
    // What the peer still sends is read and dropped at the socket's end (`connection.rs`).
    stream
}

fn ended(client: ClientId, reason: Option<CloseReason>) -> Inbound {
    Inbound::Ended { client, reason }
}

//! Reading WebSocket frames: tungstenite parses them (`Conn::read_message`), each complete
//! message becomes an input for the core, and a read error becomes the close code it deserves.
//! A connection gets a read budget per turn, so one busy client cannot starve the others.

use bytes::Bytes;
use chat_protocol::{CloseReason, Input, Payload};
use tungstenite::Message;

use super::{EventLoop, CLOSE_LINGER};

/// Messages and bytes read from one connection per turn before the others get their turn.
const READ_BUDGET_MESSAGES: usize = 64;
const READ_BUDGET_BYTES: u64 = 256 * 1024;

impl EventLoop {
    pub(super) fn read_ws(&mut self, key: usize) {
        let start_bytes = self.metrics.bytes_in;
        for _ in 0..READ_BUDGET_MESSAGES {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let Some(client) = conn.client() else {
                return;
            };
            if conn.queued() > self.config.max_outbound {
                // Pongs pile up unread (a ping flood from a client that does not read): read
                // nothing more until the queue drains; the flush resumes reading.
                conn.pause_reading();
                self.mark_dirty(key);
                return;
            }
            let message = conn.read_message(&mut self.metrics.bytes_in, &self.ws_config);
            if conn.queued() > 0 {
                // A pong or a close reply is waiting.
                self.mark_dirty(key);
            }
            match message {
                Ok(None) => return,
                Ok(Some(Message::Text(text))) => {
                    self.metrics.messages_received += 1;
                    // tungstenite checked the UTF-8 already; the core's Payload checks again
                    // rather than trust a type it does not know (a linear scan, no copy).
                    match Payload::try_from(Bytes::from(text)) {
                        Ok(text) => self.feed(Input::Text { client, text }),
                        Err(_) => self.close_client(key, CloseReason::InvalidUtf8, false),
                    }
                }
                Ok(Some(Message::Binary(_))) => {
                    self.close_client(key, CloseReason::Unsupported, false);
                    return;
                }
                Ok(Some(Message::Ping(_) | Message::Pong(_))) => {
                    self.feed(Input::Activity { client });
                }
                Ok(Some(Message::Close(_))) => {
                    // tungstenite queued the reply; send it and end.
                    let conn = &mut self.conns[key];
                    if let Some(departed) = conn.close_ws(None, None, false, &self.ws_config) {
                        let user = self.core.user(departed.client).unwrap_or_default();
                        log::info!(
                            peer:% = conn.peer(), user = user;
                            "{user} ({}) disconnected", conn.peer()
                        );
                        self.set_deadline(key, CLOSE_LINGER);
                        self.mark_dirty(key);
                        self.leave(departed.client);
                    }
                    return;
                }
                Ok(Some(Message::Frame(_))) => {}
                Err(e) => {
                    self.ws_error(key, e);
                    return;
                }
            }
            if self.metrics.bytes_in - start_bytes > READ_BUDGET_BYTES {
                break;
            }
        }
        // Budget spent with input possibly left: come back next turn, after the others.
        self.backlog.push(key);
    }

    /// A read failed: answer with the close code the error deserves, or drop a connection
    /// that is already gone.
    fn ws_error(&mut self, key: usize, error: tungstenite::Error) {
        let peer = self.conns[key].peer();
        log::debug!("{peer}: websocket error: {error}");
        let Some(reason) = chat_adapter::ws_rules::read_error_close(&error) else {
            // IO errors, a reset, a finished close handshake: nothing more to say to this peer.
            self.mark_gone(key);
            return;
        };
        self.close_client(key, reason, false);
    }
}

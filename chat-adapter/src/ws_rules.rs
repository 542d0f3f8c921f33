//! The WebSocket rules both adapters apply the same way: the size limits tungstenite enforces,
//! and the close code each read error deserves.

use chat_protocol::CloseReason;
use tungstenite::error::ProtocolError;
use tungstenite::protocol::WebSocketConfig;

/// tungstenite's limits for `--max-message-size`: a message, whole or in fragments, and any
/// one frame. An adapter sizes the buffers on top of this for its own IO.
pub fn websocket_limits(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// What a failed read means for the client: the close to send, or `None` when the connection
/// is gone already (IO errors, a reset, a finished close handshake: nothing more to say).
pub fn read_error_close(error: &tungstenite::Error) -> Option<CloseReason> {
    match error {
        tungstenite::Error::Capacity(_) => Some(CloseReason::TooBig),
        tungstenite::Error::Utf8(_) => Some(CloseReason::InvalidUtf8),
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        tungstenite::Error::Protocol(_) => Some(CloseReason::ProtocolError),
        _ => None,
    }
}

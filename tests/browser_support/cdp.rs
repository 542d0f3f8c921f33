//! A minimal Chrome DevTools Protocol client: JSON-RPC over one WebSocket.
//!
//! Only what the browser test needs: send a command (optionally to a flattened target
//! session) and block until its reply arrives, with a deadline. Events are not subscribed
//! to one by one; the few the test cares about (uncaught page exceptions and console
//! errors) are kept per session so failures can show them.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// Why a CDP command did not produce a result.
#[derive(Debug)]
pub enum CdpError {
    /// The WebSocket or its TCP connection failed.
    Transport(String),
    /// No reply arrived before the deadline.
    Timeout { method: String, after: Duration },
    /// The browser answered with a protocol error.
    Protocol { method: String, error: Value },
}

impl fmt::Display for CdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CdpError::Transport(e) => write!(f, "CDP transport error: {e}"),
            CdpError::Timeout { method, after } => {
                write!(f, "CDP command {method} got no reply within {after:?}")
            }
            CdpError::Protocol { method, error } => {
                write!(f, "CDP command {method} failed: {error}")
            }
        }
    }
}

impl From<tungstenite::Error> for CdpError {
    fn from(e: tungstenite::Error) -> Self {
        CdpError::Transport(e.to_string())
    }
}

impl From<io::Error> for CdpError {
    fn from(e: io::Error) -> Self {
        CdpError::Transport(e.to_string())
    }
}

/// One DevTools WebSocket connection, to the browser endpoint. Pages are reached through
/// it with flattened sessions (`Target.attachToTarget {flatten: true}`), so one socket and
/// one reader serve every tab and no background thread is needed.
pub struct Cdp {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    /// Uncaught exceptions and console errors, keyed by session id.
    page_errors: HashMap<String, Vec<String>>,
}

impl Cdp {
    /// Connects to a `ws://HOST:PORT/devtools/browser/...` URL as printed by Chromium.
    pub fn connect(url: &str) -> Result<Cdp, CdpError> {
        // Open the TCP stream ourselves so it is a plain `TcpStream` whose read timeout we
        // can set per call; tungstenite then only does the WebSocket handshake on it.
        let authority = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .ok_or_else(|| CdpError::Transport(format!("not a ws:// URL: {url}")))?;
        let stream = TcpStream::connect(authority)?;
        stream.set_nodelay(true)?;
        let (ws, _response) = tungstenite::client(url, stream)
            .map_err(|e| CdpError::Transport(format!("WebSocket handshake with {url}: {e}")))?;
        Ok(Cdp {
            ws,
            next_id: 1,
            page_errors: HashMap::new(),
        })
    }

    /// Sends `method` (to `session`, or to the browser itself when `None`) and waits up to
    /// `timeout` for its reply, returning the `result` object.
    pub fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, CdpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        self.ws.send(Message::text(command.to_string()))?;

        let deadline = Instant::now() + timeout;
        loop {
            let Some(frame) = self.read_until(deadline)? else {
                return Err(CdpError::Timeout {
                    method: method.to_owned(),
                    after: timeout,
                });
            };
            // A reply carries an id; anything else is an event. Replies to earlier commands
            // that timed out may still trickle in, so match on our own id.
            match frame.get("id").and_then(Value::as_u64) {
                Some(reply_id) if reply_id == id => return reply_result(method, frame),
                Some(_) => {}
                None => self.record_event(&frame),
            }
        }
    }

    /// Errors the page in `session` reported so far (exceptions, `console.error`).
    pub fn page_errors(&self, session: &str) -> &[String] {
        self.page_errors.get(session).map_or(&[], Vec::as_slice)
    }

    /// Reads the next JSON frame, or `None` once `deadline` has passed.
    fn read_until(&mut self, deadline: Instant) -> Result<Option<Value>, CdpError> {
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Ok(None);
            };
            // A zero timeout means "block forever" to the OS, hence the floor.
            let left = left.max(Duration::from_millis(1));
            self.ws.get_mut().set_read_timeout(Some(left))?;
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    let frame = serde_json::from_str(text.as_str()).map_err(|e| {
                        CdpError::Transport(format!("invalid CDP JSON ({e}): {text}"))
                    })?;
                    return Ok(Some(frame));
                }
                // Pings are answered by tungstenite itself; nothing else is expected.
                Ok(_) => {}
                // tungstenite keeps partial frames buffered, so a read timeout is harmless
                // and the next read carries on where this one stopped.
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Keeps the events that explain a failing page; all others are dropped.
    fn record_event(&mut self, event: &Value) {
        let Some(session) = event.get("sessionId").and_then(Value::as_str) else {
            return;
        };
        let params = &event["params"];
        let line = match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => {
                let details = &params["exceptionDetails"];
                let description = details["exception"]["description"]
                    .as_str()
                    .or(details["text"].as_str())
                    .unwrap_or("unknown exception");
                format!("uncaught exception: {description}")
            }
            Some("Runtime.consoleAPICalled") if params["type"] == "error" => {
                let args: Vec<String> = params["args"]
                    .as_array()
                    .map(|args| args.iter().map(remote_object_text).collect())
                    .unwrap_or_default();
                format!("console.error: {}", args.join(" "))
            }
            _ => return,
        };
        self.page_errors
            .entry(session.to_owned())
            .or_default()
            .push(line);
    }
}

/// Turns a reply frame into its `result`, or the protocol error it carries.
fn reply_result(method: &str, mut frame: Value) -> Result<Value, CdpError> {
    if let Some(error) = frame.get("error") {
        return Err(CdpError::Protocol {
            method: method.to_owned(),
            error: error.clone(),
        });
    }
    Ok(frame["result"].take())
}

/// A readable rendering of a `Runtime.RemoteObject` console argument.
fn remote_object_text(object: &Value) -> String {
    match (&object["value"], object["description"].as_str()) {
        (Value::String(s), _) => s.clone(),
        (Value::Null, Some(description)) => description.to_owned(),
        (value, _) => value.to_string(),
    }
}

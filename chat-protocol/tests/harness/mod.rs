//! A test harness that drives [`ChatServer`] in virtual time: `input`, `advance`, `drain`.
#![allow(dead_code)] // each test binary uses a different part of it

use std::time::{Duration, Instant};

use chat_protocol::{ChatServer, ClientId, Config, Input, Now, Output, Payload};
use chrono::{DateTime, TimeZone, Utc};

/// The wall-clock time every scenario starts at.
pub fn start_wall() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 20, 52, 58).unwrap() + Duration::from_millis(123)
}

pub struct Harness {
    pub server: ChatServer,
    pub now: Now,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        Harness {
            server: ChatServer::new(config),
            // Instant has no fixed origin; only differences from this base are ever used.
            now: Now {
                instant: Instant::now(),
                wall: start_wall(),
            },
        }
    }

    /// Feeds one input at the current virtual time; panics on a contract error.
    pub fn input(&mut self, input: Input) {
        self.server
            .handle_input(self.now, input)
            .expect("the harness keeps the driver contract");
    }

    /// Moves both clocks forward.
    pub fn advance(&mut self, by: Duration) {
        self.now.instant += by;
        self.now.wall += by;
    }

    /// Everything the server wants done now.
    pub fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.server.poll_output()).collect()
    }

    pub fn connect(&mut self, id: u64, user: &str) {
        self.input(Input::Connect {
            client: ClientId(id),
            user: user.to_owned(),
        });
    }

    pub fn text(&mut self, id: u64, text: &str) {
        self.input(Input::Text {
            client: ClientId(id),
            text: Payload::from(text),
        });
    }

    /// A ping or pong from the client.
    pub fn activity(&mut self, id: u64) {
        self.input(Input::Activity {
            client: ClientId(id),
        });
    }

    pub fn disconnect(&mut self, id: u64) {
        self.input(Input::Disconnect {
            client: ClientId(id),
        });
    }

    /// A Timeout at the current virtual time (time does not move).
    pub fn timeout(&mut self) {
        self.input(Input::Timeout);
    }
}

/// The JSON frame the tutorial would send, as a string, for comparisons (fields in the
/// tutorial's order; `serde_json::json!` would sort them).
pub fn frame(kind: &str, client_id: &str, message: &str, timestamp: &str) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("a str always serializes");
    format!(
        r#"{{"type":{},"client_id":{},"message":{},"timestamp":{}}}"#,
        q(kind),
        q(client_id),
        q(message),
        q(timestamp)
    )
}

/// An error frame: the tutorial's four fields, then `code`.
pub fn error_frame(client_id: &str, message: &str, timestamp: &str, code: &str) -> String {
    let f = frame("error", client_id, message, timestamp);
    let q = serde_json::to_string(code).expect("a str always serializes");
    format!(r#"{},"code":{q}}}"#, &f[..f.len() - 1])
}

/// `Output::Send` to each of `to`, all carrying `payload`.
pub fn sends(to: &[u64], payload: &str) -> Vec<Output> {
    to.iter()
        .map(|&id| Output::Send {
            to: ClientId(id),
            payload: Payload::from(payload),
        })
        .collect()
}

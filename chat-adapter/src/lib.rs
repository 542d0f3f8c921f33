//! What every runtime adapter of the chat server shares that is not IO.
//!
//! The chat itself is decided by the sans-IO core in [`chat_protocol`]. An adapter (the mio
//! event loop in `chat-mio-server`, the tokio tasks in `chat-tokio`) owns the sockets, the
//! timers and the threads. Between the two sits what both must answer the same way, and it
//! lives here, once:
//!
//! ```text
//!   request head ──► http::parse ──► routes::route ──► Route::Respond(Response)  a file, a health
//!   (or an HTTP library's parts                    │                            answer, a refusal
//!    copied into http::Request)                    └─► Route::Upgrade(Accepted) who, which room,
//!                                                       handshake::accept        v1 or v2, resume
//!   options: config::Config (flags, CHAT_* env, config_file for --config; cli for a binary)
//!   static files: assets::Assets      client addresses: client_addr::ClientAddrs
//!   logs: logging                     stored messages: store_records (core ⇄ chat-store)
//!   before serving: startup (store opened, core restored), tokens (--auth token), bans
//!   refusals before routing: refusals   WebSocket limits and read errors' closes: ws_rules
//! ```
//!
//! Nothing here opens a socket, spawns a thread or reads the clock in a loop; reading the
//! static directory and the configuration file happens once, at start. The close codes are
//! the core's own table, [`chat_protocol::CloseReason`].
#![forbid(unsafe_code)]

pub mod assets;
pub mod bans;
pub mod cli;
pub mod client_addr;
pub mod config;
pub mod config_file;
pub mod handshake;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod refusals;
pub mod routes;
pub mod startup;
pub mod store_records;
pub mod tokens;
pub mod ws_rules;

pub use assets::Assets;
pub use config::{AuthMode, Config, RoomAccess, StoreKind, SyncLevel};

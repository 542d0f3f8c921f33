//! Workspace root package. It holds no code of its own: it owns the end-to-end tests in `tests/`
//! and the criterion benches in `benches/`, so that `cargo test --workspace` at the root runs
//! every test of the project. The server lives in `chat-mio-server/`, the protocol in
//! `chat-protocol/`.

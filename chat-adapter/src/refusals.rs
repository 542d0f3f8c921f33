//! The refusals an adapter gives before routing: too many connections in all, or from one
//! address. (The router's own refusals are in `routes.rs` and `handshake.rs`, token mode's in
//! `tokens.rs`.)

use crate::http::Response;

/// The answer to a client address that holds `--max-connections-per-ip` connections already.
pub fn too_many_from_this_address() -> Response<'static> {
    Response::text(
        429,
        "too many connections from your address, try again later\n",
    )
    .header("Retry-After", "10")
    .keep_alive(false)
}

/// The answer while `--max-connections` connections are open.
pub fn server_full() -> Response<'static> {
    Response::text(503, "the server is full, try again later\n")
        .header("Retry-After", "10")
        .keep_alive(false)
}

//! A [`chat_adapter::http::Response`] (what the routes decided) as an axum response: the same
//! status, headers and bytes the mio server writes, `Content-Length` included for `HEAD` and
//! `Connection: close` when the answer ends the connection.

use axum::body::Body;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, SERVER};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

/// The `Server` header of every answer.
pub(crate) const SERVER_NAME: &str = "chat-tokio";

/// `response` as axum's. A header value the routes built is always valid; one that is not
/// (it cannot come from a client) is left out rather than fail the answer.
pub fn http_answer(response: &chat_adapter::http::Response<'_>) -> Response {
    let status =
        StatusCode::from_u16(response.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut answer = Response::new(Body::from(response.body_bytes()));
    *answer.status_mut() = status;
    let headers = answer.headers_mut();
    headers.insert(SERVER, HeaderValue::from_static(SERVER_NAME));
    for (name, value) in response.headers() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    let status = response.status();
    // 101 and 304 carry no body and no length of one; a HEAD answer says the GET's length.
    if status != 101 && status != 304 {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(response.content_length()));
    }
    if status != 101 {
        // Said either way, as the mio server does (hyper would leave keep-alive implicit).
        headers.insert(
            CONNECTION,
            HeaderValue::from_static(if response.keep_alive {
                "keep-alive"
            } else {
                "close"
            }),
        );
    }
    answer
}

#[cfg(test)]
mod tests {
    use chat_adapter::http::Response as ChatResponse;

    use super::*;

    #[test]
    fn status_headers_and_length() {
        let answer = http_answer(
            &ChatResponse::text(429, "slow down\n")
                .header("Retry-After", "10")
                .keep_alive(false),
        );
        assert_eq!(answer.status(), 429);
        let h = answer.headers();
        assert_eq!(h["retry-after"], "10");
        assert_eq!(h["content-type"], "text/plain; charset=utf-8");
        assert_eq!(h["content-length"], "10");
        assert_eq!(h["connection"], "close");
    }

    #[test]
    fn head_keeps_the_length_and_drops_the_body() {
        let answer = http_answer(&ChatResponse::text(200, "ok\n").head_only(true));
        assert_eq!(answer.headers()["content-length"], "3");
        assert_eq!(answer.headers()["connection"], "keep-alive");
    }
}

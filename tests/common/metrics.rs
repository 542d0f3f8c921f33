//! `/metrics` as the end-to-end tests read it: one scrape, the value of one series, and the
//! `chat_closes_total` family checked as a whole.
//!
//! Include it next to `mod common;` and the HTTP client with
//! `#[path = "common/metrics.rs"] mod metrics;`.
#![allow(dead_code)] // each test binary uses a different part of the helpers

use crate::common::TestServer;
use crate::http_client::{get, Http};

/// One `/metrics` scrape (Prometheus text).
pub struct Metrics(pub String);

impl Metrics {
    /// `GET /metrics` on a connection of its own; it must answer 200.
    pub fn get(server: &TestServer) -> Metrics {
        let response = get(server.addr, "/metrics");
        assert_eq!(response.status, 200, "{response:?}");
        Metrics(response.body_text().to_owned())
    }

    /// `GET /metrics` on `http` (a keep-alive connection); it must answer 200.
    pub fn scrape(http: &mut Http) -> Metrics {
        http.send("GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
        let response = http.response(false);
        assert_eq!(response.status, 200, "{response:?}");
        Metrics(response.body_text().to_owned())
    }

    /// The value of the sample `series` (a name with its labels, exactly as exposed).
    pub fn value(&self, series: &str) -> f64 {
        self.0
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no sample {series} in:\n{}", self.0))
            .parse()
            .unwrap_or_else(|e| panic!("{series}: not a number: {e}"))
    }

    /// The value of a counter or gauge that holds a whole number.
    pub fn count(&self, series: &str) -> u64 {
        self.value(series) as u64
    }

    pub fn text(&self) -> &str {
        &self.0
    }
}

/// Every `chat_closes_total` series is as given (those not given are 0).
pub fn assert_closes(server: &TestServer, expected: &[(&str, u64)]) {
    const REASONS: [&str; 8] = [
        "slow_consumer",
        "rate_limit",
        "too_big",
        "idle",
        "protocol_error",
        "invalid_utf8",
        "unsupported_data",
        "shutdown",
    ];
    let metrics = Metrics::get(server);
    let got: Vec<(&str, u64)> = REASONS
        .iter()
        .map(|r| {
            (
                *r,
                metrics.count(&format!("chat_closes_total{{reason=\"{r}\"}}")),
            )
        })
        .collect();
    let want: Vec<(&str, u64)> = REASONS
        .iter()
        .map(|r| {
            let n = expected.iter().find(|(l, _)| l == r).map_or(0, |(_, n)| *n);
            (*r, n)
        })
        .collect();
    assert_eq!(got, want, "chat_closes_total by reason");
}

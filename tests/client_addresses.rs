//! Per-address connection limits and the client address behind a trusted reverse proxy, over
//! real sockets: `--max-connections-per-ip` refuses with 429 and forgets a connection that
//! ended; `X-Forwarded-For` counts only when the peer is a `--trusted-proxy`.

mod common;
#[path = "common/http_client.rs"]
mod http_client;

use std::net::IpAddr;

use chat_mio_server::Config;
use common::TestServer;
use http_client::Http;

/// An upgrade request for `/ws/{id}` with `extra` header lines; returns the connection (kept
/// open while the caller holds it) and the status of the answer.
fn upgrade(server: &TestServer, id: &str, extra: &str) -> (Http, u16, Option<String>) {
    let (http, response) = http_client::upgrade(server.addr, id, extra);
    let retry_after = response.header("Retry-After").map(str::to_owned);
    (http, response.status, retry_after)
}

fn limited(per_ip: usize, trusted: &[&str]) -> TestServer {
    TestServer::with_config(Config {
        max_connections_per_ip: per_ip,
        trusted_proxies: trusted
            .iter()
            .map(|ip| ip.parse::<IpAddr>().expect("an address"))
            .collect(),
        ..Config::default()
    })
}

#[test]
fn an_address_at_its_limit_gets_429_until_one_of_its_connections_ends() {
    let server = limited(3, &[]);
    let mut open: Vec<Http> = (0..3)
        .map(|i| {
            let (http, status, _) = upgrade(&server, &format!("user{i}"), "");
            assert_eq!(status, 101, "connection {i}");
            http
        })
        .collect();
    let (mut refused, status, retry_after) = upgrade(&server, "one-too-many", "");
    assert_eq!(status, 429);
    assert!(retry_after.is_some(), "a 429 says when to come back");
    refused.rest_until_closed();
    // Without a trusted proxy, X-Forwarded-For is the client's say and counts for nothing.
    let (_, status, _) = upgrade(&server, "forger", "X-Forwarded-For: 203.0.113.50\r\n");
    assert_eq!(status, 429, "a forged X-Forwarded-For escaped the limit");

    drop(open.pop());
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    loop {
        let (http, status, _) = upgrade(&server, "next", "");
        if status == 101 {
            open.push(http);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the ended connection was never released"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Plain HTTP requests count too: make room for the one that reads the metrics.
    drop(open);
    let metrics = loop {
        let response = http_client::get(server.addr, "/metrics");
        if response.status == 200 {
            break response;
        }
        assert!(std::time::Instant::now() < deadline, "no room for /metrics");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        metrics
            .body_text()
            .lines()
            .any(|l| l.starts_with("chat_connections_refused_per_ip_total ") && !l.ends_with(" 0")),
        "the refusals are counted"
    );
}

#[test]
fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    // The test's own address is the "proxy".
    let server = limited(2, &["127.0.0.1"]);
    let from = |ip: &str| format!("X-Forwarded-For: {ip}\r\n");
    let mut open = Vec::new();
    for i in 0..2 {
        let (http, status, _) = upgrade(&server, &format!("a{i}"), &from("203.0.113.1"));
        assert_eq!(status, 101);
        open.push(http);
    }
    let (_, status, _) = upgrade(&server, "a2", &from("203.0.113.1"));
    assert_eq!(status, 429, "the forwarded client is at its limit");
    // A forged entry to the left of what the proxy saw changes nothing.
    let (_, status, _) = upgrade(&server, "a3", &from("198.51.100.9, 203.0.113.1"));
    assert_eq!(status, 429);
    // Other clients behind the same proxy are not affected, however many.
    for i in 0..4 {
        let (http, status, _) = upgrade(
            &server,
            &format!("b{i}"),
            &from(&format!("203.0.113.{}", 10 + i)),
        );
        assert_eq!(status, 101, "client {i} behind the proxy");
        open.push(http);
    }
}
